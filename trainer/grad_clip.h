/* Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_:
 * when the norm exceeds max_norm, every element is scaled by
 * max_norm / (norm + 1e-6). The norm is accumulated in double so that it does
 * not depend on float rounding of a long sum. Not thread-shared. */
#ifndef NB_GRAD_CLIP_H
#define NB_GRAD_CLIP_H

#include <stddef.h>

double grad_global_norm(const float *g, size_t n);
/* Clips g in place; returns the norm before clipping. max_norm <= 0 = off. */
double grad_clip_global(float *g, size_t n, double max_norm);

#endif
