#include "trainer/dpo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"

static const char *const noise_names[] = {"chosen", "both", "none"};

int dpo_noise_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (s && !strcmp(s, noise_names[i]))
			return i;
	return -1;
}

const char *dpo_noise_name(int mode) { return mode >= 0 && mode < 3 ? noise_names[mode] : "?"; }

int dpo_reference(vlm_model *ref, const vlm_batch *pairs, double *ref_nll)
{
	return isnan(vlm_forward_seq(ref, pairs, NULL, ref_nll)) ? -1 : 0;
}

/* -log sigmoid(z) = log(1 + exp(-z)), without overflow. */
static double softplus_neg(double z) { return z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z)); }
/* sigmoid(-z) = 1 - sigmoid(z). */
static double sigmoid_neg(double z) { return z > 0 ? exp(-z) / (1.0 + exp(-z)) : 1.0 / (1.0 + exp(z)); }

int dpo_loss(vlm_model *policy, const vlm_batch *pairs, const double *ref_nll, const vlm_noise *noise,
	     const dpo_params *p, double pair_scale, double sft_scale, int grad, dpo_sums *out)
{
	int B = pairs->B, n = B / 2;
	if (B < 2 || B % 2)
		return nb_error("bad pair batch: %d rows (expected 2 per pair)", B);
	vlm_noise nz = noise ? *noise : (vlm_noise){0};
	uint8_t *only = NULL;
	if (p->noise == DPO_NOISE_NONE) {
		nz.sigma = 0.0f;
	} else if (p->noise == DPO_NOISE_CHOSEN) {
		only = nb_xcalloc((size_t)B, 1);
		memset(only, 1, (size_t)n);
		nz.only = only;
	}
	double *nll = nb_xmalloc(sizeof(double) * (size_t)B);
	float *w = nb_xmalloc(sizeof(float) * (size_t)B);
	int rc = isnan(vlm_forward_seq(policy, pairs, &nz, nll)) ? -1 : 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		double z = p->beta * ((ref_nll[i] - nll[i]) - (ref_nll[n + i] - nll[n + i]));
		out->loss += softplus_neg(z);
		out->margin += z;
		out->correct += z > 0.0;
		out->sft += nll[i];
		/* d(-log sigmoid z)/dz = -sigmoid(-z); dz/dnll_c = -beta, dz/dnll_r = +beta */
		double g = pair_scale * p->beta * sigmoid_neg(z);
		w[i] = (float)(g + p->sft_weight * sft_scale);
		w[n + i] = (float)-g;
	}
	if (rc == 0 && grad)
		rc = vlm_backward_seq(policy, pairs, &nz, w);
	free(only);
	free(nll);
	free(w);
	return rc;
}
