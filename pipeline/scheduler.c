/* The master's unit bookkeeping (pipeline/scheduler.h).
 *
 * Pending units are found with a cursor: a unit never goes back to pending,
 * so the lowest pending unit is never below the last one found. Assigned
 * units are kept in a doubly linked list in id order, so the stall search
 * walks only the units in flight, lowest id first. Parked teachers wait in
 * a FIFO. */
#include "pipeline/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"

struct sched {
	int64_t n, ndone, nassigned;
	double stall;
	uint8_t *state;
	double *since;
	int64_t *prev, *next;        /* the assigned list, in id order; -1 ends it */
	int64_t head, tail;
	int64_t cursor;              /* no pending unit below it */
	int *park;                   /* parked teachers: park[phead .. phead + npark) */
	int phead, npark, pcap;
};

sched *sched_new(int64_t nunits, double stall_timeout)
{
	sched *s = nb_xcalloc(1, sizeof *s);
	s->n = nunits > 0 ? nunits : 0;
	s->stall = stall_timeout;
	s->state = nb_xcalloc((size_t)s->n + 1, 1);
	s->since = nb_xcalloc((size_t)s->n + 1, sizeof *s->since);
	s->prev = nb_xmalloc(((size_t)s->n + 1) * sizeof *s->prev);
	s->next = nb_xmalloc(((size_t)s->n + 1) * sizeof *s->next);
	s->head = s->tail = -1;
	return s;
}

void sched_free(sched *s)
{
	if (!s)
		return;
	free(s->state), free(s->since), free(s->prev), free(s->next), free(s->park);
	free(s);
}

int64_t sched_nunits(const sched *s) { return s->n; }
int64_t sched_ndone(const sched *s) { return s->ndone; }
int64_t sched_nassigned(const sched *s) { return s->nassigned; }
int sched_finished(const sched *s) { return s->ndone == s->n; }
int sched_state(const sched *s, int64_t u) { return s->state[u]; }
double sched_since(const sched *s, int64_t u) { return s->since[u]; }

int64_t sched_next(sched *s, double now)
{
	while (s->cursor < s->n && s->state[s->cursor] != SCHED_PENDING)
		s->cursor++; /* a cache: no unit goes back to pending */
	if (s->cursor < s->n)
		return s->cursor;
	for (int64_t u = s->head; u >= 0; u = s->next[u])
		if (now - s->since[u] > s->stall)
			return u;
	return -1;
}

/* Links u into the assigned list at its place in id order (at the tail
 * when units are handed out in order, the usual case). */
static void link_assigned(sched *s, int64_t u)
{
	int64_t after = s->tail;
	while (after >= 0 && after > u)
		after = s->prev[after];
	s->prev[u] = after;
	s->next[u] = after >= 0 ? s->next[after] : s->head;
	if (s->next[u] >= 0)
		s->prev[s->next[u]] = u;
	else
		s->tail = u;
	if (after >= 0)
		s->next[after] = u;
	else
		s->head = u;
}

static void unlink_assigned(sched *s, int64_t u)
{
	if (s->prev[u] >= 0)
		s->next[s->prev[u]] = s->next[u];
	else
		s->head = s->next[u];
	if (s->next[u] >= 0)
		s->prev[s->next[u]] = s->prev[u];
	else
		s->tail = s->prev[u];
}

void sched_assign(sched *s, int64_t u, double now)
{
	if (u < 0 || u >= s->n || s->state[u] == SCHED_DONE)
		NB_BUG("sched_assign: unit %lld of %lld is not pending or assigned", (long long)u, (long long)s->n);
	if (s->state[u] == SCHED_PENDING) {
		s->state[u] = SCHED_ASSIGNED;
		s->nassigned++;
		link_assigned(s, u);
	}
	s->since[u] = now;
}

int sched_done(sched *s, int64_t u)
{
	if (u < 0 || u >= s->n)
		NB_BUG("sched_done: unit %lld of %lld", (long long)u, (long long)s->n);
	if (s->state[u] == SCHED_DONE)
		return 0;
	if (s->state[u] == SCHED_ASSIGNED) {
		unlink_assigned(s, u);
		s->nassigned--;
	}
	s->state[u] = SCHED_DONE;
	s->ndone++;
	return 1;
}

void sched_park(sched *s, int teacher)
{
	if (s->phead + s->npark == s->pcap) {
		if (s->phead > 0) {
			memmove(s->park, s->park + s->phead, (size_t)s->npark * sizeof *s->park);
			s->phead = 0;
		}
		NB_GROW(s->park, s->pcap, s->npark + 1, 16);
	}
	s->park[s->phead + s->npark++] = teacher;
}

int sched_nparked(const sched *s) { return s->npark; }

int sched_release(sched *s, double now, int finish, int64_t *unit)
{
	if (s->npark == 0)
		return -1;
	int64_t u = finish || sched_finished(s) ? -1 : sched_next(s, now);
	if (u < 0 && !(finish || sched_finished(s)))
		return -1;
	int t = s->park[s->phead++];
	if (--s->npark == 0)
		s->phead = 0;
	*unit = u;
	return t;
}
