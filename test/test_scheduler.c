/* pipeline/scheduler.h: pull order, units found done at the start, stall
 * reassignment (lowest stalled unit first, the clock restarted on
 * reassignment), duplicate reports, parked teachers (FIFO, a unit when one
 * stalls, "no more work" at the end or on a stop), an empty round, and a
 * differential test against the linear scans the master used before the
 * scheduler was extracted (random requests, reports, stops and clock
 * steps). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_rng.h"
#include "pipeline/scheduler.h"
#include "test/test_util.h"

static void test_pull_order(void)
{
	sched *s = sched_new(5, 10);
	CHECK(sched_nunits(s) == 5 && sched_ndone(s) == 0 && sched_nassigned(s) == 0 && !sched_finished(s));
	CHECK(sched_done(s, 2) == 1); /* journaled before the round resumed */
	CHECK(sched_state(s, 2) == SCHED_DONE);
	int64_t want[] = {0, 1, 3, 4};
	for (int i = 0; i < 4; i++) {
		int64_t u = sched_next(s, 1.0 + i);
		CHECK_MSG(u == want[i], "pull %d gave %lld", i, (long long)u);
		CHECK(sched_next(s, 1.0 + i) == u); /* asking again changes nothing */
		sched_assign(s, u, 1.0 + i);
		CHECK(sched_state(s, u) == SCHED_ASSIGNED && sched_since(s, u) == 1.0 + i);
	}
	CHECK(sched_nassigned(s) == 4);
	CHECK(sched_next(s, 5.0) == -1); /* everything out, nothing stalled */
	for (int i = 0; i < 4; i++)
		CHECK(sched_done(s, want[3 - i]) == 1);
	CHECK(sched_finished(s) && sched_ndone(s) == 5 && sched_nassigned(s) == 0);
	CHECK(sched_next(s, 1e9) == -1); /* done units never come back */
	sched_free(s);
}

static void test_stall(void)
{
	sched *s = sched_new(3, 10);
	sched_assign(s, sched_next(s, 0), 0);  /* 0 at t=0 */
	sched_assign(s, sched_next(s, 5), 5);  /* 1 at t=5 */
	sched_assign(s, sched_next(s, 6), 6);  /* 2 at t=6 */
	CHECK(sched_next(s, 10.0) == -1);      /* exactly the timeout: not stalled */
	CHECK(sched_next(s, 10.5) == 0);
	sched_assign(s, 0, 10.5);              /* reassigned: its clock restarts */
	CHECK(sched_nassigned(s) == 3);        /* still one unit in flight, not two */
	CHECK(sched_since(s, 0) == 10.5);
	CHECK(sched_next(s, 12.0) == -1);
	CHECK(sched_next(s, 16.5) == 1);       /* 1 and 2 stalled: the lowest first */
	CHECK(sched_done(s, 1) == 1);
	CHECK(sched_next(s, 16.5) == 2);
	CHECK(sched_done(s, 0) == 1);          /* the first copy of 0 reports */
	CHECK(sched_done(s, 0) == 0);          /* the second copy: a duplicate */
	CHECK(sched_ndone(s) == 2 && sched_nassigned(s) == 1);
	CHECK(sched_next(s, 100) == 2);
	CHECK(sched_done(s, 2) == 1 && sched_done(s, 2) == 0);
	CHECK(sched_finished(s) && sched_nassigned(s) == 0);
	sched_free(s);
}

static void test_parked(void)
{
	sched *s = sched_new(2, 10);
	int64_t u = 99;
	CHECK(sched_release(s, 0, 0, &u) == -1 && u == 99); /* nobody parked */
	sched_assign(s, 0, 0);
	sched_assign(s, 1, 0);
	sched_park(s, 7);
	sched_park(s, 9);
	sched_park(s, 8);
	CHECK(sched_nparked(s) == 3);
	CHECK(sched_release(s, 1, 0, &u) == -1 && u == 99); /* nothing free yet */
	CHECK(sched_done(s, 0) == 1);
	CHECK(sched_release(s, 1, 0, &u) == -1);            /* a done unit frees nothing */
	CHECK(sched_release(s, 11, 0, &u) == 7 && u == 1);  /* 1 stalled: the oldest parked gets it */
	sched_assign(s, u, 11);
	CHECK(sched_release(s, 11, 0, &u) == -1 && sched_nparked(s) == 2);
	CHECK(sched_done(s, 1) == 1);                        /* the round is labeled */
	CHECK(sched_release(s, 12, 0, &u) == 9 && u == -1); /* "no more work", in order */
	CHECK(sched_release(s, 12, 0, &u) == 8 && u == -1);
	CHECK(sched_release(s, 12, 0, &u) == -1 && sched_nparked(s) == 0);
	sched_free(s);

	/* A stop: parked teachers get "no more work" with units still pending. */
	s = sched_new(4, 10);
	for (int t = 0; t < 40; t++) /* more than the queue's first allocation, wrapping */
		sched_park(s, t);
	for (int t = 0; t < 20; t++)
		CHECK(sched_release(s, 0, 1, &u) == t && u == -1);
	for (int t = 40; t < 60; t++)
		sched_park(s, t);
	for (int t = 20; t < 60; t++)
		CHECK(sched_release(s, 0, 1, &u) == t && u == -1);
	CHECK(sched_nparked(s) == 0 && sched_ndone(s) == 0);
	sched_free(s);

	/* An empty round is finished from the start. */
	s = sched_new(0, 10);
	CHECK(sched_finished(s) && sched_next(s, 0) == -1);
	sched_park(s, 3);
	CHECK(sched_release(s, 0, 0, &u) == 3 && u == -1);
	sched_free(s);
}

