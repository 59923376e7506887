/* Training settings from a job file (schemas/job_file.md): the keys of
 * [model], [train], [noise] and data.labeled. Used by `nboost train` and by
 * the student ranks of `nboost run`; other sections pass through untouched
 * so one job file can drive every command. */
#ifndef NB_TRAIN_JOB_H
#define NB_TRAIN_JOB_H

#include "common/jobfile.h"
#include "trainer/train.h"

typedef struct {
	train_config tc;
	long checkpoint_every; /* steps between checkpoints, 0 = only at the end */
	long log_every;        /* steps between progress lines */
	long watch_every;      /* steps between rescans of the shard directory, 0 = never */
	const char *labeled;   /* data.labeled or NULL; points into the jobfile */
	const char *init_decoder; /* train.init_decoder or NULL: nboost train starts its decoder from this checkpoint */
	long keep_checkpoints; /* nboost train: step checkpoints kept besides checkpoint.h5, 0 = none */
	long eval_every;       /* nboost train: steps between held-out scores of data.test, 0 = never */
	const char *test;      /* data.test or NULL; points into the jobfile */
	const char *pairs;     /* data.pairs or NULL: the pair shards of objective dpo */
	const char *dpo_ref;   /* dpo.ref or NULL: the reference checkpoint of objective dpo */
} train_job;

/* Reads and range-checks every key (defaults from train_config_default());
 * an unknown key (train_job_check_keys) is an error naming it. 0 or
 * nb_error naming the job file, the key and the cause. */
int train_job_read(const jobfile *j, train_job *s);

/* The known-key check of train_job_read alone (for command-line overrides,
 * before the job file is read): an unknown key, or a key of an unknown
 * section, is an error with a "did you mean". 0 or nb_error. */
int train_job_check_keys(const jobfile *j);

/* The configuration in force as job-file text: every training key with its
 * value (defaults included, numbers in their shortest exact form), then the
 * other sections' keys as given. Equal texts mean equal settings. Caller frees. */
char *train_job_effective_config(const jobfile *j, const train_job *s);

/* Resume check: 0 when every key that fixes the model, the data order or the
 * optimisation path (model.*, the optimiser, warmup, clip, seed,
 * noise.sigma) is the same in the checkpoint's stored text and now_text;
 * otherwise nb_error naming ckpt_path and listing each key with both values.
 * train.steps and the logging keys may change. */
int train_job_check_resume(const char *ckpt_path, const char *then_text, const char *now_text);

#endif
