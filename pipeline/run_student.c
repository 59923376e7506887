/* The student ranks: data-parallel training over their own communicator
 * (trainer/train.h). The leader (the first student) talks to the master and
 * forwards its commands to the other students point to point, so waiting
 * students sleep instead of spinning in a collective. With corpus.test, the
 * leader scores each round's student on it (pipeline/run_test.c) with the
 * threads of the students of its node while the others wait. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_time.h"
#include "model/checkpoint.h"
#include "pipeline/run_internal.h"
#include "trainer/train.h"

NB_NORETURN static void student_die(const run_ctx *c, const char *what)
{
	fprintf(stderr, "nboost: fatal: student rank %d: %s: %s\n", c->rank, what, nb_errmsg());
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

static int leader(const run_ctx *c) { return c->index == 0; }

/* The leader passes a command on to the other students. */
static void forward(const run_ctx *c, const student_cmd *cmd)
{
	for (int i = 1; i < c->job->students; i++)
		MPI_Send(cmd, sizeof *cmd, MPI_BYTE, c->first_student + i, TAG_STUDENT_CMD, MPI_COMM_WORLD);
}

/* The next command from the master, on every student. */
static void next_cmd(const run_ctx *c, student_cmd *cmd)
{
	MPI_Status st;
	if (leader(c)) {
		run_wait(0, TAG_STUDENT_CMD, -1, &st);
		MPI_Recv(cmd, sizeof *cmd, MPI_BYTE, 0, TAG_STUDENT_CMD, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		forward(c, cmd);
	} else {
		run_wait(c->first_student, TAG_STUDENT_CMD, -1, &st);
		MPI_Recv(cmd, sizeof *cmd, MPI_BYTE, c->first_student, TAG_STUDENT_CMD, MPI_COMM_WORLD,
			 MPI_STATUS_IGNORE);
	}
}

static void report(const run_ctx *c, int kind, int round, long step, long total, double loss, const char *path)
{
	if (!leader(c))
		return;
	student_report r = {kind, round, step, total, loss, 0, {0}};
	snprintf(r.path, sizeof r.path, "%s", path ? path : "");
	MPI_Send(&r, sizeof r, MPI_BYTE, 0, TAG_STUDENT_REPORT, MPI_COMM_WORLD);
}

/* Between steps: has the master said stop or labeled? The leader looks
 * without waiting and every student gets the answer (one small broadcast
 * per step, while all students are busy anyway). */
static void poll_master(const run_ctx *c, int *stop, int *labeled)
{
	int ctl[2] = {*stop, *labeled};
	if (leader(c)) {
		MPI_Status st;
		while (run_wait(0, TAG_STUDENT_CMD, 0, &st)) {
			student_cmd cmd;
			MPI_Recv(&cmd, sizeof cmd, MPI_BYTE, 0, TAG_STUDENT_CMD, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			if (cmd.cmd == SCMD_STOP)
				ctl[0] = 1;
			else if (cmd.cmd == SCMD_LABELED)
				ctl[1] = 1;
		}
	}
	MPI_Bcast(ctl, 2, MPI_INT, 0, c->students);
	*stop = ctl[0], *labeled = ctl[1];
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The leader's threads while it scores on corpus.test (0: its own). The
 * students of its node wait meanwhile, so it may take their threads, but
 * at most its CPUs less one: the waiting ranks wake up every few ms, and
 * where they find no free CPU they deschedule one of its threads, which
 * stalls every OpenMP barrier (measured on 2 cores: 27-41 s instead of 2 s
 * for 20000 images). */
static int test_threads;

/* Collective over the students, once. OMP_NUM_THREADS, when set, stays. */
static void count_test_threads(const run_ctx *c)
{
	MPI_Comm node;
	MPI_Comm_split_type(c->students, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	int mine = omp_get_max_threads(), sum = 0;
	MPI_Reduce(&mine, &sum, 1, MPI_INT, MPI_SUM, 0, node); /* the leader is rank 0 of its node */
	MPI_Comm_free(&node);
	const char *env = getenv("OMP_NUM_THREADS");
	cpu_set_t mask;
	long cpus = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : sysconf(_SC_NPROCESSORS_ONLN);
	if (sum > cpus - 1)
		sum = (int)cpus - 1;
	test_threads = leader(c) && !(env && *env) && sum > mine ? sum : 0;
}

/* Asked while scoring: has the master said stop? (SCMD_LABELED, sent as
 * the students finished a streaming round, needs nothing.) */
static int master_says_stop(void *arg)
{
	(void)arg;
	MPI_Status st;
	int stop = 0;
	while (run_wait(0, TAG_STUDENT_CMD, 0, &st)) {
		student_cmd cmd;
		MPI_Recv(&cmd, sizeof cmd, MPI_BYTE, 0, TAG_STUDENT_CMD, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		if (cmd.cmd == SCMD_STOP)
			stop = 1;
	}
	return stop;
}

/* On the leader, after a round's student finished: scores it on
 * corpus.test. Returns 1 when the master said stop meanwhile (the other
 * students, already waiting for a command, are told), else 0. */
static int score_on_test(const run_ctx *c, int round, const char *ckpt)
{
	int saved = omp_get_max_threads();
	if (test_threads > 0)
		omp_set_num_threads(test_threads);
	int rc = run_test_student(c, round, ckpt, master_says_stop, NULL);
	omp_set_num_threads(saved);
	if (rc < 0)
		student_die(c, "cannot score the student on the test set (corpus.test)");
	if (rc == 1) {
		student_cmd stop = {SCMD_STOP, round, {0}};
		forward(c, &stop);
	}
	return rc;
}

/* Starts the phase's trainer: resumed from its checkpoint if there is one,
 * else initialised (from the teacher when student.init = teacher) on the
 * labeled shards. */
static trainer *start_trainer(const run_ctx *c, const char *ckpt, const char *teacher_path)
{
	trainer *t = trainer_create(&c->job->train.tc, c->students);
	if (!t)
		student_die(c, "cannot create the trainer");
	if (file_exists(ckpt)) {
		if (trainer_resume(t, ckpt) < 0)
			student_die(c, "cannot resume");
		return t;
	}
	if (teacher_path && *teacher_path) {
		ckpt_file *f = ckpt_open(teacher_path, &c->job->train.tc.model);
		if (!f || ckpt_read_params(f, trainer_model(t)) < 0)
			student_die(c, "cannot initialise the student from the teacher");
		ckpt_close(f);
	}
	if (trainer_watch(t, c->job->labeled) < 0)
		student_die(c, "cannot add the labeled shards");
	return t;
}

/* Trains one phase: the round-0 teacher (pseudo NULL) or a round's student.
 * Returns 1 when stopped by the master, 0 when finished. */
static int train_phase(const run_ctx *c, int round, const char *ckpt, const char *teacher_path,
		       const char *pseudo, int wait_labeled)
{
	const train_job *tj = &c->job->train;
	trainer *t = start_trainer(c, ckpt, teacher_path);
	char *text = train_job_effective_config(c->jf, tj);
	int stop = 0, labeled = 0;
	while (wait_labeled && !labeled && !stop) {
		poll_master(c, &stop, &labeled);
		if (!labeled && !stop) {
			struct timespec d = {0, 20000000};
			nanosleep(&d, NULL);
		}
	}
	long watch = tj->watch_every > 0 ? tj->watch_every : 10, total = tj->tc.steps;
	int watched_final = 0;
	double last = 0;
	train_stats st = {0};
	while (!stop && trainer_step_index(t) < total) {
		long step = trainer_step_index(t);
		poll_master(c, &stop, &labeled);
		if (stop)
			break;
		if (pseudo && (step % watch == 0 || (labeled && !watched_final))) {
			watched_final = labeled;
			if (trainer_watch(t, pseudo) < 0)
				student_die(c, "cannot add pseudo-label shards");
		}
		if (trainer_step(t, &st) < 0)
			student_die(c, "training step failed");
		if (tj->checkpoint_every > 0 && st.step % tj->checkpoint_every == 0 && st.step < total) {
			if (trainer_save(t, ckpt, text) < 0)
				student_die(c, "cannot write the checkpoint");
			report(c, SREP_CHECKPOINT, round, st.step, total, st.loss, ckpt);
		}
		if (nb_now() - last >= 1.0 || st.step == total) {
			report(c, SREP_PROGRESS, round, st.step, total, st.loss, NULL);
			last = nb_now();
		}
	}
	if (trainer_step_index(t) > 0 || !file_exists(ckpt)) {
		if (trainer_save(t, ckpt, text) < 0)
			student_die(c, "cannot write the checkpoint");
	}
	long steps = trainer_step_index(t);
	free(text);
	trainer_free(t);
	if (!stop && pseudo && *c->job->test && leader(c))
		stop = score_on_test(c, round, ckpt);
	report(c, stop ? SREP_STOPPED : SREP_DONE, round, steps, total, st.loss, ckpt);
	return stop;
}

void run_student(run_ctx *c)
{
	if (*c->job->test)
		count_test_threads(c);
	for (;;) {
		student_cmd cmd;
		next_cmd(c, &cmd);
		if (cmd.cmd == SCMD_FINISH || cmd.cmd == SCMD_STOP)
			break;
		if (cmd.cmd == SCMD_LABELED)
			continue; /* sent as the students finished a streaming round: nothing left to add */
		char dir[4096], ckpt[4200], pseudo[4200];
		run_round_dir(c, cmd.round, dir, sizeof dir);
		run_pseudo_dir(c, cmd.round, pseudo, sizeof pseudo);
		if (cmd.cmd == SCMD_TRAIN_TEACHER) {
			snprintf(ckpt, sizeof ckpt, "%s/teacher.h5", dir);
			if (train_phase(c, cmd.round, ckpt, NULL, NULL, 0))
				break;
		} else if (cmd.cmd == SCMD_ROUND) {
			snprintf(ckpt, sizeof ckpt, "%s/student.h5", dir);
			const char *init = c->job->init == STUDENT_FROM_TEACHER ? cmd.path : NULL;
			if (train_phase(c, cmd.round, ckpt, init, pseudo, c->job->start == STUDENT_AFTER_LABELING))
				break;
		} else {
			NB_BUG("student: unexpected command %d", cmd.cmd);
		}
	}
}
