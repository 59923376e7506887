#include "common/nb_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint64_t nb_mix64(uint64_t x, uint64_t y)
{
	uint64_t s = x ^ (y * 0xD6E8FEB86659FD93ull);
	splitmix64(&s);
	return splitmix64(&s) ^ y;
}

void nb_rng_seed(nb_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = nb_mix64(nb_mix64(seed, a), b);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	r->has_spare = 0;
	r->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nb_rng_u64(nb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t nb_rng_below(nb_rng *r, uint64_t n)
{
	/* Rejection sampling removes modulo bias. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = nb_rng_u64(r);
	while (x >= limit);
	return x % n;
}

float nb_rng_uniform(nb_rng *r)
{
	return (float)(nb_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float nb_rng_normal(nb_rng *r)
{
	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	double u1, u2;
	do
		u1 = (double)(nb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
	while (u1 <= 0.0);
	u2 = (double)(nb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
	double rad = sqrt(-2.0 * log(u1));
	double th = 6.283185307179586 * u2;
	r->spare = (float)(rad * sin(th));
	r->has_spare = 1;
	return (float)(rad * cos(th));
}
