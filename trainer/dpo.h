/* Direct preference optimisation (DPO) on one rank's pair batch, with
 * NoiseBoost on the policy's visual tokens (docs/training.md, "Preference
 * training (DPO)").
 *
 * A pair batch (trainer/batcher.h, batcher_make_pairs) has 2n rows: rows
 * [0, n) the chosen captions, rows [n, 2n) the rejected ones of the same
 * images. With nll = the summed token cross-entropy of a row (-log p of the
 * caption, eos included) under the policy and ref = the same under the
 * frozen reference model (never noised), pair i has
 *   z_i = beta * ((ref_c - nll_c) - (ref_r - nll_r))
 * (the margin of the implicit rewards beta * log(pi / pi_ref)) and the loss
 *   pair_scale * sum_i -log sigmoid(z_i)
 *     + sft_weight * sft_scale * sum_i nll_c_i.
 * For a global-batch mean pass pair_scale = 1 / (pairs in the global batch)
 * and sft_scale = 1 / (chosen target tokens in the global batch).
 *
 * No MPI here: trainer/train.c sums the rank's results. */
#ifndef NB_DPO_H
#define NB_DPO_H

#include "model/vlm.h"

/* Which branch of the policy gets the noise (dpo.noise). */
typedef enum { DPO_NOISE_CHOSEN = 0, DPO_NOISE_BOTH = 1, DPO_NOISE_NONE = 2 } dpo_noise_mode;
/* "chosen", "both", "none"; -1 for anything else. */
int dpo_noise_parse(const char *s);
const char *dpo_noise_name(int mode);

typedef struct {
	double beta;                 /* dpo.beta (0.1) */
	int noise;                   /* dpo_noise_mode (DPO_NOISE_CHOSEN) */
	double sft_weight;           /* dpo.sft_weight (0) */
} dpo_params;

/* Sums over the rank's pairs. */
typedef struct {
	double loss;                 /* sum of -log sigmoid(z) */
	double margin;               /* sum of z */
	long correct;                /* pairs with z > 0 */
	double sft;                  /* sum of chosen nll (the SFT term's numerator) */
} dpo_sums;

/* The reference's sequence nll of every row, ref_nll[2n]; no noise, no
 * gradient. 0 or -1 + nb_errmsg (a bad batch). */
int dpo_reference(vlm_model *ref, const vlm_batch *pairs, double *ref_nll);

/* The loss above on the policy, with noise (sigma, seed, stream) on the
 * rows that p->noise says; with grad, the policy's gradients are
 * overwritten by its gradient (else untouched). Adds the rank's sums to
 * *out. 0 or -1 + nb_errmsg. */
int dpo_loss(vlm_model *policy, const vlm_batch *pairs, const double *ref_nll, const vlm_noise *noise,
	     const dpo_params *p, double pair_scale, double sft_scale, int grad, dpo_sums *out);

#endif
