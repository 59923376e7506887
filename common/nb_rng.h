/* Deterministic random numbers.
 *
 * Every random stream in nboost is keyed, not sequential: a stream is seeded
 * from (seed, a, b), for example (job seed, image id, sample index). Output
 * therefore does not depend on which rank or thread did the work, nor on
 * restarts. The generator is xoshiro256** seeded through splitmix64.
 * An nb_rng is plain data: copy it to save it, write its 4 words to a
 * checkpoint to resume it. Not shared between threads. */
#ifndef NB_RNG_H
#define NB_RNG_H

#include <stdint.h>

typedef struct {
	uint64_t s[4];
	/* Box-Muller makes normals in pairs; the spare one is cached here. */
	int has_spare;
	float spare;
} nb_rng;

void nb_rng_seed(nb_rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t nb_rng_u64(nb_rng *r);
/* Uniform integer in [0, n), unbiased. n > 0. */
uint64_t nb_rng_below(nb_rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float nb_rng_uniform(nb_rng *r);
/* Standard normal N(0, 1). */
float nb_rng_normal(nb_rng *r);
/* A well-mixed 64-bit hash of (x, y): for deriving keys. */
uint64_t nb_mix64(uint64_t x, uint64_t y);

#endif
