/* POPE probing (labeler/pope.h): which objects are probed, and that the
 * answers equal those computed another way: full forward passes without the
 * KV cache, and the loss path for stopping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_rng.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "labeler/pope.h"
#include "model/vlm.h"
#include "test/test_util.h"

enum { RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN, WHITE, ORANGE };
enum { CIRCLE, SQUARE, TRIANGLE, CROSS, DIAMOND, RING };
#define PAIR(c, s) ((c) * SCENE_SHAPES + (s))
#define S 16

static void test_probes(void)
{
	uint8_t cells[SCENE_CELLS] = {0};
	cells[0] = scene_obj_code(0, RED, CIRCLE);      /* theme 0 */
	cells[4] = scene_obj_code(1, BLUE, SQUARE);     /* theme 0 */
	cells[6] = scene_obj_code(1, RED, CIRCLE);      /* a repeat: probed once */
	cells[8] = scene_obj_code(0, MAGENTA, DIAMOND); /* theme 1 */
	pope_probe p[2 * POPE_MAX_POSITIVES];
	int n = pope_probes(cells, p);
	CHECK(n == 6);
	CHECK(p[0].pair == PAIR(RED, CIRCLE) && p[0].present);
	CHECK(p[1].pair == PAIR(BLUE, SQUARE) && p[1].present);
	CHECK(p[2].pair == PAIR(MAGENTA, DIAMOND) && p[2].present);
	/* theme 0's absent pairs score 3 (three theme-0 objects), theme 1's
	 * score 1; ties go to the lower pair index */
	CHECK(p[3].pair == PAIR(GREEN, TRIANGLE) && !p[3].present);
	CHECK(p[4].pair == PAIR(YELLOW, CROSS) && !p[4].present);
	CHECK(p[5].pair == PAIR(CYAN, RING) && !p[5].present);

	/* objects outside every theme: no prior favourite, positives only */
	uint8_t off[SCENE_CELLS] = {0};
	off[2] = scene_obj_code(0, RED, RING);
	n = pope_probes(off, p);
	CHECK(n == 1 && p[0].present && p[0].pair == PAIR(RED, RING));
	uint8_t none[SCENE_CELLS] = {0};
	CHECK(pope_probes(none, p) == 0);
}

static double log_softmax_at(const float *z, int V, int t)
{
	double mx = z[0], sum = 0;
	for (int v = 1; v < V; v++)
		mx = z[v] > mx ? z[v] : mx;
	for (int v = 0; v < V; v++)
		sum += exp(z[v] - mx);
	return z[t] - mx - log(sum);
}

/* P(size z, colour c, shape s | image, prefix) for the six shapes, by one
 * full forward pass (no KV cache). */
static void pair_probs(vlm_model *m, const uint8_t *img, const uint16_t *prefix, int np, int z, int c, double *p)
{
	uint16_t in[64];
	int T = np + 3, V = VOCAB_SIZE;
	in[0] = VOCAB_BOS;
	for (int k = 0; k < np; k++)
		in[1 + k] = prefix[k];
	in[np + 1] = (uint16_t)(VOCAB_SIZE0 + z);
	in[np + 2] = (uint16_t)(VOCAB_COLOR0 + c);
	vlm_batch b = {.B = 1, .T = T, .images = img, .inputs = in};
	const float *lg = vlm_forward_logits(m, &b, NULL);
	double base = log_softmax_at(lg + (size_t)np * V, V, in[np + 1]) + log_softmax_at(lg + (size_t)(np + 1) * V, V, in[np + 2]);
	for (int s = 0; s < SCENE_SHAPES; s++)
		p[s] = exp(base + log_softmax_at(lg + (size_t)(np + 2) * V, V, VOCAB_SHAPE0 + s));
}

/* -log P(eos | image, bos + prefix). */
static double stop_loss(vlm_model *m, const uint8_t *img, const uint16_t *prefix, int np)
{
	uint16_t in[64], tg[64];
	int T = np + 1;
	in[0] = VOCAB_BOS;
	for (int k = 0; k < np; k++)
		in[1 + k] = prefix[k];
	for (int k = 0; k < T; k++)
		tg[k] = VOCAB_PAD;
	tg[np] = VOCAB_EOS;
	vlm_batch b = {.B = 1, .T = T, .images = img, .inputs = in, .targets = tg};
	long nt;
	return vlm_forward_loss(m, &b, NULL, &nt);
}

