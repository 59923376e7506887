/* The captioner: parameter layout, initialisation, training forward and
 * backward (model/vlm.h, docs/model.md). */
#include "model/vlm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/layers.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"

vlm_config vlm_config_default(void)
{
	vlm_config c = {
		.image_size = 48, .patch = 8,
		.enc_dim = 128, .enc_layers = 2, .enc_heads = 4,
		.dec_dim = 128, .dec_layers = 4, .dec_heads = 4,
		.mlp_ratio = 4, .vocab = VOCAB_SIZE, .max_text = 41,
	};
	return c;
}

int vlm_config_check(const vlm_config *c)
{
	if (c->patch <= 0 || c->image_size <= 0 || c->image_size % c->patch)
		return nb_error("bad model config: image_size %d is not a positive multiple of patch %d",
				c->image_size, c->patch);
	if (c->image_size > 4096)
		return nb_error("bad model config: image_size %d is larger than 4096", c->image_size);
	if (c->enc_layers < 1 || c->enc_layers > VLM_MAX_LAYERS)
		return nb_error("bad model config: enc_layers %d not in 1..%d", c->enc_layers, VLM_MAX_LAYERS);
	if (c->dec_layers < 1 || c->dec_layers > VLM_MAX_LAYERS)
		return nb_error("bad model config: dec_layers %d not in 1..%d", c->dec_layers, VLM_MAX_LAYERS);
	if (c->enc_heads < 1 || c->enc_dim < 1 || c->enc_dim % c->enc_heads || c->enc_dim > 8192)
		return nb_error("bad model config: enc_dim %d is not a multiple of enc_heads %d",
				c->enc_dim, c->enc_heads);
	if (c->dec_heads < 1 || c->dec_dim < 1 || c->dec_dim % c->dec_heads || c->dec_dim > 8192)
		return nb_error("bad model config: dec_dim %d is not a multiple of dec_heads %d",
				c->dec_dim, c->dec_heads);
	if (c->mlp_ratio < 1 || c->mlp_ratio > 16)
		return nb_error("bad model config: mlp_ratio %d not in 1..16", c->mlp_ratio);
	if (c->vocab < VOCAB_SIZE || c->vocab > 65535)
		return nb_error("bad model config: vocab %d not in %d..65535", c->vocab, VOCAB_SIZE);
	if (c->max_text < 2 || c->max_text > 4096)
		return nb_error("bad model config: max_text %d not in 2..4096", c->max_text);
	return 0;
}

int vlm_config_equal(const vlm_config *a, const vlm_config *b)
{
	return a->image_size == b->image_size && a->patch == b->patch && a->enc_dim == b->enc_dim &&
	       a->enc_layers == b->enc_layers && a->enc_heads == b->enc_heads &&
	       a->dec_dim == b->dec_dim && a->dec_layers == b->dec_layers &&
	       a->dec_heads == b->dec_heads && a->mlp_ratio == b->mlp_ratio && a->vocab == b->vocab &&
	       a->max_text == b->max_text;
}

/* ---- parameter layout ---- */

typedef struct {
	vlm_model *m;
	int cap;
} layout;

static size_t add_tensor(layout *l, const char *name, int ndim, int d0, int d1, int decay)
{
	vlm_model *m = l->m;
	if (m->ntensors == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		m->tensors = nb_xrealloc(m->tensors, sizeof(vlm_tensor) * (size_t)l->cap);
	}
	vlm_tensor *t = &m->tensors[m->ntensors++];
	memset(t, 0, sizeof *t);
	t->name = nb_xstrdup(name);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = ndim > 1 ? d1 : 0;
	t->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
	t->offset = m->nparams;
	t->decay = decay;
	m->nparams += t->numel;
	return t->offset;
}

