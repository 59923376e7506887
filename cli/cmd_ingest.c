/* nboost ingest: URL list -> image shards (corpus/ingest/ingest.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "pipeline/ranks.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "corpus/ingest/ingest.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nboost ingest LIST --out DIR [options]\n"
		"       mpirun -n N nboost ingest LIST --out DIR [options]\n"
		"\n"
		"Fetches the URLs of LIST (TSV/CSV with a url column, JSONL with \"url\", or one URL\n"
		"a line), decodes PNG/JPEG, resizes and writes image shards to DIR, with a status\n"
		"for every record (schemas/ingest_status.md). Shard k of the list goes to rank\n"
		"k mod N. A rerun skips completed shards.\n"
		"\n"
		"  --out DIR              output directory (required)\n"
		"  --shard-size N         list records per shard (default 1000)\n"
		"  --size PX              output image side in pixels (default 48)\n"
		"  --resize MODE          center_crop | pad (default center_crop)\n"
		"  --concurrency N        transfers in flight per rank (default 16)\n"
		"  --per-host N           transfers in flight per host (default 8)\n"
		"  --connect-timeout S    connect timeout, seconds (default 10)\n"
		"  --timeout S            whole-transfer timeout, seconds (default 30)\n"
		"  --max-bytes N          body limit in bytes, k/M suffix allowed (default 20M)\n"
		"  --max-pixels N         largest image accepted, in pixels (default 40000000)\n"
		"  --max-redirects N      redirects followed (default 5)\n"
		"  --retries N            extra attempts for timeouts, 5xx, 429 (default 3)\n"
		"  --retry-delay S        first backoff delay, doubled per attempt (default 1)\n"
		"  --max-retry-after S    cap on Retry-After and backoff, seconds (default 60)\n"
		"  --retry-failed         rerun: refetch records whose status is retryable (default off)\n"
		"  --allow-file           accept file:// URLs (default off)\n"
		"  --no-dct-scaling       decode JPEGs at full size before resizing (default: scaled)\n"
		"  --zstd-level N         shard compression level 1..22, 0 = store default (default 0)\n"
		"  -q, --quiet            no progress on stderr (default: off)\n"
		"  -h, --help             this text\n");
}

static int bad_usage(const char *fmt, ...) NB_PRINTF(1, 2);
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nboost ingest: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return 2;
}

static int parse_num(const char *s, double lo, double hi, int allow_suffix, double *out)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v))
		return -1;
	if (allow_suffix && (*end == 'k' || *end == 'K')) {
		v *= 1e3;
		end++;
	} else if (allow_suffix && (*end == 'M' || *end == 'm')) {
		v *= 1e6;
		end++;
	} else if (allow_suffix && (*end == 'G' || *end == 'g')) {
		v *= 1e9;
		end++;
	}
	if (*end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_int(const char *s, double lo, double hi, double *out)
{
	if (parse_num(s, lo, hi, 0, out) < 0 || *out != floor(*out))
		return -1;
	return 0;
}

static int parse_args(int argc, char **argv, ingest_opts *o, const char **list, const char **out)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
			o->progress = 0;
			continue;
		}
		if (!strcmp(arg, "--retry-failed")) {
			o->retry_failed = 1;
			continue;
		}
		if (!strcmp(arg, "--allow-file")) {
			o->fetch.allow_file = 1;
			continue;
		}
		if (!strcmp(arg, "--no-dct-scaling")) {
			o->dct_scaling = 0;
			continue;
		}
		if (strncmp(arg, "--", 2) || !arg[2]) {
			if (arg[0] == '-' && arg[1])
				return bad_usage("unknown option '%s'", arg);
			if (*list)
				return bad_usage("unexpected argument '%s' (LIST is '%s')", arg, *list);
			*list = arg;
			continue;
		}
		char key[32];
		const char *val;
		if (cli_option_value(argc, argv, &i, key, sizeof key, &val) < 0)
			return bad_usage("option '%s' needs a value", arg);
		double v;
		if (!strcmp(key, "--out")) {
			if (!*val)
				return bad_usage("invalid --out '': expected a directory");
			*out = val;
		} else if (!strcmp(key, "--shard-size")) {
			if (parse_int(val, 1, 1e7, &v))
				return bad_usage("invalid --shard-size '%s': expected 1 to 10000000", val);
			o->shard_size = (size_t)v;
		} else if (!strcmp(key, "--size")) {
			if (parse_int(val, 1, 4096, &v))
				return bad_usage("invalid --size '%s': expected 1 to 4096 pixels", val);
			o->size = (int)v;
		} else if (!strcmp(key, "--resize")) {
			int m = resize_mode_parse(val);
			if (m < 0)
				return bad_usage("invalid --resize '%s': expected center_crop or pad", val);
			o->mode = (resize_mode)m;
		} else if (!strcmp(key, "--concurrency")) {
			if (parse_int(val, 1, 1024, &v))
				return bad_usage("invalid --concurrency '%s': expected 1 to 1024", val);
			o->fetch.concurrency = (int)v;
		} else if (!strcmp(key, "--per-host")) {
			if (parse_int(val, 1, 1024, &v))
				return bad_usage("invalid --per-host '%s': expected 1 to 1024", val);
			o->fetch.per_host = (int)v;
		} else if (!strcmp(key, "--connect-timeout")) {
			if (parse_num(val, 0.001, 3600, 0, &v))
				return bad_usage("invalid --connect-timeout '%s': expected seconds (0.001 to 3600)", val);
			o->fetch.connect_timeout_ms = lround(v * 1000);
		} else if (!strcmp(key, "--timeout")) {
			if (parse_num(val, 0.001, 86400, 0, &v))
				return bad_usage("invalid --timeout '%s': expected seconds (0.001 to 86400)", val);
			o->fetch.timeout_ms = lround(v * 1000);
		} else if (!strcmp(key, "--max-bytes")) {
			if (parse_num(val, 1, 1e12, 1, &v))
				return bad_usage("invalid --max-bytes '%s': expected bytes, e.g. 20M", val);
			o->fetch.max_bytes = (size_t)v;
		} else if (!strcmp(key, "--max-pixels")) {
			if (parse_num(val, 1, 1e12, 1, &v))
				return bad_usage("invalid --max-pixels '%s': expected a pixel count", val);
			o->max_pixels = (size_t)v;
		} else if (!strcmp(key, "--max-redirects")) {
			if (parse_int(val, 0, 50, &v))
				return bad_usage("invalid --max-redirects '%s': expected 0 to 50", val);
			o->fetch.max_redirects = (int)v;
		} else if (!strcmp(key, "--retries")) {
			if (parse_int(val, 0, 100, &v))
				return bad_usage("invalid --retries '%s': expected 0 to 100", val);
			o->fetch.retries = (int)v;
		} else if (!strcmp(key, "--retry-delay")) {
			if (parse_num(val, 0, 3600, 0, &v))
				return bad_usage("invalid --retry-delay '%s': expected seconds (0 to 3600)", val);
			o->fetch.backoff_ms = lround(v * 1000);
		} else if (!strcmp(key, "--max-retry-after")) {
			if (parse_num(val, 0, 86400, 0, &v))
				return bad_usage("invalid --max-retry-after '%s': expected seconds", val);
			o->fetch.max_retry_after_ms = lround(v * 1000);
		} else if (!strcmp(key, "--zstd-level")) {
			if (parse_int(val, 0, 22, &v))
				return bad_usage("invalid --zstd-level '%s': expected 0 to 22", val);
			o->zstd_level = (int)v;
		} else {
			return bad_usage("unknown option '%s'", key);
		}
	}
	if (!*list)
		return bad_usage("missing LIST");
	if (!*out)
		return bad_usage("missing --out DIR");
	return 0;
}

/* Rank 0 receives every rank's tally (as text, ingest_tally_encode) and
 * writes the totals. Collective; 0, or nb_error on rank 0. */
