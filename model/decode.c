/* Batched greedy decoding with a KV cache (model/decode.h).
 *
 * The decoder's keys and values of every position are kept per stream and
 * layer, so each new token costs one row through the decoder instead of the
 * whole prefix. Streams that emit <eos> drop out of the batch; the rest are
 * gathered into a compact row block each step. */
#include "model/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/layers.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"

/* Streams prefilled together: bounds the scratch rows to PREFILL * nv. */
#define PREFILL 64

struct decoder {
	vlm_model *m;
	int max_images, K, max_streams, rows;
	size_t cache_stride;             /* floats per (layer, stream) cache: L * D */
	float *kcache, *vcache;          /* [layers, streams, L, D] */
	float *vis;                      /* [max_images, nv, D] clean visual tokens */
	float *x, *ln, *qkv, *atty, *tmp, *h1, *h2, *mean, *rstd, *logits;
	int *ids, *done;
	uint16_t *tok;
};

decoder *decoder_create(vlm_model *m, int max_images, int K)
{
	if (max_images < 1 || K < 0 || K > 1024) {
		nb_error("cannot create decoder: max_images %d or K %d out of range", max_images, K);
		return NULL;
	}
	const vlm_config *c = vlm_get_config(m);
	decoder *d = nb_xcalloc(1, sizeof *d);
	d->m = m;
	d->max_images = max_images;
	d->K = K;
	d->max_streams = max_images * (1 + K);
	int ps = d->max_streams < PREFILL ? d->max_streams : PREFILL;
	d->rows = ps * m->nv > d->max_streams ? ps * m->nv : d->max_streams;
	size_t D = (size_t)c->dec_dim, H = (size_t)c->mlp_ratio * D, R = (size_t)d->rows;
	d->cache_stride = (size_t)m->L * D;
	size_t cache = (size_t)c->dec_layers * d->max_streams * d->cache_stride;
	d->kcache = nb_xmalloc(sizeof(float) * cache);
	d->vcache = nb_xmalloc(sizeof(float) * cache);
	d->vis = nb_xmalloc(sizeof(float) * (size_t)max_images * m->nv * D);
	d->x = nb_xmalloc(sizeof(float) * R * D);
	d->ln = nb_xmalloc(sizeof(float) * R * D);
	d->qkv = nb_xmalloc(sizeof(float) * R * 3 * D);
	d->atty = nb_xmalloc(sizeof(float) * R * D);
	d->tmp = nb_xmalloc(sizeof(float) * R * D);
	d->h1 = nb_xmalloc(sizeof(float) * R * H);
	d->h2 = nb_xmalloc(sizeof(float) * R * H);
	d->mean = nb_xmalloc(sizeof(float) * R);
	d->rstd = nb_xmalloc(sizeof(float) * R);
	d->logits = nb_xmalloc(sizeof(float) * (size_t)d->max_streams * c->vocab);
	d->ids = nb_xmalloc(sizeof(int) * (size_t)d->max_streams);
	d->done = nb_xmalloc(sizeof(int) * (size_t)d->max_streams);
	d->tok = nb_xmalloc(sizeof(uint16_t) * (size_t)d->max_streams);
	return d;
}

void decoder_free(decoder *d)
{
	if (!d)
		return;
	free(d->kcache), free(d->vcache), free(d->vis), free(d->x), free(d->ln), free(d->qkv), free(d->atty);
	free(d->tmp), free(d->h1), free(d->h2), free(d->mean), free(d->rstd), free(d->logits), free(d->ids);
	free(d->done), free(d->tok);
	free(d);
}

