/* Training step time of the reference configuration (batch 64, full-length
 * captions) against the PyTorch reference of the same model
 * (bench/torch_step.py), both on this machine in the same run, interleaved.
 * Also: model FLOP/s against the 2-thread sgemm rate measured in this run,
 * and peak memory (max RSS of this process).
 *
 * usage: bench_train_step [rounds] [steps]      (default 3 rounds of 5 steps)
 * env:   NB_SRC (source root, for bench/torch_step.py; default .),
 *        NB_NO_TORCH=1 to skip PyTorch */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/nb_rng.h"
#include "model/blas.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "bench/bench_util.h"

/* FLOPs of one forward + backward: GEMMs (2*M*N*K forward, twice that
 * backward, the patch embedding without an input gradient) plus the
 * attention products counted over the full T x T square. */
static double step_flops(const vlm_config *c, int B, int T)
{
	int np = c->image_size / c->patch, nv = np * np, L = nv + T;
	double De = c->enc_dim, Dd = c->dec_dim, He = c->mlp_ratio * De, Hd = c->mlp_ratio * Dd;
	double ne = (double)B * nv, nd = (double)B * L, nt = (double)B * T;
	double f = 0;
	f += 2 * ne * (c->patch * c->patch * 3) * De * 2; /* patch: fwd + dW */
	double blk_e = 2 * ne * (De * 3 * De + De * De + 2 * De * He) * 3 + 2 * 2 * (double)B * nv * nv * De * 3;
	double blk_d = 2 * nd * (Dd * 3 * Dd + Dd * Dd + 2 * Dd * Hd) * 3 + 2 * 2 * (double)B * L * L * Dd * 3;
	f += c->enc_layers * blk_e + c->dec_layers * blk_d;
	f += 2 * ne * (De * Dd + Dd * Dd) * 3;     /* projector */
	f += 2 * nt * Dd * c->vocab * 3;           /* head */
	return f;
}

static double sgemm_rate(void)
{
	int M = 4928, N = 512, K = 128;
	float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
	double r[5];
	/* the ceiling: OpenBLAS's own 2-thread sgemm; the model sets 1 thread */
	openblas_set_num_threads(2);
	for (int k = 0; k < 5; k++) {
		int it = 0;
		double t0 = bench_now(), t1;
		do {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
			it++;
			t1 = bench_now();
		} while (t1 - t0 < 0.1);
		r[k] = 2.0 * M * N * K * it / (t1 - t0) / 1e9;
	}
	openblas_set_num_threads(1);
	free(a), free(b), free(c);
	return bench_median(r, 5);
}

static double torch_step_ms(int steps)
{
	const char *src = getenv("NB_SRC");
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/torch_step.py --steps %d", src && *src ? src : ".", steps);
	FILE *p = popen(cmd, "r");
	double ms = -1;
	char line[512];
	while (p && fgets(line, sizeof line, p))
		if (sscanf(line, "step_ms %lf", &ms) == 1)
			break;
	if (p)
		pclose(p);
	return ms;
}