static void add_block(layout *l, vlm_block_off *o, const char *stack, int i, int C, int H)
{
	char n[64];
#define T1(field, suffix, d)                                      \
	snprintf(n, sizeof n, "%s.%d.%s", stack, i, suffix);      \
	o->field = add_tensor(l, n, 1, d, 0, 0)
#define T2(field, suffix, d0, d1)                                 \
	snprintf(n, sizeof n, "%s.%d.%s", stack, i, suffix);      \
	o->field = add_tensor(l, n, 2, d0, d1, 1)
	T1(ln1w, "ln1.w", C);
	T1(ln1b, "ln1.b", C);
	T2(qkvw, "attn.qkv.w", 3 * C, C);
	T1(qkvb, "attn.qkv.b", 3 * C);
	T2(projw, "attn.proj.w", C, C);
	T1(projb, "attn.proj.b", C);
	T1(ln2w, "ln2.w", C);
	T1(ln2b, "ln2.b", C);
	T2(fc1w, "mlp.fc1.w", H, C);
	T1(fc1b, "mlp.fc1.b", H);
	T2(fc2w, "mlp.fc2.w", C, H);
	T1(fc2b, "mlp.fc2.b", C);
#undef T1
#undef T2
}

static void build_layout(vlm_model *m)
{
	const vlm_config *c = &m->cfg;
	layout l = {m, 0};
	int De = c->enc_dim, Dd = c->dec_dim;
	m->patch_w = add_tensor(&l, "enc.patch.w", 2, De, m->pd, 1);
	m->patch_b = add_tensor(&l, "enc.patch.b", 1, De, 0, 0);
	m->enc_pos = add_tensor(&l, "enc.pos", 2, m->nv, De, 0);
	for (int i = 0; i < c->enc_layers; i++)
		add_block(&l, &m->enc[i], "enc", i, De, c->mlp_ratio * De);
	m->enc_lnf_w = add_tensor(&l, "enc.ln_f.w", 1, De, 0, 0);
	m->enc_lnf_b = add_tensor(&l, "enc.ln_f.b", 1, De, 0, 0);
	m->pj1_w = add_tensor(&l, "proj.fc1.w", 2, Dd, De, 1);
	m->pj1_b = add_tensor(&l, "proj.fc1.b", 1, Dd, 0, 0);
	m->pj2_w = add_tensor(&l, "proj.fc2.w", 2, Dd, Dd, 1);
	m->pj2_b = add_tensor(&l, "proj.fc2.b", 1, Dd, 0, 0);
	m->tok_emb = add_tensor(&l, "dec.tok_emb", 2, c->vocab, Dd, 0);
	m->dec_pos = add_tensor(&l, "dec.pos", 2, m->L, Dd, 0);
	for (int i = 0; i < c->dec_layers; i++)
		add_block(&l, &m->dec[i], "dec", i, Dd, c->mlp_ratio * Dd);
	m->dec_lnf_w = add_tensor(&l, "dec.ln_f.w", 1, Dd, 0, 0);
	m->dec_lnf_b = add_tensor(&l, "dec.ln_f.b", 1, Dd, 0, 0);
	m->head_w = add_tensor(&l, "head.w", 2, c->vocab, Dd, 1);
	m->head_b = add_tensor(&l, "head.b", 1, c->vocab, 0, 0);
}

/* ---- activation layout: fixed slots sized for max_batch and max_text ---- */

/* A slot of n floats at *off from base (base NULL: only counts). */
static float *take(float *base, size_t *off, size_t n)
{
	float *r = base ? base + *off : NULL;
	*off += (n + 15) & ~(size_t)15; /* 64-byte aligned slots */
	return r;
}

static void block_acts(vlm_block_acts *a, float *base, size_t *off, size_t B, size_t T, size_t C, size_t NH,
		       size_t H)
{
	size_t N = B * T;
	a->ln1 = take(base, off, N * C);
	a->mean1 = take(base, off, N);
	a->rstd1 = take(base, off, N);
	a->qkv = take(base, off, N * 3 * C);
	a->att = take(base, off, B * NH * T * T);
	a->atty = take(base, off, N * C);
	a->x2 = take(base, off, N * C);
	a->ln2 = take(base, off, N * C);
	a->mean2 = take(base, off, N);
	a->rstd2 = take(base, off, N);
	a->fc1 = take(base, off, N * H);
	a->gelu = take(base, off, N * H);
	a->out = take(base, off, N * C);
}

