/* nboost ingest: URL list -> image shards (corpus/ingest/ingest.h). */
#include <math.h>
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

static cli_command ingest_command(const cli_option *opts)
{
	return (cli_command){
		.name = "ingest",
		.synopsis = "usage: nboost ingest LIST --out DIR [options]\n"
			    "       mpirun -n N nboost ingest LIST --out DIR [options]\n",
		.about = "Fetches the URLs of LIST (TSV/CSV with a url column, JSONL with \"url\", or one URL\n"
			 "a line), decodes PNG/JPEG, resizes and writes image shards to DIR, with a status\n"
			 "for every record (schemas/ingest_status.md). Shard k of the list goes to rank\n"
			 "k mod N. A rerun skips completed shards.\n",
		.opts = opts,
		.positional = "LIST",
		.min_pos = 1,
		.max_pos = 1,
	};
}

/* Parses argv into o, *list and *out. Returns -1 to go on, else the exit
 * status (0 after --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, ingest_opts *o, const char **list, const char **out)
{
	fetch_opts *f = &o->fetch;
	long shard_size = (long)o->shard_size, size = o->size, conc = f->concurrency, per_host = f->per_host;
	long redirects = f->max_redirects, retries = f->retries, zstd = o->zstd_level;
	double connect = f->connect_timeout_ms / 1e3, timeout = f->timeout_ms / 1e3;
	double delay = f->backoff_ms / 1e3, retry_after = f->max_retry_after_ms / 1e3;
	uint64_t max_bytes = f->max_bytes, max_pixels = o->max_pixels;
	const char *resize = NULL;
	int quiet = 0, no_dct = 0;
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("out", out, "DIR", "output directory (required)"),
		CLI_OPT_LONG("shard-size", &shard_size, 1, 10000000, "N", "list records per shard (default 1000)"),
		CLI_OPT_LONG("size", &size, 1, 4096, "PX", "output image side in pixels (default 48)"),
		CLI_OPT_STRING("resize", &resize, "MODE", "center_crop | pad (default center_crop)"),
		CLI_OPT_LONG("concurrency", &conc, 1, 1024, "N", "transfers in flight per rank (default 16)"),
		CLI_OPT_LONG("per-host", &per_host, 1, 1024, "N", "transfers in flight per host (default 8)"),
		CLI_OPT_DOUBLE("connect-timeout", &connect, 0.001, 3600, "S", "connect timeout, seconds (default 10)"),
		CLI_OPT_DOUBLE("timeout", &timeout, 0.001, 86400, "S", "whole-transfer timeout, seconds (default 30)"),
		CLI_OPT_SIZE("max-bytes", &max_bytes, 1, (uint64_t)1 << 40, "N",
			     "body limit in bytes, k/M/G suffix (x1024) allowed\n(default 20000000)"),
		CLI_OPT_SIZE("max-pixels", &max_pixels, 1, (uint64_t)1 << 40, "N",
			     "largest image accepted, in pixels (default 40000000)"),
		CLI_OPT_LONG("max-redirects", &redirects, 0, 50, "N", "redirects followed (default 5)"),
		CLI_OPT_LONG("retries", &retries, 0, 100, "N", "extra attempts for timeouts, 5xx, 429 (default 3)"),
		CLI_OPT_DOUBLE("retry-delay", &delay, 0, 3600, "S", "first backoff delay, doubled per attempt (default 1)"),
		CLI_OPT_DOUBLE("max-retry-after", &retry_after, 0, 86400, "S",
			       "cap on Retry-After and backoff, seconds (default 60)"),
		CLI_OPT_FLAG("retry-failed", 0, &o->retry_failed,
			     "rerun: refetch records whose status is retryable (default off)"),
		CLI_OPT_FLAG("allow-file", 0, &f->allow_file, "accept file:// URLs (default off)"),
		CLI_OPT_FLAG("no-dct-scaling", 0, &no_dct, "decode JPEGs at full size before resizing (default: scaled)"),
		CLI_OPT_LONG("zstd-level", &zstd, 0, 22, "N", "shard compression level 1..22, 0 = store default (default 0)"),
		CLI_OPT_FLAG("quiet", 'q', &quiet, "no progress on stderr (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = ingest_command(opts);
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	int mode = resize ? resize_mode_parse(resize) : (int)o->mode;
	if (mode < 0)
		return cli_usage_error(&cmd, "--resize: '%s' is not center_crop or pad", resize);
	*list = argv[1];
	o->mode = (resize_mode)mode;
	o->shard_size = (size_t)shard_size;
	o->size = (int)size;
	o->max_pixels = (size_t)max_pixels;
	o->zstd_level = (int)zstd;
	o->progress = !quiet;
	o->dct_scaling = !no_dct;
	f->concurrency = (int)conc;
	f->per_host = (int)per_host;
	f->connect_timeout_ms = lround(connect * 1000);
	f->timeout_ms = lround(timeout * 1000);
	f->max_bytes = (size_t)max_bytes;
	f->max_redirects = (int)redirects;
	f->retries = (int)retries;
	f->backoff_ms = lround(delay * 1000);
	f->max_retry_after_ms = lround(retry_after * 1000);
	return -1;
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
	if (rc >= 0)
		return rc;
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
