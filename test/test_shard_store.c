/* Shard store: round trips of both kinds, sequential and random access,
 * chunk boundaries, empty shards, atomic commit and crash leftovers, and
 * every kind of bad shard (each error must name the file and the cause).
 *
 * `test_shard_store --write-pattern DIR` instead writes DIR/images.h5 and
 * DIR/captions.h5 with the pattern below, for the h5dump and h5py interop
 * scripts (test/shard_interop.sh, test/shard_h5py.py), which recompute it:
 *   N = 70, 4x5 images, 32 images per chunk, zstd level 3;
 *   image i, pixel (y, x), channel c = (7i + 11y + 13x + 17c) mod 256;
 *   id i = 1000 + 3i; source i = "src-<i>";
 *   caption i: (i mod 12) + 2 tokens, token j = (i + j) mod 27; score i = i / 100;
 *   objects of i, cell k = (i + k) mod 97. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "store/h5util.h"
#include "store/shard_store.h"
#include "test/test_util.h"

typedef struct {
	uint64_t s;
} rng;

static uint64_t rnext(rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

/* A shard's worth of sample data kept for comparison. */
typedef struct {
	size_t n;
	int h, w;
	uint64_t *ids;
	uint8_t *images;
	char (*sources)[40];
	uint16_t (*tokens)[SHARD_MAX_TOKENS];
	int *ntokens;
	float *score;
	uint8_t (*objects)[SCENE_CELLS];
} dataset;