/* Lays out activations from base (NULL: only counts); returns the size. */
static size_t act_layout(vlm_model *m, float *base)
{
	const vlm_config *c = &m->cfg;
	size_t B = (size_t)m->max_batch, nv = (size_t)m->nv, De = (size_t)c->enc_dim,
	       Dd = (size_t)c->dec_dim, T = (size_t)c->max_text, L = (size_t)m->L;
	size_t off = 0;
	m->patches = take(base, &off, B * nv * (size_t)m->pd);
	m->enc_in = take(base, &off, B * nv * De);
	m->enc_lnf = take(base, &off, B * nv * De);
	m->enc_mean = take(base, &off, B * nv);
	m->enc_rstd = take(base, &off, B * nv);
	m->pj1 = take(base, &off, B * nv * Dd);
	m->pjg = take(base, &off, B * nv * Dd);
	m->vis = take(base, &off, B * nv * Dd);
	m->dec_in = take(base, &off, B * L * Dd);
	m->xt = take(base, &off, B * T * Dd);
	m->lnf = take(base, &off, B * T * Dd);
	m->lnf_mean = take(base, &off, B * T);
	m->lnf_rstd = take(base, &off, B * T);
	m->logits = take(base, &off, B * T * (size_t)c->vocab);
	for (int i = 0; i < c->enc_layers; i++)
		block_acts(&m->enc_a[i], base, &off, B, nv, De, (size_t)c->enc_heads, (size_t)c->mlp_ratio * De);
	for (int i = 0; i < c->dec_layers; i++)
		block_acts(&m->dec_a[i], base, &off, B, L, Dd, (size_t)c->dec_heads, (size_t)c->mlp_ratio * Dd);
	return off;
}

static size_t grad_layout(vlm_model *m, float *base)
{
	const vlm_config *c = &m->cfg;
	size_t B = (size_t)m->max_batch, L = (size_t)m->L;
	size_t D = (size_t)(c->enc_dim > c->dec_dim ? c->enc_dim : c->dec_dim);
	size_t rows = B * L; /* L > nv: the decoder has the most rows */
	size_t H = (size_t)c->mlp_ratio * D;
	size_t off = 0;
	m->dres = take(base, &off, rows * D);
	m->dln = take(base, &off, rows * D);
	m->dqkv = take(base, &off, rows * 3 * D);
	m->datty = take(base, &off, rows * D);
	m->dh1 = take(base, &off, rows * H);
	m->dh2 = take(base, &off, rows * H);
	m->dlogits = take(base, &off, B * (size_t)c->max_text * (size_t)c->vocab);
	return off;
}

vlm_model *vlm_create(const vlm_config *cfg, int max_batch)
{
	if (vlm_config_check(cfg) < 0)
		return NULL;
	if (max_batch < 1 || max_batch > 65536) {
		nb_error("cannot create model: max_batch %d not in 1..65536", max_batch);
		return NULL;
	}
	/* The layers run one-thread BLAS calls inside their own OpenMP regions
	 * (model/layers.c); a BLAS thread pool beside OpenMP's only contends. */
	openblas_set_num_threads(1);
	vlm_model *m = nb_xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	m->max_batch = max_batch;
	int np = cfg->image_size / cfg->patch;
	m->nv = np * np;
	m->pd = cfg->patch * cfg->patch * 3;
	m->L = m->nv + cfg->max_text;
	build_layout(m);
	m->params = nb_xcalloc(m->nparams, sizeof(float));
	m->grads = nb_xcalloc(m->nparams, sizeof(float));
	size_t na = act_layout(m, NULL);
	m->actmem = nb_xcalloc(na, sizeof(float));
	act_layout(m, m->actmem);
	size_t ng = grad_layout(m, NULL);
	m->gradmem = nb_xcalloc(ng, sizeof(float));
	grad_layout(m, m->gradmem);
	return m;
}

