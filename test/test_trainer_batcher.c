/* The batcher: loading, batch layout, shuffled order and its coverage,
 * streaming shards mid-epoch, state save/restore, and bad shards. */
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "store/shard_store.h"
#include "test/test_util.h"
#include "trainer/batcher.h"

static char dir[4096];

/* Sample k of a shard: id first+k, caption of (k % 5) + 1 words
 * "small red ...", image filled with byte k. */
static int write_shard(const char *name, int n, uint64_t first, int size, shard_kind kind, const char *vocab)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	shard_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.kind = kind;
	meta.height = meta.width = size;
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab ? vocab : vocab_digest());
	shard_writer *w = shard_create(path, &meta);
	if (!w)
		return -1;
	uint8_t *img = malloc((size_t)size * size * 3);
	static const uint16_t words[6] = {VOCAB_SIZE0, VOCAB_COLOR0, VOCAB_SHAPE0, VOCAB_ROW0, VOCAB_COL0, VOCAB_DOT};
	for (int k = 0; k < n; k++) {
		memset(img, k & 255, (size_t)size * size * 3);
		shard_sample s = {.id = first + (uint64_t)k, .image = img, .source = "", .tokens = words,
				  .ntokens = k % 5 + 1, .score = 1.0f};
		if (shard_append(w, &s) < 0) {
			free(img);
			shard_abort(w);
			return -1;
		}
	}
	free(img);
	return shard_commit(w);
}

static const char *P(const char *name)
{
	static char buf[4][4200];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

static void test_layout(void)
{
	batcher *b = batcher_create(8, 4, VOCAB_SIZE, 1);
	CHECK_MSG(batcher_add_shard(b, P("a.h5"), 0) == 0, "%s", nb_errmsg());
	CHECK(batcher_nsamples(b) == 10 && batcher_nshards(b) == 1);
	CHECK(batcher_shard_count(b, 0) == 10 && batcher_shard_step(b, 0) == 0);
	CHECK(strcmp(batcher_shard_path(b, 0), P("a.h5")) == 0);
	/* captions of 4 and 5 words are cut to max_text-1 = 3 */
	CHECK(batcher_ntruncated(b) == 4);
	uint64_t idx[3] = {0, 2, 4}; /* 1, 3, 3 (truncated from 5) words */
	vlm_batch vb;
	batcher_make(b, idx, 3, &vb);
	CHECK(vb.B == 3 && vb.T == 4);
	const uint16_t in0[4] = {VOCAB_BOS, VOCAB_SIZE0, VOCAB_PAD, VOCAB_PAD};
	const uint16_t tg0[4] = {VOCAB_SIZE0, VOCAB_EOS, VOCAB_PAD, VOCAB_PAD};
	const uint16_t in2[4] = {VOCAB_BOS, VOCAB_SIZE0, VOCAB_COLOR0, VOCAB_SHAPE0};
	const uint16_t tg2[4] = {VOCAB_SIZE0, VOCAB_COLOR0, VOCAB_SHAPE0, VOCAB_EOS};
	CHECK(memcmp(vb.inputs, in0, sizeof in0) == 0 && memcmp(vb.targets, tg0, sizeof tg0) == 0);
	CHECK(memcmp(vb.inputs + 8, in2, sizeof in2) == 0 && memcmp(vb.targets + 8, tg2, sizeof tg2) == 0);
	CHECK(vb.keys[0] == 100 && vb.keys[1] == 102 && vb.keys[2] == 104);
	CHECK(vb.images[0] == 0 && vb.images[8 * 8 * 3] == 2 && vb.images[2 * 8 * 8 * 3 + 5] == 4);
	/* T shrinks to the longest caption of the batch */
	uint64_t one = 0;
	batcher_make(b, &one, 1, &vb);
	CHECK(vb.B == 1 && vb.T == 2);
	batcher_make(b, NULL, 0, &vb);
	CHECK(vb.B == 0);
	batcher_free(b);
}

static int is_perm(const uint64_t *v, size_t n, uint64_t lo)
{
	char *seen = calloc(n, 1);
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < lo || v[i] >= lo + n || seen[v[i] - lo])
			ok = 0;
		else
			seen[v[i] - lo] = 1;
	}
	free(seen);
	return ok;
}

