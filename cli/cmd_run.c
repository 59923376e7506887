/* nboost run: the distributed semi-supervised pipeline (pipeline/run.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jobfile.h"
#include "common/nb_error.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "pipeline/ranks.h"
#include "pipeline/run.h"
#include "trainer/train_job.h"

/* Parses argv into *job_path, *out and the --section.key=value overrides
 * (their keys checked). Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, const char **job_path, const char **out, jobfile *overrides)
{
	const cli_option opts[] = {
		CLI_OPT_STRING("out", out, "RUNDIR",
			       "run directory: journal.jsonl, events.jsonl, config.conf,\n"
			       "round-R/{pseudo/,student.h5,labels.json} (default: runs/run)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "run",
		.synopsis = "usage: mpirun -np N nboost run JOB [--out RUNDIR] [--section.key=value...]\n",
		.about = "Mines the unlabeled shards of corpus.unlabeled for pseudo-labels and trains a\n"
			 "student on them plus corpus.labeled. The world is split into 1 master,\n"
			 "run.teachers teachers (1 clean + teacher.K noisy captions per image),\n"
			 "run.filters filters (the consistency vote, one pseudo shard per unit) and\n"
			 "run.students students (data-parallel NoiseBoost training); the counts must add\n"
			 "up to N. The same command on the same RUNDIR resumes. SIGTERM, SIGINT and\n"
			 "SIGUSR1 finish in-flight units, checkpoint the students and exit 0.\n",
		.opts = opts,
		.positional = "JOB",
		.min_pos = 1,
		.max_pos = 1,
		.overrides = overrides,
		/* sections and the training keys; the run's own keys are checked
		 * by run_job_read */
		.check_keys = train_job_check_keys,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc < 0)
		*job_path = argv[1];
	return rc;
}

static void on_signal(int sig) { run_request_stop(sig); }

int cmd_run(int argc, char **argv)
{
	const char *out = "runs/run", *job_path = NULL;
	jobfile *overrides = jobfile_new();
	int prc = parse_args(argc, argv, &job_path, &out, overrides);
	if (prc >= 0) {
		jobfile_free(overrides);
		return prc;
	}
	int rank, size;
	ranks_start(&argc, &argv, &rank, &size);
	jobfile *jf = jobfile_load(job_path);
	int ok = jf != NULL;
	for (int i = 0; ok && i < jobfile_count(overrides); i++)
		ok = jobfile_set(jf, jobfile_key_at(overrides, i), jobfile_value_at(overrides, i), "command line") == 0;
	run_job job;
	ok = ok && run_job_read(jf, &job) == 0;
	ranks_agree(ok, "reading the job file");
	cli_catch_stop_signals(on_signal);
	int rc = run_pipeline(&job, jf, out);
	jobfile_free(jf);
	jobfile_free(overrides);
	ranks_finish();
	return rc;
}
