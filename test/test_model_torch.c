/* The C model against the PyTorch reference (test/torch_ref.py): same
 * initial weights and batch; logits, loss and every parameter gradient must
 * agree to a relative error of 1e-4 per tensor, with and without NoiseBoost
 * noise (the C draws are exported so both sides add the same noise), and
 * the losses of 10 AdamW steps must agree. Skips (77) only when
 * `import torch` fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/vlm.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"
#include "test/test_util.h"

enum { B = 4, T = 8, STEPS = 10 };
static const float SIGMA = 0.3f;
static const uint64_t NSEED = 11, NSTREAM = 5;

/* max|a-b| / max(max|b|, tiny) */
static double rel_err(const float *a, const float *b, size_t n)
{
	double d = 0, mb = 1e-30;
	for (size_t i = 0; i < n; i++) {
		if (fabs(a[i] - b[i]) > d)
			d = fabs(a[i] - b[i]);
		if (fabs(b[i]) > mb)
			mb = fabs(b[i]);
	}
	return d / mb;
}

static void compare_grads(vlm_model *m, const float *ref, const char *what)
{
	double worst = 0;
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		double e = rel_err(vlm_grads(m) + t->offset, ref + t->offset, t->numel);
		if (e > worst)
			worst = e;
		CHECK_MSG(e <= 1e-4, "%s %s: relative error %.3g", what, t->name, e);
	}
	printf("%s: worst per-tensor relative error %.3g\n", what, worst);
}

/* AdamW as torch.optim.AdamW computes it (decoupled decay first). */
static void adamw_step(vlm_model *m, float *mo, float *ve, int step)
{
	const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.05f;
	float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
	float *p = vlm_params(m), *g = vlm_grads(m);
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		for (size_t j = t->offset; j < t->offset + t->numel; j++) {
			if (t->decay)
				p[j] *= 1.0f - lr * wd;
			mo[j] = b1 * mo[j] + (1.0f - b1) * g[j];
			ve[j] = b2 * ve[j] + (1.0f - b2) * g[j] * g[j];
			p[j] -= (lr / bc1) * mo[j] / (sqrtf(ve[j]) / sqrtf(bc2) + eps);
		}
	}
}

