/* nboost synth: renders the synthetic scene corpus into shards (MPI).
 * Rank 0 prepares the directories and checks corpus.json, every rank writes
 * its shards, rank 0 merges the manifest and prints the summary. */
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_time.h"
#include "pipeline/ranks.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "corpus/synth/synth.h"

#define MAX_COUNT (((uint64_t)1 << 40) - 1) /* the index field of an id */

/* Parses argv into o. Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, synth_opts *o, int *quiet)
{
	long size = o->size, shard_size = o->shard_size;
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("out", &o->out, "DIR",
				 "output directory (required): DIR/{labeled,unlabeled,test}/,\nDIR/corpus.json (and DIR/test-*/ with --hard-tests)"),
		CLI_OPT_U64("labeled", &o->count[SYNTH_LABELED], 0, MAX_COUNT, "N", "labeled scenes (default 4000)"),
		CLI_OPT_U64("unlabeled", &o->count[SYNTH_UNLABELED], 0, MAX_COUNT, "N",
			    "unlabeled scenes (default 4000)"),
		CLI_OPT_U64("test", &o->count[SYNTH_TEST], 0, MAX_COUNT, "N", "test scenes (default 1000)"),
		CLI_OPT_U64("hard-tests", &o->count[SYNTH_HARD_FIRST], 0, MAX_COUNT, "N",
			    "scenes in each hard test split (test-counter-*, test-shift-*,\n"
			    "test-dense: docs/scene-grammar.md) (default 0: none)"),
		CLI_OPT_U64("seed", &o->seed, 0, UINT64_MAX, "S", "corpus seed (default 1)"),
		CLI_OPT_LONG("size", &size, SYNTH_MIN_SIZE, SYNTH_MAX_SIZE, "PX",
			     "image side in pixels, " CLI_STR(SYNTH_MIN_SIZE) ".." CLI_STR(SYNTH_MAX_SIZE) " (default 48)"),
		CLI_OPT_LONG("shard-size", &shard_size, 1, 1000000, "N", "scenes per shard (default 1000)"),
		CLI_OPT_STRING("png", &o->png, "DIR",
			       "also write DIR/<split>/<id>.png and DIR/manifest.tsv\n(path relative to DIR, TAB, "
			       "ground-truth caption) (default: off)"),
		CLI_OPT_FLAG("force", 0, &o->force,
			     "replace an existing corpus in DIR instead of resuming it\n(default: off)"),
		CLI_OPT_FLAG("quiet", 'q', quiet, "no progress or summary on stderr/stdout (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "synth",
		.synopsis = "usage: nboost synth --out DIR [options]\n"
			    "       mpirun -np N nboost synth --out DIR [options]\n",
		.about = "Renders the synthetic scene corpus (docs/scene-grammar.md) into labeled and test\n"
			 "caption shards and unlabeled image shards, all with ground-truth objects. The\n"
			 "output is identical for any number of ranks. Rerunning the same command after\n"
			 "an interruption keeps the shards that are complete and writes the rest.\n",
		.opts = opts,
	};
	int npos;
	int rc = cli_parse(&cmd, argc, argv, &npos);
	for (int s = SYNTH_HARD_FIRST + 1; s < SYNTH_SPLITS; s++)
		o->count[s] = o->count[SYNTH_HARD_FIRST];
	o->size = (int)size;
	o->shard_size = (int)shard_size;
	return rc;
}

static void print_summary(const synth_opts *o, const synth_stats *st, const uint64_t *bytes, double secs, int nranks)
{
	uint64_t rendered = 0;
	printf("%-22s %10s %8s %14s %10s\n", "split", "scenes", "shards", "bytes", "skipped");
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		if (!synth_split_used(o, s))
			continue;
		printf("%-22s %10" PRIu64 " %8" PRIu64 " %14" PRIu64 " %10" PRIu64 "\n", synth_split_names[s],
		       o->count[s], synth_nshards(o, s), bytes[s], st->skipped[s]);
		rendered += st->rendered[s];
	}
	printf("rendered %" PRIu64 " scenes in %.2f s on %d rank(s): %.0f scenes/s (%.0f per rank)\n", rendered,
	       secs, nranks, secs > 0 ? (double)rendered / secs : 0.0,
	       secs > 0 ? (double)rendered / secs / nranks : 0.0);
}

int cmd_synth(int argc, char **argv)
{
	synth_opts o;
	memset(&o, 0, sizeof o);
	o.count[SYNTH_LABELED] = 4000;
	o.count[SYNTH_UNLABELED] = 4000;
	o.count[SYNTH_TEST] = 1000;
	o.seed = 1;
	o.size = 48;
	o.shard_size = 1000;
	int quiet = 0;
	int rc = parse_args(argc, argv, &o, &quiet);
	if (rc >= 0)
		return rc;

	int rank = 0, nranks = 1;
	ranks_start(&argc, &argv, &rank, &nranks);
	o.progress = rank == 0 && !quiet;
	double t0 = nb_now();

	/* ranks_agree prints a failure once, on whichever rank met it. */
	ranks_agree(rank != 0 || synth_prepare(&o) == 0, "synth set-up");
	synth_stats st;
	ranks_agree(synth_write_rank(&o, rank, nranks, &st) == 0, "synth");

	synth_stats total;
	MPI_Reduce(st.rendered, total.rendered, SYNTH_SPLITS, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	MPI_Reduce(st.skipped, total.skipped, SYNTH_SPLITS, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	double secs = nb_now() - t0;

	uint64_t bytes[SYNTH_SPLITS] = {0};
	ranks_agree(rank != 0 || synth_finish(&o, bytes) == 0, "synth manifest");
	if (rank == 0 && !quiet)
		print_summary(&o, &total, bytes, secs, nranks);
	ranks_finish();
	return 0;
}
