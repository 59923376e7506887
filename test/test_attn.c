/* Attention shares (labeler/attn.h, model/vlm.h vlm_attention): the
 * captured probabilities against an independent recomputation from the
 * layers' inputs and parameters, a layer made uniform, the share
 * identities, the correct/hallucinated grouping on hand-made captions, and
 * the arithmetic of attn_add on a hand-made attention. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "labeler/attn.h"
#include "model/vlm.h"
#include "model/vlm_internal.h"
#include "test/test_util.h"

enum { RED, GREEN, BLUE };
enum { CIRCLE, SQUARE };
#define S 16

/* "<size> <color> <shape> <row> <col> ." into t; returns 6. */
static int statement(uint16_t *t, int size, int color, int shape, int row, int col)
{
	t[0] = (uint16_t)(VOCAB_SIZE0 + size);
	t[1] = (uint16_t)(VOCAB_COLOR0 + color);
	t[2] = (uint16_t)(VOCAB_SHAPE0 + shape);
	t[3] = (uint16_t)(VOCAB_ROW0 + row);
	t[4] = (uint16_t)(VOCAB_COL0 + col);
	t[5] = VOCAB_DOT;
	return 6;
}

static void test_groups(void)
{
	uint8_t cells[SCENE_CELLS] = {0};
	cells[0] = scene_obj_code(0, RED, CIRCLE);
	uint16_t t[32];
	int n = 0;
	n += statement(t + n, 1, RED, CIRCLE, 2, 2);  /* present (size and cell do not count) */
	n += statement(t + n, 0, BLUE, SQUARE, 0, 0); /* absent: hallucinated */
	t[n++] = VOCAB_SIZE0;                          /* malformed: "small ." */
	t[n++] = VOCAB_DOT;
	n += statement(t + n, 0, RED, CIRCLE, 0, 0);  /* present again */
	CHECK(n == 20);
	int8_t g[32];
	attn_result r;
	memset(&r, 0, sizeof r);
	attn_groups(t, n, cells, g, &r);
	for (int p = 0; p <= n; p++) {
		int want = p < 6 ? ATTN_CORRECT : p < 12 ? ATTN_HALLUCINATED : p < 14 ? ATTN_OTHER
			   : p < 20 ? ATTN_CORRECT : ATTN_OTHER; /* p = 20 predicts eos */
		CHECK_MSG(g[p] == want, "position %d: group %d, want %d", p, g[p], want);
	}
	CHECK(r.statements[ATTN_ALL] == 3 && r.statements[ATTN_CORRECT] == 2 && r.statements[ATTN_HALLUCINATED] == 1);
	CHECK(r.malformed == 1);

	/* trailing words without "." and an empty caption: no statement */
	uint16_t u[8];
	int m = statement(u, 0, GREEN, SQUARE, 1, 1) - 1;
	attn_groups(u, m, cells, g, NULL);
	for (int p = 0; p <= m; p++)
		CHECK(g[p] == ATTN_OTHER);
	attn_groups(u, 0, cells, g, NULL);
	CHECK(g[0] == ATTN_OTHER);
}

/* attn_add's arithmetic on a hand-made attention: 1 layer, 2 heads, nv 2,
 * a one-statement caption (n = 6, rows 2..8 of Lb = 9). */
static void test_add_handmade(void)
{
	enum { NV = 2, N = 6, LB = NV + N + 1, H = 2 };
	uint8_t cells[SCENE_CELLS] = {0};
	cells[4] = scene_obj_code(0, GREEN, SQUARE);
	uint16_t t[N];
	statement(t, 0, RED, CIRCLE, 0, 0); /* hallucinated */
	float att[H * LB * LB];
	memset(att, 0, sizeof att);
	/* head 0: everything on key 0 (visual); head 1: everything on the query itself */
	for (int i = 0; i < LB; i++) {
		att[0 * LB * LB + i * LB + 0] = 1.0f;
		att[1 * LB * LB + i * LB + i] = 1.0f;
	}
	const float *layers[1] = {att};
	attn_result r;
	memset(&r, 0, sizeof r);
	CHECK(attn_add(&r, layers, 1, H, NV, LB, t, N, cells) == 0);
	attn_finish(&r);
	CHECK(r.images == 1 && r.layers == 1 && r.heads == H && r.nv == NV);
	CHECK(r.positions[ATTN_ALL] == N + 1 && r.positions[ATTN_HALLUCINATED] == N &&
	      r.positions[ATTN_CORRECT] == 0);
	CHECK_NEAR(r.share[ATTN_ALL][0].visual, 0.5, 1e-12);
	CHECK_NEAR(r.share[ATTN_ALL][0].text, 0.5, 1e-12);
	CHECK_NEAR(r.share[ATTN_ALL][0].max, 1.0, 1e-12);
	CHECK_NEAR(r.share[ATTN_HALLUCINATED][0].visual, 0.5, 1e-12);
	CHECK(r.share[ATTN_CORRECT][0].visual == 0 && r.share[ATTN_CORRECT][0].max == 0);

	/* a second image of another shape is an error; a caption too long for Lb too */
	attn_result r2;
	memset(&r2, 0, sizeof r2);
	CHECK(attn_add(&r2, layers, 1, H, NV, LB, t, N, cells) == 0);
	CHECK(attn_add(&r2, layers, 1, H, NV + 1, LB, t, N - 1, cells) < 0);
	CHECK(test_contains(nb_errmsg(), "visual"));
	CHECK(attn_add(&r2, layers, 1, H, NV, LB - 1, t, N, cells) < 0);
	CHECK(test_contains(nb_errmsg(), "does not fit"));
}

