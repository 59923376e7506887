/* Shared by the rank loops of `nboost run` (pipeline/run_*.c): roles,
 * message tags and layouts, waiting without spinning. */
#ifndef NB_PIPELINE_RUN_INTERNAL_H
#define NB_PIPELINE_RUN_INTERNAL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "common/jobfile.h"
#include "common/nb_io.h"
#include "common/scene.h"
#include "pipeline/run_job.h"

typedef enum { ROLE_MASTER = 0, ROLE_TEACHER, ROLE_FILTER, ROLE_STUDENT } run_role;

/* Message tags on MPI_COMM_WORLD. */
enum {
	TAG_REQ = 100,        /* teacher -> master: int32 round; asks for one unit */
	TAG_UNIT,             /* master -> teacher: unit_msg */
	TAG_NOWORK,           /* master -> teacher: int32 round; no more units this round */
	TAG_MODEL,            /* master -> teacher: model_hdr then the parameters */
	TAG_CAPS,             /* teacher -> filter: caps_hdr then arrays (see run_filter.c) */
	TAG_UNIT_DONE,        /* filter -> master: done_msg */
	TAG_STUDENT_CMD,      /* master -> student leader: student_cmd */
	TAG_STUDENT_REPORT,   /* student leader -> master: student_report */
	TAG_STOP,             /* master -> teacher, filter: int32, exit the loop */
	TAG_IDLE,             /* teacher -> master: int32 round; no request of mine is outstanding */
};

typedef struct {
	int32_t round, shard;        /* index into the unlabeled shard list */
	int64_t unit, start, count;  /* unit id; first sample in the shard; images */
} unit_msg;

/* What the master tells the students. */
enum { SCMD_TRAIN_TEACHER = 1, SCMD_ROUND, SCMD_LABELED, SCMD_STOP, SCMD_FINISH };
typedef struct {
	int32_t cmd, round;
	char path[1024];             /* SCMD_ROUND: the round's teacher checkpoint */
} student_cmd;

/* What the student leader tells the master. */
enum { SREP_PROGRESS = 1, SREP_CHECKPOINT, SREP_DONE, SREP_STOPPED, SREP_FAILED };
typedef struct {
	int32_t kind, round;
	int64_t step, total;
	double loss;
	int64_t shards;              /* pseudo shards trained on so far */
	char path[1024];             /* checkpoint path, or the failure message */
} student_report;

/* CHAIR, recall and tuple counters (labeler/metrics.h): they add up across
 * units and ranks, unlike BLEU and CIDEr-D. */
typedef struct {
	int64_t captions, mentions, hallucinated, halluc_captions, gt_objects, gt_recalled;
	int64_t cand_tuples, gt_tuples, tuple_matches;
} truth_counts;

/* Counts a filter reports per unit; summed by the master per round. The
 * truth counters score the clean (raw) and the accepted captions against
 * ground truth where the unlabeled shards carry it (synthetic corpora). */
typedef struct {
	int64_t seen, accepted, rejected[8];
	int64_t statements, kept;
	truth_counts raw, acc;
} label_counts;

/* The head of a TAG_MODEL message; the parameters follow as floats. */
typedef struct {
	int32_t round, cfg[11];      /* vlm_config, field by field */
	char digest[17];             /* ckpt_digest of the teacher checkpoint */
} model_hdr;

/* The head of a TAG_CAPS message (layout in run_teacher.c). */
typedef struct {
	int32_t round, n, K1, maxtok, S, has_objects, src_bytes;
	int64_t unit;
	char digest[17];             /* the teacher's */
} caps_hdr;

typedef struct {
	int32_t round;
	int64_t unit;
	char shard[64];              /* "" when nothing was accepted */
	label_counts c;
} done_msg;

/* Everything a rank loop needs. */
typedef struct {
	const run_job *job;
	const jobfile *jf;
	const char *rundir;
	int rank, world;
	run_role role;
	int index;                   /* index within the role */
	int first_teacher, first_filter, first_student; /* world ranks */
	MPI_Comm students;           /* the students' communicator (MPI_COMM_NULL elsewhere) */
	char **unlabeled;            /* unlabeled shard paths (every rank) */
	int nunlabeled;
	struct journal *jr;          /* the master's, opened by run_master_prepare */
} run_ctx;

/* On the master, before the roles start: run directory, config.conf, the
 * journal (config digest checked), and every input checked (labeled and
 * unlabeled shards, teacher checkpoint). 0, or nb_error naming the file and
 * the cause. */
int run_master_prepare(run_ctx *c);

/* Waits for a message from src (or MPI_ANY_SOURCE) with tag (or
 * MPI_ANY_TAG) without spinning a core: probes without pause for the first
 * 200 us, then sleeps with a backoff from 50 us to 5 ms. With timeout_s >= 0
 * returns 0 when nothing came in time (timeout 0: one probe); 1 when a
 * message is there (*st filled). */
int run_wait(int src, int tag, double timeout_s, MPI_Status *st);

/* The round directory and the pseudo-label directory of a round. */
void run_round_dir(const run_ctx *c, int round, char *out, size_t n);
void run_pseudo_dir(const run_ctx *c, int round, char *out, size_t n);
/* "unit-00000042.h5" */
void run_unit_shard_name(int64_t unit, char *out, size_t n);
/* Noise seed of a round's teacher (keys the K draws with image id and k). */
uint64_t run_teacher_seed(const run_ctx *c, int round);

/* corpus.test (pipeline/run_test.c). Before the run starts, on the
 * master: the test shards are there, carry ground truth (/objects) and
 * have [model]'s image size; nothing to check without corpus.test or
 * without students. 0, or nb_error starting "corpus.test: ". */
int run_check_test_corpus(const run_ctx *c);
/* On the student leader, once a round's student is trained: scores the
 * checkpoint ckpt on corpus.test (labeler/evaluate.h), writes
 * RUNDIR/round-R/test.json and prints the scores on stderr. stop(arg) is
 * asked a few times a second; when it returns 1 the scoring ends early.
 * 0 when scored, 1 when stopped, -1 + nb_error. */
int run_test_student(const run_ctx *c, int round, const char *ckpt, int (*stop)(void *), void *arg);

int run_master(run_ctx *c);
void run_teacher(run_ctx *c);
void run_filter(run_ctx *c);
void run_student(run_ctx *c);

/* Set by signals; read by the master. */
extern volatile sig_atomic_t run_stop_signal;

#endif
