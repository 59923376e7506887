/* exp and tanh for the model's elementwise loops, written so that the
 * compiler vectorises them (no calls, no branches): glibc's expf/tanhf are
 * calls and keep GELU and softmax scalar. Relative error of nb_expf is below
 * 2e-7 (a few float ulps) on the clamped range [-87, 88]. */
#ifndef NB_FASTMATH_H
#define NB_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float nb_expf(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	/* x = n ln2 + r, |r| <= ln2/2; rounding by the 1.5 * 2^23 trick */
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	int32_t bits = ((int32_t)n + 127) << 23;
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1): absolute error ~1e-7, which is what
 * GELU's 0.5 * x * (1 + tanh) needs. */
static inline float nb_tanhf(float u)
{
	return 1.0f - 2.0f / (nb_expf(2.0f * u) + 1.0f);
}

#endif