static dataset make_random(size_t n, int h, int w, uint64_t seed)
{
	rng r = {seed};
	dataset d = {n, h, w, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
	size_t ib = (size_t)h * w * 3;
	d.ids = calloc(n + 1, sizeof *d.ids);
	d.images = calloc(n * ib + 1, 1);
	d.sources = calloc(n + 1, sizeof *d.sources);
	d.tokens = calloc(n + 1, sizeof *d.tokens);
	d.ntokens = calloc(n + 1, sizeof *d.ntokens);
	d.score = calloc(n + 1, sizeof *d.score);
	d.objects = calloc(n + 1, sizeof *d.objects);
	for (size_t i = 0; i < n; i++) {
		d.ids[i] = rnext(&r);
		for (size_t b = 0; b < ib; b++)
			d.images[i * ib + b] = (uint8_t)rnext(&r);
		if (i % 5 == 0)
			d.sources[i][0] = '\0';
		else
			snprintf(d.sources[i], sizeof d.sources[i], "http://x/%llu.png", (unsigned long long)(rnext(&r) % 100000));
		d.ntokens[i] = 1 + (int)(rnext(&r) % SHARD_MAX_TOKENS); /* empty captions are refused */
		for (int j = 0; j < d.ntokens[i]; j++)
			d.tokens[i][j] = (uint16_t)rnext(&r);
		d.score[i] = (float)(rnext(&r) % 1000) / 999.0f;
		for (int k = 0; k < SCENE_CELLS; k++)
			d.objects[i][k] = (uint8_t)(rnext(&r) % (SCENE_MAX_CODE + 1));
	}
	return d;
}

static void free_dataset(dataset *d)
{
	free(d->ids);
	free(d->images);
	free(d->sources);
	free(d->tokens);
	free(d->ntokens);
	free(d->score);
	free(d->objects);
}

static shard_sample sample_of(const dataset *d, size_t i)
{
	shard_sample s;
	memset(&s, 0, sizeof s);
	s.id = d->ids[i];
	s.image = d->images + i * (size_t)d->h * d->w * 3;
	s.source = d->sources[i];
	s.tokens = d->tokens[i];
	s.ntokens = d->ntokens[i];
	s.score = d->score[i];
	s.objects = d->objects[i];
	return s;
}

static shard_meta meta_of(shard_kind kind, const dataset *d, int has_objects, int chunk)
{
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = kind;
	m.height = d->h;
	m.width = d->w;
	m.has_objects = has_objects;
	if (kind == SHARD_CAPTIONS) {
		snprintf(m.origin, sizeof m.origin, "pseudo");
		snprintf(m.teacher_digest, sizeof m.teacher_digest, "0123456789abcdef");
		snprintf(m.vocab_digest, sizeof m.vocab_digest, "fedcba9876543210");
		m.round = 2;
		m.sigma = 0.3f;
		m.K = 4;
		m.vote = 3;
	}
	m.chunk_images = chunk;
	return m;
}

static int write_shard(const char *path, const shard_meta *m, const dataset *d)
{
	shard_writer *w = shard_create(path, m);
	if (!w) {
		fprintf(stderr, "shard_create: %s\n", nb_errmsg());
		return -1;
	}
	for (size_t i = 0; i < d->n; i++) {
		shard_sample s = sample_of(d, i);
		if (shard_append(w, &s) < 0) {
			fprintf(stderr, "shard_append: %s\n", nb_errmsg());
			shard_abort(w);
			return -1;
		}
	}
	if (shard_writer_count(w) != d->n) {
		shard_abort(w);
		return -1;
	}
	int rc = shard_commit(w);
	if (rc < 0)
		fprintf(stderr, "shard_commit: %s\n", nb_errmsg());
	return rc;
}

static int same_sample(const shard_reader *r, const dataset *d, size_t i, const shard_sample *s)
{
	const shard_meta *m = shard_reader_meta(r);
	size_t ib = (size_t)d->h * d->w * 3;
	int ok = s->id == d->ids[i] && !memcmp(s->image, d->images + i * ib, ib) && !strcmp(s->source, d->sources[i]);
	if (m->kind == SHARD_CAPTIONS)
		ok = ok && s->ntokens == d->ntokens[i] && !memcmp(s->tokens, d->tokens[i], (size_t)s->ntokens * 2) &&
		     s->score == d->score[i];
	if (m->has_objects)
		ok = ok && s->objects && !memcmp(s->objects, d->objects[i], SCENE_CELLS);
	else
		ok = ok && !s->objects;
	return ok;
}

static void check_roundtrip(const char *dir, shard_kind kind, size_t n, int chunk, int has_objects, int level)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/rt-%d-%zu-%d.h5", dir, (int)kind, n, chunk);
	dataset d = make_random(n, 6, 7, 0x9e3779b97f4a7c15ULL + n);
	shard_meta m = meta_of(kind, &d, has_objects, chunk);
	m.zstd_level = level;
	CHECK(write_shard(path, &m, &d) == 0);
	shard_reader *r = shard_open(path);
	CHECK_MSG(r != NULL, "%s", nb_errmsg());
	if (!r) {
		free_dataset(&d);
		return;
	}
	const shard_meta *got = shard_reader_meta(r);
	CHECK(shard_count(r) == n);
	CHECK(!strcmp(shard_path(r), path));
	CHECK(got->kind == kind && got->height == 6 && got->width == 7 && got->has_objects == has_objects);
	if (kind == SHARD_CAPTIONS) {
		CHECK(!strcmp(got->origin, "pseudo") && !strcmp(got->teacher_digest, "0123456789abcdef") &&
		      !strcmp(got->vocab_digest, "fedcba9876543210"));
		CHECK(got->round == 2 && got->sigma == 0.3f && got->K == 4 && got->vote == 3);
	}
	shard_sample s;
	size_t seen = 0, good = 0;
	int rc;
	for (int pass = 0; pass < 2; pass++) {
		while ((rc = shard_next(r, &s)) == 1) {
			good += same_sample(r, &d, seen % (n ? n : 1), &s);
			seen++;
		}
		CHECK(rc == 0);
		shard_rewind(r);
	}
	CHECK_MSG(seen == 2 * n && good == 2 * n, "seen %zu good %zu of %zu", seen, good, 2 * n);
	/* Random order, crossing chunks back and forth. */
	rng q = {n + 77};
	good = 0;
	for (size_t k = 0; k < 3 * n; k++) {
		size_t i = (size_t)(rnext(&q) % n);
		good += shard_get(r, i, &s) == 0 && same_sample(r, &d, i, &s);
	}
	CHECK_MSG(good == 3 * n, "random access %zu of %zu", good, 3 * n);
	CHECK(shard_get(r, n, &s) == -1 && test_contains(nb_errmsg(), "out of range"));
	shard_close(r);
	free_dataset(&d);
}

