/* The LLaVA-shaped captioner (docs/model.md): ViT encoder over 8x8 patches,
 * Linear-GELU-Linear projector, causal decoder over [visual ; caption] tokens,
 * cross-entropy on caption tokens only.
 *
 * Shapes used in comments: B = batch, Nv = visual tokens ((image/patch)^2),
 * T = text positions (bos + caption), D = width, V = vocabulary.
 *
 * Memory: parameters live in one allocation (vlm_params), gradients in a
 * second of the same layout (vlm_grads), activations in a third sized for
 * max_batch. Parameter tensors are named views into the first allocation;
 * names are stable and are what checkpoints and the PyTorch reference use.
 *
 * Threads: the model uses OpenMP and the BLAS internally; a vlm_model is used
 * by one caller thread at a time. */
#ifndef NB_VLM_H
#define NB_VLM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int image_size;              /* square input images, pixels (48) */
	int patch;                   /* patch side (8) */
	int enc_dim, enc_layers, enc_heads;   /* 128, 2, 4 */
	int dec_dim, dec_layers, dec_heads;   /* 128, 4, 4 */
	int mlp_ratio;               /* MLP hidden = ratio * width (4) */
	int vocab;                   /* VOCAB_SIZE */
	int max_text;                /* text positions: bos + up to max_text-1 words (41) */
} vlm_config;

/* The reference configuration of docs/model.md. */
vlm_config vlm_config_default(void);
/* 0, or nb_error naming the bad field. */
int vlm_config_check(const vlm_config *c);
int vlm_config_equal(const vlm_config *a, const vlm_config *b);

typedef struct {
	const char *name;            /* e.g. "dec.3.attn.qkv.w" */
	size_t offset, numel;        /* in floats, into vlm_params()/vlm_grads() */
	int ndim, shape[4];
	int decay;                   /* 1 if AdamW weight decay applies (matrices) */
} vlm_tensor;

/* A training or evaluation batch. Text is padded to T with VOCAB_PAD. */
typedef struct {
	int B, T;
	const uint8_t *images;       /* [B, image, image, 3], RGB */
	const uint16_t *inputs;      /* [B, T]: bos, w1..wn, pad... */
	const uint16_t *targets;     /* [B, T]: w1..wn, eos, pad... (pad = no loss) */
	const uint64_t *keys;        /* [B] per-sample noise keys (image ids), NULL if no noise */
} vlm_batch;

/* NoiseBoost: v' = v + sigma * std(v_token) * N(0,1) on the projected visual
 * tokens; std is per token over its features and carries no gradient. The
 * N(0,1) draws for sample b come from nb_rng_seed(seed, keys[b], stream), so
 * they do not depend on how a batch is split across ranks. */
typedef struct {
	float sigma;                 /* 0 = off */
	uint64_t seed, stream;       /* stream: e.g. the training step */
	int blind;                   /* 1: the visual tokens are zeros and the encoder and
				      * projector are skipped (no gradient): the decoder
				      * learns captions as a language model alone */
	const uint8_t *only;         /* NULL: noise on every sample; else only on samples b
				      * with only[b] != 0 (preference training: the chosen
				      * branch's rows of a pair batch) */
} vlm_noise;

typedef struct vlm_model vlm_model;

/* NULL + nb_errmsg() for a bad config or max_batch. Free with vlm_free().
 * Architecture, tensor names, decay split and init: docs/model.md. */
vlm_model *vlm_create(const vlm_config *cfg, int max_batch);
void vlm_free(vlm_model *m);
const vlm_config *vlm_get_config(const vlm_model *m);
int vlm_max_batch(const vlm_model *m);
size_t vlm_nparams(const vlm_model *m);
float *vlm_params(vlm_model *m);
float *vlm_grads(vlm_model *m);
int vlm_ntensors(const vlm_model *m);
const vlm_tensor *vlm_tensor_at(const vlm_model *m, int i);
/* Deterministic initialisation from seed (same on every rank). */
void vlm_init(vlm_model *m, uint64_t seed);

/* Forward and backward for a batch (B <= max_batch). Gradients are
 * overwritten (not accumulated) with d(grad_scale * sum of token losses).
 * For a global-batch mean pass grad_scale = 1 / (tokens in the global batch).
 * Returns the sum of the token cross-entropies; *ntokens gets their count.
 * noise may be NULL (or sigma 0): no noise.
 * A bad batch (B not in 1..max_batch, T not in 1..max_text, a token id not
 * below vocab, targets missing, sigma > 0 without keys) returns NaN with
 * nb_errmsg() naming the cause, and touches nothing.
 * Threads: OpenMP inside; vlm_create() sets OpenBLAS to one thread because
 * the layers call it from their own OpenMP regions (docs/performance.md). */
double vlm_forward_backward(vlm_model *m, const vlm_batch *b, const vlm_noise *noise,
			    float grad_scale, long *ntokens);
/* Forward only: the same loss sum (and the same NaN on a bad batch), no
 * gradients touched. */
double vlm_forward_loss(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, long *ntokens);
/* Forward only: the logits [B, T, V] of every text position, valid until
 * the model is used again; targets are not needed. NULL + nb_errmsg() on a
 * bad batch (the causes of vlm_forward_backward). */
const float *vlm_forward_logits(vlm_model *m, const vlm_batch *b, const vlm_noise *noise);

/* Preference training (trainer/dpo.h) needs each sample's sequence loss
 * and a gradient with a weight per sample.
 *
 * vlm_forward_seq: the forward pass (kept for vlm_backward_seq), and
 * seq_nll[b] = the sum of sample b's token cross-entropies (-log p of its
 * caption, eos included; pad targets count nothing). Returns their sum, or
 * NaN + nb_errmsg on a bad batch (vlm_forward_backward's causes).
 *
 * vlm_backward_seq: gradients overwritten with d(sum_b weight[b] *
 * seq_nll[b]) for the batch of the last vlm_forward_seq on this model,
 * which must be the one passed (same B and T; the model keeps its
 * activations). -1 + nb_errmsg when no such forward precedes it. */
double vlm_forward_seq(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, double *seq_nll);
int vlm_backward_seq(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, const float *weight);

/* The visual tokens nv = (image_size / patch)^2: the first nv positions of
 * the decoder's sequence [visual ; text]. */
int vlm_visual_tokens(const vlm_model *m);
/* The attention probabilities of decoder layer `layer` (0..dec_layers-1) in
 * the last forward pass over a batch (vlm_forward_backward, _loss or
 * _logits; model/decode.h's decoding does not change them): [B, dec_heads,
 * Lb, Lb], Lb = nv + T, B and T that batch's (written to *B, *T when
 * non-NULL). Row i is query position i's softmax over keys 0..i (causal:
 * keys after i hold 0). The forward keeps them for backward, so reading
 * them costs nothing. Valid until the model is used again. NULL + nb_error
 * for a layer out of range or before any forward pass. */
const float *vlm_attention(const vlm_model *m, int layer, int *B, int *T);

#endif