static void test_likelihoods(void)
{
	vlm_config cfg = {
		.image_size = S, .patch = 4, .enc_dim = 16, .enc_layers = 1, .enc_heads = 2,
		.dec_dim = 32, .dec_layers = 2, .dec_heads = 4, .mlp_ratio = 2, .vocab = VOCAB_SIZE,
		.max_text = 16,   /* room for three boundaries: 3, 9 and 15 tokens; a fourth needs 21 */
	};
	vlm_model *m = vlm_create(&cfg, 2);
	CHECK(m != NULL);
	if (!m)
		return;
	vlm_init(m, 3);
	float *P = vlm_params(m);
	nb_rng r;
	nb_rng_seed(&r, 4, 0, 0);
	for (size_t i = 0; i < vlm_nparams(m); i++) /* peaked, image-dependent logits */
		P[i] *= 1.0f + 2.0f * (float)nb_rng_uniform(&r);
	/* stopping unlikely, so that the favourite statements are yes answers */
	for (int t = 0; t < vlm_ntensors(m); t++)
		if (!strcmp(vlm_tensor_at(m, t)->name, "head.b"))
			P[vlm_tensor_at(m, t)->offset + VOCAB_EOS] -= 30.0f;
	uint8_t img[S * S * 3];
	for (int i = 0; i < S * S * 3; i++)
		img[i] = (uint8_t)nb_rng_below(&r, 256);
	uint8_t cells[SCENE_CELLS] = {0};
	cells[1] = scene_obj_code(0, GREEN, CIRCLE);
	cells[3] = scene_obj_code(1, ORANGE, DIAMOND);
	cells[7] = scene_obj_code(1, WHITE, CROSS);
	pope_probe probes[2 * POPE_MAX_POSITIVES];
	CHECK(pope_probes(cells, probes) == 4); /* all three of theme 3: its one absent pair is the only favourite */
	/* Probe all 48 pairs: exactly the model's favourite next statement at
	 * some boundary is a yes. */
	pope_probe all[SCENE_PAIRS];
	int yes[SCENE_PAIRS], want[SCENE_PAIRS] = {0};
	for (int a = 0; a < SCENE_PAIRS; a++)
		all[a] = (pope_probe){(uint8_t)a, 0};
	decoder *d = decoder_create(m, 1, POPE_MAX_BRANCHES);
	CHECK(d && pope_image(d, &cfg, img, cells, all, SCENE_PAIRS, yes) == 0);
	decoder_free(d);
	char cap[256];
	uint16_t gt[64];
	scene_caption(cells, cap, sizeof cap);
	vocab_encode(cap, gt, 64);
	/* boundaries 0, 1, 2 (max_text 16 leaves no room for 3) */
	int nyes = 0;
	for (int j = 0; j < 3; j++) {
		double pp[SCENE_PAIRS] = {0}, q[SCENE_SHAPES];
		int best = 0;
		for (int c = 0; c < SCENE_COLORS; c++)
			for (int z = 0; z < SCENE_SIZES; z++) {
				pair_probs(m, img, gt, 6 * j, z, c, q);
				for (int sh = 0; sh < SCENE_SHAPES; sh++)
					pp[c * SCENE_SHAPES + sh] += q[sh];
			}
		for (int a = 1; a < SCENE_PAIRS; a++)
			best = pp[a] > pp[best] ? a : best;
		if (pp[best] > exp(-stop_loss(m, img, gt, 6 * j)))
			want[best] = 1;
	}
	for (int a = 0; a < SCENE_PAIRS; a++) {
		CHECK_MSG(yes[a] == want[a], "pair %d: pope says %d, the loss path %d", a, yes[a], want[a]);
		nyes += yes[a];
	}
	CHECK_MSG(nyes >= 1, "no yes at all: the check would be empty");
	vlm_free(m);
}

int main(void)
{
	test_probes();
	test_likelihoods();
	return test_summary("test_pope");
}
