/* Web ingest: URL list -> fetched, decoded, resized images in image shards
 * (schemas/image_shard.md), with a status for every input record
 * (schemas/ingest_status.md).
 *
 * The list's records are cut into fixed-size shards (shard_size records);
 * shard k belongs to rank k mod nranks, so the output does not depend on the
 * rank count. For shard k the output directory gets
 *   ingest-KKKKK.h5            the ok images, in record order (ids = line numbers)
 *   ingest-KKKKK.status.tsv    one row per record (written last: the shard's
 *                              completion marker)
 *   ingest-KKKKK.stats.json    counts and the time breakdown
 * and rank 0 writes ingest-stats.json with the totals. A rerun skips shards
 * whose status table exists; with retry_failed it refetches only records
 * whose status is retryable (fetch_status_retryable) and keeps the rest.
 *
 * Duplicates (same bytes as an earlier record of the same shard) get status
 * "duplicate"; deduplication is per shard so that it is deterministic.
 *
 * One thread per process (HDF5 and libcurl state are per call). */
#ifndef NB_INGEST_H
#define NB_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "corpus/ingest/fetch.h"
#include "corpus/image/image_io.h"

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
} ingest_opts;

void ingest_opts_default(ingest_opts *o);

/* Runs this rank's share of the ingest of list_path into out_dir (created if
 * missing). Collective under MPI when nranks > 1 (totals are gathered to
 * rank 0). Returns 0 or nb_error; a failing URL is a status, not an error. */
int ingest_run(const char *list_path, const char *out_dir, const ingest_opts *o, int rank, int nranks);

/* One row of a status table. */
typedef struct {
	long line;
	uint64_t id;
	char status[32];
	int attempts;
	uint64_t hash[2];          /* content hash of the fetched bytes, 0 if none */
	char *url, *key, *detail;  /* owned */
} ingest_row;

/* Writes rows atomically (temp + fsync + rename). 0 or nb_error. */
int ingest_status_write(const char *path, const ingest_row *rows, size_t n);
/* Reads a table written by ingest_status_write. Caller frees with
 * ingest_rows_free. 0 or nb_error naming the file and line. */
int ingest_status_read(const char *path, ingest_row **rows, size_t *n);
void ingest_rows_free(ingest_row *rows, size_t n);

/* Writes text to path atomically (temp + fsync + rename). 0 or nb_error. */
int ingest_write_atomic(const char *path, const char *text, size_t len);

#endif