static void test_order(void)
{
	batcher *a = batcher_create(8, 8, VOCAB_SIZE, 5), *b = batcher_create(8, 8, VOCAB_SIZE, 5);
	batcher *c = batcher_create(8, 8, VOCAB_SIZE, 6);
	uint64_t x[30], y[30], z[30];
	CHECK(batcher_next(a, 3, x) < 0 && test_contains(nb_errmsg(), "no training samples"));
	batcher_add_shard(a, P("a.h5"), 0);
	batcher_add_shard(b, P("a.h5"), 0);
	batcher_add_shard(c, P("a.h5"), 0);
	CHECK(batcher_next(a, 30, x) == 0 && batcher_next(b, 30, y) == 0 && batcher_next(c, 30, z) == 0);
	CHECK(memcmp(x, y, sizeof x) == 0);
	CHECK(memcmp(x, z, sizeof x) != 0);
	/* each epoch of 10 is a permutation, and epochs differ */
	CHECK(is_perm(x, 10, 0) && is_perm(x + 10, 10, 0) && is_perm(x + 20, 10, 0));
	CHECK(memcmp(x, x + 10, 10 * sizeof(uint64_t)) != 0);
	/* adding twice is refused */
	CHECK(batcher_add_shard(a, P("a.h5"), 3) < 0 && test_contains(nb_errmsg(), "already added"));

	/* streaming: 4 draws into an epoch, add 6 new samples: the next 12 draws
	 * are the 6 unseen old ones and the 6 new ones, each once */
	batcher *s = batcher_create(8, 8, VOCAB_SIZE, 9);
	batcher_add_shard(s, P("a.h5"), 0);
	uint64_t first[4], rest[12];
	batcher_next(s, 4, first);
	CHECK(batcher_add_shard(s, P("b.h5"), 4) == 0);
	CHECK(batcher_nsamples(s) == 16 && batcher_shard_step(s, 1) == 4);
	batcher_next(s, 12, rest);
	uint64_t all[16];
	memcpy(all, first, sizeof first);
	memcpy(all + 4, rest, sizeof rest);
	CHECK(is_perm(all, 16, 0));
	int new_seen = 0;
	for (int i = 0; i < 12; i++)
		new_seen += rest[i] >= 10;
	CHECK(new_seen == 6);
	CHECK(batcher_sample_id(s, 10) == 500 && batcher_sample_id(s, 15) == 505);

	/* state restore: a fresh batcher with the same shards continues identically */
	batcher *r = batcher_create(8, 8, VOCAB_SIZE, 9);
	batcher_add_shard(r, P("a.h5"), 0);
	batcher_add_shard(r, P("b.h5"), 4);
	batcher_state st;
	batcher_get_state(s, &st);
	CHECK(batcher_set_state(r, &st) == 0);
	uint64_t u[40], v[40];
	batcher_next(s, 40, u);
	batcher_next(r, 40, v);
	CHECK(memcmp(u, v, sizeof u) == 0);
	/* a state pointing past the samples is refused */
	uint64_t bad[2] = {1, 99};
	batcher_state bs = {.order = bad, .norder = 2, .cursor = 0};
	CHECK(batcher_set_state(r, &bs) < 0 && test_contains(nb_errmsg(), "sample index 99"));
	bs.order = bad;
	bs.norder = 1;
	bs.cursor = 2;
	CHECK(batcher_set_state(r, &bs) < 0 && test_contains(nb_errmsg(), "cursor 2"));

	/* watch: adds only what is new, in name order */
	batcher *w = batcher_create(8, 8, VOCAB_SIZE, 9);
	CHECK(batcher_add_shard(w, P("a.h5"), 0) == 0);
	int added = batcher_watch(w, dir, 7);
	CHECK_MSG(added == 1, "watch added %d: %s", added, nb_errmsg());
	CHECK(batcher_nshards(w) == 2 && strcmp(batcher_shard_path(w, 1), P("b.h5")) == 0);
	CHECK(batcher_watch(w, dir, 8) == 0);
	batcher_free(a);
	batcher_free(b);
	batcher_free(c);
	batcher_free(s);
	batcher_free(r);
	batcher_free(w);
}

static void test_bad_shards(void)
{
	batcher *b = batcher_create(8, 8, VOCAB_SIZE, 1);
	CHECK(batcher_add_shard(b, P("bad/images.h5"), 0) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "images.h5") && test_contains(nb_errmsg(), "not a caption shard"), "%s",
		  nb_errmsg());
	CHECK(batcher_add_shard(b, P("bad/big.h5"), 0) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "big.h5") && test_contains(nb_errmsg(), "images are 12x12") &&
			  test_contains(nb_errmsg(), "takes 8x8"),
		  "%s", nb_errmsg());
	CHECK(batcher_add_shard(b, P("bad/vocab.h5"), 0) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "vocab.h5") && test_contains(nb_errmsg(), "vocabulary digest"), "%s",
		  nb_errmsg());
	CHECK(batcher_add_shard(b, P("bad/absent.h5"), 0) < 0 && test_contains(nb_errmsg(), "absent.h5"));
	/* a model with a smaller vocabulary rejects out-of-range tokens */
	batcher *v = batcher_create(8, 8, VOCAB_SIZE0, 1);
	CHECK(batcher_add_shard(v, P("a.h5"), 0) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "a.h5") && test_contains(nb_errmsg(), "not below vocab 5"), "%s",
		  nb_errmsg());
	/* nothing was added by the failures */
	CHECK(batcher_nsamples(b) == 0 && batcher_nshards(b) == 0 && batcher_nsamples(v) == 0);
	CHECK(batcher_watch(b, P("nonexistent"), 0) < 0 && test_contains(nb_errmsg(), "nonexistent"));
	batcher_free(b);
	batcher_free(v);
}

int main(void)
{
	char *d = test_tmpdir("batcher");
	snprintf(dir, sizeof dir, "%s", d);
	free(d);
	if (write_shard("a.h5", 10, 100, 8, SHARD_CAPTIONS, NULL) < 0 ||
	    write_shard("b.h5", 6, 500, 8, SHARD_CAPTIONS, NULL) < 0) {
		fprintf(stderr, "cannot write test shards: %s\n", nb_errmsg());
		return 1;
	}
	char bad[4200];
	snprintf(bad, sizeof bad, "mkdir -p %s/bad", dir);
	if (system(bad) != 0)
		return 1;
	write_shard("bad/images.h5", 3, 0, 8, SHARD_IMAGES, NULL);
	write_shard("bad/big.h5", 3, 0, 12, SHARD_CAPTIONS, NULL);
	write_shard("bad/vocab.h5", 3, 0, 8, SHARD_CAPTIONS, "00000000deadbeef");
	test_layout();
	test_order();
	test_bad_shards();
	return test_summary("test_trainer_batcher");
}