/* The master's bookkeeping before the extraction (run_master.c's pick_unit,
 * give_unit, on_request, release_parked, on_unit_done), linear scans and
 * all: the reference the scheduler must match. */
typedef struct {
	int64_t n, done, assigned;
	uint8_t state[64];
	double since[64], stall;
	int parked[4096], nparked;
} ref;

static int64_t ref_pick(const ref *r, double now)
{
	for (int64_t u = 0; u < r->n; u++)
		if (r->state[u] == SCHED_PENDING)
			return u;
	for (int64_t u = 0; u < r->n; u++)
		if (r->state[u] == SCHED_ASSIGNED && now - r->since[u] > r->stall)
			return u;
	return -1;
}

static void ref_give(ref *r, int64_t u, double now)
{
	if (r->state[u] != SCHED_ASSIGNED)
		r->assigned++;
	r->state[u] = SCHED_ASSIGNED;
	r->since[u] = now;
}

static void test_against_reference(void)
{
	nb_rng g;
	nb_rng_seed(&g, 11, 0, 0);
	for (int trial = 0; trial < 300; trial++) {
		ref r = {.n = (int64_t)nb_rng_below(&g, 40), .stall = 3};
		sched *s = sched_new(r.n, r.stall);
		double now = 0;
		int stop = 0, bad = 0, nextid = 0;
		/* replies: (teacher, unit) pairs in the order they would be sent */
		int64_t got[4096][2], want[4096][2];
		int ngot = 0, nwant = 0;
		for (int64_t u = 0; u < r.n; u++) /* some units done at the start */
			if (nb_rng_below(&g, 5) == 0) {
				r.state[u] = SCHED_DONE, r.done++;
				sched_done(s, u);
			}
		for (int op = 0; op < 400 && !bad; op++) {
			unsigned k = nb_rng_below(&g, 100);
			if (k < 40) { /* a request from a new teacher id */
				int t = nextid++;
				if (stop || r.done == r.n) {
					want[nwant][0] = t, want[nwant++][1] = -1;
				} else {
					int64_t u = ref_pick(&r, now);
					if (u >= 0)
						ref_give(&r, u, now), want[nwant][0] = t, want[nwant++][1] = u;
					else
						r.parked[r.nparked++] = t;
				}
				if (stop || sched_finished(s)) {
					got[ngot][0] = t, got[ngot++][1] = -1;
				} else {
					int64_t u = sched_next(s, now);
					if (u >= 0)
						sched_assign(s, u, now), got[ngot][0] = t, got[ngot++][1] = u;
					else
						sched_park(s, t);
				}
			} else if (k < 80 && r.n > 0) { /* a report, maybe a duplicate or never handed out */
				int64_t u = (int64_t)nb_rng_below(&g, (uint64_t)r.n);
				int fresh = r.state[u] != SCHED_DONE;
				if (fresh) {
					if (r.state[u] == SCHED_ASSIGNED)
						r.assigned--;
					r.state[u] = SCHED_DONE, r.done++;
				}
				CHECK(sched_done(s, u) == fresh);
			} else if (k < 98) {
				now += 0.5 * nb_rng_below(&g, 4);
			} else {
				stop = 1;
			}
			/* release_parked after every message, as the master's loop does */
			int keep = 0;
			for (int i = 0; i < r.nparked; i++) {
				int t = r.parked[i];
				int64_t u = stop || r.done == r.n ? -2 : ref_pick(&r, now);
				if (u == -2)
					want[nwant][0] = t, want[nwant++][1] = -1;
				else if (u >= 0)
					ref_give(&r, u, now), want[nwant][0] = t, want[nwant++][1] = u;
				else
					r.parked[keep++] = t;
			}
			r.nparked = keep;
			int64_t u;
			for (int t; (t = sched_release(s, now, stop, &u)) >= 0;) {
				if (u >= 0)
					sched_assign(s, u, now);
				got[ngot][0] = t, got[ngot++][1] = u;
			}
			if (ngot != nwant || memcmp(got, want, (size_t)ngot * sizeof got[0]) ||
			    sched_ndone(s) != r.done || sched_nassigned(s) != r.assigned ||
			    sched_nparked(s) != r.nparked)
				bad = 1;
			for (int64_t v = 0; v < r.n && !bad; v++)
				if (sched_state(s, v) != r.state[v] ||
				    (r.state[v] == SCHED_ASSIGNED && sched_since(s, v) != r.since[v]))
					bad = 1;
			if (nwant > 4000 || nextid > 4000)
				break;
		}
		CHECK_MSG(!bad, "trial %d (n %lld): the scheduler differs from the reference", trial, (long long)r.n);
		sched_free(s);
	}
}

int main(void)
{
	test_pull_order();
	test_stall();
	test_parked();
	test_against_reference();
	return test_summary("test_scheduler");
}