static void check_bad_writes(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/bad-write.h5", dir);
	dataset d = make_random(1, 4, 4, 5);
	shard_meta m = meta_of(SHARD_CAPTIONS, &d, 1, 8);
	m.height = 0;
	CHECK(shard_create(path, &m) == NULL && test_contains(nb_errmsg(), "image size 0x4"));
	m = meta_of(SHARD_CAPTIONS, &d, 1, 8);
	snprintf(m.origin, sizeof m.origin, "alien");
	CHECK(shard_create(path, &m) == NULL && test_contains(nb_errmsg(), "origin 'alien'"));
	m = meta_of(SHARD_CAPTIONS, &d, 1, 8);
	shard_writer *w = shard_create(path, &m);
	CHECK(w != NULL);
	shard_sample s = sample_of(&d, 0);
	s.ntokens = SHARD_MAX_TOKENS + 1;
	CHECK(shard_append(w, &s) == -1 && test_contains(nb_errmsg(), "65 tokens"));
	s = sample_of(&d, 0);
	uint8_t objs[SCENE_CELLS] = {0, 97};
	s.objects = objs;
	CHECK(shard_append(w, &s) == -1 && test_contains(nb_errmsg(), "object code 97"));
	CHECK(shard_writer_count(w) == 0);
	shard_abort(w);
	snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir);
	CHECK(shard_create(path, &m) == NULL && test_contains(nb_errmsg(), "x.h5") &&
	      test_contains(nb_errmsg(), "No such file or directory"));
	free_dataset(&d);
}

