#include "trainer/grad_clip.h"

#include <math.h>

double grad_global_norm(const float *g, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)g[i] * (double)g[i];
	return sqrt(s);
}

double grad_clip_global(float *g, size_t n, double max_norm)
{
	double norm = grad_global_norm(g, n);
	if (max_norm > 0.0 && norm > max_norm) {
		float scale = (float)(max_norm / (norm + 1e-6));
		for (size_t i = 0; i < n; i++)
			g[i] *= scale;
	}
	return norm;
}
