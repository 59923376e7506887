/* Finite-difference gradient checks: every layer of model/layers.h on small
 * random shapes (all parameter gradients and the input gradient), then the
 * whole model on a tiny configuration (all tensors, sampled coordinates). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/layers.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "test/test_util.h"

static nb_rng rng;

static float *randn(long n, float std)
{
	float *p = malloc(sizeof(float) * (size_t)n);
	for (long i = 0; i < n; i++)
		p[i] = std * nb_rng_normal(&rng);
	return p;
}

static float *zeros(long n) { return calloc((size_t)n, sizeof(float)); }

/* Checks analytic gradient g[n] of f against central differences on x[n].
 * A layer's outputs are contracted with fixed random weights, so f is a
 * scalar; tolerance is relative to the tensor's largest gradient, as fp32
 * rounding in f scales with it. */
typedef double (*scalar_fn)(void *ctx);

static void check_grad(const char *what, float *x, const float *g, long n, scalar_fn f, void *ctx,
		       float eps, double rtol)
{
	double gmax = 1e-6, worst = 0.0;
	long worst_i = -1;
	for (long i = 0; i < n; i++)
		if (fabs(g[i]) > gmax)
			gmax = fabs(g[i]);
	for (long i = 0; i < n; i++) {
		float keep = x[i];
		x[i] = keep + eps;
		double fp = f(ctx);
		x[i] = keep - eps;
		double fm = f(ctx);
		x[i] = keep;
		double num = (fp - fm) / (2.0 * (double)eps);
		double err = fabs(num - g[i]) / gmax;
		if (err > worst) {
			worst = err;
			worst_i = i;
		}
	}
	CHECK_MSG(worst <= rtol, "%s: worst relative error %.3g at %ld (max |grad| %.3g)", what, worst, worst_i,
		  gmax);
}

static double dot(const float *a, const float *b, long n)
{
	double s = 0.0;
	for (long i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* ---- linear ---- */
typedef struct {
	int N, C, OC;
	float *in, *w, *b, *out, *r;
} lin_ctx;

static double lin_f(void *p)
{
	lin_ctx *c = p;
	linear_forward(c->out, c->in, c->w, c->b, c->N, c->C, c->OC);
	return dot(c->out, c->r, (long)c->N * c->OC);
}

static void test_linear(void)
{
	lin_ctx c = {7, 5, 6, 0, 0, 0, 0, 0};
	c.in = randn(c.N * c.C, 1.0f);
	c.w = randn(c.OC * c.C, 0.5f);
	c.b = randn(c.OC, 0.5f);
	c.out = zeros(c.N * c.OC);
	c.r = randn(c.N * c.OC, 1.0f);
	float *din = zeros(c.N * c.C), *dw = zeros(c.OC * c.C), *db = zeros(c.OC);
	linear_backward(din, dw, db, c.r, c.in, c.w, c.N, c.C, c.OC);
	check_grad("linear din", c.in, din, c.N * c.C, lin_f, &c, 1e-2f, 2e-3);
	check_grad("linear dw", c.w, dw, c.OC * c.C, lin_f, &c, 1e-2f, 2e-3);
	check_grad("linear db", c.b, db, c.OC, lin_f, &c, 1e-2f, 2e-3);
	/* accumulation: a second backward doubles the gradients */
	float db1 = db[0];
	linear_backward(NULL, NULL, db, c.r, c.in, c.w, c.N, c.C, c.OC);
	CHECK_NEAR(db[0], 2 * db1, 1e-5);
	free(c.in), free(c.w), free(c.b), free(c.out), free(c.r), free(din), free(dw), free(db);
}

/* ---- layernorm ---- */
typedef struct {
	int N, C;
	float *in, *w, *b, *out, *mean, *rstd, *r;
} ln_ctx;

static double ln_f(void *p)
{
	ln_ctx *c = p;
	layernorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b, c->N, c->C);
	return dot(c->out, c->r, (long)c->N * c->C);
}

static void test_layernorm(void)
{
	ln_ctx c = {5, 40, 0, 0, 0, 0, 0, 0, 0};
	c.in = randn(c.N * c.C, 2.0f);
	c.w = randn(c.C, 1.0f);
	c.b = randn(c.C, 1.0f);
	c.out = zeros(c.N * c.C);
	c.mean = zeros(c.N);
	c.rstd = zeros(c.N);
	c.r = randn(c.N * c.C, 1.0f);
	ln_f(&c);
	/* normalised rows: with w = 1, b = 0 the output has mean 0 and variance ~1 */
	float *din = zeros(c.N * c.C), *dw = zeros(c.C), *db = zeros(c.C);
	layernorm_backward(din, dw, db, c.r, c.in, c.w, c.mean, c.rstd, c.N, c.C);
	check_grad("layernorm din", c.in, din, c.N * c.C, ln_f, &c, 1e-2f, 5e-3);
	check_grad("layernorm dw", c.w, dw, c.C, ln_f, &c, 1e-2f, 2e-3);
	check_grad("layernorm db", c.b, db, c.C, ln_f, &c, 1e-2f, 2e-3);
	float *one = malloc(sizeof(float) * (size_t)c.C), *zero = zeros(c.C);
	for (int j = 0; j < c.C; j++)
		one[j] = 1.0f;
	layernorm_forward(c.out, c.mean, c.rstd, c.in, one, zero, c.N, c.C);
	double m = 0, v = 0;
	for (int j = 0; j < c.C; j++)
		m += c.out[j];
	m /= c.C;
	for (int j = 0; j < c.C; j++)
		v += (c.out[j] - m) * (c.out[j] - m);
	CHECK_NEAR(m, 0.0, 1e-5);
	CHECK_NEAR(v / c.C, 1.0, 1e-3);
	free(one), free(zero);
	free(c.in), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.r), free(din), free(dw),
		free(db);
}

