/* Inside an ingest_tally (corpus/ingest/ingest.h): the counts and times of
 * some shards, shared by the shard driver and the stats writer. Private to
 * corpus/ingest/. */
#ifndef NB_INGEST_TALLY_H
#define NB_INGEST_TALLY_H

#include <stdint.h>

#include "common/nb_io.h"
#include "corpus/ingest/ingest.h"

/* Time breakdown, seconds (schemas/ingest_status.md, "time_s"). */
enum { T_WALL, T_NETWORK, T_DECODE, T_RESIZE, T_HASH, T_WRITE, T_N };

typedef struct {
	char name[32];
	uint64_t count;
} ingest_count;

struct ingest_tally {
	ingest_count *status;      /* records per status, in first-seen order */
	size_t nstatus, cap;
	double t[T_N];
	uint64_t bytes, attempts, retries, images;
	uint64_t changed;           /* records redone because their list line changed */
};

/* Adds k records of status name (truncated to 31 bytes). */
void tally_count(ingest_tally *t, const char *name, uint64_t k);
/* t += add, field by field. */
void tally_add(ingest_tally *t, const ingest_tally *add);
/* Frees what t holds (not t itself) and zeroes it. */
void tally_clear(ingest_tally *t);
/* The stats JSON object of schemas/ingest_status.md on one line, with the
 * text of head (for example "\"shard\": 3, ") before "status". */
void tally_json(const ingest_tally *t, const char *head, nb_buf *out);

#endif