void vlm_free(vlm_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ntensors; i++)
		free((char *)m->tensors[i].name);
	free(m->tensors);
	free(m->params);
	free(m->grads);
	free(m->actmem);
	free(m->gradmem);
	free(m);
}

const vlm_config *vlm_get_config(const vlm_model *m) { return &m->cfg; }
int vlm_max_batch(const vlm_model *m) { return m->max_batch; }
size_t vlm_nparams(const vlm_model *m) { return m->nparams; }
float *vlm_params(vlm_model *m) { return m->params; }
float *vlm_grads(vlm_model *m) { return m->grads; }
int vlm_ntensors(const vlm_model *m) { return m->ntensors; }

const vlm_tensor *vlm_tensor_at(const vlm_model *m, int i)
{
	if (i < 0 || i >= m->ntensors)
		return NULL;
	return &m->tensors[i];
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !memcmp(s + a - b, suf, b);
}

void vlm_init(vlm_model *m, uint64_t seed)
{
	/* GPT-2 style: N(0, 0.02) for matrices, embeddings and positions; the
	 * projections that write into a residual stream are scaled down by
	 * sqrt(2 * layers) so the stream's variance does not grow with depth.
	 * Each tensor has its own keyed stream, so adding a tensor does not
	 * change the others. */
	for (int i = 0; i < m->ntensors; i++) {
		const vlm_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		int is_ln = strstr(t->name, "ln") != NULL;
		if (t->ndim == 1) {
			float v = is_ln && ends_with(t->name, ".w") ? 1.0f : 0.0f;
			for (size_t j = 0; j < t->numel; j++)
				p[j] = v;
			continue;
		}
		float std = 0.02f;
		if (ends_with(t->name, "attn.proj.w") || ends_with(t->name, "mlp.fc2.w")) {
			int layers = !strncmp(t->name, "enc.", 4) ? m->cfg.enc_layers : m->cfg.dec_layers;
			std /= sqrtf(2.0f * (float)layers);
		}
		nb_rng r;
		nb_rng_seed(&r, seed, 0x766c6d696e6974ull, (uint64_t)i);
		for (size_t j = 0; j < t->numel; j++)
			p[j] = std * nb_rng_normal(&r);
	}
}

/* ---- forward ---- */

void vlm_block_forward(const float *params, const vlm_block_off *o, vlm_block_acts *a, const float *x,
		       int B, int T, int C, int NH, int H, int causal)
{
	int N = B * T;
	const float *P = params;
	layernorm_forward(a->ln1, a->mean1, a->rstd1, x, P + o->ln1w, P + o->ln1b, N, C);
	linear_forward(a->qkv, a->ln1, P + o->qkvw, P + o->qkvb, N, C, 3 * C);
	attention_forward(a->atty, a->att, a->qkv, B, T, C, NH, causal);
	/* a->out is free until the MLP: use it for the attention projection. */
	linear_forward(a->out, a->atty, P + o->projw, P + o->projb, N, C, C);
	residual_forward(a->x2, x, a->out, (long)N * C);
	layernorm_forward(a->ln2, a->mean2, a->rstd2, a->x2, P + o->ln2w, P + o->ln2b, N, C);
	linear_forward(a->fc1, a->ln2, P + o->fc1w, P + o->fc1b, N, C, H);
	gelu_forward(a->gelu, a->fc1, (long)N * H);
	linear_forward(a->out, a->gelu, P + o->fc2w, P + o->fc2b, N, H, C);
	residual_forward(a->out, a->x2, a->out, (long)N * C);
}

/* Backward of Linear(w1, b1) - GELU - Linear(w2, b2) over N rows (C -> H ->
 * OC), the MLP of a block and the projector: d(out) in dout, the layer's
 * input in, the pre-GELU and post-GELU activations pre and act. Adds the
 * weight gradients and leaves d(in) in m->dln. */
