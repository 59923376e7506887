/* nboost experiment: the hallucination study (docs/study.md). A study file
 * (jobs/study.conf) names the corpus, the shared training settings and the
 * arms; every (arm, seed) is a job run as child processes of nboost itself
 * (synth, train, run under mpirun, eval, attn) in its own directory, done
 * when its result.json exists, so a rerun skips finished jobs and resumes
 * interrupted ones. The report (results.md, results.json, plots) is built
 * from the result files alone. This layer knows no MPI: under mpirun or
 * srun each process takes the jobs nobody else holds (a flock per job). */
#ifndef NB_STUDY_H
#define NB_STUDY_H

#include "common/jobfile.h"

typedef enum { ARM_SUPERVISED, ARM_LM, ARM_SEMI, ARM_DPO } arm_kind;

typedef struct {
	char *name, *spec;   /* spec: the text of the study file's line */
	const char *origin;  /* "study.conf:12" */
	arm_kind kind;
	int labels;          /* percent of the labeled pool */
	double sigma;        /* train noise (supervised, lm) or the student's (semi) */
	double sigma_end;    /* < 0: constant */
	int init;            /* arm index whose checkpoint initialises the decoder, -1 none */
	int teacher;         /* semi: arm index of the teacher, -1 none */
	int filter;          /* semi: 1 consistency filter (teacher.K noisy captions), 0 raw */
	int rounds;          /* semi */
	int vs;              /* arm index of the paired baseline in the report, -1 none */
	long steps;          /* 0: the study's */
	int from;            /* dpo: the arm whose checkpoint is the reference and the start */
	char dpo_noise[8];   /* dpo: chosen, both or none */
	double beta, sft;    /* dpo: dpo.beta, dpo.sft_weight */
	double lr;           /* 0: the study's (study.lr, or study.dpo_lr for dpo) */
} study_arm;

typedef struct {
	const char *path;
	jobfile *j;          /* the study file, --quick folded in */
	const char *job;     /* model/train/noise job file of every arm */
	int seeds, parallel, threads, semi_ranks, pope, quick, full;
	long steps, lm_steps, batch, warmup, attn_images;
	long dpo_steps, dpo_batch; /* dpo arms: steps and pairs per step */
	double lr, dpo_lr;
	long labeled, test, hard_tests, shard_size, lm_captions, corpus_seed;
	long image_size;     /* the job's model.image_size: the corpus is rendered at it */
	study_arm *arms;
	int n_arms;
} study_conf;

/* Loads and checks a study file. quick: fold [quick] into [study],
 * [quick-corpus] into [corpus], and run [quick-arms] only; full: [full]'s
 * arms after [arms]'s. overrides (may be NULL): keys set on the command
 * line, applied before the fold. NULL + nb_error naming the file, line
 * and cause. */
study_conf *study_load(const char *path, int quick, int full, const jobfile *overrides);
void study_free(study_conf *c);
const char *study_kind_name(arm_kind k);

typedef struct {
	const char *out;     /* the study directory */
	const char *nboost;  /* the executable children run */
	int rank, nranks;    /* this process among the launcher's (0/1 alone) */
	int dry_run;         /* print the plan, run nothing */
} study_run_opts;

/* Renders the corpus and runs every job not yet done. 0 when every job of
 * the study is done, 1 when some failed (each named on stderr; the others
 * still ran), 75 when stopped by a signal (resumable), -1 + nb_error. */
int study_run(const study_conf *c, const study_run_opts *o);

/* Writes OUT/results.json, OUT/results.md and OUT/plots/ from the result
 * files present (a partial study gives a partial report, saying so).
 * 0 or -1 + nb_error. */
int study_report(const study_conf *c, const char *out);

#endif
