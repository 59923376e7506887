/* Greedy caption decoding with a KV cache, batched.
 *
 * Each image is encoded once. With K > 0 the decoder then runs 1 + K caption
 * streams per image in one batch: stream 0 is clean, streams 1..K add
 * NoiseBoost noise to the projected visual tokens with independent draws
 * seeded from (seed, key, sample index), so the result for an image does not
 * depend on which rank decoded it or what else was in the batch. */
#ifndef NB_DECODE_H
#define NB_DECODE_H

#include <stdint.h>

#include "model/vlm.h"

typedef struct {
	int K;                       /* noisy samples per image (0 = clean only) */
	float sigma;                 /* noise level for the K samples */
	uint64_t seed;
	int max_tokens;              /* cap on generated words (<= max_text - 1) */
} decode_opts;

typedef struct decoder decoder;

/* A decoder sized for up to max_images images per call, each with 1+K streams. */
decoder *decoder_create(vlm_model *m, int max_images, int K);
void decoder_free(decoder *d);

/* images: [n, S, S, 3] at the model's image size; keys: [n] (image ids).
 * Writes captions to tokens[(i*(1+K) + s) * max_tokens ...] (words only, no
 * bos/eos) and lengths to lens[i*(1+K) + s]. Returns 0 or nb_error. */
int decode_greedy(decoder *d, const uint8_t *images, const uint64_t *keys, int n,
		  const decode_opts *o, uint16_t *tokens, int *lens);

#endif
