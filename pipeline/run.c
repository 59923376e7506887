/* `nboost run`: start-up common to every rank (role split, shard list,
 * directories), then each rank's loop (run_master.c, run_teacher.c,
 * run_filter.c, run_student.c). */
#include "pipeline/run.h"

#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "pipeline/ranks.h"
#include "pipeline/run_internal.h"
#include "store/shard_store.h"

volatile sig_atomic_t run_stop_signal;

void run_request_stop(int sig) { run_stop_signal = sig; }

/* The first RUN_WAIT_SPIN_S of a wait probe without sleeping: a reply that
 * comes within that time (a teacher's next unit, the next request or report
 * to the master) is taken at once instead of after a sleep's wake-up (a
 * nanosleep of 50 us takes 100 us or more), which held the master to about
 * 5,000 units/s with 2 teachers (bench/bench_scheduler.c,
 * docs/performance.md). A long wait costs one spin per call, then sleeps. */
#define RUN_WAIT_SPIN_S 200e-6

int run_wait(int src, int tag, double timeout_s, MPI_Status *st)
{
	long sleep_ns = 50000;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int flag = 0;
		MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, st);
		if (flag)
			return 1;
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		double el = (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec);
		if (timeout_s >= 0 && el >= timeout_s)
			return 0;
		if (el < RUN_WAIT_SPIN_S)
			continue;
		struct timespec d = {0, sleep_ns};
		nanosleep(&d, NULL);
		if (sleep_ns < 5000000)
			sleep_ns *= 2;
	}
}

void run_round_dir(const run_ctx *c, int round, char *out, size_t n)
{
	snprintf(out, n, "%s/round-%d", c->rundir, round);
}

void run_pseudo_dir(const run_ctx *c, int round, char *out, size_t n)
{
	snprintf(out, n, "%s/round-%d/pseudo", c->rundir, round);
}

void run_unit_shard_name(int64_t unit, char *out, size_t n) { snprintf(out, n, "unit-%08lld.h5", (long long)unit); }

uint64_t run_teacher_seed(const run_ctx *c, int round)
{
	return c->job->train.tc.seed * 0x9E3779B97F4A7C15ull + (uint64_t)round + 1;
}

static void assign_role(run_ctx *c)
{
	const run_job *j = c->job;
	c->first_teacher = 1;
	c->first_filter = 1 + j->teachers;
	c->first_student = 1 + j->teachers + j->filters;
	if (c->rank == 0)
		c->role = ROLE_MASTER, c->index = 0;
	else if (c->rank < c->first_filter)
		c->role = ROLE_TEACHER, c->index = c->rank - c->first_teacher;
	else if (c->rank < c->first_student)
		c->role = ROLE_FILTER, c->index = c->rank - c->first_filter;
	else
		c->role = ROLE_STUDENT, c->index = c->rank - c->first_student;
}

/* Threads: the master and the filters are light (one thread each, and they
 * sleep while waiting); teachers and students share the node's CPUs. */
static void set_threads(const run_ctx *c)
{
	int heavy = c->role == ROLE_TEACHER || c->role == ROLE_STUDENT;
	if (!heavy)
		omp_set_num_threads(1); /* even with OMP_NUM_THREADS set */
	ranks_threads_weighted(heavy, NULL);
}

/* Rank 0 lists the unlabeled shards and broadcasts the list. */
static void share_shard_list(run_ctx *c)
{
	nb_buf b = {0};
	int ok = 1, n = 0;
	if (c->rank == 0) {
		char **paths = NULL;
		n = shard_list(c->job->unlabeled, &paths);
		if (n < 0)
			ok = 0;
		else if (n == 0)
			ok = nb_error("the unlabeled corpus '%s' holds no shards (corpus.unlabeled)", c->job->unlabeled) == 0;
		for (int i = 0; i < n; i++)
			nb_buf_add(&b, paths[i], strlen(paths[i]) + 1);
		if (n > 0)
			shard_list_free(paths, n);
	}
	ranks_agree(ok, "listing the unlabeled shards");
	long len = (long)b.len;
	MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
	MPI_Bcast(&len, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	if (c->rank != 0)
		b.data = nb_xmalloc((size_t)len + 1);
	MPI_Bcast(b.data, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
	c->nunlabeled = n;
	c->unlabeled = nb_xcalloc((size_t)n, sizeof(char *));
	const char *p = b.data;
	for (int i = 0; i < n; i++, p += strlen(p) + 1)
		c->unlabeled[i] = nb_xstrdup(p);
	free(b.data);
}

int run_pipeline(const run_job *job, const jobfile *jf, const char *rundir)
{
	run_ctx c = {.job = job, .jf = jf, .rundir = rundir, .students = MPI_COMM_NULL};
	MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &c.world);
	ranks_agree(run_job_check_split(job, c.world) == 0, "checking the role split");
	assign_role(&c);
	MPI_Comm_split(MPI_COMM_WORLD, c.role == ROLE_STUDENT ? 1 : MPI_UNDEFINED, c.rank, &c.students);
	set_threads(&c);
	share_shard_list(&c);
	/* Before run_master_prepare writes the journal, whose config digest
	 * covers corpus.test: a rerun with the path corrected would be refused. */
	ranks_agree(c.rank != 0 || run_check_test_corpus(&c) == 0, "checking corpus.test");
	ranks_agree(c.rank != 0 || run_master_prepare(&c) == 0, "preparing the run");
	int rc = RUN_DONE;
	switch (c.role) {
	case ROLE_MASTER: rc = run_master(&c); break;
	case ROLE_TEACHER: run_teacher(&c); break;
	case ROLE_FILTER: run_filter(&c); break;
	case ROLE_STUDENT: run_student(&c); break;
	}
	/* The master's verdict is everyone's exit status. */
	MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
	for (int i = 0; i < c.nunlabeled; i++)
		free(c.unlabeled[i]);
	free(c.unlabeled);
	if (c.students != MPI_COMM_NULL)
		MPI_Comm_free(&c.students);
	return rc;
}
