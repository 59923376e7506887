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

/* Teacher-forced scoring with branches, for probing (labeler/pope.c).
 * Stream 0 reads bos + prefix[0..np) over image (clean, one image of the
 * model's size). Branch b then continues from the state after
 * bos + prefix[0..at[b]) (0 <= at[b] <= np) with its two tokens tok[b][0],
 * tok[b][1], sharing stream 0's cached prefix. Writes log-probabilities
 * over the vocabulary (V = the model's vocab):
 *   base[j*V ..]      next token after bos + prefix[0..j), for j = 0..np;
 *   out[(b*2+0)*V ..] next token after the branch's first token,
 *   out[(b*2+1)*V ..] after its second.
 * Needs a decoder made with max_images >= 1 and 1 + K >= 1 + nbranch
 * streams, and 1 + np + 2 <= max_text. 0 or nb_error. */
int decode_branches(decoder *d, const uint8_t *image, const uint16_t *prefix, int np, const int *at,
		    const uint16_t (*tok)[2], int nbranch, float *base, float *out);

#endif
