/* The layers of the captioner, each a forward/backward pair in the manner of
 * llm.c. Shapes: N = rows (batch * positions), C = input channels, OC =
 * output channels, B = batch, T = positions, NH = heads.
 *
 * Conventions, for every function here:
 * - All buffers are float32, row-major, owned by the caller.
 * - Backward functions ACCUMULATE (+=) into their d-outputs, so a tensor used
 *   twice (the residual stream) gets the sum of its gradients; the caller
 *   zeroes the buffers first. A d-output passed as NULL is not computed.
 * - Matrices are stored as PyTorch's nn.Linear stores them: w[OC, C], so
 *   out = in @ w^T + b.
 * - Functions parallelise internally (OpenMP over rows, BLAS for GEMMs); call
 *   them from one thread. */
#ifndef NB_LAYERS_H
#define NB_LAYERS_H

#include <stdint.h>

/* out[N, OC] = in[N, C] @ w[OC, C]^T + b[OC] (b may be NULL). */
void linear_forward(float *out, const float *in, const float *w, const float *b, int N, int C, int OC);
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
		     const float *w, int N, int C, int OC);

/* LayerNorm over the last axis, eps 1e-5. mean/rstd [N] are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
		       const float *b, int N, int C);
void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
			const float *w, const float *mean, const float *rstd, int N, int C);

/* GELU, tanh approximation (PyTorch nn.GELU(approximate="tanh")), n elements. */
void gelu_forward(float *out, const float *in, long n);
void gelu_backward(float *din, const float *in, const float *dout, long n);

/* Multi-head self-attention core over qkv[B, T, 3C] (q | k | v, heads split
 * each C into NH slices), out[B, T, C]; att[B, NH, T, T] keeps the softmax
 * probabilities for backward. causal: position i sees only j <= i. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
		       int causal);
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
			int T, int C, int NH, int causal);

/* out[N, C] = a + b (out may alias a). Backward is da += dout, db += dout. */
void residual_forward(float *out, const float *a, const float *b, long n);
void residual_backward(float *da, float *db, const float *dout, long n);

/* out[B, T, C] = in[B, T, C] + pos[T, C] (out may alias in). */
void addpos_forward(float *out, const float *in, const float *pos, int B, int T, int C);
void addpos_backward(float *din, float *dpos, const float *dout, int B, int T, int C);

/* out[N, C] = emb[tok[n], C]. tokens must be < V (checked by the caller). */
void embedding_forward(float *out, const uint16_t *tok, const float *emb, int N, int C);
void embedding_backward(float *demb, const uint16_t *tok, const float *dout, int N, int C);

/* Softmax cross-entropy over logits[N, V]; rows whose target is `ignore` give
 * no loss and no gradient. Returns the sum of the losses (float64), *count
 * the number of counted rows. If dlogits is non-NULL it is OVERWRITTEN with
 * scale * d(loss sum)/d(logits). */
double crossentropy_forward_backward(float *dlogits, const float *logits, const uint16_t *targets,
				     int N, int V, int ignore, float scale, long *count);

/* Images [B, S, S, 3] uint8 to patch rows [B, (S/P)^2, P*P*3] float, value
 * x/255 - 0.5; patches in row-major order, each flattened as (row, column,
 * channel) within the patch. */
void patchify(float *out, const uint8_t *images, int B, int S, int P);

#endif
