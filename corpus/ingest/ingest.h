/* Web ingest: URL list -> fetched, decoded, resized images in image shards
 * (schemas/image_shard.md), with a status for every input record
 * (schemas/ingest_status.md).
 *
 * The list's records are cut into fixed-size shards (shard_size records);
 * shard k belongs to rank k mod nranks, so the output does not depend on the
 * rank count. For shard k the output directory gets
 *   ingest-KKKKK.h5            the ok images, in record order (ids = line numbers),
 *                              with their captions, kept columns, original sizes
 *                              and SHA-256 under /ingest (schemas/image_shard.md)
 *   ingest-KKKKK.status.tsv    one row per record (written after the .h5: the
 *                              shard's completion marker)
 *   ingest-KKKKK.stats.json    counts and the time breakdown
 * and one process writes ingest-stats.json with the totals of all. A rerun skips shards
 * whose status table exists; with retry_failed it refetches only records
 * whose status is retryable (fetch_status_retryable) and keeps the rest.
 * Either way a record whose list line changed since its row was written
 * (the row's digest differs from the record's) is fetched again, and so
 * are the shard's duplicates, whose original may have been that record.
 *
 * Duplicates (same bytes as an earlier record of the same shard) get status
 * "duplicate"; deduplication is per shard so that it is deterministic.
 *
 * The options that shape the output are recorded in out_dir/ingest.json on
 * the first run; a later run with other values is refused, naming the
 * option (ingest_open).
 *
 * Slices: with nslices > 1 only the shards k with k mod nslices == slice
 * are this run's, so that the jobs of an array split one list with no
 * manifest; the slices are disjoint and together cover every shard.
 *
 * Stopping: when *o->fetch.stop becomes non-zero, the shard being fetched is
 * abandoned (nothing of it is written; the rerun fetches it again) and
 * ingest_run_rank returns 1. A shard whose write began is finished first.
 *
 * One thread per process (HDF5 and libcurl state are per call). */
#ifndef NB_INGEST_H
#define NB_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/nb_io.h"
#include "corpus/image/image_io.h"
#include "corpus/ingest/fetch.h"
#include "corpus/ingest/urllist.h"

typedef struct {
	fetch_opts fetch;
	int size;                  /* output images are size x size, default 48 */
	resize_mode mode;          /* default RESIZE_CENTER_CROP */
	size_t max_pixels;         /* decode limit, default 40,000,000 */
	size_t shard_size;         /* records per shard, default 1000 */
	int retry_failed;          /* rerun: refetch retryable failures */
	int dct_scaling;           /* decode JPEGs reduced (image_decode_hint), default 1 */
	int zstd_level;            /* shard_meta.zstd_level, 0 = store default */
	int progress;              /* print progress to stderr, default 1 */
	const char *keep_columns;  /* list columns kept in the shard, comma-separated; NULL: none */
	int slice, nslices;        /* this run's slice of the shards, default 0 of 1 */
} ingest_opts;

void ingest_opts_default(ingest_opts *o);

/* One ingest as every rank sees it: the options, the loaded list and where
 * the shards go. The functions below are the work of one process; running
 * them on several ranks (agreeing on failures, gathering tallies to rank 0)
 * is the caller's job, so this library knows nothing of MPI. */
typedef struct {
	ingest_opts o;
	const char *list_path, *out_dir; /* borrowed */
	urllist list;
	size_t nshards;
	double t0;                 /* nb_now() at ingest_open: the run's wall time */
} ingest_job;

/* Checks the options and loads the list. With prepare_dir (one process,
 * before any process writes) also creates out_dir, removes the temporary
 * files of writers killed in an earlier run, and checks out_dir/ingest.json
 * against the options (writing it on the first run): "refusing to mix
 * ingests in 'DIR': 'DIR/ingest.json' has --size 32 but this run asks for
 * --size 48; use a new --out". 0, or nb_error (then nothing needs
 * closing). */
int ingest_open(ingest_job *j, const char *list_path, const char *out_dir, const ingest_opts *o,
		int prepare_dir);
void ingest_close(ingest_job *j);

/* Counts and the time breakdown of some shards (their stats.json content). */
typedef struct ingest_tally ingest_tally;

ingest_tally *ingest_tally_new(void);
void ingest_tally_free(ingest_tally *t);

/* Runs this rank's shards of the run's slice (the slice's shards in order,
 * dealt to the ranks round-robin), adding each to t; stops at the first
 * that fails. 0, 1 when stopped (*o->fetch.stop), or nb_error; a failing
 * URL is a status, not an error. With progress on, prints the rank's
 * progress with a whole-run ETA every 2 seconds, also while no record
 * arrives. */
int ingest_run_rank(const ingest_job *j, int rank, int nranks, ingest_tally *t);

/* A tally as text, to send to another process: appends to out. */
void ingest_tally_encode(const ingest_tally *t, nb_buf *out);
/* Adds the tallies encoded in text[0..len) (one, or several concatenated)
 * to t. 0, or nb_error when the text is not an encoded tally. */
int ingest_tally_merge(ingest_tally *t, const char *text, size_t len);

/* Writes out_dir/ingest-stats.json: the totals t of all nranks ranks, with
 * the shard count and the wall time since ingest_open; prints them when
 * progress is on. 0 or nb_error. */
int ingest_write_totals(const ingest_job *j, const ingest_tally *t, int nranks);

/* One row of a status table. */
typedef struct {
	long line;
	uint64_t id;
	char status[32];
	int attempts;
	uint64_t hash[2];          /* the first 128 bits of sha256 (dedup), 0 if none */
	uint8_t sha256[32];        /* SHA-256 of the fetched bytes, zeros if none */
	int width, height;         /* the image's own size before resizing, 0 if none */
	uint64_t digest;           /* of the list record the row was made from (its url,
				    * caption, key, badness); 0 = unknown (a table
				    * written before the column existed) */
	char *url, *key, *detail;  /* owned */
} ingest_row;

/* Writes rows atomically (temp + fsync + rename). 0 or nb_error. */
int ingest_status_write(const char *path, const ingest_row *rows, size_t n);
/* Reads a table written by ingest_status_write. Caller frees with
 * ingest_rows_free. 0 or nb_error naming the file and line. */
int ingest_status_read(const char *path, ingest_row **rows, size_t *n);
void ingest_rows_free(ingest_row *rows, size_t n);

#endif