int main(int argc, char **argv)
{
	blas_runtime_init(argc, argv);
	int rounds = argc > 1 ? atoi(argv[1]) : 3, steps = argc > 2 ? atoi(argv[2]) : 5;
	if (rounds < 1 || rounds > 50)
		rounds = 3;
	if (steps < 1 || steps > 100)
		steps = 5;
	int torch = !getenv("NB_NO_TORCH");
	vlm_config cfg = vlm_config_default();
	enum { B = 64 };
	int T = cfg.max_text, S = cfg.image_size;
	vlm_model *m = vlm_create(&cfg, B);
	vlm_init(m, 1);
	nb_rng r;
	nb_rng_seed(&r, 3, 0, 0);
	uint8_t *img = malloc((size_t)B * S * S * 3);
	for (size_t i = 0; i < (size_t)B * S * S * 3; i++)
		img[i] = (uint8_t)nb_rng_below(&r, 256);
	uint16_t *in = malloc(sizeof(uint16_t) * B * T), *tg = malloc(sizeof(uint16_t) * B * T);
	uint64_t keys[B];
	for (int b = 0; b < B; b++) {
		keys[b] = (uint64_t)b;
		for (int t = 0; t < T; t++) {
			in[b * T + t] = t == 0 ? VOCAB_BOS : (uint16_t)(4 + nb_rng_below(&r, 23));
			tg[b * T + t] = t == T - 1 ? VOCAB_EOS : 0;
		}
		for (int t = 0; t < T - 1; t++)
			tg[b * T + t] = in[b * T + t + 1];
	}
	vlm_batch batch = {B, T, img, in, tg, keys};
	vlm_noise noise = {.sigma = 0.3f, .seed = 1, .stream = 0};
	long nt;
	vlm_forward_backward(m, &batch, &noise, 1e-3f, &nt); /* warm-up */
	double *cms = malloc(sizeof(double) * (size_t)rounds), *tms = malloc(sizeof(double) * (size_t)rounds);
	double *gr = malloc(sizeof(double) * (size_t)rounds);
	for (int k = 0; k < rounds; k++) {
		gr[k] = sgemm_rate();
		double st[100];
		for (int s = 0; s < steps; s++) {
			double t0 = bench_now();
			vlm_forward_backward(m, &batch, &noise, 1e-3f, &nt);
			st[s] = (bench_now() - t0) * 1e3;
		}
		cms[k] = bench_median(st, steps);
		tms[k] = torch ? torch_step_ms(steps) : -1;
		printf("round %d: C %.1f ms/step, PyTorch %.1f ms/step, sgemm %.1f GFLOP/s\n", k + 1, cms[k], tms[k], gr[k]);
		fflush(stdout);
	}
	/* The machine is shared: ratios are taken within a round (measured
	 * seconds apart) and their median reported. */
	double gf = step_flops(&cfg, B, T) / 1e9;
	double *sp = malloc(sizeof(double) * (size_t)rounds), *mf = malloc(sizeof(double) * (size_t)rounds);
	for (int k = 0; k < rounds; k++) {
		sp[k] = tms[k] > 0 ? tms[k] / cms[k] : 0.0;
		mf[k] = gf / (cms[k] / 1e3) / gr[k];
	}
	double speedup = bench_median(sp, rounds), mfu = bench_median(mf, rounds);
	double c_ms = bench_median(cms, rounds), t_ms = bench_median(tms, rounds), g = bench_median(gr, rounds);
	double achieved = gf / (c_ms / 1e3);
	free(sp), free(mf);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("BLAS: %s\n", blas_describe());
	printf("step: %.2f GFLOP; medians: C %.1f ms (%.1f GFLOP/s), PyTorch %.1f ms, sgemm %.1f GFLOP/s; "
	       "per-round medians: speed-up %.2fx, model FLOP/s = %.0f%% of sgemm; peak RSS %.0f MiB\n",
	       gf, c_ms, achieved, t_ms, g, speedup, 100 * mfu, ru.ru_maxrss / 1024.0);
	printf("{\"bench\":\"train_step\",\"batch\":%d,\"T\":%d,\"rounds\":%d,\"steps\":%d,\"c_ms\":%.2f,"
	       "\"torch_ms\":%.2f,\"speedup\":%.3f,\"gflop_per_step\":%.3f,\"gflops\":%.2f,\"sgemm_gflops\":%.2f,"
	       "\"mfu_vs_sgemm\":%.3f,\"peak_rss_mib\":%.0f}\n",
	       B, T, rounds, steps, c_ms, t_ms, speedup, gf, achieved, g, mfu, ru.ru_maxrss / 1024.0);
	free(cms), free(tms), free(gr), free(img), free(in), free(tg);
	vlm_free(m);
	return 0;
}
