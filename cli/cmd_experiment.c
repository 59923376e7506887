/* nboost experiment: runs a study file's arms (study/study.h,
 * docs/study.md) and writes the report. No MPI here: under mpirun or srun
 * each process reads its rank from the launcher's environment only to say
 * so; the processes share the jobs through per-job locks. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jobfile.h"
#include "common/nb_error.h"
#include "common/nb_io.h"
#include "study/study.h"
#include "cli/cli_args.h"
#include "cli/commands.h"

typedef struct {
	const char *out, *nboost;
	int quick, full, report_only, dry_run;
} exp_cli;

static int launcher_rank(int *rank, int *size)
{
	static const char *const pairs[][2] = {
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		const char *r = getenv(pairs[i][0]), *s = getenv(pairs[i][1]);
		if (r && s && atoi(s) > 0) {
			*rank = atoi(r), *size = atoi(s);
			return 1;
		}
	}
	*rank = 0, *size = 1;
	return 0;
}

int cmd_experiment(int argc, char **argv)
{
	exp_cli o = {.out = "runs/study"};
	jobfile *overrides = jobfile_new();
	const cli_option opts[] = {
		CLI_OPT_STRING("out", &o.out, "DIR", "the study directory: data, arms/, results.md (default runs/study)"),
		CLI_OPT_FLAG("quick", 0, &o.quick,
			     "the [quick-arms] with the [quick] settings: a minutes-long check\nthat the study runs and reports"),
		CLI_OPT_FLAG("full", 0, &o.full, "the whole grid: the [full] arms after the [arms]"),
		CLI_OPT_FLAG("report", 0, &o.report_only, "only write the report from the finished jobs"),
		CLI_OPT_FLAG("dry-run", 'n', &o.dry_run, "print the jobs (arm, seed, done or not) and exit"),
		CLI_OPT_STRING("nboost", &o.nboost, "PATH", "the nboost the jobs run (default: this one)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "experiment",
		.synopsis = "usage: nboost experiment STUDY [--out DIR] [--quick|--full] [--report] [--section.key=value...]\n"
			    "       mpirun -np N nboost experiment STUDY --out DIR   (N processes share the jobs)\n",
		.about = "Runs the study: renders its corpus, then every arm for every seed as\n"
			 "child processes of nboost (train, run under mpirun, eval --pope, attn),\n"
			 "study.parallel jobs at once, each in DIR/arms/ARM/seed-S/, done when its\n"
			 "result.json exists: a rerun skips finished jobs and resumes interrupted\n"
			 "ones. Then writes DIR/results.md, results.json and plots/ (gnuplot).\n"
			 "SIGTERM, SIGINT or SIGUSR1 stop every job cleanly; exit 75, rerun to\n"
			 "continue. Exit 1 when a job failed (the others still run). docs/study.md.\n",
		.opts = opts,
		.positional = "STUDY",
		.min_pos = 1,
		.max_pos = 1,
		.overrides = overrides,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0) {
		jobfile_free(overrides);
		return rc;
	}
	if (o.quick && o.full) {
		fprintf(stderr, "nboost experiment: --quick and --full exclude each other\n");
		jobfile_free(overrides);
		return 2;
	}
	study_conf *c = study_load(argv[1], o.quick, o.full, overrides);
	jobfile_free(overrides);
	if (!c)
		nb_die("%s", nb_errmsg());
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (!o.nboost) {
		if (n <= 0)
			nb_die("cannot find this executable (/proc/self/exe); give --nboost PATH");
		self[n] = 0;
		o.nboost = self;
	}
	study_run_opts ro = {.out = o.out, .nboost = o.nboost, .dry_run = o.dry_run};
	if (launcher_rank(&ro.rank, &ro.nranks))
		fprintf(stderr, "experiment: process %d of %d, sharing the jobs of %s\n", ro.rank, ro.nranks, o.out);
	int status = 0;
	if (!o.report_only) {
		status = study_run(c, &ro);
		if (status < 0)
			nb_die("%s", nb_errmsg());
	}
	if (!o.dry_run && ro.rank == 0 && status != NB_EXIT_STOPPED) {
		if (study_report(c, o.out) < 0)
			nb_die("%s", nb_errmsg());
		fprintf(stderr, "experiment: report in %s/results.md\n", o.out);
	}
	study_free(c);
	return status;
}