/* ---- gelu ---- */
typedef struct {
	long n;
	float *in, *out, *r;
} gelu_ctx;

static double gelu_f(void *p)
{
	gelu_ctx *c = p;
	gelu_forward(c->out, c->in, c->n);
	return dot(c->out, c->r, c->n);
}

static void test_gelu(void)
{
	gelu_ctx c = {64, 0, 0, 0};
	c.in = randn(c.n, 2.0f);
	c.out = zeros(c.n);
	c.r = randn(c.n, 1.0f);
	float *din = zeros(c.n);
	gelu_backward(din, c.in, c.r, c.n);
	check_grad("gelu din", c.in, din, c.n, gelu_f, &c, 1e-2f, 2e-3);
	/* pinned values of the tanh approximation (PyTorch approximate="tanh") */
	float x[3] = {-1.0f, 0.5f, 2.0f}, y[3];
	gelu_forward(y, x, 3);
	CHECK_NEAR(y[0], -0.158808009f, 1e-6);
	CHECK_NEAR(y[1], 0.345714003f, 1e-6);
	CHECK_NEAR(y[2], 1.954597712f, 1e-6);
	free(c.in), free(c.out), free(c.r), free(din);
}

/* ---- attention ---- */
typedef struct {
	int B, T, C, NH, causal;
	float *qkv, *out, *att, *r;
} att_ctx;

static double att_f(void *p)
{
	att_ctx *c = p;
	attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->causal);
	return dot(c->out, c->r, (long)c->B * c->T * c->C);
}

static void test_attention(int causal)
{
	att_ctx c = {2, 5, 8, 2, causal, 0, 0, 0, 0};
	long n = (long)c.B * c.T * 3 * c.C;
	c.qkv = randn(n, 1.0f);
	c.out = zeros((long)c.B * c.T * c.C);
	c.att = zeros((long)c.B * c.NH * c.T * c.T);
	c.r = randn((long)c.B * c.T * c.C, 1.0f);
	att_f(&c);
	float *dqkv = zeros(n);
	attention_backward(dqkv, c.r, c.qkv, c.att, c.B, c.T, c.C, c.NH, c.causal);
	check_grad(causal ? "causal attention dqkv" : "attention dqkv", c.qkv, dqkv, n, att_f, &c, 1e-2f, 5e-3);
	/* probabilities: rows sum to 1, and causal rows put nothing on the future */
	double s = 0, fut = 0;
	for (int j = 0; j < c.T; j++)
		s += c.att[2 * c.T + j];
	for (int j = 3; j < c.T; j++)
		fut += fabs(c.att[2 * c.T + j]);
	CHECK_NEAR(s, 1.0, 1e-6);
	if (causal)
		CHECK(fut == 0.0);
	else
		CHECK(fut > 0.0);
	/* causal: perturbing the last position's k and v leaves earlier outputs alone */
	if (causal) {
		float before = c.out[0];
		c.qkv[(long)(c.T - 1) * 3 * c.C + c.C] += 1.0f;
		att_f(&c);
		CHECK(c.out[0] == before);
	}
	free(c.qkv), free(c.out), free(c.att), free(c.r), free(dqkv);
}

