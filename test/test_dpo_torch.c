/* The DPO objective (trainer/dpo.h) against the PyTorch reference
 * (test/torch_ref.py --dpo): on the tiny model of jobs/tiny.conf with a
 * policy and a reference of different weights, the loss, its parts and
 * every parameter gradient must agree for dpo.noise = none, chosen and both
 * (the C draws are exported, so both sides add the same noise; with chosen
 * the rejected rows stay clean). Skips (77) only when `import torch` fails. */
#include <math.h>
#include <string.h>

#include "common/nb_error.h"
#include "test/dpo_fixture.h"
#include "test/test_util.h"
#include "trainer/dpo.h"

static const float SIGMA = 0.5f, BETA = 0.5f, SFT = 0.3f;
static const uint64_t NSEED = 3, NSTREAM = 9;

/* max|a-b| / max|b| over one tensor */
static double rel_err(const float *a, const float *b, size_t n)
{
	double d = 0, mb = 1e-30;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mb = fmax(mb, fabs((double)b[i]));
	}
	return d / mb;
}

static void write_inputs(const dpo_fixture *f, const char *dir)
{
	const vlm_config *c = &f->cfg;
	char path[4096];
	snprintf(path, sizeof path, "%s/config.txt", dir);
	FILE *o = fopen(path, "w");
	fprintf(o, "image_size %d\npatch %d\nenc_dim %d\nenc_layers %d\nenc_heads %d\ndec_dim %d\n"
		   "dec_layers %d\ndec_heads %d\nmlp_ratio %d\nvocab %d\nmax_text %d\nB %d\nT %d\n"
		   "sigma %.9g\nbeta %.9g\nsft_weight %.9g\n",
		c->image_size, c->patch, c->enc_dim, c->enc_layers, c->enc_heads, c->dec_dim, c->dec_layers,
		c->dec_heads, c->mlp_ratio, c->vocab, c->max_text, ROWS, FT, (double)SIGMA, (double)BETA, (double)SFT);
	fclose(o);
	snprintf(path, sizeof path, "%s/tensors.txt", dir);
	o = fopen(path, "w");
	for (int i = 0; i < vlm_ntensors(f->policy); i++) {
		const vlm_tensor *t = vlm_tensor_at(f->policy, i);
		fprintf(o, "%s %zu %zu %d", t->name, t->offset, t->numel, t->decay);
		for (int k = 0; k < t->ndim; k++)
			fprintf(o, " %d", t->shape[k]);
		fputc('\n', o);
	}
	fclose(o);
	size_t np = vlm_nparams(f->policy), img = (size_t)c->image_size * c->image_size * 3;
	test_write_bin(dir, "params.bin", vlm_params(f->policy), np * sizeof(float));
	test_write_bin(dir, "ref_params.bin", vlm_params(f->ref), np * sizeof(float));
	test_write_bin(dir, "images.bin", f->images, img * ROWS);
	test_write_bin(dir, "inputs.bin", f->in, sizeof f->in);
	test_write_bin(dir, "targets.bin", f->tg, sizeof f->tg);
	/* the draws exactly as vlm.c takes them: per row, keyed by its image */
	int nv = (c->image_size / c->patch) * (c->image_size / c->patch);
	size_t per = (size_t)nv * c->dec_dim;
	float *eps = malloc(sizeof(float) * per * ROWS);
	for (int b = 0; b < ROWS; b++) {
		nb_rng r;
		nb_rng_seed(&r, NSEED, f->keys[b], NSTREAM);
		for (size_t j = 0; j < per; j++)
			eps[b * per + j] = nb_rng_normal(&r);
	}
	test_write_bin(dir, "eps.bin", eps, sizeof(float) * per * ROWS);
	free(eps);
}

static void compare_mode(dpo_fixture *f, const char *dir, int mode)
{
	const char *name = dpo_noise_name(mode);
	double ref_nll[ROWS];
	CHECK(dpo_reference(f->ref, &f->b, ref_nll) == 0);
	dpo_params p = {.beta = BETA, .noise = mode, .sft_weight = SFT};
	vlm_noise nz = {.sigma = SIGMA, .seed = NSEED, .stream = NSTREAM};
	double ps = 1.0 / NP, ss = 1.0 / (double)fixture_chosen_tokens(f);
	dpo_sums s = {0};
	CHECK(dpo_loss(f->policy, &f->b, ref_nll, &nz, &p, ps, ss, 1, &s) == 0);
	double loss = ps * s.loss + SFT * ss * s.sft;
	char file[64];
	snprintf(file, sizeof file, "dpo_loss_%s.bin", name);
	double *tl = test_read_bin(dir, file, 4 * sizeof(double));
	double mine[4] = {loss, s.loss, s.margin, s.sft};
	static const char *const part[4] = {"objective", "sum -log sigmoid z", "sum z", "sum chosen nll"};
	for (int k = 0; k < 4; k++)
		CHECK_MSG(fabs(mine[k] - tl[k]) <= 1e-5 * fmax(fabs(tl[k]), 1e-3), "noise %s: %s %.9g vs torch %.9g",
			  name, part[k], mine[k], tl[k]);
	printf("noise %-6s: loss C %.9f torch %.9f (relative %.2g)\n", name, loss, tl[0], fabs(loss - tl[0]) / tl[0]);
	size_t np = vlm_nparams(f->policy);
	snprintf(file, sizeof file, "dpo_grads_%s.bin", name);
	float *tg = test_read_bin(dir, file, sizeof(float) * np);
	double worst = 0;
	const char *wn = "";
	for (int i = 0; i < vlm_ntensors(f->policy); i++) {
		const vlm_tensor *t = vlm_tensor_at(f->policy, i);
		double e = rel_err(vlm_grads(f->policy) + t->offset, tg + t->offset, t->numel);
		if (e > worst)
			worst = e, wn = t->name;
		CHECK_MSG(e <= 1e-5, "noise %s: %s: relative error %.3g", name, t->name, e);
	}
	printf("noise %-6s: gradients, worst per-tensor relative error %.3g (%s)\n", name, worst, wn);
	free(tl);
	free(tg);
}

int main(void)
{
	if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
		printf("test_dpo_torch: SKIP: /usr/bin/python3 cannot import torch (apt-get install python3-torch)\n");
		return 77;
	}
	dpo_fixture f;
	fixture_init(&f, 21);
	char *dir = test_tmpdir("dpotorch");
	write_inputs(&f, dir);
	const char *src = getenv("NB_SRC");
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/test/torch_ref.py --dpo %s", src && *src ? src : ".", dir);
	int rc = system(cmd);
	CHECK_MSG(rc == 0, "'%s' failed with status %d", cmd, rc);
	if (rc == 0)
		for (int mode = 0; mode < 3; mode++)
			compare_mode(&f, dir, mode);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
	free(dir);
	fixture_free(&f);
	return test_summary("test_dpo_torch");
}
