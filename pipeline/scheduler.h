/* The master's unit bookkeeping for `nboost run` (pipeline/run_master.c),
 * as plain functions: no MPI, no clock of its own (callers pass `now` in
 * seconds), no I/O, so that tests and benchmarks drive it directly.
 *
 * A round has nunits units, ids 0..nunits-1. Each is pending, assigned (to
 * some teacher, since a time) or done. Teachers pull:
 *   - sched_next gives the lowest pending unit; with none pending, the
 *     lowest assigned unit handed out more than stall_timeout seconds ago
 *     (a stalled unit goes to the next teacher that asks); else -1;
 *   - sched_assign marks the unit handed out now (again, for a stalled one);
 *   - sched_done records a finished unit once: a second report of a unit
 *     handed out twice is a duplicate (returns 0) and changes nothing;
 *   - a teacher that asks when sched_next has nothing is parked
 *     (sched_park); sched_release answers parked teachers in the order they
 *     were parked, with a unit as soon as one is free, or with "no more
 *     work" once the round is finished (or the caller says so).
 * The caller does the messaging and prints what it likes (run_master.c
 * says when a unit it hands out had stalled: sched_state is then still
 * SCHED_ASSIGNED).
 * Every call is O(1) amortised except sched_next's stall search, which
 * walks the assigned units only (O(in flight)). Not thread-safe. */
#ifndef NB_PIPELINE_SCHEDULER_H
#define NB_PIPELINE_SCHEDULER_H

#include <stdint.h>

enum { SCHED_PENDING = 0, SCHED_ASSIGNED, SCHED_DONE };

typedef struct sched sched;

/* A round of nunits (>= 0) units, all pending. Never NULL (dies on OOM). */
sched *sched_new(int64_t nunits, double stall_timeout);
void sched_free(sched *s);

int64_t sched_nunits(const sched *s);
int64_t sched_ndone(const sched *s);
/* Units handed out and not done (a stalled unit handed out twice counts once). */
int64_t sched_nassigned(const sched *s);
/* Every unit is done. */
int sched_finished(const sched *s);
/* SCHED_PENDING, SCHED_ASSIGNED or SCHED_DONE. */
int sched_state(const sched *s, int64_t u);
/* When u was last handed out (0 if never). */
double sched_since(const sched *s, int64_t u);

/* The unit to hand out at time now: the lowest pending one, else the lowest
 * assigned one with now - since > stall_timeout, else -1. Changes no
 * state (it advances an internal cursor past units that are not pending). */
int64_t sched_next(sched *s, double now);
/* Marks u (pending, or assigned: a reassignment) handed out at now. */
void sched_assign(sched *s, int64_t u, double now);
/* Records u as done: 1 if it was not done yet, 0 for a duplicate. A unit
 * found done in the journal at the start of a round is recorded this way
 * before any sched_next. */
int sched_done(sched *s, int64_t u);

/* Parks a teacher (any int id, e.g. its world rank) that asked when
 * sched_next had nothing. */
void sched_park(sched *s, int teacher);
int sched_nparked(const sched *s);
/* Answers the oldest parked teacher that can be answered at now: removes
 * it from the queue, returns its id and sets *unit to the unit to hand it
 * (sched_next's choice; the caller hands it out with sched_assign before
 * the next call), or to -1 meaning "no more work" (finish is set, or every
 * unit is done). Returns -1, *unit untouched, when no parked teacher can be
 * answered now (none parked, or nothing free for them yet); so
 *   while ((t = sched_release(s, now, stop, &u)) >= 0)
 *           u < 0 ? reply_nowork(t) : (sched_assign(s, u, now), reply_unit(t, u));
 * answers everyone who can be. */
int sched_release(sched *s, double now, int finish, int64_t *unit);

#endif