/* ---- positions and embedding ---- */
typedef struct {
	int B, T, C, V;
	float *in, *pos, *out, *r, *emb;
	uint16_t *tok;
} pe_ctx;

static double pos_f(void *p)
{
	pe_ctx *c = p;
	addpos_forward(c->out, c->in, c->pos, c->B, c->T, c->C);
	return dot(c->out, c->r, (long)c->B * c->T * c->C);
}

static double emb_f(void *p)
{
	pe_ctx *c = p;
	embedding_forward(c->out, c->tok, c->emb, c->B * c->T, c->C);
	return dot(c->out, c->r, (long)c->B * c->T * c->C);
}

static void test_pos_emb(void)
{
	pe_ctx c = {3, 4, 5, 6, 0, 0, 0, 0, 0, 0};
	long n = (long)c.B * c.T * c.C;
	c.in = randn(n, 1.0f);
	c.pos = randn((long)c.T * c.C, 1.0f);
	c.out = zeros(n);
	c.r = randn(n, 1.0f);
	c.emb = randn((long)c.V * c.C, 1.0f);
	c.tok = malloc(sizeof(uint16_t) * (size_t)(c.B * c.T));
	for (int i = 0; i < c.B * c.T; i++)
		c.tok[i] = (uint16_t)(i * 7 % 5); /* repeats, and token 5 unused */
	float *din = zeros(n), *dpos = zeros((long)c.T * c.C), *demb = zeros((long)c.V * c.C);
	addpos_backward(din, dpos, c.r, c.B, c.T, c.C);
	check_grad("addpos din", c.in, din, n, pos_f, &c, 1e-2f, 2e-3);
	check_grad("addpos dpos", c.pos, dpos, (long)c.T * c.C, pos_f, &c, 1e-2f, 2e-3);
	embedding_backward(demb, c.tok, c.r, c.B * c.T, c.C);
	check_grad("embedding demb", c.emb, demb, (long)c.V * c.C, emb_f, &c, 1e-2f, 2e-3);
	CHECK(demb[5 * c.C] == 0.0f);
	free(c.in), free(c.pos), free(c.out), free(c.r), free(c.emb), free(c.tok), free(din), free(dpos), free(demb);
}

/* ---- cross-entropy ---- */
typedef struct {
	int N, V;
	float *logits;
	uint16_t *tgt;
} ce_ctx;

static double ce_f(void *p)
{
	ce_ctx *c = p;
	return crossentropy_forward_backward(NULL, c->logits, c->tgt, c->N, c->V, 0, 0.0f, NULL);
}

static void test_crossentropy(void)
{
	ce_ctx c = {6, 7, 0, 0};
	c.logits = randn((long)c.N * c.V, 2.0f);
	c.tgt = malloc(sizeof(uint16_t) * (size_t)c.N);
	for (int i = 0; i < c.N; i++)
		c.tgt[i] = (uint16_t)(i % 3 == 2 ? 0 : 1 + i % (c.V - 1)); /* every third row ignored */
	float *dl = zeros((long)c.N * c.V);
	long cnt = 0;
	double loss = crossentropy_forward_backward(dl, c.logits, c.tgt, c.N, c.V, 0, 1.0f, &cnt);
	CHECK(cnt == 4);
	check_grad("crossentropy dlogits", c.logits, dl, (long)c.N * c.V, ce_f, &c, 1e-2f, 2e-3);
	for (int j = 0; j < c.V; j++)
		CHECK(dl[2 * c.V + j] == 0.0f);
	/* uniform logits: loss is log V per counted row */
	float *u = zeros((long)c.N * c.V);
	CHECK_NEAR(crossentropy_forward_backward(NULL, u, c.tgt, c.N, c.V, 0, 0.0f, NULL), 4 * log(7.0), 1e-9);
	CHECK(loss > 0.0);
	free(u), free(c.logits), free(c.tgt), free(dl);
}

static void test_patchify(void)
{
	uint8_t img[4 * 4 * 3];
	for (int i = 0; i < 48; i++)
		img[i] = (uint8_t)(i * 5);
	float out[4 * 12];
	patchify(out, img, 1, 4, 2);
	/* patch 1 (top right), row 1, column 0, channel 2 = pixel (1, 2) channel 2 */
	CHECK_NEAR(out[12 + (1 * 2 + 0) * 3 + 2], ((1 * 4 + 2) * 3 + 2) * 5 / 255.0 - 0.5, 1e-6);
	CHECK_NEAR(out[0], -0.5, 1e-7);
}

/* ---- the whole model ---- */
typedef struct {
	vlm_model *m;
	vlm_batch b;
} model_ctx;

