/* The master of `nboost run` as a unit dispatcher, without decoding: rank 0
 * runs the master's request / unit / done protocol (pipeline/run_internal.h
 * messages, pipeline/scheduler.h bookkeeping, run_wait waiting, parked
 * teachers released after every message, as pipeline/run_master.c does),
 * and ranks 1..T are null teachers (pipeline/run_teacher.c's label_round:
 * run.in_flight requests out, one more per unit) that report each unit
 * done to the master at once: no decoding, no filter, no journal, no
 * events. Run it oversubscribed to see what the protocol costs when the
 * ranks share cores:
 *
 *   mpirun -np $((1 + T)) --oversubscribe bench_scheduler [units] [reps] [in_flight]
 *
 * (defaults 100000 units, 3 reps, in_flight 2; bench/scheduler.sh loops
 * T = 2..8). Figures, each the median of reps interleaved runs:
 *   - wait=run_wait: every rank waits with the pipeline's run_wait
 *     (pipeline/run.c: a 200 us probe spin, then sleeps with backoff), as
 *     `nboost run` does: units/s through the master;
 *   - wait=local: the same with a local copy of run_wait as it was before
 *     the spin (sleep-only backoff from 50 us), or with a spin of
 *     NB_BENCH_SPIN_US microseconds to try other lengths: the "before",
 *     measured in the same run;
 *   - wait=probe: MPI's blocking MPI_Probe (Open MPI polls; oversubscribed
 *     it yields between polls): the baseline, what MPI alone allows on
 *     these cores;
 *   - per run, the cores the master and the teachers kept busy (CPU seconds
 *     over wall seconds) and the share of the master's time inside the wait;
 *   - the scheduler alone (rank 0, no MPI): units/s through sched_next +
 *     sched_assign + sched_done, and through the linear scans the master
 *     used before pipeline/scheduler.c (at min(units, 20000) units: they
 *     are quadratic);
 *   - idle CPU: every rank runs the master's waiting loop (0.25 s waits)
 *     for 2 s with nothing arriving; the highest CPU percent of a core of
 *     any rank, with run_wait and with the local copy.
 * Last line: JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "bench/bench_util.h"
#include "pipeline/run_internal.h"
#include "pipeline/scheduler.h"

enum { MODE_RUN_WAIT = 0, MODE_LOCAL, MODE_PROBE, NMODES };
static const char *mode_name[NMODES] = {"run_wait", "local", "probe"};

static int mode;
static double wait_wall; /* master: seconds inside wait() */
static double local_spin; /* seconds of probing before local_wait sleeps */

/* run_wait's algorithm as it was before the spin phase (pipeline/run.c at
 * the scheduler's extraction: probe, then sleep 50 us doubling to 5 ms),
 * with an optional spin phase of local_spin seconds (NB_BENCH_SPIN_US): the
 * "before" measured in the same run, and a way to try spin lengths. */
static int local_wait(int src, int tag, double timeout_s, MPI_Status *st)
{
	long sleep_ns = 50000;
	double t0 = bench_now();
	for (;;) {
		int flag = 0;
		MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, st);
		if (flag)
			return 1;
		double el = bench_now() - t0;
		if (timeout_s >= 0 && el >= timeout_s)
			return 0;
		if (el < local_spin)
			continue;
		struct timespec d = {0, sleep_ns};
		nanosleep(&d, NULL);
		if (sleep_ns < 5000000)
			sleep_ns *= 2;
	}
}

/* One message's envelope, from src/tag (MPI_ANY_*), as the mode waits. */
static void wait_msg(int src, int tag, MPI_Status *st)
{
	double t0 = bench_now();
	if (mode == MODE_RUN_WAIT) {
		while (!run_wait(src, tag, 0.25, st))
			;
	} else if (mode == MODE_LOCAL) {
		while (!local_wait(src, tag, 0.25, st))
			;
	} else {
		MPI_Probe(src, tag, MPI_COMM_WORLD, st);
	}
	wait_wall += bench_now() - t0;
}

/* Is a message there already (label_round's run_wait(..., 0, ...))? */
static int poll_msg(int src, int tag, MPI_Status *st)
{
	int flag = 0;
	MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, st);
	return flag;
}

static void send_i32(int v, int dst, int tag)
{
	int32_t r = v;
	MPI_Send(&r, 1, MPI_INT32_T, dst, tag, MPI_COMM_WORLD);
}

static void give(sched *s, const unit_msg *units, int64_t u, int teacher, double now)
{
	sched_assign(s, u, now);
	MPI_Send(&units[u], sizeof units[u], MPI_BYTE, teacher, TAG_UNIT, MPI_COMM_WORLD);
}

static void release(sched *s, const unit_msg *units, int round)
{
	int64_t u;
	for (int t; (t = sched_release(s, bench_now(), 0, &u)) >= 0;) {
		if (u < 0)
			send_i32(round, t, TAG_NOWORK);
		else
			give(s, units, u, t, bench_now());
	}
}

