/* KV-cache greedy decoding (model/decode.c): the same tokens as naive
 * recompute decoding; noisy streams reproducible and independent of the
 * batch; K = 0; bad arguments refused with the cause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/decode.h"
#include "model/vlm.h"
#include "model/vlm_internal.h"
#include "common/vocab.h"
#include "test/test_util.h"

enum { N = 5, K = 3, MAXTOK = 12, S = 16 };

static int same(const uint16_t *ta, const int *la, const uint16_t *tb, const int *lb, int streams)
{
	for (int s = 0; s < streams; s++) {
		if (la[s] != lb[s])
			return 0;
		if (memcmp(ta + (size_t)s * MAXTOK, tb + (size_t)s * MAXTOK, sizeof(uint16_t) * (size_t)la[s]))
			return 0;
	}
	return 1;
}

int main(void)
{
	vlm_config cfg = {
		.image_size = S, .patch = 4, .enc_dim = 16, .enc_layers = 1, .enc_heads = 2,
		.dec_dim = 32, .dec_layers = 2, .dec_heads = 4, .mlp_ratio = 2, .vocab = VOCAB_SIZE,
		.max_text = MAXTOK + 1,
	};
	vlm_model *m = vlm_create(&cfg, N * (1 + K));
	CHECK(m != NULL);
	if (!m)
		return test_summary("test_decode");
	vlm_init(m, 5);
	/* Large random weights: sharply peaked, image-dependent logits, so
	 * greedy choices are far from ties and streams differ. */
	nb_rng r;
	nb_rng_seed(&r, 8, 0, 0);
	float *P = vlm_params(m);
	for (size_t j = 0; j < vlm_nparams(m); j++)
		P[j] += 0.4f * nb_rng_normal(&r);
	uint8_t images[N * S * S * 3];
	for (size_t i = 0; i < sizeof images; i++)
		images[i] = (uint8_t)nb_rng_below(&r, 256);
	uint64_t keys[N] = {10, 20, 30, 40, 50};
	decode_opts o = {K, 0.8f, 1234, MAXTOK};
	int ns = N * (1 + K);
	uint16_t *tk = calloc((size_t)ns * MAXTOK, sizeof(uint16_t)), *tn = calloc((size_t)ns * MAXTOK, sizeof(uint16_t));
	int lk[N * (1 + K)], ln[N * (1 + K)];

	decoder *d = decoder_create(m, N, K);
	CHECK(d != NULL);
	CHECK(decode_greedy(d, images, keys, N, &o, tk, lk) == 0);
	vlm_greedy_naive(m, images, keys, N, K, o.sigma, o.seed, MAXTOK, tn, ln);
	CHECK(same(tk, lk, tn, ln, ns));
	int total = 0, short_ = 0, differ = 0;
	for (int s = 0; s < ns; s++) {
		total += lk[s];
		short_ += lk[s] < MAXTOK;
		char buf[256];
		vocab_decode(tk + (size_t)s * MAXTOK, lk[s], buf, sizeof buf);
		printf("stream %2d (image %d sample %d): %2d words: %s\n", s, s / (1 + K), s % (1 + K), lk[s], buf);
	}
	for (int i = 0; i < N; i++)
		for (int k = 1; k <= K; k++) {
			int a = i * (1 + K), b = a + k;
			differ += lk[a] != lk[b] || memcmp(tk + (size_t)a * MAXTOK, tk + (size_t)b * MAXTOK, sizeof(uint16_t) * (size_t)lk[a]);
		}
	CHECK_MSG(total > ns, "only %d words in %d streams: the test model says too little", total, ns);
	CHECK_MSG(short_ > 0, "no stream stopped at <eos>");
	CHECK_MSG(differ > 0, "noise never changed a caption");

	/* reproducible, and independent of batch composition: one image at a time,
	 * in reverse order, with a decoder of another size */
	uint16_t *t2 = calloc((size_t)ns * MAXTOK, sizeof(uint16_t));
	int l2[N * (1 + K)];
	CHECK(decode_greedy(d, images, keys, N, &o, t2, l2) == 0);
	CHECK(same(tk, lk, t2, l2, ns));
	decoder *d1 = decoder_create(m, 2, K);
	for (int i = N - 1; i >= 0; i--) {
		CHECK(decode_greedy(d1, images + (size_t)i * S * S * 3, keys + i, 1, &o, t2 + (size_t)i * (1 + K) * MAXTOK,
				    l2 + i * (1 + K)) == 0);
	}
	CHECK(same(tk, lk, t2, l2, ns));
	/* the same image under another key gets other noise, but the same clean caption */
	uint64_t other = 999;
	CHECK(decode_greedy(d1, images, &other, 1, &o, t2, l2) == 0);
	CHECK(same(tk, lk, t2, l2, 1));

	/* K = 0: the clean streams alone */
	decode_opts o0 = {0, 0.8f, 1234, MAXTOK};
	CHECK(decode_greedy(d, images, keys, N, &o0, t2, l2) == 0);
	for (int i = 0; i < N; i++)
		CHECK(same(tk + (size_t)i * (1 + K) * MAXTOK, lk + i * (1 + K), t2 + (size_t)i * MAXTOK, l2 + i, 1));
	decoder *d0 = decoder_create(m, N, 0);
	CHECK(decode_greedy(d0, images, NULL, N, &o0, t2, l2) == 0);
	for (int i = 0; i < N; i++)
		CHECK(same(tk + (size_t)i * (1 + K) * MAXTOK, lk + i * (1 + K), t2 + (size_t)i * MAXTOK, l2 + i, 1));

	/* a model whose max_batch (2) is below the decoder's image count: the
	 * encoder runs in chunks, with the same result */
	vlm_model *m2 = vlm_create(&cfg, 2);
	memcpy(vlm_params(m2), vlm_params(m), sizeof(float) * vlm_nparams(m));
	decoder *d2 = decoder_create(m2, N, K);
	CHECK(decode_greedy(d2, images, keys, N, &o, t2, l2) == 0);
	CHECK(same(tk, lk, t2, l2, ns));
	decoder_free(d2);
	vlm_free(m2);

	/* more streams than one prefill chunk (64): 20 images x 4 streams, against
	 * the same images decoded in groups of 5 */
	{
		enum { NB = 20 };
		uint8_t *many = malloc((size_t)NB * S * S * 3);
		uint64_t mk[NB];
		for (int i = 0; i < NB; i++) {
			memcpy(many + (size_t)i * S * S * 3, images + (size_t)(i % N) * S * S * 3, (size_t)S * S * 3);
			mk[i] = 1000 + (uint64_t)i;
		}
		uint16_t *ta = calloc((size_t)NB * (1 + K) * MAXTOK, sizeof(uint16_t));
		uint16_t *tb = calloc((size_t)NB * (1 + K) * MAXTOK, sizeof(uint16_t));
		int la[NB * (1 + K)], lb[NB * (1 + K)];
		decoder *dm = decoder_create(m, NB, K);
		CHECK(decode_greedy(dm, many, mk, NB, &o, ta, la) == 0);
		for (int i = 0; i < NB; i += N)
			CHECK(decode_greedy(d, many + (size_t)i * S * S * 3, mk + i, N, &o, tb + (size_t)i * (1 + K) * MAXTOK,
					    lb + i * (1 + K)) == 0);
		CHECK(same(ta, la, tb, lb, NB * (1 + K)));
		decoder_free(dm);
		free(many), free(ta), free(tb);
	}

	/* bad arguments */
	CHECK(decode_greedy(d, images, keys, N + 1, &o, t2, l2) == -1);
	CHECK(test_contains(nb_errmsg(), "at most 5"));
	CHECK(decode_greedy(d0, images, keys, 1, &o, t2, l2) == -1);
	CHECK(test_contains(nb_errmsg(), "K = 3"));
	decode_opts ob = {K, 0.8f, 1, MAXTOK + 1};
	CHECK(decode_greedy(d, images, keys, 1, &ob, t2, l2) == -1);
	CHECK(test_contains(nb_errmsg(), "max_tokens 13"));
	CHECK(decode_greedy(d, images, NULL, 1, &o, t2, l2) == -1);
	CHECK(test_contains(nb_errmsg(), "keys missing"));
	CHECK(decoder_create(m, 0, 1) == NULL);
	CHECK(decode_greedy(d, images, keys, 0, &o, t2, l2) == 0);

	decoder_free(d);
	decoder_free(d1);
	decoder_free(d0);
	free(tk), free(tn), free(t2);
	vlm_free(m);
	return test_summary("test_decode");
}