int main(void)
{
	if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
		printf("test_model_torch: SKIP: /usr/bin/python3 cannot import torch (apt-get install python3-torch)\n");
		return 77;
	}
	vlm_config cfg = {
		.image_size = 16, .patch = 8, .enc_dim = 32, .enc_layers = 2, .enc_heads = 2,
		.dec_dim = 48, .dec_layers = 2, .dec_heads = 4, .mlp_ratio = 4, .vocab = VOCAB_SIZE,
		.max_text = T,
	};
	vlm_model *m = vlm_create(&cfg, B);
	CHECK(m != NULL);
	if (!m)
		return test_summary("test_model_torch");
	vlm_init(m, 3);
	/* Perturb LayerNorm and bias tensors too, so their gradients are not trivial. */
	nb_rng r;
	nb_rng_seed(&r, 99, 0, 0);
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		for (size_t j = 0; j < t->numel; j++)
			vlm_params(m)[t->offset + j] += 0.05f * nb_rng_normal(&r);
	}
	int S = cfg.image_size, nv = (S / cfg.patch) * (S / cfg.patch);
	uint8_t images[B * 16 * 16 * 3];
	for (size_t i = 0; i < sizeof images; i++)
		images[i] = (uint8_t)nb_rng_below(&r, 256);
	uint16_t in[B * T], tg[B * T];
	int lens[B] = {8, 5, 2, 7};
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			in[b * T + t] = t == 0 ? VOCAB_BOS : t < lens[b] ? (uint16_t)(4 + nb_rng_below(&r, 23)) : VOCAB_PAD;
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			tg[b * T + t] = t < lens[b] - 1 ? in[b * T + t + 1] : t == lens[b] - 1 ? VOCAB_EOS : VOCAB_PAD;
	uint64_t keys[B] = {1001, 77, 5, 123456789};
	vlm_batch batch = {B, T, images, in, tg, keys};

	char *dir = test_tmpdir("torchref");
	char path[4096];
	snprintf(path, sizeof path, "%s/config.txt", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "image_size %d\npatch %d\nenc_dim %d\nenc_layers %d\nenc_heads %d\ndec_dim %d\n"
		   "dec_layers %d\ndec_heads %d\nmlp_ratio %d\nvocab %d\nmax_text %d\nB %d\nT %d\n"
		   "sigma %.9g\nsteps %d\n",
		cfg.image_size, cfg.patch, cfg.enc_dim, cfg.enc_layers, cfg.enc_heads, cfg.dec_dim, cfg.dec_layers,
		cfg.dec_heads, cfg.mlp_ratio, cfg.vocab, cfg.max_text, B, T, (double)SIGMA, STEPS);
	fclose(f);
	snprintf(path, sizeof path, "%s/tensors.txt", dir);
	f = fopen(path, "w");
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		fprintf(f, "%s %zu %zu %d", t->name, t->offset, t->numel, t->decay);
		for (int k = 0; k < t->ndim; k++)
			fprintf(f, " %d", t->shape[k]);
		fputc('\n', f);
	}
	fclose(f);
	size_t np = vlm_nparams(m);
	test_write_bin(dir, "params.bin", vlm_params(m), np * sizeof(float));
	test_write_bin(dir, "images.bin", images, sizeof images);
	test_write_bin(dir, "inputs.bin", in, sizeof in);
	test_write_bin(dir, "targets.bin", tg, sizeof tg);
	/* The draws exactly as vlm.c takes them: per sample, (token, feature) order. */
	size_t neps = (size_t)B * nv * cfg.dec_dim;
	float *eps = malloc(sizeof(float) * neps);
	for (int b = 0; b < B; b++) {
		nb_rng nr;
		nb_rng_seed(&nr, NSEED, keys[b], NSTREAM);
		for (size_t j = 0; j < (size_t)nv * cfg.dec_dim; j++)
			eps[(size_t)b * nv * cfg.dec_dim + j] = nb_rng_normal(&nr);
	}
	test_write_bin(dir, "eps.bin", eps, sizeof(float) * neps);

	const char *src = getenv("NB_SRC");
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/test/torch_ref.py %s", src && *src ? src : ".", dir);
	int rc = system(cmd);
	CHECK_MSG(rc == 0, "'%s' failed with status %d", cmd, rc);
	if (rc != 0)
		return test_summary("test_model_torch");

	/* no noise: logits, loss, gradients */
	long nt = 0;
	float *saved = malloc(sizeof(float) * np);
	memcpy(saved, vlm_params(m), sizeof(float) * np);
	double loss0 = vlm_forward_loss(m, &batch, NULL, &nt);
	CHECK(nt == 8 + 5 + 2 + 7);
	float *ref_logits = test_read_bin(dir, "logits.bin", sizeof(float) * B * T * VOCAB_SIZE);
	double el = rel_err(m->logits, ref_logits, (size_t)B * T * VOCAB_SIZE);
	CHECK_MSG(el <= 1e-4, "logits relative error %.3g", el);
	printf("logits: relative error %.3g\n", el);
	double *ref_loss = test_read_bin(dir, "loss.bin", 2 * sizeof(double));
	vlm_forward_backward(m, &batch, NULL, 1.0f / (float)nt, &nt);
	CHECK_MSG(fabs(loss0 / nt - ref_loss[0]) <= 1e-5 * fabs(ref_loss[0]), "loss %.9g vs torch %.9g", loss0 / nt,
		  ref_loss[0]);
	float *ref_g = test_read_bin(dir, "grads.bin", sizeof(float) * np);
	compare_grads(m, ref_g, "gradients");

	/* noise: the same draws on both sides */
	vlm_noise noise = {.sigma = SIGMA, .seed = NSEED, .stream = NSTREAM};
	double lossn = vlm_forward_backward(m, &batch, &noise, 1.0f / (float)nt, &nt);
	CHECK_MSG(fabs(lossn / nt - ref_loss[1]) <= 1e-5 * fabs(ref_loss[1]), "noisy loss %.9g vs torch %.9g",
		  lossn / nt, ref_loss[1]);
	CHECK(fabs(lossn - loss0) > 1e-6 * fabs(loss0)); /* the noise did something */
	float *ref_gn = test_read_bin(dir, "grads_noise.bin", sizeof(float) * np);
	compare_grads(m, ref_gn, "noisy gradients");
	printf("loss: C %.9g torch %.9g; noisy: C %.9g torch %.9g\n", loss0 / nt, ref_loss[0], lossn / nt,
	       ref_loss[1]);

	/* 10 AdamW steps */
	double *ref_steps = test_read_bin(dir, "steps.bin", STEPS * sizeof(double));
	float *mo = calloc(np, sizeof(float)), *ve = calloc(np, sizeof(float));
	for (int s = 1; s <= STEPS; s++) {
		double l = vlm_forward_backward(m, &batch, NULL, 1.0f / (float)nt, &nt) / nt;
		CHECK_MSG(fabs(l - ref_steps[s - 1]) <= 1e-4 * fabs(ref_steps[s - 1]), "step %d: loss %.9g vs torch %.9g",
			  s, l, ref_steps[s - 1]);
		printf("step %2d: C %.7f torch %.7f\n", s, l, ref_steps[s - 1]);
		adamw_step(m, mo, ve, s);
	}
	CHECK(ref_steps[STEPS - 1] < ref_steps[0]); /* it learns */

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
	free(dir), free(eps), free(saved), free(ref_logits), free(ref_loss), free(ref_g), free(ref_gn), free(ref_steps),
		free(mo), free(ve);
	vlm_free(m);
	return test_summary("test_model_torch");
}
