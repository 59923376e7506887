/* The DPO step's cost against the supervised step on the same batch, as a
 * ratio measured in the same run (docs/performance.md).
 *
 * Both on the reference model (docs/model.md) with the same B images and
 * NoiseBoost (sigma 0.3):
 *   supervised: vlm_forward_backward over the B chosen captions;
 *   DPO:        the frozen reference's forward over the 2B rows (chosen and
 *               rejected) + the policy's forward and weighted backward over
 *               the 2B rows (trainer/dpo.h: dpo_reference, dpo_loss), noise
 *               on the chosen rows (dpo.noise = chosen).
 * Model work only: the all-reduce, clipping and AdamW are the same code and
 * size for both and are left out. Rounds interleave the two; each round
 * takes the median of its steps; the ratio of each round is taken and the
 * median of those reported.
 *
 * usage: bench_dpo_step [rounds] [steps] [pairs] [words]
 *        (default 5 rounds of 3 steps, 16 pairs, 24 words per caption: four
 *        statements, the corpus's typical length) */
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_util.h"
#include "common/nb_rng.h"
#include "common/vocab.h"
#include "model/blas.h"
#include "trainer/dpo.h"

static int arg(int argc, char **argv, int i, int def, int lo, int hi)
{
	int v = argc > i ? atoi(argv[i]) : def;
	return v < lo || v > hi ? def : v;
}

/* Rows [0, n) chosen, [n, 2n) rejected: random words, eos, the same images. */
static void make_rows(nb_rng *r, int n, int T, uint16_t *in, uint16_t *tg)
{
	for (int b = 0; b < 2 * n; b++) {
		for (int t = 0; t < T; t++)
			in[b * T + t] = t == 0 ? VOCAB_BOS : (uint16_t)(4 + nb_rng_below(r, 23));
		for (int t = 0; t < T - 1; t++)
			tg[b * T + t] = in[b * T + t + 1];
		tg[b * T + T - 1] = VOCAB_EOS;
	}
}

int main(int argc, char **argv)
{
	blas_runtime_init(argc, argv);
	int rounds = arg(argc, argv, 1, 5, 1, 50), steps = arg(argc, argv, 2, 3, 1, 100);
	int n = arg(argc, argv, 3, 16, 1, 256), words = arg(argc, argv, 4, 24, 1, 40);
	vlm_config cfg = vlm_config_default();
	int T = words + 1, S = cfg.image_size;
	vlm_model *pol = vlm_create(&cfg, 2 * n), *ref = vlm_create(&cfg, 2 * n);
	if (!pol || !ref) {
		fprintf(stderr, "bench_dpo_step: %s\n", "cannot create the models");
		return 1;
	}
	vlm_init(pol, 1);
	vlm_init(ref, 2);
	nb_rng r;
	nb_rng_seed(&r, 3, 0, 0);
	size_t img = (size_t)S * S * 3;
	uint8_t *images = malloc(img * 2 * (size_t)n);
	for (size_t i = 0; i < img * (size_t)n; i++)
		images[i] = images[img * (size_t)n + i] = (uint8_t)nb_rng_below(&r, 256);
	uint16_t *in = malloc(sizeof(uint16_t) * 2 * (size_t)n * T), *tg = malloc(sizeof(uint16_t) * 2 * (size_t)n * T);
	uint64_t *keys = malloc(sizeof(uint64_t) * 2 * (size_t)n);
	for (int b = 0; b < 2 * n; b++)
		keys[b] = (uint64_t)(b % n);
	make_rows(&r, n, T, in, tg);
	vlm_batch sup = {n, T, images, in, tg, keys};        /* the chosen rows alone */
	vlm_batch pairs = {2 * n, T, images, in, tg, keys};
	vlm_noise noise = {.sigma = 0.3f, .seed = 1, .stream = 0};
	dpo_params p = {.beta = 0.1, .noise = DPO_NOISE_CHOSEN};
	double *ref_nll = malloc(sizeof(double) * 2 * (size_t)n);
	long nt;
	double *sms = malloc(sizeof(double) * (size_t)rounds), *dms = malloc(sizeof(double) * (size_t)rounds);
	double *ratio = malloc(sizeof(double) * (size_t)rounds), st[100];
	vlm_forward_backward(pol, &sup, &noise, 1e-3f, &nt); /* warm-up */
	for (int k = 0; k < rounds; k++) {
		for (int s = 0; s < steps; s++) {
			double t0 = bench_now();
			vlm_forward_backward(pol, &sup, &noise, 1e-3f, &nt);
			st[s] = (bench_now() - t0) * 1e3;
		}
		sms[k] = bench_median(st, steps);
		for (int s = 0; s < steps; s++) {
			dpo_sums ds = {0};
			double t0 = bench_now();
			if (dpo_reference(ref, &pairs, ref_nll) < 0 ||
			    dpo_loss(pol, &pairs, ref_nll, &noise, &p, 1.0 / n, 0.0, 1, &ds) < 0) {
				fprintf(stderr, "bench_dpo_step: the DPO step failed\n");
				return 1;
			}
			st[s] = (bench_now() - t0) * 1e3;
		}
		dms[k] = bench_median(st, steps);
		ratio[k] = dms[k] / sms[k];
		printf("round %d: supervised %.1f ms, DPO %.1f ms, ratio %.2f\n", k + 1, sms[k], dms[k], ratio[k]);
		fflush(stdout);
	}
	double rr = bench_median(ratio, rounds), sm = bench_median(sms, rounds), dm = bench_median(dms, rounds);
	printf("BLAS: %s\n", blas_describe());
	printf("DPO step / supervised step on %d pairs of %d-word captions: %.2fx (median of %d per-round ratios; "
	       "medians: supervised %.1f ms, DPO %.1f ms)\n", n, words, rr, rounds, sm, dm);
	printf("{\"bench\":\"dpo_step\",\"pairs\":%d,\"T\":%d,\"rounds\":%d,\"steps\":%d,\"supervised_ms\":%.2f,"
	       "\"dpo_ms\":%.2f,\"ratio\":%.3f}\n", n, T, rounds, steps, sm, dm, rr);
	free(images), free(in), free(tg), free(keys), free(ref_nll), free(sms), free(dms), free(ratio);
	vlm_free(pol);
	vlm_free(ref);
	return 0;
}