static int count_entries(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

static void check_atomic(const char *base)
{
	char dir[4096], path[4200];
	snprintf(dir, sizeof dir, "%s/atomic", base);
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/s.h5", dir);
	dataset d = make_random(200, 8, 8, 11);
	shard_meta m = meta_of(SHARD_IMAGES, &d, 0, 16);

	/* abort leaves nothing */
	shard_writer *w = shard_create(path, &m);
	for (size_t i = 0; w && i < 100; i++) {
		shard_sample s = sample_of(&d, i);
		shard_append(w, &s);
	}
	CHECK(count_entries(dir) == 1); /* the hidden temporary */
	shard_abort(w);
	CHECK(count_entries(dir) == 0);

	/* a writer killed halfway leaves only its hidden temporary */
	pid_t pid = fork();
	if (pid == 0) {
		shard_writer *cw = shard_create(path, &m);
		for (size_t i = 0; cw && i < 100; i++) {
			shard_sample s = sample_of(&d, i);
			shard_append(cw, &s);
		}
		raise(SIGKILL);
		_exit(3);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	char **paths = NULL;
	CHECK(shard_list(dir, &paths) == 0);
	shard_list_free(paths, 0);
	CHECK(count_entries(dir) == 1);
	CHECK(shard_open(path) == NULL && test_contains(nb_errmsg(), "No such file"));
	CHECK(shard_sweep_tmp(dir) == 1);
	CHECK(count_entries(dir) == 0);

	/* a live writer's temporary survives a sweep; commits appear sorted */
	snprintf(path, sizeof path, "%s/b.h5", dir);
	CHECK(write_shard(path, &m, &d) == 0);
	snprintf(path, sizeof path, "%s/a.h5", dir);
	w = shard_create(path, &m);
	CHECK(shard_sweep_tmp(dir) == 0);
	CHECK(shard_list(dir, &paths) == 1 && paths && test_contains(paths[0], "/b.h5"));
	shard_list_free(paths, 1);
	CHECK(shard_commit(w) == 0);
	int n = shard_list(dir, &paths);
	CHECK(n == 2 && test_contains(paths[0], "/a.h5") && test_contains(paths[1], "/b.h5"));
	shard_list_free(paths, n);
	CHECK(count_entries(dir) == 2);
	CHECK(shard_list("/nonexistent-nboost-dir", &paths) == -1 &&
	      test_contains(nb_errmsg(), "/nonexistent-nboost-dir"));
	free_dataset(&d);
}

static void check_identical_bytes(const char *dir)
{
	char a[4096], b[4096];
	snprintf(a, sizeof a, "%s/same-a.h5", dir);
	snprintf(b, sizeof b, "%s/same-b.h5", dir);
	/* The provenance's creation time is the one thing that may differ
	 * between two writes by one process (schemas/provenance.md). */
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	dataset d = make_random(90, 5, 5, 3);
	shard_meta m = meta_of(SHARD_CAPTIONS, &d, 1, 32);
	CHECK(write_shard(a, &m, &d) == 0);
	CHECK(write_shard(b, &m, &d) == 0);
	char cmd[8300];
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
	CHECK_MSG(system(cmd) == 0, "equal content gave different files");
	/* The two writes above may fall in the same second, so also check
	 * that no object carries a timestamp (version 2 object headers would,
	 * e.g. if the writer moved to libver "latest" without turning off
	 * H5Pset_obj_track_times). */
	hid_t f = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
	const char *objs[] = {"/", "images", "ids", "sources", "source_offsets", "tokens", "offsets", "score", "objects",
			      "provenance"};
	for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
		H5O_info_t info;
		memset(&info, 0xFF, sizeof info);
		CHECK(H5Oget_info_by_name(f, objs[i], &info, H5P_DEFAULT) >= 0);
		CHECK_MSG(info.mtime == 0 && info.ctime == 0 && info.atime == 0 && info.btime == 0,
			  "'%s' has timestamps", objs[i]);
	}
	H5Fclose(f);
	unsetenv("SOURCE_DATE_EPOCH");
	free_dataset(&d);
}

/* ---- bad shards ---- */

static void write_valid(const char *path)
{
	dataset d = make_random(40, 4, 4, 21);
	for (size_t i = 0; i < d.n; i++)
		d.ntokens[i] = (int)(i % 5) + 1;
	shard_meta m = meta_of(SHARD_CAPTIONS, &d, 1, 16);
	if (write_shard(path, &m, &d) < 0)
		abort();
	free_dataset(&d);
}

static hid_t reopen_rw(const char *path)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	if (f < 0)
		abort();
	return f;
}

static void replace_dataset(hid_t f, const char *name, hid_t type, const void *data, hsize_t n)
{
	H5Ldelete(f, name, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t ds = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (n)
		H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
	H5Dclose(ds);
	H5Sclose(sp);
}

static void overwrite_u64(hid_t f, const char *name, size_t index, uint64_t value)
{
	hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
	hid_t fs = H5Dget_space(ds);
	hsize_t start = index, count = 1;
	H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
	hid_t ms = H5Screate_simple(1, &count, NULL);
	H5Dwrite(ds, H5T_NATIVE_UINT64, ms, fs, H5P_DEFAULT, &value);
	H5Sclose(ms);
	H5Sclose(fs);
	H5Dclose(ds);
}

static void set_attr_int(hid_t f, const char *name, int v)
{
	hid_t a = H5Aopen(f, name, H5P_DEFAULT);
	H5Awrite(a, H5T_NATIVE_INT, &v);
	H5Aclose(a);
}

static void expect_bad(const char *path, const char *cause, int line)
{
	shard_reader *r = shard_open(path);
	int ok = r == NULL && test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), cause);
	if (ok)
		test_passed++;
	else {
		test_failed++;
		fprintf(stderr, "%s:%d: expected failure with '%s', got %s: %s\n", __FILE__, line, cause,
			r ? "success" : "error", nb_errmsg());
	}
	shard_close(r);
}
#define EXPECT_BAD(path, cause) expect_bad((path), (cause), __LINE__)

typedef void (*corrupt_fn)(hid_t f);

