/* DPO (trainer/dpo.h) on the tiny model of jobs/tiny.conf: the gradient
 * of the whole objective against central finite differences for every
 * noise mode and with the SFT term (every tensor without noise; with noise
 * the tensors after it, see fd_check); the identities at policy = reference;
 * the per-row noise mask; vlm_backward_seq's weights against
 * vlm_forward_backward; refusals. */
#include <math.h>
#include <string.h>

#include "common/nb_error.h"
#include "test/dpo_fixture.h"
#include "test/test_util.h"
#include "trainer/dpo.h"

static const vlm_noise NOISE = {.sigma = 0.5f, .seed = 3, .stream = 9};

/* The objective as trainer_step scales it. */
static double objective(dpo_fixture *f, const double *ref_nll, const dpo_params *p, double ps, double ss, int grad)
{
	dpo_sums s = {0};
	if (dpo_loss(f->policy, &f->b, ref_nll, &NOISE, p, ps, ss, grad, &s) < 0) {
		fprintf(stderr, "dpo_loss: %s\n", nb_errmsg());
		return NAN;
	}
	return ps * s.loss + p->sft_weight * ss * s.sft;
}

static void fd_check(dpo_fixture *f, const dpo_params *p, const char *what)
{
	double ref_nll[ROWS];
	CHECK(dpo_reference(f->ref, &f->b, ref_nll) == 0);
	double ps = 1.0 / NP, ss = 1.0 / (double)fixture_chosen_tokens(f);
	double l0 = objective(f, ref_nll, p, ps, ss, 1);
	CHECK(isfinite(l0));
	size_t np = vlm_nparams(f->policy);
	float *G = malloc(sizeof(float) * np), *P = vlm_params(f->policy);
	memcpy(G, vlm_grads(f->policy), sizeof(float) * np);
	nb_rng r;
	nb_rng_seed(&r, 5, 0, 0);
	double worst = 0;
	const char *worst_name = "";
	for (int i = 0; i < vlm_ntensors(f->policy); i++) {
		const vlm_tensor *t = vlm_tensor_at(f->policy, i);
		/* NoiseBoost's per-token std is a constant of the gradient (as in
		 * the paper); finite differences see it move with the encoder and
		 * projector, so under noise they are checked on the decoder only
		 * (the encoder side: test_dpo_torch, against torch's detach) */
		if (p->noise != DPO_NOISE_NONE && (!strncmp(t->name, "enc.", 4) || !strncmp(t->name, "proj.", 5)))
			continue;
		double gmax = 0;
		size_t arg = 0;
		for (size_t j = 0; j < t->numel; j++)
			if (fabs(G[t->offset + j]) > gmax)
				gmax = fabs(G[t->offset + j]), arg = j;
		CHECK_MSG(gmax > 1e-7, "%s: %s has no gradient", what, t->name);
		for (int k = 0; k < 5; k++) {
			size_t j = k == 0 ? arg : (size_t)nb_rng_below(&r, t->numel);
			float *x = P + t->offset + j, keep = *x, eps = 1e-2f;
			*x = keep + eps;
			double fp = objective(f, ref_nll, p, ps, ss, 0);
			*x = keep - eps;
			double fm = objective(f, ref_nll, p, ps, ss, 0);
			*x = keep;
			double num = (fp - fm) / (2.0 * (double)eps), err = fabs(num - G[t->offset + j]) / gmax;
			if (err > worst)
				worst = err, worst_name = t->name;
			CHECK_MSG(err < 2e-3, "%s: %s[%zu]: analytic %.6g numeric %.6g (max |grad| %.3g)", what, t->name, j,
				  G[t->offset + j], num, gmax);
		}
	}
	printf("%s: loss %.6f, worst relative gradient error %.3g (%s)\n", what, l0, worst, worst_name);
	free(G);
}

static void test_finite_differences(void)
{
	dpo_fixture f;
	fixture_init(&f, 11);
	dpo_params p = {.beta = 0.5, .noise = DPO_NOISE_NONE, .sft_weight = 0.0};
	fd_check(&f, &p, "noise none");
	p.noise = DPO_NOISE_CHOSEN;
	fd_check(&f, &p, "noise chosen");
	p.noise = DPO_NOISE_BOTH;
	fd_check(&f, &p, "noise both");
	p = (dpo_params){.beta = 0.1, .noise = DPO_NOISE_CHOSEN, .sft_weight = 0.7};
	fd_check(&f, &p, "beta 0.1, noise chosen, sft 0.7");
	fixture_free(&f);
}

/* Policy = reference, no noise: every z is 0, so the loss is log 2 per pair,
 * the margin 0, no pair counted correct, and the gradient is beta / 2 *
 * d(nll_c - nll_r) per pair. */