/* run_master.c's run_round loop without journal, events, students. */
static double master_round(int round, int64_t nunits, int teachers)
{
	unit_msg *units = malloc((size_t)nunits * sizeof *units);
	for (int64_t u = 0; u < nunits; u++)
		units[u] = (unit_msg){round, 0, u, u * 64, 64};
	sched *s = sched_new(nunits, 600);
	int idle = 0;
	wait_wall = 0;
	double t0 = bench_now();
	while (!sched_finished(s) || idle < teachers) {
		MPI_Status st;
		wait_msg(MPI_ANY_SOURCE, MPI_ANY_TAG, &st);
		if (st.MPI_TAG == TAG_REQ) {
			int32_t r;
			MPI_Recv(&r, 1, MPI_INT32_T, st.MPI_SOURCE, TAG_REQ, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			if (sched_finished(s) || r != round) {
				send_i32(round, st.MPI_SOURCE, TAG_NOWORK);
			} else {
				int64_t u = sched_next(s, bench_now());
				if (u >= 0)
					give(s, units, u, st.MPI_SOURCE, bench_now());
				else
					sched_park(s, st.MPI_SOURCE);
			}
		} else if (st.MPI_TAG == TAG_UNIT_DONE) {
			done_msg d;
			MPI_Recv(&d, sizeof d, MPI_BYTE, st.MPI_SOURCE, TAG_UNIT_DONE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			if (d.round == round && d.unit >= 0 && d.unit < nunits)
				sched_done(s, d.unit);
		} else if (st.MPI_TAG == TAG_IDLE) {
			int32_t r;
			MPI_Recv(&r, 1, MPI_INT32_T, st.MPI_SOURCE, TAG_IDLE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			idle++;
		} else {
			fprintf(stderr, "bench_scheduler: unexpected tag %d\n", st.MPI_TAG);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		release(s, units, round);
	}
	double wall = bench_now() - t0;
	sched_free(s);
	free(units);
	return wall;
}

/* run_teacher.c's label_round with a null unit: the "decoding" is sending
 * the unit's done_msg to the master (the filter's job) at once. */
static void teacher_round(int round, int in_flight)
{
	int outstanding = 0, no_more = 0, qn = 0, qcap = 64;
	unit_msg *q = malloc((size_t)qcap * sizeof *q);
	for (; outstanding < in_flight; outstanding++)
		send_i32(round, 0, TAG_REQ);
	while (outstanding > 0 || qn > 0) {
		MPI_Status st;
		while (outstanding > 0) {
			if (qn == 0)
				wait_msg(0, MPI_ANY_TAG, &st);
			else if (!poll_msg(0, MPI_ANY_TAG, &st))
				break;
			if (st.MPI_TAG == TAG_UNIT) {
				if (qn == qcap)
					q = realloc(q, (size_t)(qcap *= 2) * sizeof *q);
				MPI_Recv(&q[qn++], sizeof *q, MPI_BYTE, 0, TAG_UNIT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else {
				int32_t r;
				MPI_Recv(&r, 1, MPI_INT32_T, 0, TAG_NOWORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				no_more = 1;
			}
			outstanding--;
		}
		if (qn == 0)
			continue;
		unit_msg u = q[0];
		memmove(q, q + 1, (size_t)--qn * sizeof *q);
		done_msg d = {.round = u.round, .unit = u.unit};
		d.c.seen = d.c.accepted = u.count;
		MPI_Send(&d, sizeof d, MPI_BYTE, 0, TAG_UNIT_DONE, MPI_COMM_WORLD);
		if (!no_more) {
			send_i32(round, 0, TAG_REQ);
			outstanding++;
		}
	}
	free(q);
	send_i32(round, 0, TAG_IDLE);
}

/* The master's bookkeeping before pipeline/scheduler.c: linear scans. */
static double legacy_rate(int64_t n)
{
	uint8_t *state = calloc((size_t)n, 1);
	double *since = calloc((size_t)n, sizeof *since), t0 = bench_now();
	for (int64_t k = 0; k < n; k++) {
		double now = bench_now();
		int64_t u = -1;
		for (int64_t v = 0; v < n && u < 0; v++)
			if (state[v] == SCHED_PENDING)
				u = v;
		for (int64_t v = 0; v < n && u < 0; v++)
			if (state[v] == SCHED_ASSIGNED && now - since[v] > 600)
				u = v;
		state[u] = SCHED_ASSIGNED, since[u] = bench_now();
		if (k >= 2) /* two in flight */
			state[u - 2] = SCHED_DONE;
	}
	double dt = bench_now() - t0;
	free(state), free(since);
	return (double)n / dt;
}

static double sched_rate(int64_t n)
{
	sched *s = sched_new(n, 600);
	double t0 = bench_now();
	for (int64_t k = 0; k < n; k++) {
		int64_t u = sched_next(s, bench_now());
		sched_assign(s, u, bench_now());
		if (k >= 2)
			sched_done(s, u - 2);
	}
	double dt = bench_now() - t0;
	sched_free(s);
	return (double)n / dt;
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	int rank, world;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	int64_t units = argc > 1 ? atoll(argv[1]) : 100000;
	int reps = argc > 2 ? atoi(argv[2]) : 3, in_flight = argc > 3 ? atoi(argv[3]) : 2;
	if (units < 1 || reps < 1 || reps > 50 || in_flight < 1 || world < 2) {
		if (rank == 0)
			fprintf(stderr, "usage: mpirun -np 1+T bench_scheduler [units] [reps 1..50] [in_flight]\n");
		MPI_Finalize();
		return 2;
	}
	int T = world - 1;
	const char *spin = getenv("NB_BENCH_SPIN_US");
	local_spin = spin ? 1e-6 * atof(spin) : 0;
	double rate[NMODES][50], mcpu[NMODES][50], tcpu[NMODES][50], mwait[NMODES][50];
	int round = 0;
	for (int r = 0; r < reps; r++)
		for (int md = 0; md < NMODES; md++) {
			mode = md;
			MPI_Barrier(MPI_COMM_WORLD);
			double c0 = bench_cpu(), wall = 0;
			if (rank == 0)
				wall = master_round(round, units, T);
			else
				teacher_round(round, in_flight);
			double cpu = bench_cpu() - c0, tsum = 0, mine = rank == 0 ? 0 : cpu;
			MPI_Reduce(&mine, &tsum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
			if (rank == 0) {
				rate[md][r] = (double)units / wall;
				mcpu[md][r] = cpu / wall;
				tcpu[md][r] = tsum / wall;
				mwait[md][r] = wait_wall / wall;
				printf("T=%d rep %d wait=%s: %.0f units/s; CPU cores busy: master %.2f, teachers %.2f; "
				       "master in wait %.0f%% of its time\n",
				       T, r + 1, mode_name[md], rate[md][r], mcpu[md][r], tcpu[md][r], 100 * mwait[md][r]);
				fflush(stdout);
			}
			round++;
		}
	/* Idle: nothing ever comes; CPU per rank over 2 s, the master's loop
	 * (0.25 s waits) with run_wait, then with local_wait. */
	double idle_max[2] = {0, 0};
	for (int w = 0; w < 2; w++) {
		MPI_Barrier(MPI_COMM_WORLD);
		double c0 = bench_cpu(), w0 = bench_now();
		MPI_Status st;
		while (bench_now() - w0 < 2.0)
			w ? local_wait(MPI_ANY_SOURCE, TAG_STOP + 50, 0.25, &st)
			  : run_wait(MPI_ANY_SOURCE, TAG_STOP + 50, 0.25, &st);
		double idle = (bench_cpu() - c0) / (bench_now() - w0);
		MPI_Reduce(&idle, &idle_max[w], 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
	}
	if (rank == 0) {
		int64_t n = units < 20000 ? units : 20000;
		double sr = sched_rate(units), lr = legacy_rate(n), sr_n = sched_rate(n);
		double m[NMODES], mc[NMODES], tc[NMODES], mw[NMODES];
		for (int md = 0; md < NMODES; md++) {
			m[md] = bench_median(rate[md], reps);
			mc[md] = bench_median(mcpu[md], reps);
			tc[md] = bench_median(tcpu[md], reps);
			mw[md] = bench_median(mwait[md], reps);
		}
		printf("T=%d in_flight=%d, %" PRId64 " units, median of %d: run_wait %.0f units/s, local (spin %.0f us) "
		       "%.0f, probe %.0f (run_wait/local %.2f, run_wait/probe %.2f); scheduler alone %.3g units/s "
		       "(%" PRId64 " units: %.3g, linear scans %.3g); idle CPU per rank <= %.2f%% (local %.2f%%)\n",
		       T, in_flight, units, reps, m[0], 1e6 * local_spin, m[1], m[2], m[0] / m[1], m[0] / m[2], sr, n,
		       sr_n, lr, 100 * idle_max[0], 100 * idle_max[1]);
		printf("{\"bench\":\"scheduler\",\"teachers\":%d,\"in_flight\":%d,\"units\":%" PRId64 ",\"reps\":%d,"
		       "\"local_spin_us\":%.1f",
		       T, in_flight, units, reps, 1e6 * local_spin);
		for (int md = 0; md < NMODES; md++)
			printf(",\"%s\":{\"units_per_s\":%.0f,\"master_cores\":%.3f,\"teacher_cores\":%.3f,"
			       "\"master_wait_share\":%.3f}",
			       mode_name[md], m[md], mc[md], tc[md], mw[md]);
		printf(",\"ratio_run_wait_to_local\":%.3f,\"ratio_run_wait_to_probe\":%.3f,\"sched_units_per_s\":%.0f,"
		       "\"legacy_units\":%" PRId64 ",\"sched_units_per_s_at_legacy\":%.0f,\"legacy_units_per_s\":%.0f,"
		       "\"idle_cpu_pct_max\":%.3f,\"idle_cpu_pct_max_local\":%.3f}\n",
		       m[0] / m[1], m[0] / m[2], sr, n, sr_n, lr, 100 * idle_max[0], 100 * idle_max[1]);
	}
	MPI_Finalize();
	return 0;
}
