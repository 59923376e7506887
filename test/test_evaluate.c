/* labeler/evaluate.h: evaluate_shards scores exactly what decoding the same
 * images and adding them by hand (metrics_add_tokens) scores, whatever the
 * batch; on_caption sees every image once, in shard order, and can end the
 * evaluation; the ground-truth reader sorts and finds; every bad input
 * (no shards, a shard without /objects, the wrong image size, an id twice,
 * a missing directory) is an error naming the shard or directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "labeler/evaluate.h"
#include "labeler/metrics.h"
#include "model/decode.h"
#include "model/vlm.h"
#include "store/shard_store.h"
#include "test/test_util.h"

enum { S = 16, MAXTEXT = 17 };

/* The images and cells of sample k (seeded), as a shard of it would hold. */
static void make_sample(uint64_t seed, long k, uint8_t *img, int size, uint8_t cells[SCENE_CELLS])
{
	nb_rng r;
	nb_rng_seed(&r, seed, 5, (uint64_t)k);
	memset(cells, 0, SCENE_CELLS);
	int nobj = 1 + (int)nb_rng_below(&r, 4);
	for (int o = 0; o < nobj; o++)
		cells[nb_rng_below(&r, SCENE_CELLS)] = scene_obj_code((int)nb_rng_below(&r, 2),
								      (int)nb_rng_below(&r, SCENE_COLORS),
								      (int)nb_rng_below(&r, SCENE_SHAPES));
	for (int p = 0; p < size * size * 3; p++)
		img[p] = (uint8_t)nb_rng_below(&r, 256);
}

/* Writes a shard of n samples with ids first.. (images seeded by id). */
static void write_shard(const char *path, uint64_t first, long n, int size, int kind, int objects)
{
	shard_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.kind = kind;
	meta.height = meta.width = size;
	meta.has_objects = objects;
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());
	shard_writer *w = shard_create(path, &meta);
	CHECK_MSG(w != NULL, "%s", nb_errmsg());
	if (!w)
		return;
	uint8_t *img = malloc((size_t)size * size * 3), cells[SCENE_CELLS];
	for (long k = 0; k < n; k++) {
		make_sample(1, (long)(first + (uint64_t)k), img, size, cells);
		char text[512];
		uint16_t tok[SHARD_MAX_TOKENS];
		int nt = scene_caption(cells, text, sizeof text) < 0 ? 0 : vocab_encode(text, tok, SHARD_MAX_TOKENS);
		shard_sample s = {.id = first + (uint64_t)k, .image = img, .source = "", .tokens = tok,
				  .ntokens = nt > SHARD_MAX_TOKENS ? SHARD_MAX_TOKENS : nt, .score = 1.0f,
				  .objects = objects ? cells : NULL};
		CHECK_MSG(shard_append(w, &s) == 0, "%s", nb_errmsg());
	}
	free(img);
	CHECK_MSG(shard_commit(w) == 0, "%s", nb_errmsg());
}

static char *sub(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static char *mkdir_in(const char *dir, const char *name)
{
	char *p = sub(dir, name);
	CHECK(mkdir(p, 0777) == 0);
	return p;
}

/* What on_caption saw. */
typedef struct {
	long n, stop_after;
	uint64_t ids[64];
	uint16_t tokens[64][MAXTEXT];
	int lens[64];
	uint8_t cells[64][SCENE_CELLS];
} seen;

static int record(void *ctx, uint64_t id, const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS])
{
	seen *s = ctx;
	if (s->stop_after >= 0 && s->n == s->stop_after)
		return nb_error("stopped by the callback after %ld images", s->n);
	if (s->n < 64) {
		s->ids[s->n] = id;
		memcpy(s->tokens[s->n], tokens, sizeof(uint16_t) * (size_t)n);
		s->lens[s->n] = n;
		memcpy(s->cells[s->n], cells, SCENE_CELLS);
	}
	s->n++;
	return 0;
}

static int same_result(const metrics_result *a, const metrics_result *b)
{
	return !memcmp(a, b, sizeof *a);
}

/* Expects evaluate_shards on dir to fail with msg in the error. */
static void expect_error(vlm_model *m, const char *dir, const char *msg)
{
	metrics_result r;
	int rc = evaluate_shards(m, dir, NULL, &r);
	CHECK_MSG(rc == -1 && test_contains(nb_errmsg(), msg), "rc %d, error '%s', expected '%s'", rc, nb_errmsg(),
		  msg);
}