static void test_identity(void)
{
	dpo_fixture f;
	fixture_init(&f, 12);
	memcpy(vlm_params(f.ref), vlm_params(f.policy), sizeof(float) * vlm_nparams(f.ref));
	double ref_nll[ROWS];
	CHECK(dpo_reference(f.ref, &f.b, ref_nll) == 0);
	dpo_params p = {.beta = 0.25, .noise = DPO_NOISE_NONE};
	dpo_sums s = {0};
	CHECK(dpo_loss(f.policy, &f.b, ref_nll, &NOISE, &p, 1.0, 0.0, 1, &s) == 0);
	CHECK_NEAR(s.loss, NP * log(2.0), 1e-12);
	CHECK(s.margin == 0.0 && s.correct == 0);
	size_t np = vlm_nparams(f.policy);
	float *G = malloc(sizeof(float) * np);
	memcpy(G, vlm_grads(f.policy), sizeof(float) * np);
	/* the same gradient from vlm_backward_seq with weights +-beta/2 */
	float w[ROWS];
	double nll[ROWS];
	for (int i = 0; i < ROWS; i++)
		w[i] = i < NP ? 0.125f : -0.125f;
	CHECK(!isnan(vlm_forward_seq(f.policy, &f.b, NULL, nll)));
	for (int i = 0; i < ROWS; i++)
		CHECK(nll[i] == ref_nll[i]);
	CHECK(vlm_backward_seq(f.policy, &f.b, NULL, w) == 0);
	double d = 0;
	for (size_t i = 0; i < np; i++)
		d = fmax(d, fabs(G[i] - vlm_grads(f.policy)[i]));
	CHECK_MSG(d == 0.0, "max difference %.3g", d);
	free(G);
	fixture_free(&f);
}

/* Uniform weights equal vlm_forward_backward's grad_scale; the sequence
 * losses sum to its loss. */
static void test_uniform_weights(void)
{
	dpo_fixture f;
	fixture_init(&f, 13);
	long nt = 0;
	double total = vlm_forward_backward(f.policy, &f.b, &NOISE, 0.03f, &nt);
	size_t np = vlm_nparams(f.policy);
	float *G = malloc(sizeof(float) * np);
	memcpy(G, vlm_grads(f.policy), sizeof(float) * np);
	double nll[ROWS];
	double sum = vlm_forward_seq(f.policy, &f.b, &NOISE, nll);
	CHECK_NEAR(sum, total, 1e-9);
	float w[ROWS];
	for (int i = 0; i < ROWS; i++)
		w[i] = 0.03f;
	CHECK(vlm_backward_seq(f.policy, &f.b, &NOISE, w) == 0);
	double d = 0, gmax = 0;
	for (size_t i = 0; i < np; i++) {
		d = fmax(d, fabs(G[i] - vlm_grads(f.policy)[i]));
		gmax = fmax(gmax, fabs(G[i]));
	}
	CHECK_MSG(d <= 1e-6 * gmax, "max difference %.3g of %.3g", d, gmax);
	free(G);
	fixture_free(&f);
}

/* noise.only: the masked rows are noised exactly as under full noise, the
 * others exactly as without noise. */
static void test_noise_rows(void)
{
	dpo_fixture f;
	fixture_init(&f, 14);
	double clean[ROWS], all[ROWS], half[ROWS];
	uint8_t only[ROWS] = {1, 1, 1, 0, 0, 0};
	vlm_noise part = NOISE;
	part.only = only;
	CHECK(!isnan(vlm_forward_seq(f.policy, &f.b, NULL, clean)));
	CHECK(!isnan(vlm_forward_seq(f.policy, &f.b, &NOISE, all)));
	CHECK(!isnan(vlm_forward_seq(f.policy, &f.b, &part, half)));
	for (int i = 0; i < ROWS; i++) {
		CHECK_NEAR(half[i], i < NP ? all[i] : clean[i], 1e-9);
		CHECK_MSG(fabs(all[i] - clean[i]) > 1e-6, "row %d: noise changed nothing", i);
	}
	/* the reference never sees noise: its nll is the clean one */
	double ref_nll[ROWS];
	memcpy(vlm_params(f.ref), vlm_params(f.policy), sizeof(float) * vlm_nparams(f.ref));
	CHECK(dpo_reference(f.ref, &f.b, ref_nll) == 0);
	for (int i = 0; i < ROWS; i++)
		CHECK(ref_nll[i] == clean[i]);
	fixture_free(&f);
}

static void test_refusals(void)
{
	dpo_fixture f;
	fixture_init(&f, 15);
	float w[ROWS] = {0};
	/* no forward before the backward */
	CHECK(vlm_backward_seq(f.policy, &f.b, NULL, w) < 0);
	CHECK(test_contains(nb_errmsg(), "no vlm_forward_seq"));
	double nll[ROWS];
	CHECK(!isnan(vlm_forward_seq(f.policy, &f.b, NULL, nll)));
	long nt;
	vlm_forward_loss(f.policy, &f.b, NULL, &nt); /* another use in between */
	CHECK(vlm_backward_seq(f.policy, &f.b, NULL, w) < 0);
	/* an odd row count is not a pair batch */
	vlm_batch odd = f.b;
	odd.B = 5;
	dpo_params p = {.beta = 0.1};
	dpo_sums s = {0};
	CHECK(dpo_loss(f.policy, &odd, nll, NULL, &p, 1.0, 0.0, 1, &s) < 0);
	CHECK(test_contains(nb_errmsg(), "5 rows"));
	CHECK(dpo_noise_parse("chosen") == DPO_NOISE_CHOSEN && dpo_noise_parse("both") == DPO_NOISE_BOTH &&
	      dpo_noise_parse("none") == DPO_NOISE_NONE && dpo_noise_parse("rejected") == -1);
	fixture_free(&f);
}

int main(void)
{
	test_finite_differences();
	test_identity();
	test_uniform_weights();
	test_noise_rows();
	test_refusals();
	return test_summary("test_dpo");
}