/* Attention of Lc new positions p0..p0+Lc-1 per stream against the cache. */
static void cached_attention(decoder *d, int layer, int R, int Lc, int p0)
{
	const vlm_config *c = vlm_get_config(d->m);
	int D = c->dec_dim, NH = c->dec_heads, hs = D / NH;
	float scale = 1.0f / sqrtf((float)hs);
	size_t lbase = (size_t)layer * d->max_streams * d->cache_stride;
#pragma omp parallel for collapse(2) schedule(static) if ((long)R * Lc * (p0 + Lc) * D >= 16384L)
	for (int r = 0; r < R; r++)
		for (int h = 0; h < NH; h++) {
			const float *kc = d->kcache + lbase + (size_t)d->ids[r] * d->cache_stride;
			const float *vc = d->vcache + lbase + (size_t)d->ids[r] * d->cache_stride;
			float a[p0 + Lc];
			for (int i = 0; i < Lc; i++) {
				const float *q = d->qkv + ((size_t)r * Lc + i) * 3 * D + h * hs;
				int n = p0 + i + 1;
				float mx = -INFINITY;
				for (int j = 0; j < n; j++) {
					const float *k = kc + (size_t)j * D + h * hs;
					float s = 0.0f;
#pragma omp simd reduction(+ : s)
					for (int e = 0; e < hs; e++)
						s += q[e] * k[e];
					a[j] = s * scale;
					if (a[j] > mx)
						mx = a[j];
				}
				float sum = 0.0f;
				for (int j = 0; j < n; j++) {
					a[j] = expf(a[j] - mx);
					sum += a[j];
				}
				float inv = 1.0f / sum;
				float *o = d->atty + ((size_t)r * Lc + i) * D + h * hs;
				for (int e = 0; e < hs; e++)
					o[e] = 0.0f;
				for (int j = 0; j < n; j++) {
					const float *v = vc + (size_t)j * D + h * hs;
					float p = a[j] * inv;
#pragma omp simd
					for (int e = 0; e < hs; e++)
						o[e] += p * v[e];
				}
			}
		}
}

/* Runs x[R*Lc, D] (positions p0.. of streams ids[0..R)) through the decoder
 * blocks, appending keys and values to the cache; x becomes the last
 * block's output. */
static void kv_forward(decoder *d, int R, int Lc, int p0)
{
	vlm_model *m = d->m;
	const vlm_config *c = vlm_get_config(m);
	const float *P = vlm_params(m);
	int D = c->dec_dim, H = c->mlp_ratio * D, N = R * Lc;
	for (int l = 0; l < c->dec_layers; l++) {
		const vlm_block_off *o = &m->dec[l];
		layernorm_forward(d->ln, d->mean, d->rstd, d->x, P + o->ln1w, P + o->ln1b, N, D);
		linear_forward(d->qkv, d->ln, P + o->qkvw, P + o->qkvb, N, D, 3 * D);
		size_t lbase = (size_t)l * d->max_streams * d->cache_stride;
		for (int r = 0; r < R; r++)
			for (int i = 0; i < Lc; i++) {
				const float *q = d->qkv + ((size_t)r * Lc + i) * 3 * D;
				size_t at = lbase + (size_t)d->ids[r] * d->cache_stride + (size_t)(p0 + i) * D;
				memcpy(d->kcache + at, q + D, sizeof(float) * (size_t)D);
				memcpy(d->vcache + at, q + 2 * D, sizeof(float) * (size_t)D);
			}
		cached_attention(d, l, R, Lc, p0);
		linear_forward(d->tmp, d->atty, P + o->projw, P + o->projb, N, D, D);
		residual_forward(d->x, d->x, d->tmp, (long)N * D);
		layernorm_forward(d->ln, d->mean, d->rstd, d->x, P + o->ln2w, P + o->ln2b, N, D);
		linear_forward(d->h1, d->ln, P + o->fc1w, P + o->fc1b, N, D, H);
		gelu_forward(d->h2, d->h1, (long)N * H);
		linear_forward(d->tmp, d->h2, P + o->fc2w, P + o->fc2b, N, H, D);
		residual_forward(d->x, d->x, d->tmp, (long)N * D);
	}
}

