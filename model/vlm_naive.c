/* Greedy decoding without a KV cache: every step reruns the decoder over the
 * whole prefix. Slow on purpose; it is the independent reference that the
 * KV-cache decoder (model/decode.c) is tested and benchmarked against. */
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"

void vlm_greedy_naive(vlm_model *m, const uint8_t *images, const uint64_t *keys, int n, int K,
		      float sigma, uint64_t seed, int max_tokens, uint16_t *tokens, int *lens)
{
	int ns = n * (1 + K), nv = m->nv, D = m->cfg.dec_dim, V = m->cfg.vocab;
	if (ns > m->max_batch || max_tokens > m->cfg.max_text - 1)
		NB_BUG("vlm_greedy_naive: %d streams or %d tokens exceed the model's sizes", ns, max_tokens);
	size_t vsz = (size_t)nv * D;
	float *vis = nb_xmalloc(sizeof(float) * vsz * (size_t)(ns ? ns : 1));
	const float *clean = vlm_encode(m, images, n);
	for (int i = 0; i < n; i++)
		for (int s = 0; s <= K; s++) {
			float *dst = vis + (size_t)(i * (1 + K) + s) * vsz;
			if (s == 0) {
				memcpy(dst, clean + (size_t)i * vsz, sizeof(float) * vsz);
			} else {
				nb_rng r;
				nb_rng_seed(&r, seed, keys[i], (uint64_t)s);
				vlm_noise_apply(dst, clean + (size_t)i * vsz, nv, D, sigma, &r);
			}
		}
	int T = max_tokens + 1;
	uint16_t *in = nb_xcalloc((size_t)ns * T, sizeof(uint16_t));
	int *done = nb_xcalloc((size_t)(ns ? ns : 1), sizeof(int));
	for (int s = 0; s < ns; s++) {
		in[(size_t)s * T] = VOCAB_BOS;
		lens[s] = 0;
	}
	for (int t = 0; t < max_tokens; t++) {
		/* inputs laid out [ns, t+1]: compact the prefix rows */
		uint16_t *pre = nb_xmalloc(sizeof(uint16_t) * (size_t)ns * (t + 1));
		for (int s = 0; s < ns; s++)
			memcpy(pre + (size_t)s * (t + 1), in + (size_t)s * T, sizeof(uint16_t) * (size_t)(t + 1));
		const float *logits = vlm_decoder_logits(m, vis, pre, ns, t + 1);
		free(pre);
		int alive = 0;
		for (int s = 0; s < ns; s++) {
			if (done[s])
				continue;
			const float *z = logits + ((size_t)s * (t + 1) + t) * V;
			int best = 0;
			for (int v = 1; v < V; v++)
				if (z[v] > z[best])
					best = v;
			if (best == VOCAB_EOS) {
				done[s] = 1;
				continue;
			}
			tokens[(size_t)s * max_tokens + t] = (uint16_t)best;
			lens[s] = t + 1;
			in[(size_t)s * T + t + 1] = (uint16_t)best;
			alive++;
		}
		if (!alive)
			break;
	}
	free(done);
	free(in);
	free(vis);
}
