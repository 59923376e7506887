/* The inside of vlm_model, shared by model/vlm*.c and the decoder
 * (model/decode.c), which runs the same layers with a KV cache. Not a
 * public interface: the trainer and the pipeline use model/vlm.h only. */
#ifndef NB_VLM_INTERNAL_H
#define NB_VLM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/nb_rng.h"
#include "model/vlm.h"

/* Offsets (in floats) of one transformer block's tensors in the parameter
 * (and, identically, the gradient) allocation. */
typedef struct {
	size_t ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fc1w, fc1b, fc2w, fc2b;
} vlm_block_off;

/* Saved activations of one block, sized for max_batch rows of its stack. */
typedef struct {
	float *ln1, *mean1, *rstd1, *qkv, *att, *atty, *x2, *ln2, *mean2, *rstd2, *fc1, *gelu, *out;
} vlm_block_acts;

#define VLM_MAX_LAYERS 16

struct vlm_model {
	vlm_config cfg;
	int max_batch;
	int nv;                      /* visual tokens */
	int pd;                      /* patch vector length P*P*3 */
	int L;                       /* decoder positions nv + max_text */
	float *params, *grads;
	size_t nparams;
	vlm_tensor *tensors;
	int ntensors;
	/* tensor offsets */
	size_t patch_w, patch_b, enc_pos, enc_lnf_w, enc_lnf_b;
	size_t pj1_w, pj1_b, pj2_w, pj2_b;
	size_t tok_emb, dec_pos, dec_lnf_w, dec_lnf_b, head_w, head_b;
	vlm_block_off enc[VLM_MAX_LAYERS], dec[VLM_MAX_LAYERS];
	/* activations */
	float *actmem;
	float *patches, *enc_in, *enc_lnf, *enc_mean, *enc_rstd;
	float *pj1, *pjg, *vis, *dec_in, *xt, *lnf, *lnf_mean, *lnf_rstd, *logits;
	vlm_block_acts enc_a[VLM_MAX_LAYERS], dec_a[VLM_MAX_LAYERS];
	/* backward scratch */
	float *gradmem;
	float *dres, *dln, *dqkv, *datty, *dh1, *dh2, *dlogits;
	int cur_T;                   /* text positions of the last forward */
	int cur_B;                   /* its batch size (0: none yet) */
	int seq_ready;               /* 1 after vlm_forward_seq, until any other use */
};

/* One block forward over x[B, T, C] (pre-LN: attention then MLP, both with
 * residuals); writes into a->out. params: the model's parameter base. */
void vlm_block_forward(const float *params, const vlm_block_off *o, vlm_block_acts *a, const float *x,
		       int B, int T, int C, int NH, int H, int causal);

/* Encoder + projector on images [B, S, S, 3]; returns m->vis [B, nv, dec_dim]
 * (valid until the next model call). */
const float *vlm_encode(vlm_model *m, const uint8_t *images, int B);

/* Decoder from visual inputs vis[B, nv, dec_dim] (noise already applied) and
 * text inputs [B, T]; returns logits [B, T, vocab] in m->logits (valid until
 * the next call). Tokens must be < vocab, T <= max_text, B <= max_batch. */
const float *vlm_decoder_logits(vlm_model *m, const float *vis, const uint16_t *inputs, int B, int T);

/* NoiseBoost on one sample: out[nv, D] = in + sigma * std(token) * N(0,1),
 * std the population std over each token's D features (float64), draws
 * taken from r in (token, feature) order. out may alias in. */
void vlm_noise_apply(float *out, const float *in, int nv, int D, float sigma, nb_rng *r);

/* Greedy decoding that recomputes the whole prefix at every step (no KV
 * cache), with the same streams and noise as decode_greedy(): the reference
 * for tests and the baseline of bench/bench_decode.c. n * (1 + K) must be
 * <= max_batch. Outputs as decode_greedy(). */
void vlm_greedy_naive(vlm_model *m, const uint8_t *images, const uint64_t *keys, int n, int K,
		      float sigma, uint64_t seed, int max_tokens, uint16_t *tokens, int *lens);

#endif
