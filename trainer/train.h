/* Data-parallel training of the captioner with NoiseBoost.
 *
 * One trainer per rank of `comm`. Every rank holds the whole model, the
 * optimizer state and an identical batcher. A step:
 *   1. every rank draws the same global batch of sample indices and takes its
 *      contiguous slice (rank r: [r*G/P, (r+1)*G/P));
 *   2. the global count of target tokens is all-reduced, so each rank's
 *      gradient is scaled by 1/(global tokens);
 *   3. vlm_forward_backward with noise (sigma, seed, stream = step index);
 *   4. MPI_Allreduce(SUM) of the gradients, in place, in one call;
 *   5. every rank clips by global norm and applies the identical AdamW update.
 * The step is a collective over comm: all ranks call it the same number of
 * times, and the same for add/watch/save/resume. Errors are agreed on, so a
 * failure on one rank makes the call fail on all (no rank is left waiting).
 *
 * Randomness is keyed, never sequential: initialisation by (seed), data order
 * by (seed, epoch or merge count), noise by (seed, image id, step). The only
 * state to save besides parameters and moments is the batcher's order, which
 * checkpoints hold, so a resumed run is bit-identical to an uninterrupted one
 * on the same number of ranks.
 *
 * Not thread-safe; one thread per rank calls in. */
#ifndef NB_TRAIN_H
#define NB_TRAIN_H

#include <stdint.h>

#include <mpi.h>

#include "model/vlm.h"
#include "trainer/adamw.h"
#include "trainer/batcher.h"
#include "trainer/dpo.h"

/* train.objective */
typedef enum { TRAIN_SFT = 0, TRAIN_DPO = 1 } train_objective;

typedef struct {
	vlm_config model;
	long steps;                  /* total updates, sets the cosine length (4000) */
	int batch;                   /* global batch, samples (64) */
	double lr;                   /* peak learning rate (1e-3) */
	long warmup;                 /* linear warmup updates (200) */
	double clip;                 /* global-norm clip, 0 = off (1.0) */
	adamw_hparams adam;          /* betas 0.9/0.999, eps 1e-8, weight decay 0.05 */
	uint64_t seed;               /* init, data order and noise (1) */
	float sigma;                 /* NoiseBoost noise level, 0 = off (0.3) */
	float sigma_end;             /* < 0: constant sigma (-1); else annealed linearly
				      * from sigma at step 0 to sigma_end at the last step */
	int text_only;               /* 1: captions alone, zero visual tokens (vlm_noise.blind):
				      * a language-model pretraining of the decoder (0) */
	int objective;               /* TRAIN_SFT (cross-entropy on caption shards) or TRAIN_DPO
				      * (preference pairs against a reference model, trainer/dpo.h) */
	dpo_params dpo;              /* beta 0.1, noise on the chosen branch, sft_weight 0 */
} train_config;

/* The reference configuration (docs/model.md). */
train_config train_config_default(void);

/* The noise level of update `step` (0-based) under c's schedule. */
float train_sigma_at(const train_config *c, long step);

typedef struct trainer trainer;

/* Creates the model (initialised from seed), zero moments and an empty
 * batcher. Collective. NULL + nb_errmsg (on every rank) on failure. */
trainer *trainer_create(const train_config *c, MPI_Comm comm);
void trainer_free(trainer *t);

vlm_model *trainer_model(trainer *t);

/* Replaces the decoder of a fresh trainer (the language side: tensors
 * "dec.*" and "head.*") with that of checkpoint path, whose decoder must have
 * the same shape (dec_dim, dec_layers, dec_heads, mlp_ratio, vocab,
 * max_text, and the visual token count); the encoder and projector keep
 * their initialisation. Every rank reads the file. 0 or nb_error naming the
 * file and the first difference. */
int trainer_init_decoder(trainer *t, const char *path);
batcher *trainer_batcher(trainer *t);

/* DPO: loads the frozen reference model from checkpoint path (every rank;
 * the same config as the trainer's model), and, when init_policy, copies its
 * parameters into the policy (a fresh run starts from the reference; a
 * resumed one has its own: pass 0). Once per trainer. 0 or -1 on every
 * rank. */
int trainer_set_reference(trainer *t, const char *path, int init_policy);
/* Updates done so far (the next step's index). */
long trainer_step_index(const trainer *t);

/* Adds shards (collective; every rank passes the same list): 0 or -1. */
int trainer_add_shard(trainer *t, const char *path);
/* Rank 0 lists dir's committed shards and broadcasts the new ones, so all
 * ranks add the same shards even while a writer is committing. Returns how
 * many were added (same on every rank) or -1. */
int trainer_watch(trainer *t, const char *dir);

typedef struct {
	long step;                   /* updates done after this step (1-based) */
	double loss;                 /* mean token cross-entropy over the global batch */
	double lr;                   /* learning rate used */
	double grad_norm;            /* global gradient norm before clipping */
	long tokens;                 /* target tokens in the global batch */
	int samples;                 /* global batch size */
	/* objective dpo (0 otherwise): loss above is the whole objective */
	int dpo;                     /* 1 when the fields below are set */
	double dpo_loss;             /* mean -log sigmoid(z) over the global batch's pairs */
	double reward_margin;        /* mean z = beta * (log-ratio chosen - log-ratio rejected) */
	double reward_accuracy;      /* share of pairs with z > 0 */
	double sft_loss;             /* mean token cross-entropy of the chosen captions */
} train_stats;

/* One optimizer step (collective); the objective's (train_config). The
 * DPO step: the reference's and the policy's forward over the rank's pair
 * rows (chosen and rejected together), one backward with a weight per row
 * (trainer/dpo.h), then the supervised step's all-reduce, clip and AdamW. 0 or -1 + nb_errmsg. */
int trainer_step(trainer *t, train_stats *st);

/* Rank 0 writes the checkpoint (model/checkpoint.h) with the optimizer and
 * data-order state; job_text is the effective job file, stored as text. The
 * result is broadcast: 0 or -1 on every rank. */
int trainer_save(trainer *t, const char *path, const char *job_text);
/* Every rank loads the checkpoint: parameters, moments, step, the shards the
 * run had added (re-read; their sample counts must match) and the data order.
 * The model config must equal the trainer's and the seed must match.
 * 0 or -1 on every rank. */
int trainer_resume(trainer *t, const char *path);

#endif