static void mlp_backward(vlm_model *m, const float *dout, const float *in, const float *pre, const float *act,
			 size_t w1, size_t b1, size_t w2, size_t b2, int N, int C, int H, int OC)
{
	const float *P = m->params;
	float *G = m->grads;
	memset(m->dh1, 0, sizeof(float) * (size_t)N * H);
	linear_backward(m->dh1, G + w2, G + b2, dout, act, P + w2, N, H, OC);
	memset(m->dh2, 0, sizeof(float) * (size_t)N * H);
	gelu_backward(m->dh2, pre, m->dh1, (long)N * H);
	memset(m->dln, 0, sizeof(float) * (size_t)N * C);
	linear_backward(m->dln, G + w1, G + b1, m->dh2, in, P + w1, N, C, H);
}

/* dres holds d(out) on entry and d(x) on return. */
static void block_backward(vlm_model *m, const vlm_block_off *o, const vlm_block_acts *a, const float *x,
			   int B, int T, int C, int NH, int H, int causal)
{
	int N = B * T;
	const float *P = m->params;
	float *G = m->grads;
	float *dres = m->dres;
	mlp_backward(m, dres, a->ln2, a->fc1, a->gelu, o->fc1w, o->fc1b, o->fc2w, o->fc2b, N, C, H, C);
	layernorm_backward(dres, G + o->ln2w, G + o->ln2b, m->dln, a->x2, P + o->ln2w, a->mean2, a->rstd2,
			   N, C);
	memset(m->datty, 0, sizeof(float) * (size_t)N * C);
	linear_backward(m->datty, G + o->projw, G + o->projb, dres, a->atty, P + o->projw, N, C, C);
	memset(m->dqkv, 0, sizeof(float) * (size_t)N * 3 * C);
	attention_backward(m->dqkv, m->datty, a->qkv, a->att, B, T, C, NH, causal);
	memset(m->dln, 0, sizeof(float) * (size_t)N * C);
	linear_backward(m->dln, G + o->qkvw, G + o->qkvb, m->dqkv, a->ln1, P + o->qkvw, N, C, 3 * C);
	layernorm_backward(dres, G + o->ln1w, G + o->ln1b, m->dln, x, P + o->ln1w, a->mean1, a->rstd1, N, C);
}

const float *vlm_encode(vlm_model *m, const uint8_t *images, int B)
{
	const vlm_config *c = &m->cfg;
	const float *P = m->params;
	int nv = m->nv, De = c->enc_dim, Dd = c->dec_dim, N = B * nv;
	m->seq_ready = 0;
	patchify(m->patches, images, B, c->image_size, c->patch);
	linear_forward(m->enc_in, m->patches, P + m->patch_w, P + m->patch_b, N, m->pd, De);
	addpos_forward(m->enc_in, m->enc_in, P + m->enc_pos, B, nv, De);
	const float *x = m->enc_in;
	for (int i = 0; i < c->enc_layers; i++) {
		vlm_block_forward(P, &m->enc[i], &m->enc_a[i], x, B, nv, De, c->enc_heads, c->mlp_ratio * De, 0);
		x = m->enc_a[i].out;
	}
	layernorm_forward(m->enc_lnf, m->enc_mean, m->enc_rstd, x, P + m->enc_lnf_w, P + m->enc_lnf_b, N, De);
	linear_forward(m->pj1, m->enc_lnf, P + m->pj1_w, P + m->pj1_b, N, De, Dd);
	gelu_forward(m->pjg, m->pj1, (long)N * Dd);
	linear_forward(m->vis, m->pjg, P + m->pj2_w, P + m->pj2_b, N, Dd, Dd);
	return m->vis;
}

/* The decoder over dec_in, whose visual rows [b, 0..nv) the caller has
 * filled; adds the token embeddings and positions, runs the blocks, the final
 * LayerNorm and the head on the text rows. */