int decode_greedy(decoder *d, const uint8_t *images, const uint64_t *keys, int n, const decode_opts *o,
		  uint16_t *tokens, int *lens)
{
	vlm_model *m = d->m;
	const vlm_config *c = vlm_get_config(m);
	if (n < 0 || n > d->max_images)
		return nb_error("cannot decode %d images: the decoder holds at most %d", n, d->max_images);
	if (o->K < 0 || o->K > d->K)
		return nb_error("cannot decode with K = %d noisy samples: the decoder was made for %d", o->K, d->K);
	if (o->max_tokens < 1 || o->max_tokens > c->max_text - 1)
		return nb_error("cannot decode: max_tokens %d not in 1..%d", o->max_tokens, c->max_text - 1);
	if (!(o->sigma >= 0.0f && o->sigma < 1e6f))
		return nb_error("cannot decode: sigma %g is negative or not finite", (double)o->sigma);
	if (o->K > 0 && !keys)
		return nb_error("cannot decode with K = %d: image keys missing", o->K);
	if (n == 0)
		return 0;
	int nv = m->nv, D = c->dec_dim, V = c->vocab, S1 = 1 + o->K, ns = n * S1;
	size_t vsz = (size_t)nv * D;
	const float *P = vlm_params(m);

	for (int i0 = 0; i0 < n; i0 += m->max_batch) {
		int nb = n - i0 < m->max_batch ? n - i0 : m->max_batch;
		const float *v = vlm_encode(m, images + (size_t)i0 * c->image_size * c->image_size * 3, nb);
		memcpy(d->vis + (size_t)i0 * vsz, v, sizeof(float) * vsz * (size_t)nb);
	}

	/* Prefill the visual positions, PREFILL streams at a time. */
	for (int s0 = 0; s0 < ns; s0 += PREFILL) {
		int R = ns - s0 < PREFILL ? ns - s0 : PREFILL;
		for (int r = 0; r < R; r++) {
			int s = s0 + r, img = s / S1, k = s % S1;
			d->ids[r] = s;
			float *dst = d->x + (size_t)r * vsz;
			if (k == 0) {
				memcpy(dst, d->vis + (size_t)img * vsz, sizeof(float) * vsz);
			} else {
				nb_rng rng;
				nb_rng_seed(&rng, o->seed, keys[img], (uint64_t)k);
				vlm_noise_apply(dst, d->vis + (size_t)img * vsz, nv, D, o->sigma, &rng);
			}
		}
		addpos_forward(d->x, d->x, P + m->dec_pos, R, nv, D);
		kv_forward(d, R, nv, 0);
	}

	for (int s = 0; s < ns; s++) {
		d->tok[s] = VOCAB_BOS;
		d->done[s] = 0;
		lens[s] = 0;
	}
	for (int t = 0; t < o->max_tokens; t++) {
		int R = 0;
		for (int s = 0; s < ns; s++)
			if (!d->done[s])
				d->ids[R++] = s;
		if (!R)
			break;
		for (int r = 0; r < R; r++) {
			const float *e = P + m->tok_emb + (size_t)d->tok[d->ids[r]] * D;
			const float *p = P + m->dec_pos + (size_t)(nv + t) * D;
			float *x = d->x + (size_t)r * D;
			for (int j = 0; j < D; j++)
				x[j] = e[j] + p[j];
		}
		kv_forward(d, R, 1, nv + t);
		layernorm_forward(d->ln, d->mean, d->rstd, d->x, P + m->dec_lnf_w, P + m->dec_lnf_b, R, D);
		linear_forward(d->logits, d->ln, P + m->head_w, P + m->head_b, R, D, V);
		for (int r = 0; r < R; r++) {
			const float *z = d->logits + (size_t)r * V;
			int best = 0, s = d->ids[r];
			for (int v = 1; v < V; v++)
				if (z[v] > z[best])
					best = v;
			if (best == VOCAB_EOS) {
				d->done[s] = 1;
				continue;
			}
			tokens[(size_t)s * o->max_tokens + t] = (uint16_t)best;
			lens[s] = t + 1;
			d->tok[s] = (uint16_t)best;
		}
	}
	return 0;
}

/* log-softmax of R rows of d->x (after the blocks): final LayerNorm, head. */
static void head_logprobs(decoder *d, int R, float *out)
{
	vlm_model *m = d->m;
	const vlm_config *c = vlm_get_config(m);
	const float *P = vlm_params(m);
	int D = c->dec_dim, V = c->vocab;
	layernorm_forward(d->ln, d->mean, d->rstd, d->x, P + m->dec_lnf_w, P + m->dec_lnf_b, R, D);
	linear_forward(out, d->ln, P + m->head_w, P + m->head_b, R, D, V);
	for (int r = 0; r < R; r++) {
		float *z = out + (size_t)r * V, mx = z[0];
		for (int v = 1; v < V; v++)
			mx = z[v] > mx ? z[v] : mx;
		double s = 0.0;
		for (int v = 0; v < V; v++)
			s += exp((double)(z[v] - mx));
		float lse = mx + (float)log(s);
		for (int v = 0; v < V; v++)
			z[v] -= lse;
	}
}