/* LayerNorm + the q, k rows of one block, and softmax, in double, from the
 * block's input x [Lb, C] and the parameters: the attention of head h,
 * query i, key j <= i. */
static void recompute_attention(const vlm_model *m, int layer, const float *x, int h, int i, double *row)
{
	const vlm_config *c = vlm_get_config(m);
	int C = c->dec_dim, hs = C / c->dec_heads;
	const float *P = m->params;
	const vlm_block_off *o = &m->dec[layer];
	double *q = malloc(sizeof(double) * (size_t)hs), *k = malloc(sizeof(double) * (size_t)hs);
	double *ln = malloc(sizeof(double) * (size_t)C);
	double mx = -1e300;
	for (int j = 0; j <= i; j++) {
		for (int pass = 0; pass < 2; pass++) {
			const float *v = x + (size_t)(pass ? j : i) * C;
			double mean = 0, var = 0;
			for (int e = 0; e < C; e++)
				mean += v[e];
			mean /= C;
			for (int e = 0; e < C; e++)
				var += (v[e] - mean) * (v[e] - mean);
			var /= C;
			for (int e = 0; e < C; e++)
				ln[e] = (v[e] - mean) / sqrt(var + 1e-5) * P[o->ln1w + e] + P[o->ln1b + e];
			double *dst = pass ? k : q;
			int off = pass ? C : 0; /* q rows, then k rows of the qkv weight */
			for (int d = 0; d < hs; d++) {
				int oc = off + h * hs + d;
				double s = P[o->qkvb + oc];
				for (int e = 0; e < C; e++)
					s += ln[e] * P[o->qkvw + (size_t)oc * C + e];
				dst[d] = s;
			}
		}
		double s = 0;
		for (int d = 0; d < hs; d++)
			s += q[d] * k[d];
		row[j] = s / sqrt((double)hs);
		mx = row[j] > mx ? row[j] : mx;
	}
	double sum = 0;
	for (int j = 0; j <= i; j++)
		sum += row[j] = exp(row[j] - mx);
	for (int j = 0; j <= i; j++)
		row[j] /= sum;
	free(q), free(k), free(ln);
}

static vlm_model *tiny_model(void)
{
	vlm_config cfg = {
		.image_size = S, .patch = 4, .enc_dim = 16, .enc_layers = 1, .enc_heads = 2,
		.dec_dim = 16, .dec_layers = 3, .dec_heads = 2, .mlp_ratio = 2, .vocab = VOCAB_SIZE,
		.max_text = 20,
	};
	vlm_model *m = vlm_create(&cfg, 2);
	if (!m)
		return NULL;
	vlm_init(m, 7);
	float *P = vlm_params(m);
	nb_rng r;
	nb_rng_seed(&r, 8, 0, 0);
	for (size_t i = 0; i < vlm_nparams(m); i++) /* sharper attention than the init's */
		P[i] *= 1.0f + 20.0f * (float)nb_rng_uniform(&r);
	return m;
}

