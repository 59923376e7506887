/* The settings of `nboost run` from a job file (schemas/job_file.md): the
 * sections [corpus], [run], [teacher], [filter], [student], plus [model],
 * [train] and [noise] through trainer/train_job.h (the student, and the
 * round-0 teacher when teacher.model is empty, train with them). */
#ifndef NB_RUN_JOB_H
#define NB_RUN_JOB_H

#include <stdint.h>

#include "common/jobfile.h"
#include "labeler/consistency.h"
#include "trainer/train_job.h"

typedef enum { STUDENT_STREAMING = 0, STUDENT_AFTER_LABELING = 1 } student_start;
typedef enum { STUDENT_SCRATCH = 0, STUDENT_FROM_TEACHER = 1 } student_init;

typedef struct {
	/* [corpus]: directories of shards; point into the jobfile */
	const char *labeled, *unlabeled, *test;
	/* [run] */
	int teachers, filters, students;   /* rank counts; the master is the rank left over;
					    * students = 0: label only (teacher.model, one round) */
	int slice, nslices;                /* run.slice = I/N: label the units u with u mod N = I */
	int rounds;                        /* Noisy Student rounds (1) */
	int unit;                          /* images per work unit (64) */
	int in_flight;                     /* units per teacher at once (2) */
	double stall_timeout;              /* seconds before a unit is handed to another teacher (600) */
	double progress_every;             /* seconds between progress lines (5) */
	/* [teacher] */
	const char *teacher_model;         /* "" = round 0 trains one from the labeled shards */
	int K;                             /* noisy captions per image (4) */
	double sigma;                      /* teacher noise (0.3) */
	int batch;                         /* images per decode call (16) */
	/* [filter] */
	consistency_opts filter;
	/* [student] */
	student_start start;
	student_init init;
	train_job train;                   /* [model], [train], [noise] */
} run_job;

/* Reads and checks every key; unknown keys in the run's sections are errors
 * naming file, line and key. 0 or nb_error. */
int run_job_read(const jobfile *j, run_job *r);

/* Checks the role split for a world of `world` ranks: 1 master + teachers +
 * filters + students must equal world, with at least one of each. 0, or
 * nb_error saying which split would fit. */
int run_job_check_split(const run_job *r, int world);

/* The keys whose change alters the pseudo-labels or the students (the whole
 * effective configuration except progress and logging keys), as text; equal
 * texts mean the same results. Caller frees. */
char *run_job_frozen_text(const jobfile *j, const run_job *r);

#endif
