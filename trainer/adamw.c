#include "trainer/adamw.h"

#include <math.h>

adamw_hparams adamw_defaults(void)
{
	adamw_hparams h = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
	return h;
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_hparams *h, double lr,
		  long t, int decay)
{
	/* Bias corrections and the decay factor are per call, in double, so the
	 * per-element loop is plain float arithmetic. */
	const float b1 = (float)h->beta1, b2 = (float)h->beta2;
	const float c1 = (float)(1.0 / (1.0 - pow(h->beta1, (double)t)));
	const float c2 = (float)(1.0 / (1.0 - pow(h->beta2, (double)t)));
	const float keep = decay ? (float)(1.0 - lr * h->weight_decay) : 1.0f;
	const float flr = (float)lr, eps = (float)h->eps;
	/* 1 - beta in double: 1.0f - 0.999f is off by 1e-5 relative. */
	const float a1 = (float)(1.0 - h->beta1), a2 = (float)(1.0 - h->beta2);
	for (size_t i = 0; i < n; i++) {
		float gi = g[i];
		float mi = b1 * m[i] + a1 * gi;
		float vi = b2 * v[i] + a2 * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] = p[i] * keep - flr * (mi * c1) / (sqrtf(vi * c2) + eps);
	}
}
