/* Pair shards (schemas/pair_shard.md, store/shard_store.h): the round trip
 * of chosen and rejected captions, kinds and objects; the writer's
 * refusals; the reader's refusals of corrupt pair datasets, each naming the
 * file and the cause; pair_kind_name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "store/h5util.h"
#include "store/shard_store.h"
#include "test/test_util.h"

enum { N = 70, S = 4 };   /* more than one image chunk (64) */

static shard_meta pair_meta(void)
{
	shard_meta m = {.kind = SHARD_PAIRS, .height = S, .width = S, .has_objects = 1};
	snprintf(m.origin, sizeof m.origin, "synthetic");
	snprintf(m.vocab_digest, sizeof m.vocab_digest, "%s", vocab_digest());
	snprintf(m.teacher_digest, sizeof m.teacher_digest, "0123456789abcdef");
	return m;
}

/* Sample i: chosen caption of 1 + i % 7 tokens, rejected of 1 + i % 5,
 * kind i % PAIR_KINDS. */
static void sample(int i, uint8_t *img, uint16_t *c, uint16_t *r, uint8_t *cells, shard_sample *s)
{
	for (int k = 0; k < S * S * 3; k++)
		img[k] = (uint8_t)(i * 7 + k);
	for (int k = 0; k < 8; k++) {
		c[k] = (uint16_t)(4 + (i + k) % 20);
		r[k] = (uint16_t)(5 + (i * 3 + k) % 20);
	}
	for (int k = 0; k < SCENE_CELLS; k++)
		cells[k] = (uint8_t)((i + k) % 97);
	*s = (shard_sample){.id = 100 + (uint64_t)i, .image = img, .source = "", .tokens = c, .ntokens = 1 + i % 7,
			    .score = 1.0f, .objects = cells, .rejected = r, .nrejected = 1 + i % 5,
			    .pair_kind = i % PAIR_KINDS};
}

static int write_valid(const char *path)
{
	shard_meta m = pair_meta();
	shard_writer *w = shard_create(path, &m);
	if (!w)
		return -1;
	for (int i = 0; i < N; i++) {
		uint8_t img[S * S * 3], cells[SCENE_CELLS];
		uint16_t c[8], r[8];
		shard_sample s;
		sample(i, img, c, r, cells, &s);
		if (shard_append(w, &s) < 0) {
			shard_abort(w);
			return -1;
		}
	}
	return shard_commit(w);
}

static void test_round_trip(const char *path)
{
	CHECK(write_valid(path) == 0);
	shard_reader *rd = shard_open(path);
	CHECK_MSG(rd != NULL, "%s", nb_errmsg());
	if (!rd)
		return;
	CHECK(shard_reader_meta(rd)->kind == SHARD_PAIRS && shard_count(rd) == N);
	CHECK(!strcmp(shard_reader_meta(rd)->teacher_digest, "0123456789abcdef"));
	CHECK(shard_has_checksums(rd) == 1);
	for (int i = 0; i < N; i++) {
		uint8_t img[S * S * 3], cells[SCENE_CELLS];
		uint16_t c[8], r[8];
		shard_sample want, got;
		sample(i, img, c, r, cells, &want);
		CHECK(shard_next(rd, &got) == 1);
		CHECK(got.id == want.id && got.ntokens == want.ntokens && got.nrejected == want.nrejected);
		CHECK(got.pair_kind == want.pair_kind);
		CHECK(!memcmp(got.tokens, c, sizeof(uint16_t) * (size_t)got.ntokens));
		CHECK(!memcmp(got.rejected, r, sizeof(uint16_t) * (size_t)got.nrejected));
		CHECK(!memcmp(got.image, img, sizeof img) && !memcmp(got.objects, cells, SCENE_CELLS));
	}
	shard_sample end;
	CHECK(shard_next(rd, &end) == 0);
	CHECK(shard_verify(rd) == 0);
	shard_close(rd);
}

static void test_writer_refusals(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/w.h5", dir);
	shard_meta m = pair_meta();
	shard_writer *w = shard_create(path, &m);
	CHECK(w != NULL);
	uint8_t img[S * S * 3], cells[SCENE_CELLS];
	uint16_t c[8], r[8];
	shard_sample s;
	sample(1, img, c, r, cells, &s);
	shard_sample b = s;
	b.nrejected = 0;
	CHECK(shard_append(w, &b) < 0 && test_contains(nb_errmsg(), "rejected caption of 0 tokens"));
	b = s;
	b.nrejected = SHARD_MAX_TOKENS + 1;
	CHECK(shard_append(w, &b) < 0 && test_contains(nb_errmsg(), "rejected caption of 65 tokens"));
	uint16_t pads[3] = {VOCAB_PAD, VOCAB_PAD, VOCAB_PAD};
	b = s;
	b.rejected = pads;
	b.nrejected = 3;
	CHECK(shard_append(w, &b) < 0 && test_contains(nb_errmsg(), "empty rejected caption"));
	b = s;
	b.pair_kind = PAIR_KINDS;
	CHECK(shard_append(w, &b) < 0 && test_contains(nb_errmsg(), "has kind 4 (known 0..3)"));
	CHECK(test_contains(nb_errmsg(), path));
	CHECK(shard_writer_count(w) == 0);
	CHECK(shard_append(w, &s) == 0);
	shard_abort(w);
	CHECK(access(path, F_OK) != 0);
}