static void test_model(void)
{
	vlm_model *m = tiny_model();
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK(vlm_attention(m, 0, NULL, NULL) == NULL); /* no forward yet */
	CHECK(test_contains(nb_errmsg(), "no forward pass"));
	const vlm_config *c = vlm_get_config(m);
	int nv = vlm_visual_tokens(m), NH = c->dec_heads, layers = c->dec_layers;
	CHECK(nv == 16);
	/* layer 1 uniform: equal scores, whatever the input */
	for (int t = 0; t < vlm_ntensors(m); t++) {
		const vlm_tensor *tt = vlm_tensor_at(m, t);
		if (!strcmp(tt->name, "dec.1.attn.qkv.w") || !strcmp(tt->name, "dec.1.attn.qkv.b"))
			memset(vlm_params(m) + tt->offset, 0, sizeof(float) * tt->numel);
	}
	nb_rng r;
	nb_rng_seed(&r, 9, 0, 0);
	uint8_t img[2 * S * S * 3];
	for (size_t i = 0; i < sizeof img; i++)
		img[i] = (uint8_t)nb_rng_below(&r, 256);
	uint8_t cells[2][SCENE_CELLS] = {{0}};
	cells[0][0] = scene_obj_code(0, RED, CIRCLE);
	cells[1][8] = scene_obj_code(1, BLUE, SQUARE);
	uint16_t tok[2][19];
	int lens[2];
	lens[0] = statement(tok[0], 0, RED, CIRCLE, 0, 0);
	lens[0] += statement(tok[0] + lens[0], 1, GREEN, SQUARE, 0, 1); /* hallucinated */
	lens[1] = statement(tok[1], 1, BLUE, SQUARE, 2, 2);
	attn_result res;
	memset(&res, 0, sizeof res);
	CHECK(attn_add_batch(&res, m, img, &tok[0][0], 19, lens, (const uint8_t(*)[SCENE_CELLS])cells, 2) == 0);

	int B = 0, T = 0;
	CHECK(vlm_attention(m, layers, &B, &T) == NULL);
	CHECK(test_contains(nb_errmsg(), "layer 3 not in 0..2"));
	CHECK(vlm_attention(m, 0, &B, &T) != NULL);
	CHECK(B == 2 && T == lens[0] + 1); /* padded to the longest caption */
	int Lb = nv + T;
	/* every row of every layer: causal, sums to 1, equal to the recomputation;
	 * layer 1 is uniform */
	double worst = 0, *row = malloc(sizeof(double) * (size_t)Lb);
	int uniform_ok = 1, rows_ok = 1;
	for (int l = 0; l < layers; l++) {
		const float *A = vlm_attention(m, l, NULL, NULL);
		const float *x = l ? m->dec_a[l - 1].out : m->dec_in;
		for (int b = 0; b < B; b++)
			for (int h = 0; h < NH; h++)
				for (int i = 0; i < Lb; i++) {
					const float *a = A + (((size_t)b * NH + h) * Lb + i) * Lb;
					recompute_attention(m, l, x + (size_t)b * Lb * c->dec_dim, h, i, row);
					double sum = 0;
					for (int j = 0; j < Lb; j++) {
						sum += a[j];
						if (j > i && a[j] != 0)
							rows_ok = 0;
						if (j <= i && fabs(a[j] - row[j]) > worst)
							worst = fabs(a[j] - row[j]);
						if (l == 1 && j <= i && fabs(a[j] - 1.0 / (i + 1)) > 1e-6)
							uniform_ok = 0;
					}
					if (fabs(sum - 1) > 1e-5)
						rows_ok = 0;
				}
	}
	free(row);
	CHECK_MSG(worst < 2e-5, "captured attention differs from the recomputation by %g", worst);
	CHECK(rows_ok);
	CHECK(uniform_ok);

	/* the shares: layer 1's visual share is the mean of nv / (nv + t + 1)
	 * over the counted rows; every layer's visual + text = 1 and max in
	 * [1 / (nv + t + 1), 1] (checked on the means' bounds) */
	attn_finish(&res);
	CHECK(res.images == 2 && res.layers == layers && res.heads == NH && res.nv == nv);
	CHECK(res.positions[ATTN_ALL] == lens[0] + 1 + lens[1] + 1);
	CHECK(res.positions[ATTN_CORRECT] == 12 && res.positions[ATTN_HALLUCINATED] == 6);
	CHECK(res.statements[ATTN_CORRECT] == 2 && res.statements[ATTN_HALLUCINATED] == 1);
	double want_all = 0, want_h = 0, min_all = 0;
	for (int b = 0; b < 2; b++)
		for (int t = 0; t <= lens[b]; t++) {
			want_all += (double)nv / (nv + t + 1);
			min_all += 1.0 / (nv + t + 1);
			if (b == 0 && t >= 6 && t < 12)
				want_h += (double)nv / (nv + t + 1);
		}
	want_all /= (double)res.positions[ATTN_ALL];
	min_all /= (double)res.positions[ATTN_ALL];
	CHECK_NEAR(res.share[ATTN_ALL][1].visual, want_all, 1e-6);
	CHECK_NEAR(res.share[ATTN_HALLUCINATED][1].visual, want_h / 6, 1e-6);
	CHECK_NEAR(res.share[ATTN_ALL][1].max, min_all, 1e-6); /* uniform: the max is the mean */
	for (int g = 0; g < ATTN_GROUPS; g++)
		for (int l = 0; l < layers; l++) {
			const attn_share *s = &res.share[g][l];
			CHECK_NEAR(s->visual + s->text, 1.0, 1e-6);
			CHECK(s->max <= 1.0 + 1e-9 && s->max >= 1.0 / Lb);
		}
	/* the sharp layers are not uniform: the check above would see it */
	CHECK(fabs(res.share[ATTN_ALL][0].max - min_all) > 1e-3);

	/* bad input: more images than max_batch, a caption too long */
	CHECK(attn_add_batch(&res, m, img, &tok[0][0], 19, lens, (const uint8_t(*)[SCENE_CELLS])cells, 3) < 0);
	CHECK(test_contains(nb_errmsg(), "max_batch"));
	int big[2] = {c->max_text, 1};
	CHECK(attn_add_batch(&res, m, img, &tok[0][0], 19, big, (const uint8_t(*)[SCENE_CELLS])cells, 2) < 0);
	CHECK(test_contains(nb_errmsg(), "max_text"));
	vlm_free(m);
}

