/* AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, in the
 * order PyTorch's torch.optim.AdamW uses, so the reference script and this
 * code take the same steps:
 *
 *   p <- p - lr * wd * p                     (only where decay is on)
 *   m <- b1 m + (1 - b1) g
 *   v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * t is the 1-based number of this update (bias correction). The moments are
 * float32 arrays owned by the caller (zeroed before the first update) and are
 * what checkpoints store under /adam/m and /adam/v. Pure arithmetic: no
 * state, no threads, deterministic. */
#ifndef NB_ADAMW_H
#define NB_ADAMW_H

#include <stddef.h>

typedef struct {
	double beta1, beta2;   /* 0.9, 0.999 */
	double eps;            /* 1e-8 */
	double weight_decay;   /* 0.05: applied to tensors with decay = 1 only */
} adamw_hparams;

/* The reference values of docs/model.md. */
adamw_hparams adamw_defaults(void);

/* One update of n parameters in place. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_hparams *h, double lr,
		  long t, int decay);

#endif
