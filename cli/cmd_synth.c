/* nboost synth: renders the synthetic scene corpus into shards (MPI).
 * Rank 0 prepares the directories and checks corpus.json, every rank writes
 * its shards, rank 0 merges the manifest and prints the summary. */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdarg.h>
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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nboost synth --out DIR [options]\n"
		"       mpirun -np N nboost synth --out DIR [options]\n\n"
		"Renders the synthetic scene corpus (docs/scene-grammar.md) into labeled and test\n"
		"caption shards and unlabeled image shards, all with ground-truth objects. The\n"
		"output is identical for any number of ranks. Rerunning the same command after\n"
		"an interruption keeps the shards that are complete and writes the rest.\n\n"
		"options:\n"
		"  --out DIR          output directory (required): DIR/{labeled,unlabeled,test}/,\n"
		"                     DIR/corpus.json\n"
		"  --labeled N        labeled scenes (default 4000)\n"
		"  --unlabeled N      unlabeled scenes (default 4000)\n"
		"  --test N           test scenes (default 1000)\n"
		"  --seed S           corpus seed (default 1)\n"
		"  --size PX          image side in pixels, %d..%d (default 48)\n"
		"  --shard-size N     scenes per shard (default 1000)\n"
		"  --png DIR          also write DIR/<split>/<id>.png and DIR/manifest.tsv\n"
		"                     (path relative to DIR, TAB, ground-truth caption) (default: off)\n"
		"  --force            replace an existing corpus in DIR instead of resuming it\n"
		"                     (default: off)\n"
		"  -q, --quiet        no progress or summary on stderr/stdout (default: off)\n"
		"  -h, --help         this text\n",
		SYNTH_MIN_SIZE, SYNTH_MAX_SIZE);
}

static int bad_usage(const char *fmt, ...) NB_PRINTF(1, 2);
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nboost synth: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return 2;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses argv into o. Returns 0, 1 for --help (printed), or 2 (printed). */
static int parse_args(int argc, char **argv, synth_opts *o, int *quiet)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(arg, "--force")) {
			o->force = 1;
			continue;
		}
		if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
			*quiet = 1;
			continue;
		}
		if (strncmp(arg, "--", 2))
			return bad_usage("unexpected argument '%s'", arg);
		/* --key value or --key=value */
		char key[32];
		const char *val;
		if (cli_option_value(argc, argv, &i, key, sizeof key, &val) < 0)
			return bad_usage("option '%s' needs a value", arg);
		uint64_t v;
		int split = !strcmp(key, "--labeled") ? 0 : !strcmp(key, "--unlabeled") ? 1 : !strcmp(key, "--test") ? 2 : -1;
		if (split >= 0) {
			if (parse_u64(val, MAX_COUNT, &v))
				return bad_usage("invalid %s '%s': expected a count from 0 to 2^40-1", key, val);
			o->count[split] = v;
		} else if (!strcmp(key, "--out")) {
			if (!*val)
				return bad_usage("invalid --out '%s': expected a directory", val);
			o->out = val;
		} else if (!strcmp(key, "--png")) {
			if (!*val)
				return bad_usage("invalid --png '%s': expected a directory", val);
			o->png = val;
		} else if (!strcmp(key, "--seed")) {
			if (parse_u64(val, UINT64_MAX, &v))
				return bad_usage("invalid --seed '%s': expected a non-negative integer", val);
			o->seed = v;
		} else if (!strcmp(key, "--size")) {
			if (parse_u64(val, SYNTH_MAX_SIZE, &v) || v < SYNTH_MIN_SIZE)
				return bad_usage("invalid --size '%s': expected 16 to 512 pixels", val);
			o->size = (int)v;
		} else if (!strcmp(key, "--shard-size")) {
			if (parse_u64(val, 1000000, &v) || v < 1)
				return bad_usage("invalid --shard-size '%s': expected 1 to 1000000 scenes", val);
			o->shard_size = (int)v;
		} else {
			return bad_usage("unknown option '%s'", key);
		}
	}
	if (!o->out)
		return bad_usage("missing --out DIR");
	return 0;
}

static void print_summary(const synth_opts *o, const synth_stats *st, const uint64_t *bytes, double secs, int nranks)
{
	uint64_t rendered = 0;
	printf("%-10s %10s %8s %14s %10s\n", "split", "scenes", "shards", "bytes", "skipped");
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		printf("%-10s %10" PRIu64 " %8" PRIu64 " %14" PRIu64 " %10" PRIu64 "\n", synth_split_names[s],
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
	if (rc)
		return rc == 1 ? 0 : rc;

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
