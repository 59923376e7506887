/* nboost run: the distributed semi-supervised pipeline (pipeline/run.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jobfile.h"
#include "common/nb_error.h"
#include "cli/commands.h"
#include "pipeline/ranks.h"
#include "pipeline/run.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpirun -np N nboost run JOB [--out RUNDIR] [--section.key=value...]\n"
		"\n"
		"Mines the unlabeled shards of corpus.unlabeled for pseudo-labels and trains a\n"
		"student on them plus corpus.labeled. The world is split into 1 master,\n"
		"run.teachers teachers (1 clean + teacher.K noisy captions per image),\n"
		"run.filters filters (the consistency vote, one pseudo shard per unit) and\n"
		"run.students students (data-parallel NoiseBoost training); the counts must add\n"
		"up to N. The same command on the same RUNDIR resumes. SIGTERM, SIGINT and\n"
		"SIGUSR1 finish in-flight units, checkpoint the students and exit 0.\n"
		"\n"
		"options:\n"
		"  --out RUNDIR      run directory: journal.jsonl, events.jsonl, config.conf,\n"
		"                    round-R/{pseudo/,student.h5,labels.json} (default: runs/run)\n"
		"  --section.key=V   override any job-file key (schemas/job_file.md)\n"
		"  -h, --help        this text\n");
}

static void on_signal(int sig) { run_request_stop(sig); }

int cmd_run(int argc, char **argv)
{
	const char *out = "runs/run", *job_path = NULL;
	jobfile *overrides = jobfile_new();
	if (jobfile_apply_overrides(overrides, &argc, argv) < 0) {
		fprintf(stderr, "nboost run: %s\n", nb_errmsg());
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			out = argv[++i];
		} else if (!strncmp(argv[i], "--out=", 6)) {
			out = argv[i] + 6;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "nboost run: unknown option '%s'\n", argv[i]);
			return 2;
		} else if (job_path) {
			fprintf(stderr, "nboost run: more than one JOB file\n");
			return 2;
		} else {
			job_path = argv[i];
		}
	}
	if (!job_path) {
		fprintf(stderr, "nboost run: missing JOB file\n");
		usage(stderr);
		return 2;
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
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	int rc = run_pipeline(&job, jf, out);
	jobfile_free(jf);
	jobfile_free(overrides);
	ranks_finish();
	return rc;
}