typedef void (*corrupt_fn)(hid_t f);

static void replace_u64(hid_t f, const char *name, const uint64_t *v, size_t n)
{
	H5Ldelete(f, name, H5P_DEFAULT);
	hsize_t d = n;
	h5u_write_dataset(f, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &d, NULL, H5P_DEFAULT, v, NULL, 0);
}

static void c_no_rejected(hid_t f) { H5Ldelete(f, "rejected_tokens", H5P_DEFAULT); }
static void c_no_kind(hid_t f) { H5Ldelete(f, "pair_kind", H5P_DEFAULT); }
static void c_kind(hid_t f)
{
	uint8_t k[N] = {0};
	k[9] = 7;
	H5Ldelete(f, "pair_kind", H5P_DEFAULT);
	hsize_t d = N;
	h5u_write_dataset(f, "pair_kind", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &d, NULL, H5P_DEFAULT, k, NULL, 0);
}
static void c_kind_len(hid_t f)
{
	uint8_t k[N - 1] = {0};
	H5Ldelete(f, "pair_kind", H5P_DEFAULT);
	hsize_t d = N - 1;
	h5u_write_dataset(f, "pair_kind", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &d, NULL, H5P_DEFAULT, k, NULL, 0);
}
/* rejected_offsets that are not monotone, point past the end, or give an
 * empty (all-pad) caption */
static void c_roff(hid_t f, int how)
{
	uint64_t off[N + 1];
	hid_t ds = H5Dopen2(f, "rejected_offsets", H5P_DEFAULT);
	H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
	H5Dclose(ds);
	if (how == 0)
		off[5] = off[6] + 1;
	else if (how == 1)
		off[N] += 1000;
	else
		off[3] = off[2];
	replace_u64(f, "rejected_offsets", off, N + 1);
}
static void c_monotone(hid_t f) { c_roff(f, 0); }
static void c_past(hid_t f) { c_roff(f, 1); }
static void c_empty(hid_t f) { c_roff(f, 2); }
static void c_schema(hid_t f) { h5u_put_str(f, "schema", "nboost.pairz"); }

static void test_reader_refusals(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/bad.h5", dir);
	static const struct {
		corrupt_fn fn;
		const char *cause;
	} cases[] = {
		{c_no_rejected, "dataset '/rejected_tokens' is missing"},
		{c_no_kind, "dataset '/pair_kind' is missing"},
		{c_kind, "pair 9 (id 109) has kind 7 (known 0..3)"},
		{c_kind_len, "dataset '/pair_kind' has 69 entries (expected 70)"},
		{c_monotone, "'/rejected_offsets' not monotone at sample 5"},
		{c_past, "'/rejected_offsets' points past the end of its data"},
		{c_empty, "pair 2 (id 102) has an empty rejected caption"},
		{c_schema, "wrong schema 'nboost.pairz'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unlink(path);
		CHECK(write_valid(path) == 0);
		hid_t h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
		cases[i].fn(h);
		H5Fclose(h);
		shard_reader *r = shard_open(path);
		CHECK_MSG(r == NULL && test_contains(nb_errmsg(), cases[i].cause) && test_contains(nb_errmsg(), path),
			  "case %zu: expected '%s', got %s", i, cases[i].cause, r ? "success" : nb_errmsg());
		shard_close(r);
	}
}

int main(void)
{
	h5u_quiet();
	char *dir = test_tmpdir("pairshard");
	char path[4096];
	snprintf(path, sizeof path, "%s/pairs-00000.h5", dir);
	test_round_trip(path);
	test_writer_refusals(dir);
	test_reader_refusals(dir);
	CHECK(!strcmp(pair_kind_name(PAIR_ON_POLICY), "on-policy") &&
	      !strcmp(pair_kind_name(PAIR_SYNTH_SHAPE), "synthetic-shape") && !strcmp(pair_kind_name(9), "?"));
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
	free(dir);
	return test_summary("test_pair_shard");
}