static void c_schema(hid_t f) { h5u_put_str(f, "schema", "foo"); }
static void c_version(hid_t f) { set_attr_int(f, "version", 2); }
static void c_noschema(hid_t f) { H5Adelete(f, "schema"); }
static void c_missing(hid_t f) { H5Ldelete(f, "ids", H5P_DEFAULT); }
static void c_missing_tokens(hid_t f) { H5Ldelete(f, "tokens", H5P_DEFAULT); }
static void c_dtype(hid_t f)
{
	int32_t v[40] = {0};
	replace_dataset(f, "ids", H5T_STD_I32LE, v, 40);
}
static void c_score_dtype(hid_t f)
{
	double v[40] = {0};
	replace_dataset(f, "score", H5T_IEEE_F64LE, v, 40);
}
static void c_dims(hid_t f) { set_attr_int(f, "height", 5); }
static void c_length(hid_t f)
{
	float v[39] = {0};
	replace_dataset(f, "score", H5T_IEEE_F32LE, v, 39);
}
static void c_monotone(hid_t f) { overwrite_u64(f, "offsets", 5, 1); }
static void c_past(hid_t f) { overwrite_u64(f, "offsets", 40, 100000); }
static void c_short(hid_t f) { overwrite_u64(f, "offsets", 40, 3); }
static void c_srcpast(hid_t f) { overwrite_u64(f, "source_offsets", 7, 1u << 20); }
static void c_span(hid_t f)
{
	uint16_t tok[200] = {0};
	uint64_t off[41];
	for (int i = 0; i <= 40; i++)
		off[i] = i == 0 ? 0 : (uint64_t)(i < 3 ? 65 * i : 130 + (i - 2) * 0);
	off[40] = 200;
	for (int i = 3; i < 40; i++)
		off[i] = 130;
	replace_dataset(f, "tokens", H5T_STD_U16LE, tok, 200);
	replace_dataset(f, "offsets", H5T_STD_U64LE, off, 41);
}
static void c_objects(hid_t f)
{
	hid_t ds = H5Dopen2(f, "objects", H5P_DEFAULT);
	uint8_t buf[40 * SCENE_CELLS];
	H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	buf[3 * SCENE_CELLS + 4] = 97;
	H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	H5Dclose(ds);
}
static void c_objflag(hid_t f) { set_attr_int(f, "has_objects", 0); }
static void c_origin(hid_t f) { h5u_put_str(f, "origin", "martian"); }
static void c_vlen(hid_t f)
{
	H5Adelete(f, "origin");
	hid_t t = H5Tcopy(H5T_C_S1);
	H5Tset_size(t, H5T_VARIABLE);
	hid_t sp = H5Screate(H5S_SCALAR);
	hid_t a = H5Acreate2(f, "origin", t, sp, H5P_DEFAULT, H5P_DEFAULT);
	const char *v = "human";
	H5Awrite(a, t, &v);
	H5Aclose(a);
	H5Sclose(sp);
	H5Tclose(t);
}