static void decoder_run(vlm_model *m, const uint16_t *inputs, int B, int T)
{
	const vlm_config *c = &m->cfg;
	const float *P = m->params;
	int nv = m->nv, Dd = c->dec_dim, Lb = nv + T;
	m->seq_ready = 0;
	for (int s = 0; s < B; s++)
		embedding_forward(m->dec_in + ((size_t)s * Lb + nv) * Dd, inputs + (size_t)s * T, P + m->tok_emb,
				  T, Dd);
	addpos_forward(m->dec_in, m->dec_in, P + m->dec_pos, B, Lb, Dd);
	const float *x = m->dec_in;
	for (int i = 0; i < c->dec_layers; i++) {
		vlm_block_forward(P, &m->dec[i], &m->dec_a[i], x, B, Lb, Dd, c->dec_heads, c->mlp_ratio * Dd, 1);
		x = m->dec_a[i].out;
	}
	for (int s = 0; s < B; s++)
		memcpy(m->xt + (size_t)s * T * Dd, x + ((size_t)s * Lb + nv) * Dd, sizeof(float) * (size_t)T * Dd);
	layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, m->xt, P + m->dec_lnf_w, P + m->dec_lnf_b, B * T, Dd);
	linear_forward(m->logits, m->lnf, P + m->head_w, P + m->head_b, B * T, Dd, c->vocab);
	m->cur_T = T;
	m->cur_B = B;
}

const float *vlm_decoder_logits(vlm_model *m, const float *vis, const uint16_t *inputs, int B, int T)
{
	int nv = m->nv, Dd = m->cfg.dec_dim, Lb = nv + T;
	for (int b = 0; b < B; b++)
		memmove(m->dec_in + (size_t)b * Lb * Dd, vis + (size_t)b * nv * Dd, sizeof(float) * (size_t)nv * Dd);
	decoder_run(m, inputs, B, T);
	return m->logits;
}

void vlm_noise_apply(float *out, const float *in, int nv, int D, float sigma, nb_rng *r)
{
	for (int t = 0; t < nv; t++) {
		const float *v = in + (size_t)t * D;
		float *o = out + (size_t)t * D;
		double mean = 0.0, var = 0.0;
		for (int j = 0; j < D; j++)
			mean += v[j];
		mean /= D;
		for (int j = 0; j < D; j++)
			var += (v[j] - mean) * (v[j] - mean);
		float s = sigma * (float)sqrt(var / D);
		for (int j = 0; j < D; j++)
			o[j] = v[j] + s * nb_rng_normal(r);
	}
}

static int check_batch(const vlm_model *m, const vlm_batch *b, const vlm_noise *noise)
{
	if (b->B < 1 || b->B > m->max_batch)
		return nb_error("bad batch: B = %d not in 1..%d (the model's max_batch)", b->B, m->max_batch);
	if (b->T < 1 || b->T > m->cfg.max_text)
		return nb_error("bad batch: T = %d not in 1..%d (max_text)", b->T, m->cfg.max_text);
	if (!b->images || !b->inputs)
		return nb_error("bad batch: images or inputs missing");
	if (noise && noise->sigma != 0.0f && !b->keys)
		return nb_error("bad batch: noise sigma %g needs per-sample keys", (double)noise->sigma);
	if (!(noise == NULL || (noise->sigma >= 0.0f && noise->sigma < 1e6f)))
		return nb_error("bad noise: sigma %g is negative or not finite", (double)noise->sigma);
	long n = (long)b->B * b->T;
	for (long i = 0; i < n; i++) {
		if (b->inputs[i] >= m->cfg.vocab)
			return nb_error("bad batch: input token %d at %ld is not below vocab %d", b->inputs[i], i,
					m->cfg.vocab);
		if (b->targets && b->targets[i] >= m->cfg.vocab)
			return nb_error("bad batch: target token %d at %ld is not below vocab %d", b->targets[i],
					i, m->cfg.vocab);
	}
	return 0;
}

/* Encoder, projector, noise and decoder; leaves the noisy visual tokens in
 * the first rows of dec_in (before positions are added) and logits. */
