/* Self-describing shards (store/h5meta.h, schemas/provenance.md): /vocab
 * beside the token ids and its check on open (old shards without it still
 * read), the provenance group, descriptions and dimension labels, the
 * default image chunk of about 1 MiB, and the command line and time that
 * provenance records (common/nb_prov.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "common/nb_error.h"
#include "common/nb_prov.h"
#include "common/vocab.h"
#include "store/h5util.h"
#include "store/shard_store.h"
#include "test/test_util.h"

static char *dir;

/* Writes n samples of side px; returns the path (static buffer). */
static const char *write_shard(const char *name, shard_kind kind, int px, int n, const char *digest,
			       const char *options)
{
	static char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	shard_meta m = {.kind = kind, .height = px, .width = px, .options = options};
	snprintf(m.origin, sizeof m.origin, "synthetic");
	snprintf(m.vocab_digest, sizeof m.vocab_digest, "%s", digest);
	shard_writer *w = shard_create(path, &m);
	CHECK_MSG(w != NULL, "%s", nb_errmsg());
	if (!w)
		return path;
	uint8_t *img = calloc((size_t)px * px * 3, 1);
	uint16_t tok[3] = {VOCAB_SIZE0, VOCAB_SHAPE0, VOCAB_DOT};
	for (int i = 0; i < n; i++) {
		img[0] = (uint8_t)i;
		shard_sample s = {.id = (uint64_t)i, .image = img, .source = "src", .tokens = tok, .ntokens = 3,
				  .score = 1};
		CHECK_MSG(shard_append(w, &s) == 0, "%s", nb_errmsg());
	}
	free(img);
	CHECK_MSG(shard_commit(w) == 0, "%s", nb_errmsg());
	return path;
}

static void check_prov_text(void)
{
	char *argv[] = {"nboost", "synth", "--out", "a b", "it's", "--x=1"};
	nb_prov_set_argv(6, argv);
	CHECK_MSG(!strcmp(nb_prov_cmdline(), "nboost synth --out 'a b' 'it'\\''s' --x=1"), "%s", nb_prov_cmdline());
	char t[32];
	setenv("SOURCE_DATE_EPOCH", "86400", 1);
	nb_prov_time(t, sizeof t);
	CHECK_MSG(!strcmp(t, "1970-01-02T00:00:00Z"), "%s", t);
	setenv("SOURCE_DATE_EPOCH", "soon", 1);
	nb_prov_time(t, sizeof t);
	CHECK_MSG(strlen(t) == 20 && t[10] == 'T' && t[19] == 'Z' && strncmp(t, "1970", 4), "%s", t);
	setenv("SOURCE_DATE_EPOCH", "86400", 1);
	CHECK(strlen(nb_commit()) > 0 && strlen(nb_version()) > 0);
	nb_buf b = {0};
	nb_prov_json(&b, "size=48\nresize=\"pad\"");
	nb_buf_add(&b, "", 1);
	CHECK_MSG(test_contains(b.data, "\"command_line\": \"nboost synth --out 'a b' 'it'\\\\''s' --x=1\",") &&
			  test_contains(b.data, "\"created\": \"1970-01-02T00:00:00Z\"") &&
			  test_contains(b.data, "\"options\": \"size=48\\nresize=\\\"pad\\\"\""),
		  "%s", (char *)b.data);
	free(b.data);
}

static int attr_is(hid_t obj, const char *name, const char *want)
{
	char got[512], why[256];
	if (h5u_get_str(obj, name, got, sizeof got, why, sizeof why) < 0)
		return 0;
	return !strcmp(got, want);
}

static void check_default_chunks(void)
{
	struct { int px, n; hsize_t chunk; } cases[] = {
		{48, 200, (1 << 20) / (48 * 48 * 3)},   /* 151 images, 1.0 MiB */
		{256, 12, 5},                           /* 0.94 MiB (was 64: 12 MiB) */
		{1024, 2, 1},                           /* one image is over 1 MiB: 1 */
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		const char *p = write_shard("chunk.h5", SHARD_IMAGES, cases[k].px, cases[k].n, "", NULL);
		hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "images", H5P_DEFAULT);
		hid_t dcpl = H5Dget_create_plist(d);
		hsize_t ch[4] = {0};
		CHECK(H5Pget_chunk(dcpl, 4, ch) == 4);
		CHECK_MSG(ch[0] == cases[k].chunk, "%dpx: chunk of %llu images (expected %llu)", cases[k].px,
			  (unsigned long long)ch[0], (unsigned long long)cases[k].chunk);
		H5Pclose(dcpl);
		H5Dclose(d);
		H5Fclose(f);
		shard_reader *r = shard_open(p);
		shard_sample s;
		CHECK_MSG(r && shard_count(r) == (size_t)cases[k].n && shard_get(r, (size_t)cases[k].n - 1, &s) == 0 &&
				  s.image[0] == (uint8_t)(cases[k].n - 1),
			  "%s", nb_errmsg());
		shard_close(r);
	}
}