static void check_bad_shards(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/bad.h5", dir);

	EXPECT_BAD(path, "No such file or directory");
	FILE *f = fopen(path, "w");
	fputs("this is not an HDF5 file\n", f);
	fclose(f);
	EXPECT_BAD(path, "not an HDF5 file");
	EXPECT_BAD(dir, "not a regular file");

	static const struct {
		corrupt_fn fn;
		const char *cause;
	} cases[] = {
		{c_schema, "wrong schema 'foo' (expected nboost.images, nboost.captions or nboost.pairs v1)"},
		{c_version, "unsupported version 2 of nboost.captions (expected 1)"},
		{c_noschema, "not an nboost shard: missing attribute 'schema'"},
		{c_missing, "dataset '/ids' is missing"},
		{c_missing_tokens, "dataset '/tokens' is missing"},
		{c_dtype, "dataset '/ids' has type int32 (expected uint64)"},
		{c_score_dtype, "dataset '/score' has type float64 (expected float32)"},
		{c_dims, "'/images' is [40,4,4,3] but the attributes say 5x4 RGB"},
		{c_length, "dataset '/score' has 39 entries (expected 40)"},
		{c_monotone, "'/offsets' not monotone at sample 4"},
		{c_past, "'/offsets' points past the end of its data at sample 39"},
		{c_short, "'/offsets' not monotone at sample 39"},
		{c_srcpast, "'/source_offsets' points past the end of its data at sample 6"},
		{c_span, "sample 0 has 65 tokens (max 64)"},
		{c_objects, "sample 3 has object code 97 in cell 4 (max 96)"},
		{c_objflag, "has '/objects' but attribute has_objects is 0"},
		{c_origin, "origin 'martian' is not human, pseudo or synthetic"},
		{c_vlen, "attribute 'origin' has the wrong type"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unlink(path);
		write_valid(path);
		hid_t h = reopen_rw(path);
		cases[i].fn(h);
		H5Fclose(h);
		EXPECT_BAD(path, cases[i].cause);
	}

	/* tokens end before the last offset would silently drop tokens */
	unlink(path);
	write_valid(path);
	{
		hid_t h = reopen_rw(path);
		uint16_t tok[300] = {0};
		replace_dataset(h, "tokens", H5T_STD_U16LE, tok, 300);
		H5Fclose(h);
		EXPECT_BAD(path, "'/offsets' ends at");
	}

	/* truncated at several lengths */
	unlink(path);
	write_valid(path);
	struct stat st;
	stat(path, &st);
	char cut[4200];
	snprintf(cut, sizeof cut, "%s/cut.h5", dir);
	long lens[] = {0, 7, 512, 2048, (long)st.st_size / 2, (long)st.st_size - 100, (long)st.st_size - 1};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		char cmd[8600];
		snprintf(cmd, sizeof cmd, "head -c %ld '%s' > '%s'", lens[i], path, cut);
		CHECK(system(cmd) == 0);
		shard_reader *r = shard_open(cut);
		CHECK_MSG(r == NULL && test_contains(nb_errmsg(), cut), "cut at %ld: %s", lens[i], nb_errmsg());
		CHECK_MSG(test_contains(nb_errmsg(), "truncated") || test_contains(nb_errmsg(), "not an HDF5 file"),
			  "cut at %ld: %s", lens[i], nb_errmsg());
		shard_close(r);
	}

	/* a corrupt image chunk: open succeeds (metadata is fine), reading fails */
	{
		hid_t h = reopen_rw(path);
		hid_t ds = H5Dopen2(h, "images", H5P_DEFAULT);
		hid_t sp = H5Dget_space(ds);
		haddr_t addr = 0;
		hsize_t size = 0;
		CHECK(H5Dget_chunk_info(ds, sp, 1, NULL, NULL, &addr, &size) >= 0);
		H5Sclose(sp);
		H5Dclose(ds);
		H5Fclose(h);
		int fd = open(path, O_WRONLY);
		CHECK(fd >= 0 && pwrite(fd, "JUNKJUNK", 8, (off_t)addr) == 8);
		close(fd);
		shard_reader *r = shard_open(path);
		CHECK_MSG(r != NULL, "%s", nb_errmsg());
		shard_sample s;
		int rc = 0, got = 0;
		while (r && (rc = shard_next(r, &s)) == 1)
			got++;
		CHECK_MSG(rc == -1 && got == 0 && test_contains(nb_errmsg(), path) &&
			  test_contains(nb_errmsg(), "dataset '/images' samples 16..31") &&
			  test_contains(nb_errmsg(), "checksum mismatch"),
			  "%d %s", got, nb_errmsg());
		CHECK(r && shard_get(r, 2, &s) == 0 && s.id != 0); /* chunk 0 is intact */
		CHECK(r && shard_get(r, 20, &s) == -1 && test_contains(nb_errmsg(), "'/images' samples 16..31"));
		shard_close(r);
	}
}

/* Files whose /images use another filter pipeline (here deflate + shuffle,
 * as h5py users write) are read through H5Dread instead of raw chunks. */
