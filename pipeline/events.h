/* The event log of `nboost run`: RUNDIR/events.jsonl, one flat JSON object
 * per line (pipeline/journal.h's jsonl writer), for people and monitoring
 * tools: progress, rates, what happened when. It is not the record resume
 * relies on (that is the journal), so lines are appended without fsync;
 * a crash may lose the last events. Every write is checked, and a failure
 * is returned with the file and the cause. Format: schemas/journal.md,
 * "Event log". Written by the master rank only; no MPI here;
 * single-threaded.
 *
 * Every line starts with "t" (wall-clock time, Unix seconds with
 * milliseconds, e.g. 1712345678.123) and "ev" (the event name), then the
 * event's fields. */
#ifndef NB_PIPELINE_EVENTS_H
#define NB_PIPELINE_EVENTS_H

#include <stdint.h>

#include "common/nb_io.h"

#define EVENTS_FILE "events.jsonl"

typedef struct events events;

/* Opens RUNDIR/EVENTS_FILE for appending (created if missing; a resumed run
 * appends to the old events). NULL with nb_error naming the file. */
events *events_open(const char *rundir);
/* Opens any path (tests, or another log). */
events *events_open_path(const char *path);
/* Closes and frees (NULL is fine). 0, or nb_error if close failed. */
int events_close(events *e);

/* A custom event: events_begin returns the line, already holding "t" and
 * "ev"; add fields with jsonl_str/jsonl_int/jsonl_num; events_emit writes
 * it in one write(). 0, or nb_error naming the file and the cause. */
nb_buf *events_begin(events *e, const char *ev);
int events_emit(events *e);

/* The standard events. `wall_s` < 0 omits the field. */
/* "unit": a unit finished (round, unit, shard, accepted, rejected, seen,
 * wall_s = seconds from hand-out to report). */
int events_unit(events *e, int round, int64_t unit, const char *shard, int64_t accepted, int64_t rejected,
		int64_t seen, double wall_s);
/* "shard": a pseudo-label shard was committed (round, shard, units, samples). */
int events_shard(events *e, int round, const char *shard, int64_t units, int64_t samples);
/* "checkpoint": the students wrote a checkpoint (round, step, path). */
int events_checkpoint(events *e, int round, int64_t step, const char *path);
/* "round": a round completed (round, units, accepted, rejected, seen, wall_s). */
int events_round(events *e, int round, int64_t units, int64_t accepted, int64_t rejected, int64_t seen,
		 double wall_s);

/* Wall-clock now as Unix seconds (CLOCK_REALTIME), for "t". */
double events_wallclock(void);

#endif