int main(void)
{
	char *dir = test_tmpdir("evaluate");
	vlm_config cfg = {
		.image_size = S, .patch = 8, .enc_dim = 16, .enc_layers = 1, .enc_heads = 2,
		.dec_dim = 32, .dec_layers = 1, .dec_heads = 2, .mlp_ratio = 2, .vocab = VOCAB_SIZE, .max_text = MAXTEXT,
	};
	vlm_model *m = vlm_create(&cfg, 4);
	vlm_init(m, 3);
	nb_rng rr;
	nb_rng_seed(&rr, 8, 0, 0);
	for (size_t j = 0; j < vlm_nparams(m); j++)
		vlm_params(m)[j] += 0.5f * nb_rng_normal(&rr);

	/* two shards: ids 100..112 and 40..49 (not sorted across shards) */
	char *good = mkdir_in(dir, "good");
	char *a = sub(good, "a.h5"), *b = sub(good, "b.h5");
	write_shard(a, 100, 13, S, SHARD_CAPTIONS, 1);
	write_shard(b, 40, 10, S, SHARD_IMAGES, 1);
	enum { N = 23 };
	long count = -1;
	CHECK_MSG(evaluate_check_shards(good, S, &count) == 0, "%s", nb_errmsg());
	CHECK(count == N);

	/* by hand: the same images, in shard order, decoded clean in one call */
	uint8_t *images = malloc((size_t)N * S * S * 3), cells[N][SCENE_CELLS];
	uint64_t ids[N];
	for (long k = 0; k < N; k++) {
		ids[k] = k < 13 ? 100 + (uint64_t)k : 40 + (uint64_t)(k - 13);
		make_sample(1, (long)ids[k], images + (size_t)k * S * S * 3, S, cells[k]);
	}
	decoder *d = decoder_create(m, N, 0);
	decode_opts dopt = {0, 0.0f, 0, MAXTEXT - 1};
	uint16_t *tok = calloc((size_t)N * (MAXTEXT - 1), sizeof(uint16_t));
	int lens[N];
	CHECK_MSG(decode_greedy(d, images, ids, N, &dopt, tok, lens) == 0, "%s", nb_errmsg());
	metrics_acc *acc = metrics_new();
	int words = 0;
	for (int k = 0; k < N; k++) {
		metrics_add_tokens(acc, tok + (size_t)k * (MAXTEXT - 1), lens[k], cells[k]);
		words += lens[k];
	}
	metrics_result want;
	metrics_finish(acc, &want);
	metrics_free(acc);
	CHECK_MSG(words > N, "the random model says too little (%d words in %d captions)", words, N);
	CHECK(want.captions == N);

	/* evaluate_shards, at several batch sizes (a batch never spans shards) */
	const int batches[] = {1, 4, 13, 64};
	for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
		seen sn = {.stop_after = -1};
		evaluate_opts eo = {.batch = batches[bi], .on_caption = record, .ctx = &sn};
		metrics_result got;
		memset(&got, 0xff, sizeof got);
		CHECK_MSG(evaluate_shards(m, good, &eo, &got) == 0, "%s", nb_errmsg());
		CHECK_MSG(same_result(&got, &want), "batch %d: captions %ld vs %ld, mentions %ld vs %ld, cider %g vs %g",
			  batches[bi], got.captions, want.captions, got.mentions, want.mentions, got.cider_d,
			  want.cider_d);
		CHECK(sn.n == N);
		int ok = 1;
		for (int k = 0; k < N && k < sn.n; k++)
			ok &= sn.ids[k] == ids[k] && sn.lens[k] == lens[k] &&
			      !memcmp(sn.tokens[k], tok + (size_t)k * (MAXTEXT - 1), sizeof(uint16_t) * (size_t)lens[k]) &&
			      !memcmp(sn.cells[k], cells[k], SCENE_CELLS);
		CHECK_MSG(ok, "batch %d: on_caption saw other ids, captions or cells", batches[bi]);
	}
	/* no options: the defaults; progress lines do not change the result */
	{
		metrics_result got;
		CHECK_MSG(evaluate_shards(m, good, NULL, &got) == 0, "%s", nb_errmsg());
		CHECK(same_result(&got, &want));
		evaluate_opts eo = {.batch = 5, .progress = "test_evaluate", .progress_every = 1e-9};
		CHECK_MSG(evaluate_shards(m, good, &eo, &got) == 0, "%s", nb_errmsg());
		CHECK(same_result(&got, &want));
	}
	/* the callback ends it */
	{
		seen sn = {.stop_after = 7};
		evaluate_opts eo = {.batch = 4, .on_caption = record, .ctx = &sn};
		metrics_result got;
		CHECK(evaluate_shards(m, good, &eo, &got) == -1);
		CHECK_MSG(test_contains(nb_errmsg(), "stopped by the callback after 7 images"), "%s", nb_errmsg());
		CHECK(sn.n == 7);
	}

	/* the ground truth, sorted by id */
	{
		evaluate_truth *gt = NULL;
		long n = 0;
		CHECK_MSG(evaluate_read_truth(good, NULL, &gt, &n) == 0, "%s", nb_errmsg());
		CHECK(n == N);
		int sorted = 1;
		for (long i = 1; i < n; i++)
			sorted &= gt[i - 1].id < gt[i].id;
		CHECK(sorted);
		CHECK(n > 0 && gt[0].id == 40 && gt[n - 1].id == 112);
		evaluate_truth *g = evaluate_find_truth(gt, n, 105);
		CHECK(g && !memcmp(g->cells, cells[5], SCENE_CELLS));
		CHECK(evaluate_find_truth(gt, n, 99) == NULL);
		CHECK(evaluate_find_truth(gt, 0, 105) == NULL);
		free(gt);
	}

	/* errors */
	char *empty = mkdir_in(dir, "empty");
	char msg[4096];
	snprintf(msg, sizeof msg, "no shards in '%s'", empty);
	expect_error(m, empty, msg);
	CHECK(evaluate_check_shards(empty, S, NULL) == -1 && test_contains(nb_errmsg(), msg));
	char *nodir = sub(dir, "nonexistent");
	expect_error(m, nodir, nodir);

	char *noobj = mkdir_in(dir, "noobj");
	char *p1 = sub(noobj, "a.h5"), *p2 = sub(noobj, "b.h5");
	write_shard(p1, 0, 3, S, SHARD_CAPTIONS, 1);
	write_shard(p2, 3, 3, S, SHARD_CAPTIONS, 0);
	snprintf(msg, sizeof msg, "shard '%s': no /objects ground truth to score against", p2);
	expect_error(m, noobj, msg);
	evaluate_truth *gt = NULL;
	long n = 0;
	CHECK(evaluate_read_truth(noobj, NULL, &gt, &n) == -1 && test_contains(nb_errmsg(), msg));

	char *big = mkdir_in(dir, "big");
	char *p3 = sub(big, "a.h5");
	write_shard(p3, 0, 2, 24, SHARD_IMAGES, 1);
	snprintf(msg, sizeof msg, "shard '%s': images are 24x24 but the model takes 16x16", p3);
	expect_error(m, big, msg);
	CHECK(evaluate_check_shards(big, S, NULL) == -1 && test_contains(nb_errmsg(), msg));
	CHECK_MSG(evaluate_check_shards(big, 0, &count) == 0 && count == 2, "any size: %s", nb_errmsg());

	char *dup = mkdir_in(dir, "dup");
	char *p4 = sub(dup, "a.h5"), *p5 = sub(dup, "b.h5");
	write_shard(p4, 10, 5, S, SHARD_CAPTIONS, 1);
	write_shard(p5, 14, 5, S, SHARD_CAPTIONS, 1);
	snprintf(msg, sizeof msg, "shards in '%s': image id 14 appears twice", dup);
	expect_error(m, dup, msg);
	CHECK(evaluate_read_truth(dup, NULL, &gt, &n) == -1 && test_contains(nb_errmsg(), msg));

	char *junk = mkdir_in(dir, "junk");
	char *p6 = sub(junk, "x.h5");
	FILE *f = fopen(p6, "w");
	fputs("not hdf5", f);
	fclose(f);
	expect_error(m, junk, p6);

	free(p1), free(p2), free(p3), free(p4), free(p5), free(p6);
	free(empty), free(nodir), free(noobj), free(big), free(dup), free(junk);
	free(a), free(b), free(good);
	free(images), free(tok);
	decoder_free(d);
	vlm_free(m);
	free(dir);
	return test_summary("test_evaluate");
}