static void check_other_filter(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/deflate.h5", dir);
	dataset d = make_random(45, 6, 5, 99);
	for (size_t i = 0; i < d.n * 90; i++)
		d.images[i] = (uint8_t)(d.images[i] % 8); /* compressible */
	shard_meta m = meta_of(SHARD_IMAGES, &d, 0, 16);
	CHECK(write_shard(path, &m, &d) == 0);
	hid_t f = reopen_rw(path);
	H5Ldelete(f, "images", H5P_DEFAULT);
	hsize_t dims[4] = {45, 6, 5, 3}, chunk[4] = {8, 6, 5, 3};
	hid_t sp = H5Screate_simple(4, dims, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, 4, chunk);
	H5Pset_shuffle(dcpl);
	H5Pset_deflate(dcpl, 6);
	hid_t ds = H5Dcreate2(f, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	CHECK(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.images) >= 0);
	H5Dclose(ds);
	H5Pclose(dcpl);
	H5Sclose(sp);
	H5Fclose(f);
	shard_reader *r = shard_open(path);
	CHECK_MSG(r != NULL, "%s", nb_errmsg());
	shard_sample s;
	size_t good = 0, seen = 0;
	while (r && shard_next(r, &s) == 1)
		good += same_sample(r, &d, seen++, &s);
	CHECK(seen == 45 && good == 45);
	CHECK(r && shard_get(r, 44, &s) == 0 && same_sample(r, &d, 44, &s));
	CHECK(r && shard_get(r, 3, &s) == 0 && same_sample(r, &d, 3, &s));
	shard_close(r);
	free_dataset(&d);
}

static void write_pattern(const char *dir)
{
	const int n = 70, h = 4, w = 5;
	for (int kind = 0; kind < 2; kind++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s.h5", dir, kind ? "captions" : "images");
		dataset d = make_random((size_t)n, h, w, 1);
		for (int i = 0; i < n; i++) {
			d.ids[i] = 1000 + 3 * (uint64_t)i;
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++)
					for (int c = 0; c < 3; c++)
						d.images[(((size_t)i * h + y) * w + x) * 3 + c] =
							(uint8_t)((7 * i + 11 * y + 13 * x + 17 * c) % 256);
			snprintf(d.sources[i], sizeof d.sources[i], "src-%d", i);
			d.ntokens[i] = i % 12 + 2;
			for (int j = 0; j < d.ntokens[i]; j++)
				d.tokens[i][j] = (uint16_t)((i + j) % 27);
			d.score[i] = (float)i / 100.0f;
			for (int k = 0; k < SCENE_CELLS; k++)
				d.objects[i][k] = (uint8_t)((i + k) % 97);
		}
		shard_meta m = meta_of(kind ? SHARD_CAPTIONS : SHARD_IMAGES, &d, kind, 32);
		if (write_shard(path, &m, &d) < 0)
			exit(1);
		free_dataset(&d);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--write-pattern")) {
		write_pattern(argv[2]);
		return 0;
	}
	char *dir = test_tmpdir("shard");
	check_roundtrip(dir, SHARD_IMAGES, 150, 64, 0, 0);
	check_roundtrip(dir, SHARD_IMAGES, 64, 64, 1, 1);
	check_roundtrip(dir, SHARD_CAPTIONS, 130, 16, 1, 9);
	check_roundtrip(dir, SHARD_CAPTIONS, 33, 8, 0, SHARD_NO_COMPRESSION);
	check_roundtrip(dir, SHARD_IMAGES, 1, 64, 0, 0);
	check_roundtrip(dir, SHARD_IMAGES, 0, 64, 0, 0);
	check_roundtrip(dir, SHARD_CAPTIONS, 0, 4, 1, 0);
	check_bad_writes(dir);
	check_atomic(dir);
	check_identical_bytes(dir);
	check_bad_shards(dir);
	check_other_filter(dir);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (!test_failed && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(dir);
	return test_summary("test_shard_store");
}