static int write_totals(const ingest_job *job, const ingest_tally *mine, int rank, int nranks)
{
	nb_buf text = {0};
	ingest_tally_encode(mine, &text);
	int len = (int)text.len, sum = 0;
	int *lens = rank == 0 ? nb_xcalloc((size_t)nranks, sizeof(int)) : NULL;
	MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
	int *displ = NULL;
	char *all = NULL;
	if (rank == 0) {
		displ = nb_xcalloc((size_t)nranks, sizeof(int));
		for (int r = 0; r < nranks; r++) {
			displ[r] = sum;
			sum += lens[r];
		}
		all = nb_xmalloc((size_t)sum + 1);
	}
	MPI_Gatherv(text.data, len, MPI_CHAR, all, lens, displ, MPI_CHAR, 0, MPI_COMM_WORLD);
	int rc = 0;
	if (rank == 0) {
		ingest_tally *total = ingest_tally_new();
		rc = ingest_tally_merge(total, all, (size_t)sum);
		if (rc == 0)
			rc = ingest_write_totals(job, total, nranks);
		ingest_tally_free(total);
	}
	free(text.data);
	free(lens);
	free(displ);
	free(all);
	return rc;
}

int cmd_ingest(int argc, char **argv)
{
	ingest_opts o;
	ingest_opts_default(&o);
	const char *list = NULL, *out = NULL;
	int rc = parse_args(argc, argv, &o, &list, &out);
	if (rc)
		return rc == 1 ? 0 : rc;
	int rank, size;
	ranks_start(&argc, &argv, &rank, &size);
	/* Ranks draw different jitter so that their retries spread out. */
	o.fetch.seed ^= (uint64_t)rank * 0x9e3779b97f4a7c15ULL;
	/* Rank 0 prepares the directory; the agreement keeps every rank from
	 * writing before it has. */
	ingest_job job;
	ranks_agree(ingest_open(&job, list, out, &o, rank == 0) == 0, "ingest set-up");
	ingest_tally *t = ingest_tally_new();
	ranks_agree(ingest_run_rank(&job, rank, size, t) == 0, "ingest");
	ranks_agree(write_totals(&job, t, rank, size) == 0, "ingest");
	ingest_tally_free(t);
	ingest_close(&job);
	ranks_finish();
	return 0;
}