static double model_f(void *p)
{
	model_ctx *c = p;
	long nt;
	return vlm_forward_loss(c->m, &c->b, NULL, &nt) / 8.0;
}

static void test_model(void)
{
	vlm_config cfg = {
		.image_size = 16, .patch = 8, .enc_dim = 16, .enc_layers = 2, .enc_heads = 2,
		.dec_dim = 24, .dec_layers = 2, .dec_heads = 3, .mlp_ratio = 2, .vocab = VOCAB_SIZE,
		.max_text = 6,
	};
	vlm_model *m = vlm_create(&cfg, 4);
	CHECK(m != NULL);
	if (!m)
		return;
	vlm_init(m, 7);
	/* larger random weights than the init, so every path carries gradient */
	float *P = vlm_params(m);
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		for (size_t j = 0; j < t->numel; j++)
			P[t->offset + j] += 0.3f * nb_rng_normal(&rng);
	}
	enum { B = 3, T = 5 };
	uint8_t images[B * 16 * 16 * 3];
	for (size_t i = 0; i < sizeof images; i++)
		images[i] = (uint8_t)nb_rng_below(&rng, 256);
	uint16_t in[B * T], tg[B * T];
	int lens[B] = {5, 3, 1};
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			in[b * T + t] = t == 0 ? VOCAB_BOS : t < lens[b] ? (uint16_t)(5 + nb_rng_below(&rng, 22)) : VOCAB_PAD;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			tg[b * T + t] = t < lens[b] - 1 ? in[b * T + t + 1] : t == lens[b] - 1 ? VOCAB_EOS : VOCAB_PAD;
	model_ctx c = {m, {B, T, images, in, tg, NULL}};
	long nt = 0;
	double loss = vlm_forward_backward(m, &c.b, NULL, 1.0f / 8.0f, &nt);
	CHECK_MSG(nt == 9, "ntokens %ld", nt);
	CHECK(isfinite(loss) && loss > 0.0);
	double loss2 = vlm_forward_loss(m, &c.b, NULL, &nt);
	CHECK_NEAR(loss2, loss, 1e-9);
	float *G = malloc(sizeof(float) * vlm_nparams(m));
	memcpy(G, vlm_grads(m), sizeof(float) * vlm_nparams(m));
	double worst = 0;
	const char *worst_name = "";
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		double gmax = 1e-6;
		size_t arg = 0;
		for (size_t j = 0; j < t->numel; j++)
			if (fabs(G[t->offset + j]) > gmax)
				gmax = fabs(G[t->offset + j]), arg = j;
		CHECK_MSG(gmax > 1e-6, "%s has no gradient", t->name);
		for (int k = 0; k < 6; k++) {
			size_t j = k == 0 ? arg : (size_t)nb_rng_below(&rng, t->numel);
			float *x = P + t->offset + j, keep = *x, eps = 1e-2f;
			*x = keep + eps;
			double fp = model_f(&c);
			*x = keep - eps;
			double fm = model_f(&c);
			*x = keep;
			double num = (fp - fm) / (2.0 * eps);
			double err = fabs(num - G[t->offset + j]) / gmax;
			if (err > worst)
				worst = err, worst_name = t->name;
			CHECK_MSG(err < 1e-2, "%s[%zu]: analytic %.6g numeric %.6g (max |grad| %.3g)", t->name, j,
				  G[t->offset + j], num, gmax);
		}
	}
	printf("whole model: worst relative gradient error %.3g (%s)\n", worst, worst_name);
	/* bad batches are refused with the cause, not crashed on */
	uint16_t bad[B * T];
	memcpy(bad, in, sizeof bad);
	bad[4] = VOCAB_SIZE;
	vlm_batch bb = {B, T, images, bad, tg, NULL};
	CHECK(isnan(vlm_forward_loss(m, &bb, NULL, &nt)));
	CHECK(test_contains(nb_errmsg(), "input token 27"));
	vlm_batch big = {5, T, images, in, tg, NULL};
	CHECK(isnan(vlm_forward_backward(m, &big, NULL, 1.0f, &nt)));
	CHECK(test_contains(nb_errmsg(), "max_batch"));
	vlm_noise nz = {.sigma = 0.3f, .seed = 1, .stream = 2};
	CHECK(isnan(vlm_forward_loss(m, &c.b, &nz, &nt)));
	CHECK(test_contains(nb_errmsg(), "keys"));

	/* blind (text-only): the images do not matter, the encoder and
	 * projector get no gradient, the decoder's gradient is the loss's */
	vlm_noise blind = {.blind = 1};
	double lb = vlm_forward_backward(m, &c.b, &blind, 1.0f, &nt);
	double lsee = vlm_forward_loss(m, &c.b, NULL, &nt);
	CHECK(isfinite(lb) && fabs(lb - lsee) > 1e-6);
	uint8_t other[sizeof images];
	for (size_t i = 0; i < sizeof other; i++)
		other[i] = (uint8_t)(255 - images[i]);
	vlm_batch ob = c.b;
	ob.images = other;
	CHECK(vlm_forward_loss(m, &ob, &blind, &nt) == lb);
	const float *Gb = vlm_grads(m);
	int enc_zero = 1, dec_some = 0;
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		int vis = !strncmp(t->name, "enc.", 4) || !strncmp(t->name, "proj.", 5);
		for (size_t j = 0; j < t->numel; j++) {
			if (vis && Gb[t->offset + j] != 0.0f)
				enc_zero = 0;
			if (!vis && Gb[t->offset + j] != 0.0f)
				dec_some = 1;
		}
	}
	CHECK(enc_zero && dec_some);
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		if (strcmp(t->name, "dec.0.attn.qkv.w") && strcmp(t->name, "head.b"))
			continue;
		for (size_t j = 0; j < t->numel; j += t->numel / 4 + 1) {
			float *x = P + t->offset + j, keep = *x, eps = 1e-2f;
			double g = Gb[t->offset + j];
			*x = keep + eps;
			double fp = vlm_forward_loss(m, &c.b, &blind, &nt);
			*x = keep - eps;
			double fm = vlm_forward_loss(m, &c.b, &blind, &nt);
			*x = keep;
			double num = (fp - fm) / (2.0 * eps);
			CHECK_MSG(fabs(num - g) < 1e-2 * (fabs(g) + 1e-2), "blind %s[%zu]: analytic %.6g numeric %.6g",
				  t->name, j, g, num);
			Gb = vlm_grads(m);
		}
	}
	free(G);
	vlm_free(m);
}

