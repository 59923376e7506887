/* KV-cache greedy decoding (model/decode.c) against recomputing the whole
 * prefix at every step (vlm_greedy_naive), reference configuration, 8
 * images x (1 + K=4) streams, 40-word captions (<eos> is suppressed so both
 * modes do the full length). Interleaved rounds, medians; per caption.
 *
 * usage: bench_decode [rounds]      (default 3) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_rng.h"
#include "model/decode.h"
#include "model/blas.h"
#include "model/vlm.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"
#include "bench/bench_util.h"

int main(int argc, char **argv)
{
	blas_runtime_init(argc, argv);
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	if (rounds < 1 || rounds > 50)
		rounds = 3;
	enum { N = 8, K = 4, NS = N * (1 + K) };
	vlm_config cfg = vlm_config_default();
	int S = cfg.image_size, MT = cfg.max_text - 1;
	vlm_model *m = vlm_create(&cfg, NS);
	vlm_init(m, 1);
	vlm_params(m)[m->head_b + VOCAB_EOS] = -1e4f;
	nb_rng r;
	nb_rng_seed(&r, 5, 0, 0);
	uint8_t *img = malloc((size_t)N * S * S * 3);
	for (size_t i = 0; i < (size_t)N * S * S * 3; i++)
		img[i] = (uint8_t)nb_rng_below(&r, 256);
	uint64_t keys[N];
	for (int i = 0; i < N; i++)
		keys[i] = (uint64_t)i + 1;
	uint16_t *tk = malloc(sizeof(uint16_t) * NS * (size_t)MT), *tn = malloc(sizeof(uint16_t) * NS * (size_t)MT);
	int lk[NS], ln[NS];
	decoder *d = decoder_create(m, N, K);
	decode_opts o = {K, 0.3f, 7, MT};
	double kv[50], nv[50];
	decode_greedy(d, img, keys, N, &o, tk, lk); /* warm-up */
	for (int k = 0; k < rounds; k++) {
		double t0 = bench_now();
		decode_greedy(d, img, keys, N, &o, tk, lk);
		kv[k] = (bench_now() - t0) / NS * 1e3;
		t0 = bench_now();
		vlm_greedy_naive(m, img, keys, N, K, o.sigma, o.seed, MT, tn, ln);
		nv[k] = (bench_now() - t0) / NS * 1e3;
		printf("round %d: kv-cache %.2f ms/caption, recompute %.2f ms/caption\n", k + 1, kv[k], nv[k]);
		fflush(stdout);
	}
	int agree = 1, words = 0;
	for (int s = 0; s < NS; s++) {
		agree &= lk[s] == ln[s] && !memcmp(tk + (size_t)s * MT, tn + (size_t)s * MT, sizeof(uint16_t) * (size_t)lk[s]);
		words += lk[s];
	}
	bench_sort(kv, rounds);
	bench_sort(nv, rounds);
	double a = kv[rounds / 2], b = nv[rounds / 2];
	printf("%d images x %d streams, %.1f words/caption: kv-cache %.2f ms/caption, recompute %.2f ms/caption, "
	       "speed-up %.1fx, outputs %s\n",
	       N, 1 + K, (double)words / NS, a, b, b / a, agree ? "identical" : "DIFFER");
	printf("{\"bench\":\"decode\",\"images\":%d,\"streams_per_image\":%d,\"words_per_caption\":%.1f,"
	       "\"kv_ms_per_caption\":%.3f,\"recompute_ms_per_caption\":%.3f,\"speedup\":%.2f,\"identical\":%s}\n",
	       N, 1 + K, (double)words / NS, a, b, b / a, agree ? "true" : "false");
	decoder_free(d);
	free(img), free(tk), free(tn);
	vlm_free(m);
	return 0;
}