/* x row `row` = embedding of tok + the position of text position p. */
static void embed_row(decoder *d, int row, uint16_t tok, int p)
{
	vlm_model *m = d->m;
	int D = vlm_get_config(m)->dec_dim;
	const float *P = vlm_params(m);
	const float *e = P + m->tok_emb + (size_t)tok * D;
	const float *q = P + m->dec_pos + (size_t)(m->nv + p) * D;
	float *x = d->x + (size_t)row * D;
	for (int j = 0; j < D; j++)
		x[j] = e[j] + q[j];
}

int decode_branches(decoder *d, const uint8_t *image, const uint16_t *prefix, int np, const int *at,
		    const uint16_t (*tok)[2], int nbranch, float *base, float *out)
{
	vlm_model *m = d->m;
	const vlm_config *c = vlm_get_config(m);
	int nv = m->nv, D = c->dec_dim, V = c->vocab;
	if (nbranch < 0 || 1 + nbranch > d->max_streams)
		return nb_error("cannot score %d branches: the decoder holds %d streams", nbranch, d->max_streams);
	if (np < 0 || 1 + np + 2 > c->max_text)
		return nb_error("cannot score a prefix of %d tokens: max_text is %d", np, c->max_text);
	for (int b = 0; b < nbranch; b++)
		if (at[b] < 0 || at[b] > np || tok[b][0] >= V || tok[b][1] >= V)
			return nb_error("branch %d: position %d or tokens out of range", b, at[b]);
	for (int i = 0; i < np; i++)
		if (prefix[i] >= V)
			return nb_error("prefix token %d at %d is not below vocab %d", prefix[i], i, V);
	const float *P = vlm_params(m);
	size_t vsz = (size_t)nv * D;
	/* stream 0: visual tokens, then bos + prefix */
	memcpy(d->x, vlm_encode(m, image, 1), sizeof(float) * vsz);
	addpos_forward(d->x, d->x, P + m->dec_pos, 1, nv, D);
	d->ids[0] = 0;
	kv_forward(d, 1, nv, 0);
	for (int i = 0; i <= np; i++)
		embed_row(d, i, i ? prefix[i - 1] : VOCAB_BOS, i);
	kv_forward(d, 1, np + 1, nv);
	head_logprobs(d, np + 1, base);
	/* branches, grouped by their position (kv_forward takes one p0) */
	for (int j = 0; j <= np; j++) {
		int R = 0;
		for (int b = 0; b < nbranch; b++) {
			if (at[b] != j)
				continue;
			int s = 1 + R;
			d->ids[R] = s;
			/* share stream 0's cache: positions 0 .. nv + j (bos + j tokens) */
			for (int l = 0; l < c->dec_layers; l++) {
				size_t lb = (size_t)l * d->max_streams * d->cache_stride;
				size_t n = (size_t)(nv + j + 1) * D;
				memcpy(d->kcache + lb + (size_t)s * d->cache_stride, d->kcache + lb, sizeof(float) * n);
				memcpy(d->vcache + lb + (size_t)s * d->cache_stride, d->vcache + lb, sizeof(float) * n);
			}
			R++;
		}
		if (!R)
			continue;
		/* rows 2r, 2r+1: branch r's two tokens at text positions j+1, j+2 */
		int r = 0;
		for (int b = 0; b < nbranch; b++)
			if (at[b] == j) {
				embed_row(d, 2 * r, tok[b][0], j + 1);
				embed_row(d, 2 * r + 1, tok[b][1], j + 2);
				r++;
			}
		kv_forward(d, R, 2, nv + j + 1);
		float *lp = nb_xmalloc(sizeof(float) * (size_t)R * 2 * V);
		head_logprobs(d, R * 2, lp);
		r = 0;
		for (int b = 0; b < nbranch; b++)
			if (at[b] == j) {
				memcpy(out + (size_t)b * 2 * V, lp + (size_t)r * 2 * V, sizeof(float) * 2 * (size_t)V);
				r++;
			}
		free(lp);
	}
	return 0;
}
