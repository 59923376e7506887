/* nboost: the command-line entry point. Dispatches to cli/cmd_*.c; each
 * command parses its options with cli/cli_args.h. */
#include <stdio.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_prov.h"
#include "model/blas.h"
#include "cli/cli_version.h"
#include "cli/commands.h"

typedef struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} command;

static const command commands[] = {
	{"synth", cmd_synth, "render the synthetic scene corpus into image/caption shards (MPI)"},
	{"ingest", cmd_ingest, "fetch a URL list with libcurl into image shards (MPI)"},
	{"run", cmd_run, "the semi-supervised pipeline: master, noisy teachers, filters, students (MPI)"},
	{"train", cmd_train, "train the captioner with NoiseBoost on caption shards (MPI)"},
	{"pairs", cmd_pairs, "preference pairs (ground truth vs a caption with absent objects) for DPO (MPI)"},
	{"eval", cmd_eval, "score captions (a TSV, or a model's) against ground truth"},
	{"attn", cmd_attn, "attention shares per layer: image, caption, anchor; correct vs hallucinated"},
	{"caption", cmd_caption, "caption PNG/JPEG images with a trained model"},
	{"inspect", cmd_inspect, "summarise a shard or a checkpoint"},
	{"experiment", cmd_experiment, "the hallucination study: arms x seeds as child jobs, resumable; results.md + plots"},
	{"export", cmd_export, "write pseudo-labels and labels as JSON lines or LLaVA JSON + PNGs"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: nboost <command> [options]    (nboost <command> --help for details)\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nnboost --version (or nboost <command> --version) prints the version, git commit and\n"
		   "library versions.\n");
	fprintf(f, "\nMPI commands run as one process, or under mpirun/srun with one rank per process.\n"
		   "Job-file keys can be overridden as --section.key=value. See README.md.\n"
		   "Exit status: 0 done, 1 error, 2 usage, 75 stopped on a signal, resumable\n"
		   "(docs/exit-codes.md).\n");
}

/* Runs the command named by argv[1]; its exit status. */
static int dispatch(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return NB_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		cli_print_version(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "nboost: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	blas_runtime_init(argc, argv);
	nb_prov_set_argv(argc, argv); /* provenance of every file written */
	int rc = dispatch(argc, argv);
	/* Every command's output, checked in one place: a full disk or
	 * /dev/full on stdout is an error, not a silent success. */
	if (nb_stdout_close() < 0) {
		fprintf(stderr, "nboost: fatal: %s\n", nb_errmsg());
		return rc ? rc : 1;
	}
	return rc;
}