/* Every row's shares on real attention, before averaging: (a) + (b) = 1 and
 * 1 / (nv + t + 1) <= (c) <= 1, through attn_add one row at a time. */
static void test_rows(void)
{
	vlm_model *m = tiny_model();
	CHECK(m != NULL);
	if (!m)
		return;
	uint8_t img[S * S * 3];
	memset(img, 90, sizeof img);
	uint8_t cells[SCENE_CELLS] = {0};
	uint16_t tok[12];
	int n = statement(tok, 0, RED, CIRCLE, 0, 0) + statement(tok + 6, 1, BLUE, SQUARE, 1, 1);
	attn_result all;
	memset(&all, 0, sizeof all);
	CHECK(attn_add_batch(&all, m, img, tok, 12, &n, (const uint8_t(*)[SCENE_CELLS])&cells, 1) == 0);
	const vlm_config *c = vlm_get_config(m);
	int nv = vlm_visual_tokens(m), NH = c->dec_heads, Lb = nv + n + 1, bad = 0;
	for (int l = 0; l < c->dec_layers; l++) {
		const float *A = vlm_attention(m, l, NULL, NULL);
		for (int t = 0; t <= n; t++) {
			/* one row: a caption of t words whose last row is row t (bos + t words) */
			attn_result one;
			memset(&one, 0, sizeof one);
			const float *lp[ATTN_MAX_LAYERS];
			for (int k = 0; k < c->dec_layers; k++)
				lp[k] = A; /* the same layer at every k: only l is read below */
			CHECK(attn_add(&one, lp, c->dec_layers, NH, nv, Lb, tok, t, cells) == 0);
			/* the rows 0..t-1 were already counted: subtract them via the
			 * one-shorter caption */
			attn_result prev;
			memset(&prev, 0, sizeof prev);
			if (t > 0)
				CHECK(attn_add(&prev, lp, c->dec_layers, NH, nv, Lb, tok, t - 1, cells) == 0);
			double v = one.share[ATTN_ALL][l].visual - prev.share[ATTN_ALL][l].visual;
			double x = one.share[ATTN_ALL][l].text - prev.share[ATTN_ALL][l].text;
			double mx = one.share[ATTN_ALL][l].max - prev.share[ATTN_ALL][l].max;
			if (fabs(v + x - 1) > 1e-5 || mx < 1.0 / (nv + t + 1) - 1e-6 || mx > 1 + 1e-6) {
				bad++;
				fprintf(stderr, "layer %d row %d: visual %g text %g max %g\n", l, t, v, x, mx);
			}
		}
	}
	CHECK(bad == 0);
	vlm_free(m);
}

int main(void)
{
	test_groups();
	test_add_handmade();
	test_model();
	test_rows();
	return test_summary("test_attn");
}
