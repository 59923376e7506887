/* nboost ingest: URL list -> image shards (corpus/ingest/ingest.h). */
#include <math.h>
#include <signal.h>
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
			 "k mod N. A rerun skips completed shards; a rerun with other output options\n"
			 "(DIR/ingest.json) is refused. LIST may be gzip-compressed; WebP is decoded too.\n"
			 "Without --slice, SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX)\n"
			 "pick the slice. SIGTERM, SIGINT or SIGUSR1 stop it cleanly: the shards in\n"
			 "progress are dropped, nothing half-written is kept, exit 75; the same command\n"
			 "resumes (docs/ingest.md).\n",
		.opts = opts,
		.positional = "LIST",
		.min_pos = 1,
		.max_pos = 1,
	};
}

/* "I/N" with 0 <= I < N: 0, else -1. */
static int parse_slice(const char *s, int *i, int *n)
{
	char *e;
	long a = strtol(s, &e, 10);
	if (e == s || *e != '/' || a < 0)
		return -1;
	const char *t = e + 1;
	long b = strtol(t, &e, 10);
	if (e == t || *e || b < 1 || b > 1000000 || a >= b)
		return -1;
	*i = (int)a;
	*n = (int)b;
	return 0;
}

/* A non-negative decimal environment variable: 1 and *v, 0 when unset. */
static int env_long(const char *name, long *v)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return 0;
	char *e;
	*v = strtol(s, &e, 10);
	if (*e || *v < 0)
		return nb_error("%s='%s' is not a non-negative number", name, s);
	return 1;
}

/* The slice of a Slurm job array: task SLURM_ARRAY_TASK_ID of the ids
 * MIN..MAX (slice ID - MIN of MAX - MIN + 1), or of SLURM_ARRAY_TASK_COUNT
 * when MIN/MAX are not set. Leaves 0 of 1 outside an array. 0 or nb_error. */
static int slurm_slice(int *i, int *n)
{
	long id, min = 0, max, count;
	int hid = env_long("SLURM_ARRAY_TASK_ID", &id);
	if (hid <= 0)
		return hid;
	int hmin = env_long("SLURM_ARRAY_TASK_MIN", &min), hmax = env_long("SLURM_ARRAY_TASK_MAX", &max);
	int hcount = env_long("SLURM_ARRAY_TASK_COUNT", &count);
	if (hmin < 0 || hmax < 0 || hcount < 0)
		return -1;
	long nn;
	if (hmin && hmax)
		nn = max - min + 1;
	else if (hcount)
		nn = count;
	else
		return nb_error("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_MIN/MAX nor "
				"SLURM_ARRAY_TASK_COUNT: give --slice I/N");
	if (hmin && hmax && (id < min || id > max))
		return nb_error("SLURM_ARRAY_TASK_ID=%ld is outside SLURM_ARRAY_TASK_MIN..MAX = %ld..%ld", id, min, max);
	if (hmin && hmax && count > 0 && hcount && count != nn)
		return nb_error("SLURM_ARRAY_TASK_COUNT=%ld but MIN..MAX = %ld..%ld: a stepped array (--array=a-b:s) "
				"needs --slice I/N", count, min, max);
	if (nn < 1 || id - min >= nn)
		return nb_error("SLURM_ARRAY_TASK_ID=%ld is not below the task count %ld", id, nn);
	*i = (int)(id - min);
	*n = (int)nn;
	return 0;
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
	const char *resize = NULL, *slice = NULL;
	int quiet = 0, no_dct = 0, no_optout = 0;
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
		CLI_OPT_STRING("keep-columns", &o->keep_columns, "A,B",
			       "list columns stored in the shard beside the caption\n(default none)"),
		CLI_OPT_STRING("slice", &slice, "I/N",
			       "run only slice I (0..N-1) of N: shards k with k mod N = I\n(default: from Slurm array variables, else 0/1)"),
		CLI_OPT_STRING("user-agent", &f->user_agent, "TEXT", "User-Agent header (default " FETCH_USER_AGENT ")"),
		CLI_OPT_FLAG("no-respect-optout", 0, &no_optout,
			     "fetch images whose X-Robots-Tag says noai, noimageai,\nnoindex, noimageindex or none (default: refused, opted_out)"),
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
	if (slice && parse_slice(slice, &o->slice, &o->nslices) < 0)
		return cli_usage_error(&cmd, "--slice: '%s' is not I/N with 0 <= I < N", slice);
	if (!slice && slurm_slice(&o->slice, &o->nslices) < 0)
		return cli_usage_error(&cmd, "%s", nb_errmsg());
	if (f->user_agent && (!*f->user_agent || strpbrk(f->user_agent, "\r\n")))
		return cli_usage_error(&cmd, "--user-agent: must be one non-empty line");
	f->respect_optout = !no_optout;
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

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
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
	cli_catch_stop_signals(on_signal);
	job.o.fetch.stop = &stop_flag;
	ingest_tally *t = ingest_tally_new();
	rc = ingest_run_rank(&job, rank, size, t);
	ranks_agree(rc >= 0, "ingest");
	/* Stopped on any rank: every rank stops with the resumable code, and
	 * no totals are written (they describe a finished run). */
	int stopped = rc == 1 || stop_flag, any = 0;
	MPI_Allreduce(&stopped, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (!any)
		ranks_agree(write_totals(&job, t, rank, size) == 0, "ingest");
	else if (rank == 0)
		fprintf(stderr, "ingest: stopped on a signal; the shards in progress were dropped and the same "
				"command resumes (exit %d)\n", NB_EXIT_STOPPED);
	ingest_tally_free(t);
	ingest_close(&job);
	ranks_finish();
	return any ? NB_EXIT_STOPPED : 0;
}