static void check_described(const char *p, int captions)
{
	hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	const char *ds[] = {"images", "ids", "sources", "source_offsets", "tokens", "offsets", "score", "vocab"};
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		if (!captions && i >= 4)
			break;
		hid_t d = H5Dopen2(f, ds[i], H5P_DEFAULT);
		char why[256], text[512];
		CHECK_MSG(d >= 0 && h5u_get_str(d, "description", text, sizeof text, why, sizeof why) == 0 &&
				  strlen(text) > 10,
			  "'/%s' has no description", ds[i]);
		char label[32] = "";
		CHECK_MSG(d >= 0 && H5DSget_label(d, 0, label, sizeof label) > 0, "'/%s' has no dimension label",
			  ds[i]);
		if (d >= 0)
			H5Dclose(d);
	}
	hid_t im = H5Dopen2(f, "images", H5P_DEFAULT);
	const char *want[] = {"sample", "height", "width", "channel"};
	for (unsigned k = 0; k < 4; k++) {
		char label[32] = "";
		H5DSget_label(im, k, label, sizeof label);
		CHECK_MSG(!strcmp(label, want[k]), "/images dimension %u is '%s'", k, label);
	}
	H5Dclose(im);
	H5Fclose(f);
}

static void check_vocab_and_provenance(void)
{
	const char *p = write_shard("cap.h5", SHARD_CAPTIONS, 8, 10, vocab_digest(), "size=8\nresize=pad");
	check_described(p, 1);
	hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t v = H5Dopen2(f, "vocab", H5P_DEFAULT);
	hid_t t = H5Dget_type(v), sp = H5Dget_space(v);
	size_t size = H5Tget_size(t);
	hssize_t n = H5Sget_simple_extent_npoints(sp);
	CHECK(n == VOCAB_SIZE && size >= 6 && H5Tget_cset(t) == H5T_CSET_UTF8);
	char *words = calloc((size_t)VOCAB_SIZE, size);
	CHECK(H5Dread(v, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, words) >= 0);
	for (int i = 0; i < VOCAB_SIZE; i++)
		CHECK_MSG(!strncmp(words + (size_t)i * size, vocab_word(i), size), "/vocab[%d]", i);
	free(words);
	H5Tclose(t);
	H5Sclose(sp);
	H5Dclose(v);
	hid_t g = H5Gopen2(f, "provenance", H5P_DEFAULT);
	char host[256];
	nb_prov_host(host, sizeof host);
	CHECK(g >= 0 && attr_is(g, "nboost_version", nb_version()) && attr_is(g, "nboost_commit", nb_commit()) &&
	      attr_is(g, "command_line", nb_prov_cmdline()) && attr_is(g, "created", "1970-01-02T00:00:00Z") &&
	      attr_is(g, "host", host) && attr_is(g, "options", "size=8\nresize=pad"));
	H5Gclose(g);
	H5Fclose(f);
	shard_reader *r = shard_open(p);
	CHECK_MSG(r != NULL, "%s", nb_errmsg());
	shard_close(r);

	/* An image shard: described, provenance without options, no /vocab. */
	p = write_shard("img.h5", SHARD_IMAGES, 8, 3, "", NULL);
	check_described(p, 0);
	f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	g = H5Gopen2(f, "provenance", H5P_DEFAULT);
	CHECK(g >= 0 && attr_is(g, "created", "1970-01-02T00:00:00Z") && H5Aexists(g, "options") == 0 &&
	      H5Lexists(f, "vocab", H5P_DEFAULT) == 0);
	H5Gclose(g);
	H5Fclose(f);
}

/* A /vocab whose words are not those of vocab_digest is refused; a shard
 * without /vocab (written before it) still opens. */
static void check_bad_vocab(void)
{
	const char *p = write_shard("tamper.h5", SHARD_CAPTIONS, 8, 4, vocab_digest(), NULL);
	hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	hid_t v = H5Dopen2(f, "vocab", H5P_DEFAULT), t = H5Dget_type(v);
	size_t size = H5Tget_size(t);
	char *words = calloc((size_t)VOCAB_SIZE, size);
	H5Dread(v, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, words);
	memcpy(words + (size_t)VOCAB_COLOR0 * size, "pink", 4);
	CHECK(H5Dwrite(v, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, words) >= 0);
	free(words);
	H5Tclose(t);
	H5Dclose(v);
	H5Fclose(f);
	shard_reader *r = shard_open(p);
	CHECK_MSG(!r && test_contains(nb_errmsg(), p) &&
			  test_contains(nb_errmsg(), "'/vocab' (27 words) does not match vocab_digest"),
		  "%s", r ? "opened" : nb_errmsg());
	shard_close(r);

	/* Another type in its place. */
	f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	H5Ldelete(f, "vocab", H5P_DEFAULT);
	int ids[3] = {1, 2, 3};
	hsize_t dims[1] = {3};
	char cause[256];
	CHECK(h5u_write_dataset(f, "vocab", H5T_STD_I32LE, H5T_NATIVE_INT, 1, dims, NULL, H5P_DEFAULT, ids, cause,
				sizeof cause) == 0);
	H5Fclose(f);
	r = shard_open(p);
	CHECK_MSG(!r && test_contains(nb_errmsg(), "dataset '/vocab' is not an array of fixed-length strings"), "%s",
		  r ? "opened" : nb_errmsg());
	shard_close(r);

	/* None at all: a shard from before /vocab. */
	f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	H5Ldelete(f, "vocab", H5P_DEFAULT);
	H5Fclose(f);
	r = shard_open(p);
	CHECK_MSG(r != NULL, "%s", nb_errmsg());
	shard_close(r);
}

int main(void)
{
	h5u_quiet();
	dir = test_tmpdir("shardmeta");
	check_prov_text();
	check_default_chunks();
	check_vocab_and_provenance();
	check_bad_vocab();
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(dir);
	return test_summary("test_shard_meta");
}