static void forward(vlm_model *m, const vlm_batch *b, const vlm_noise *noise)
{
	int nv = m->nv, Dd = m->cfg.dec_dim;
	int Lb = nv + b->T;
	if (noise && noise->blind) {
		for (int s = 0; s < b->B; s++)
			memset(m->dec_in + (size_t)s * Lb * Dd, 0, sizeof(float) * (size_t)nv * Dd);
		decoder_run(m, b->inputs, b->B, b->T);
		return;
	}
	vlm_encode(m, b->images, b->B);
	/* The noisy visual tokens are written straight into the decoder input rows. */
	float *noisy = m->dec_in;
	int on = noise && noise->sigma > 0.0f;
#pragma omp parallel for schedule(static)
	for (int s = 0; s < b->B; s++) {
		float *dst = noisy + (size_t)s * Lb * Dd;
		const float *src = m->vis + (size_t)s * nv * Dd;
		if (on && (!noise->only || noise->only[s])) {
			nb_rng r;
			nb_rng_seed(&r, noise->seed, b->keys[s], noise->stream);
			vlm_noise_apply(dst, src, nv, Dd, noise->sigma, &r);
		} else {
			memcpy(dst, src, sizeof(float) * (size_t)nv * Dd);
		}
	}
	decoder_run(m, b->inputs, b->B, b->T);
}

static void backward(vlm_model *m, const vlm_batch *b, int blind)
{
	const vlm_config *c = &m->cfg;
	const float *P = m->params;
	float *G = m->grads;
	int B = b->B, T = b->T, nv = m->nv, De = c->enc_dim, Dd = c->dec_dim, Lb = nv + T, V = c->vocab;
	memset(G, 0, sizeof(float) * m->nparams);

	/* head and final LayerNorm, on the text rows only */
	memset(m->dln, 0, sizeof(float) * (size_t)B * T * Dd);
	linear_backward(m->dln, G + m->head_w, G + m->head_b, m->dlogits, m->lnf, P + m->head_w, B * T, Dd, V);
	memset(m->datty, 0, sizeof(float) * (size_t)B * T * Dd);
	float *dxt = m->datty;
	layernorm_backward(dxt, G + m->dec_lnf_w, G + m->dec_lnf_b, m->dln, m->xt, P + m->dec_lnf_w, m->lnf_mean,
			   m->lnf_rstd, B * T, Dd);
	memset(m->dres, 0, sizeof(float) * (size_t)B * Lb * Dd);
	for (int s = 0; s < B; s++)
		memcpy(m->dres + ((size_t)s * Lb + nv) * Dd, dxt + (size_t)s * T * Dd, sizeof(float) * (size_t)T * Dd);

	for (int i = c->dec_layers - 1; i >= 0; i--) {
		const float *x = i ? m->dec_a[i - 1].out : m->dec_in;
		block_backward(m, &m->dec[i], &m->dec_a[i], x, B, Lb, Dd, c->dec_heads, c->mlp_ratio * Dd, 1);
	}
	addpos_backward(NULL, G + m->dec_pos, m->dres, B, Lb, Dd);
	for (int s = 0; s < B; s++)
		embedding_backward(G + m->tok_emb, b->inputs + (size_t)s * T, m->dres + ((size_t)s * Lb + nv) * Dd,
				   T, Dd);
	if (blind) /* zero visual tokens: no encoder or projector gradient */
		return;
	/* NoiseBoost's std carries no gradient: d(vis) = d(noisy vis). Gather the
	 * visual rows into a compact [B*nv, Dd] buffer (dqkv is free now). */
	int N = B * nv;
	float *dvis = m->dqkv;
	for (int s = 0; s < B; s++)
		memcpy(dvis + (size_t)s * nv * Dd, m->dres + (size_t)s * Lb * Dd, sizeof(float) * (size_t)nv * Dd);

	mlp_backward(m, dvis, m->enc_lnf, m->pj1, m->pjg, m->pj1_w, m->pj1_b, m->pj2_w, m->pj2_b, N, De, Dd, Dd);
	memset(m->dres, 0, sizeof(float) * (size_t)N * De);
	const float *xe = m->enc_a[c->enc_layers - 1].out;
	layernorm_backward(m->dres, G + m->enc_lnf_w, G + m->enc_lnf_b, m->dln, xe, P + m->enc_lnf_w, m->enc_mean,
			   m->enc_rstd, N, De);
	for (int i = c->enc_layers - 1; i >= 0; i--) {
		const float *x = i ? m->enc_a[i - 1].out : m->enc_in;
		block_backward(m, &m->enc[i], &m->enc_a[i], x, B, nv, De, c->enc_heads, c->mlp_ratio * De, 0);
	}
	addpos_backward(NULL, G + m->enc_pos, m->dres, B, nv, De);
	linear_backward(NULL, G + m->patch_w, G + m->patch_b, m->dres, m->patches, P + m->patch_w, N, m->pd, De);
}