static void test_config(void)
{
	vlm_config c = vlm_config_default();
	CHECK(vlm_config_check(&c) == 0);
	CHECK(c.image_size == 48 && c.patch == 8 && c.enc_dim == 128 && c.dec_layers == 4 && c.max_text == 41);
	vlm_config d = c;
	CHECK(vlm_config_equal(&c, &d));
	d.dec_heads = 5;
	CHECK(!vlm_config_equal(&c, &d));
	CHECK(vlm_config_check(&d) == -1);
	CHECK(test_contains(nb_errmsg(), "dec_dim 128 is not a multiple of dec_heads 5"));
	d = c;
	d.image_size = 50;
	CHECK(vlm_create(&d, 4) == NULL);
	CHECK(test_contains(nb_errmsg(), "image_size 50"));
	vlm_model *m = vlm_create(&c, 2);
	CHECK(m != NULL);
	/* reference configuration: tensor names and count are part of the checkpoint format */
	CHECK(!strcmp(vlm_tensor_at(m, 0)->name, "enc.patch.w"));
	CHECK(vlm_tensor_at(m, 0)->shape[0] == 128 && vlm_tensor_at(m, 0)->shape[1] == 192);
	int found = 0;
	size_t total = 0;
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		total += t->numel;
		if (!strcmp(t->name, "dec.3.mlp.fc2.b"))
			found++;
		if (!strcmp(t->name, "dec.pos"))
			found += t->shape[0] == 77 && t->shape[1] == 128;
		if (!strcmp(t->name, "head.w"))
			found += t->decay == 1;
		if (!strcmp(t->name, "enc.0.ln1.w"))
			found += t->decay == 0;
	}
	CHECK(found == 4);
	CHECK(total == vlm_nparams(m));
	CHECK_MSG(vlm_nparams(m) == 1269275, "%zu parameters", vlm_nparams(m));
	CHECK(vlm_tensor_at(m, vlm_ntensors(m)) == NULL);
	vlm_init(m, 1);
	float a = vlm_params(m)[5];
	vlm_init(m, 1);
	CHECK(vlm_params(m)[5] == a);
	vlm_init(m, 2);
	CHECK(vlm_params(m)[5] != a);
	vlm_free(m);
}

int main(void)
{
	nb_rng_seed(&rng, 42, 0, 0);
	test_config();
	test_linear();
	test_layernorm();
	test_gelu();
	test_attention(0);
	test_attention(1);
	test_pos_emb();
	test_crossentropy();
	test_patchify();
	test_model();
	return test_summary("test_model_grad");
}