/* check_batch, plus the targets a loss needs. On failure *ntokens is 0. */
static int check_loss_batch(const vlm_model *m, const vlm_batch *b, const vlm_noise *noise, long *ntokens)
{
	if (check_batch(m, b, noise) == 0 && b->targets)
		return 0;
	if (!b->targets)
		nb_error("bad batch: targets missing");
	if (ntokens)
		*ntokens = 0;
	return -1;
}

double vlm_forward_backward(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, float grad_scale,
			    long *ntokens)
{
	if (check_loss_batch(m, b, noise, ntokens) < 0)
		return NAN;
	forward(m, b, noise);
	double loss = crossentropy_forward_backward(m->dlogits, m->logits, b->targets, b->B * b->T, m->cfg.vocab,
						    VOCAB_PAD, grad_scale, ntokens);
	backward(m, b, noise && noise->blind);
	return loss;
}

double vlm_forward_loss(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, long *ntokens)
{
	if (check_loss_batch(m, b, noise, ntokens) < 0)
		return NAN;
	forward(m, b, noise);
	return crossentropy_forward_backward(NULL, m->logits, b->targets, b->B * b->T, m->cfg.vocab, VOCAB_PAD,
					     0.0f, ntokens);
}

const float *vlm_forward_logits(vlm_model *m, const vlm_batch *b, const vlm_noise *noise)
{
	if (check_batch(m, b, noise) < 0)
		return NULL;
	forward(m, b, noise);
	return m->logits;
}

double vlm_forward_seq(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, double *seq_nll)
{
	if (check_loss_batch(m, b, noise, NULL) < 0)
		return NAN;
	forward(m, b, noise);
	m->seq_ready = 1;
	int T = b->T, V = m->cfg.vocab;
	double sum = 0.0;
	for (int s = 0; s < b->B; s++) {
		long cnt = 0;
		seq_nll[s] = crossentropy_forward_backward(NULL, m->logits + (size_t)s * T * V, b->targets + (size_t)s * T,
							   T, V, VOCAB_PAD, 0.0f, &cnt);
		sum += seq_nll[s];
	}
	return sum;
}

int vlm_backward_seq(vlm_model *m, const vlm_batch *b, const vlm_noise *noise, const float *weight)
{
	if (!m->seq_ready || m->cur_B != b->B || m->cur_T != b->T || !b->targets)
		return nb_error("vlm_backward_seq: no vlm_forward_seq on this batch (B %d, T %d) precedes it", b->B,
				b->T);
	m->seq_ready = 0;
	int T = b->T, V = m->cfg.vocab;
	for (int s = 0; s < b->B; s++) {
		long cnt = 0;
		size_t at = (size_t)s * T * V;
		crossentropy_forward_backward(m->dlogits + at, m->logits + at, b->targets + (size_t)s * T, T, V,
					      VOCAB_PAD, weight[s], &cnt);
	}
	backward(m, b, noise && noise->blind);
	return 0;
}

int vlm_visual_tokens(const vlm_model *m) { return m->nv; }

const float *vlm_attention(const vlm_model *m, int layer, int *B, int *T)
{
	if (layer < 0 || layer >= m->cfg.dec_layers) {
		nb_error("attention: decoder layer %d not in 0..%d", layer, m->cfg.dec_layers - 1);
		return NULL;
	}
	if (m->cur_B == 0) {
		nb_error("attention: no forward pass has run yet");
		return NULL;
	}
	if (B)
		*B = m->cur_B;
	if (T)
		*T = m->cur_T;
	return m->dec_a[layer].att;
}
