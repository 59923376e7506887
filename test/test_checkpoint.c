/* Checkpoint round trip and every bad-file case: config mismatch, truncated,
 * missing tensor, wrong shape, not HDF5, wrong schema, wrong version,
 * vocabulary digest, corrupt parameters; every dataset and attribute a
 * resume reads is checksummed (a flipped bit in /adam/m or /adam/v, an
 * edited step or /state/data_order is refused, naming it); version-1 files
 * load for inference but do not resume; external storage, virtual datasets
 * and external or soft links are refused (a checkpoint must not make nboost
 * read another file). */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "store/h5util.h"
#include "test/test_util.h"

/* libhdf5 1.10.8 leaks some of its own blocks when a file's metadata fails
 * its checksum (check_flips_everywhere opens hundreds of such files); the
 * leak is in the library. Leaks of nboost's allocations are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libhdf5\n";
}

static vlm_config tiny_config(void)
{
	vlm_config c = vlm_config_default();
	c.image_size = 16;
	c.enc_dim = c.dec_dim = 16;
	c.enc_layers = c.dec_layers = 1;
	c.enc_heads = c.dec_heads = 2;
	c.mlp_ratio = 2;
	c.max_text = 8;
	return c;
}

static char dir[4096];

static const char *in_dir(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
	return buf;
}

static int copy_file(const char *from, const char *to, long limit)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	if (!a || !b)
		return -1;
	char buf[65536];
	size_t k;
	long done = 0;
	while ((k = fread(buf, 1, sizeof buf, a)) > 0) {
		if (limit >= 0 && done + (long)k > limit)
			k = (size_t)(limit - done);
		fwrite(buf, 1, k, b);
		done += (long)k;
		if (limit >= 0 && done >= limit)
			break;
	}
	fclose(a);
	fclose(b);
	return 0;
}

static long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* Opens a copy of the good checkpoint for editing with the HDF5 API. */
static hid_t edit_copy(const char *good, const char *copy)
{
	copy_file(good, copy, -1);
	return H5Fopen(copy, H5F_ACC_RDWR, H5P_DEFAULT);
}

static void expect_open_error(const char *path, const char *needle1, const char *needle2)
{
	vlm_config c = tiny_config();
	ckpt_file *f = ckpt_open(path, &c);
	CHECK_MSG(f == NULL, "%s opened", path);
	CHECK_MSG(test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), needle1) &&
			  (!needle2 || test_contains(nb_errmsg(), needle2)),
		  "message '%s' lacks '%s'/'%s'", nb_errmsg(), needle1, needle2 ? needle2 : "");
	ckpt_close(f);
}

/* ckpt_open succeeds but reading the parameters must fail. */
static void expect_params_error(const char *path, const char *needle1, const char *needle2)
{
	vlm_config c = tiny_config();
	ckpt_file *f = ckpt_open(path, &c);
	CHECK_MSG(f != NULL, "open %s: %s", path, nb_errmsg());
	if (!f)
		return;
	vlm_model *m = vlm_create(&c, 1);
	nb_errclear();
	CHECK(ckpt_read_params(f, m) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), needle1) &&
			  (!needle2 || test_contains(nb_errmsg(), needle2)),
		  "message '%s' lacks '%s'/'%s'", nb_errmsg(), needle1, needle2 ? needle2 : "");
	vlm_free(m);
	ckpt_close(f);
}

/* Flips one bit of element 0 of the float or uint64 dataset `name`. */
static void flip_bit(hid_t h, const char *name, hid_t mtype, size_t esize)
{
	unsigned char v[8] = {0};
	hsize_t start = 0, cnt = 1;
	hid_t ds = H5Dopen2(h, name, H5P_DEFAULT);
	hid_t fs = H5Dget_space(ds);
	H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
	hid_t ms = H5Screate_simple(1, &cnt, NULL);
	CHECK(H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, v) >= 0);
	v[esize - 1] ^= 0x01;
	CHECK(H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, v) >= 0);
	H5Sclose(ms);
	H5Sclose(fs);
	H5Dclose(ds);
}

/* Replaces the float dataset `name` (rank 1, n elements) by one created
 * with dcpl (external storage or a virtual layout). */
static void replace_dataset(hid_t h, const char *name, hsize_t n, hid_t dcpl)
{
	CHECK(H5Ldelete(h, name, H5P_DEFAULT) >= 0);
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t ds = H5Dcreate2(h, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	CHECK(ds >= 0);
	H5Dclose(ds);
	H5Sclose(sp);
}

/* ckpt_open refuses path, or (when it opens) reading everything does. */
static void expect_refused(const char *path, const char *needle1, const char *needle2)
{
	vlm_config c = tiny_config();
	nb_errclear();
	ckpt_file *f = ckpt_open(path, &c);
	int failed = f == NULL;
	if (f) {
		vlm_model *m = vlm_create(&c, 1);
		size_t n = vlm_nparams(m);
		float *am = calloc(n, sizeof(float)), *av = calloc(n, sizeof(float));
		failed = ckpt_read_params(f, m) < 0 || ckpt_read_adam(f, m, am, av) < 0;
		free(am);
		free(av);
		vlm_free(m);
		ckpt_close(f);
	}
	CHECK_MSG(failed, "%s was read", path);
	CHECK_MSG(test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), needle1) &&
			  (!needle2 || test_contains(nb_errmsg(), needle2)),
		  "message '%s' lacks '%s'/'%s'", nb_errmsg(), needle1, needle2 ? needle2 : "");
}

/* Flips one bit at `want` offsets spread over the whole of checkpoint
 * DIR/`name` (HDF5's metadata and the data alike); each flipped file must
 * fail to open or to read with a message naming it, or read back exactly
 * what was saved: never different parameters, optimizer state or state
 * items, never a crash. The checkpoint's own checksums cover the data and
 * attributes, HDF5's (the 1.10 format) the metadata around them. */
static void check_flips_everywhere(const char *name, const vlm_config *cfg, vlm_model *m, const float *am,
				   const float *av, const uint64_t *order, int want)
{
	char good[4200];
	long len = file_size(in_dir(good, sizeof good, name));
	CHECK(len > 0);
	if (len <= 0)
		return;
	uint8_t *img = test_read_bin(dir, name, (size_t)len);
	size_t n = vlm_nparams(m);
	vlm_model *m2 = vlm_create(cfg, 1);
	float *bm = malloc(n * sizeof(float)), *bv = malloc(n * sizeof(float));
	char p[4200];
	in_dir(p, sizeof p, "flipped-anywhere.h5");
	int flips = 0, detected = 0, harmless = 0, silent = 0, unnamed = 0;
	for (long at = 0; at < len; at += len / want > 0 ? len / want : 1) {
		uint8_t bit = (uint8_t)(1u << (flips * 3 % 8));
		img[at] ^= bit;
		test_write_bin(dir, "flipped-anywhere.h5", img, (size_t)len);
		img[at] ^= bit;
		flips++;
		nb_errclear();
		ckpt_file *f = ckpt_open(p, cfg);
		uint64_t *o = NULL;
		size_t no = 0;
		int ok = f && ckpt_read_params(f, m2) == 0 && ckpt_read_adam(f, m2, bm, bv) == 0 &&
			 ckpt_read_u64(f, "order", &o, &no) == 0;
		if (!ok) {
			detected++;
			if (!test_contains(nb_errmsg(), p) && unnamed++ < 3)
				fprintf(stderr, "flip at byte %ld: the error does not name the file: %s\n", at, nb_errmsg());
		} else if (ckpt_step(f) == 42 && ckpt_seed(f) == 0xfeedbeefcafe1234ull &&
			   !strcmp(ckpt_job_config(f), "[train]\nsteps = 9\n") &&
			   !memcmp(vlm_params(m2), vlm_params(m), n * sizeof(float)) &&
			   !memcmp(bm, am, n * sizeof(float)) && !memcmp(bv, av, n * sizeof(float)) && no == 5 &&
			   !memcmp(o, order, 5 * sizeof *order)) {
			harmless++;
		} else if (silent++ < 5) {
			fprintf(stderr, "flip at byte %ld of %ld changed the checkpoint silently\n", at, len);
		}
		free(o);
		ckpt_close(f);
	}
	printf("checkpoint: %d flips over %ld bytes: %d detected, %d harmless, %d silent\n", flips, len, detected,
	       harmless, silent);
	CHECK_MSG(silent == 0, "%d of %d flips changed the checkpoint without an error", silent, flips);
	CHECK_MSG(unnamed == 0, "%d errors do not name the checkpoint", unnamed);
	free(bm);
	free(bv);
	vlm_free(m2);
	free(img);
}

int main(void)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	char *d = test_tmpdir("checkpoint");
	snprintf(dir, sizeof dir, "%s", d);
	free(d);
	char good[4200], p[4200];
	in_dir(good, sizeof good, "good.h5");

	vlm_config cfg = tiny_config();
	vlm_model *m = vlm_create(&cfg, 2);
	CHECK(m != NULL);
	if (!m)
		return test_summary("test_checkpoint");
	vlm_init(m, 7);
	size_t n = vlm_nparams(m);
	float *am = malloc(n * sizeof(float)), *av = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		am[i] = (float)i * 0.5f;
		av[i] = 1.0f / (float)(i + 1);
	}
	uint64_t order[5] = {4, 0, 3, 1, 2};
	ckpt_item items[3] = {{.name = "order", .u64 = order, .n = 5},
			      {.name = "shards", .text = "a.h5\nb.h5"},
			      {.name = "data_order", .u64 = order, .n = 5}};
	ckpt_save_info info = {.step = 42, .seed = 0xfeedbeefcafe1234ull, .job_config = "[train]\nsteps = 9\n",
			       .adam_m = am, .adam_v = av, .items = items, .nitems = 3};
	CHECK_MSG(ckpt_save(good, m, &info) == 0, "%s", nb_errmsg());
	/* atomic write leaves no temporary behind */
	char tmp[4300];
	snprintf(tmp, sizeof tmp, "%s/.good.h5.tmp.%ld", dir, (long)getpid());
	CHECK(access(tmp, F_OK) != 0);

	/* ---- round trip ---- */
	char dg[17], dm[17];
	ckpt_params_digest(m, dm);
	CHECK(ckpt_digest(good, dg) == 0 && strcmp(dg, dm) == 0 && strlen(dg) == 16);
	ckpt_file *f = ckpt_open(good, &cfg);
	CHECK_MSG(f != NULL, "%s", nb_errmsg());
	if (f) {
		CHECK(ckpt_step(f) == 42);
		CHECK(ckpt_seed(f) == 0xfeedbeefcafe1234ull);
		CHECK(strcmp(ckpt_job_config(f), "[train]\nsteps = 9\n") == 0);
		CHECK(ckpt_has_adam(f));
		CHECK(vlm_config_equal(ckpt_config(f), &cfg));
		vlm_model *m2 = vlm_create(&cfg, 1);
		float *bm = calloc(n, sizeof(float)), *bv = calloc(n, sizeof(float));
		CHECK(ckpt_read_params(f, m2) == 0);
		CHECK(memcmp(vlm_params(m2), vlm_params(m), n * sizeof(float)) == 0);
		CHECK(ckpt_read_adam(f, m2, bm, bv) == 0);
		CHECK(memcmp(bm, am, n * sizeof(float)) == 0 && memcmp(bv, av, n * sizeof(float)) == 0);
		uint64_t *o = NULL;
		size_t no = 0;
		CHECK(ckpt_read_u64(f, "order", &o, &no) == 0 && no == 5 && o && memcmp(o, order, sizeof order) == 0);
		free(o);
		char *txt = NULL;
		CHECK(ckpt_read_text(f, "shards", &txt) == 0 && txt && strcmp(txt, "a.h5\nb.h5") == 0);
		free(txt);
		CHECK(ckpt_read_u64(f, "nope", &o, &no) < 0 && test_contains(nb_errmsg(), "'/state/nope' is missing"));
		free(bm);
		free(bv);
		vlm_free(m2);
		ckpt_close(f);
	}
	/* fewer under valgrind (each flip opens and reads a checkpoint) */
	check_flips_everywhere("good.h5", &cfg, m, am, av, order, getenv("NB_UNDER_VALGRIND") ? 40 : 400);
	vlm_model *m3 = ckpt_load_model(good, 3);
	CHECK_MSG(m3 != NULL, "%s", nb_errmsg());
	if (m3) {
		CHECK(vlm_max_batch(m3) == 3);
		CHECK(memcmp(vlm_params(m3), vlm_params(m), n * sizeof(float)) == 0);
		vlm_free(m3);
	}
	/* an inference-only checkpoint cannot be resumed */
	ckpt_save_info bare = {.step = 1, .seed = 1};
	CHECK(ckpt_save(in_dir(p, sizeof p, "bare.h5"), m, &bare) == 0);
	f = ckpt_open(p, &cfg);
	CHECK(f && !ckpt_has_adam(f));
	if (f) {
		CHECK(ckpt_read_adam(f, m, am, av) < 0 && test_contains(nb_errmsg(), "no optimizer state"));
		ckpt_close(f);
	}

	/* ---- config mismatch: every differing field listed ---- */
	vlm_config other = cfg;
	other.dec_layers = 2;
	other.max_text = 9;
	f = ckpt_open(good, &other);
	CHECK(f == NULL);
	CHECK_MSG(test_contains(nb_errmsg(), "does not match the requested model config") &&
			  test_contains(nb_errmsg(), "dec_layers 1 (checkpoint) vs 2 (requested)") &&
			  test_contains(nb_errmsg(), "max_text 8 (checkpoint) vs 9 (requested)") &&
			  !test_contains(nb_errmsg(), "enc_dim"),
		  "%s", nb_errmsg());

	/* ---- not HDF5 / missing ---- */
	FILE *t = fopen(in_dir(p, sizeof p, "text.h5"), "w");
	fputs("hello, not a checkpoint\n", t);
	fclose(t);
	expect_open_error(p, "not an HDF5 file", NULL);
	expect_open_error(in_dir(p, sizeof p, "absent.h5"), "No such file", NULL);

	/* ---- truncated: at half the size, and just before the end ---- */
	long sz = file_size(good);
	copy_file(good, in_dir(p, sizeof p, "half.h5"), sz / 2);
	expect_open_error(p, "truncated", NULL);
	copy_file(good, in_dir(p, sizeof p, "short.h5"), sz - 100);
	expect_open_error(p, "truncated", NULL);
	copy_file(good, in_dir(p, sizeof p, "tiny.h5"), 100);
	expect_open_error(p, "truncated", NULL);

	/* ---- wrong schema, wrong version, other vocabulary ---- */
	hid_t h = edit_copy(good, in_dir(p, sizeof p, "schema.h5"));
	h5u_put_str(h, "schema", "nboost.captions");
	H5Fclose(h);
	expect_open_error(p, "wrong schema 'nboost.captions' (expected nboost.checkpoint)", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "noschema.h5"));
	H5Adelete(h, "schema");
	H5Fclose(h);
	expect_open_error(p, "schema attribute missing", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "version.h5"));
	{
		int64_t v = 99;
		hid_t a = H5Aopen(h, "version", H5P_DEFAULT);
		H5Awrite(a, H5T_NATIVE_INT64, &v);
		H5Aclose(a);
	}
	H5Fclose(h);
	expect_open_error(p, "version 99", "reads versions 1 and 2");
	h = edit_copy(good, in_dir(p, sizeof p, "vocab.h5"));
	h5u_put_str(h, "vocab_digest", "0123456789abcdef");
	H5Fclose(h);
	expect_open_error(p, "vocabulary digest '0123456789abcdef'", NULL);

	/* ---- missing tensor, wrong shape, corrupt values ---- */
	h = edit_copy(good, in_dir(p, sizeof p, "missing.h5"));
	CHECK(H5Ldelete(h, "/params/head.w", H5P_DEFAULT) >= 0);
	H5Fclose(h);
	expect_params_error(p, "tensor '/params/head.w' is missing", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "shape.h5"));
	CHECK(H5Ldelete(h, "/params/head.w", H5P_DEFAULT) >= 0);
	{
		hsize_t dims[2] = {27, 15};
		hid_t sp = H5Screate_simple(2, dims, NULL);
		hid_t ds = H5Dcreate2(h, "/params/head.w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		H5Dclose(ds);
		H5Sclose(sp);
	}
	H5Fclose(h);
	expect_params_error(p, "tensor '/params/head.w' has shape [27,15], the model expects [27,16]", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "corrupt.h5"));
	{
		float one = 123.0f;
		hsize_t start = 0, cnt = 1;
		hid_t ds = H5Dopen2(h, "/params/head.b", H5P_DEFAULT);
		hid_t fs = H5Dget_space(ds);
		H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
		hid_t ms = H5Screate_simple(1, &cnt, NULL);
		H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &one);
		H5Sclose(ms);
		H5Sclose(fs);
		H5Dclose(ds);
	}
	H5Fclose(h);
	expect_params_error(p, "dataset '/params/head.b' does not match its checksum", "edited or corrupt");
	h = edit_copy(good, in_dir(p, sizeof p, "noadam.h5"));
	CHECK(H5Ldelete(h, "/adam/v/dec.0.mlp.fc2.b", H5P_DEFAULT) >= 0);
	H5Fclose(h);
	f = ckpt_open(p, &cfg);
	CHECK(f != NULL);
	if (f) {
		CHECK(ckpt_read_adam(f, m, am, av) < 0 &&
		      test_contains(nb_errmsg(), "tensor '/adam/v/dec.0.mlp.fc2.b' is missing"));
		ckpt_close(f);
	}

	/* ---- tampering with what a resume reads: each named ---- */
	h = edit_copy(good, in_dir(p, sizeof p, "flip-m.h5"));
	flip_bit(h, "/adam/m/dec.0.mlp.fc2.b", H5T_NATIVE_FLOAT, sizeof(float));
	H5Fclose(h);
	expect_refused(p, "dataset '/adam/m/dec.0.mlp.fc2.b' does not match its checksum", "edited or corrupt");
	h = edit_copy(good, in_dir(p, sizeof p, "flip-v.h5"));
	flip_bit(h, "/adam/v/head.b", H5T_NATIVE_FLOAT, sizeof(float));
	H5Fclose(h);
	expect_refused(p, "dataset '/adam/v/head.b' does not match its checksum", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "step.h5"));
	CHECK(h5u_put_i64(h, "step", 43) == 0);
	H5Fclose(h);
	expect_refused(p, "attribute 'step' does not match its checksum", "edited or corrupt");
	h = edit_copy(good, in_dir(p, sizeof p, "seed.h5"));
	CHECK(h5u_put_u64(h, "seed", 7) == 0);
	H5Fclose(h);
	expect_refused(p, "attribute 'seed' does not match its checksum", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "job.h5"));
	CHECK(h5u_put_str(h, "job_config", "[train]\nsteps = 10\n") == 0);
	H5Fclose(h);
	expect_refused(p, "attribute 'job_config' does not match its checksum", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "order.h5"));
	flip_bit(h, "/state/data_order", H5T_NATIVE_UINT64, sizeof(uint64_t));
	H5Fclose(h);
	f = ckpt_open(p, &cfg);
	CHECK_MSG(f != NULL, "%s", nb_errmsg());
	if (f) {
		uint64_t *o = NULL;
		size_t no = 0;
		CHECK(ckpt_read_u64(f, "data_order", &o, &no) < 0);
		CHECK_MSG(test_contains(nb_errmsg(), p) &&
				  test_contains(nb_errmsg(), "dataset '/state/data_order' does not match its checksum"),
			  "%s", nb_errmsg());
		free(o);
		ckpt_close(f);
	}
	/* a checksum attribute removed is as bad as a wrong one */
	h = edit_copy(good, in_dir(p, sizeof p, "nosum.h5"));
	{
		hid_t ds = H5Dopen2(h, "/adam/m/head.b", H5P_DEFAULT);
		CHECK(H5Adelete(ds, "fnv1a64") >= 0);
		H5Dclose(ds);
	}
	H5Fclose(h);
	expect_refused(p, "'/adam/m/head.b'", "checksum");

	/* ---- a version-1 file (no checksums): inference yes, resume no ---- */
	h = edit_copy(good, in_dir(p, sizeof p, "v1.h5"));
	CHECK(h5u_put_i64(h, "version", 1) == 0);
	H5Fclose(h);
	m3 = ckpt_load_model(p, 1);
	CHECK_MSG(m3 != NULL, "%s", nb_errmsg());
	vlm_free(m3);
	f = ckpt_open(p, &cfg);
	CHECK(f != NULL);
	if (f) {
		CHECK(ckpt_read_adam(f, m, am, av) < 0);
		CHECK_MSG(test_contains(nb_errmsg(), p) && test_contains(nb_errmsg(), "written by an older nboost"),
			  "%s", nb_errmsg());
		uint64_t *o = NULL;
		size_t no = 0;
		CHECK(ckpt_read_u64(f, "order", &o, &no) < 0 && test_contains(nb_errmsg(), "older nboost"));
		free(o);
		ckpt_close(f);
	}

	/* ---- data outside the file: external storage, virtual, links ---- */
	char secret[4200];
	in_dir(secret, sizeof secret, "secret.bin");
	t = fopen(secret, "wb");
	for (int i = 0; i < 4096; i++)
		fputc('s', t);
	fclose(t);
	h = edit_copy(good, in_dir(p, sizeof p, "external.h5"));
	{
		hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
		CHECK(H5Pset_external(dcpl, secret, 0, 27 * sizeof(float)) >= 0);
		replace_dataset(h, "/params/head.b", 27, dcpl);
		H5Pclose(dcpl);
	}
	H5Fclose(h);
	expect_refused(p, "dataset '/params/head.b' stores its data in an external file", secret);
	h = edit_copy(good, in_dir(p, sizeof p, "virtual.h5"));
	{
		hsize_t n27 = 27;
		hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
		hid_t vs = H5Screate_simple(1, &n27, NULL), ss = H5Screate_simple(1, &n27, NULL);
		CHECK(H5Pset_virtual(dcpl, vs, secret, "/data", ss) >= 0);
		replace_dataset(h, "/params/head.b", 27, dcpl);
		H5Sclose(vs);
		H5Sclose(ss);
		H5Pclose(dcpl);
	}
	H5Fclose(h);
	expect_refused(p, "dataset '/params/head.b' is a virtual dataset", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "extlink.h5"));
	CHECK(H5Ldelete(h, "/params/head.w", H5P_DEFAULT) >= 0);
	CHECK(H5Lcreate_external(good, "/params/head.w", h, "/params/head.w", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	H5Fclose(h);
	expect_refused(p, "'/params/head.w' is an external link", good);
	h = edit_copy(good, in_dir(p, sizeof p, "extgroup.h5"));
	CHECK(H5Ldelete(h, "/adam", H5P_DEFAULT) >= 0);
	CHECK(H5Lcreate_external(good, "/adam", h, "/adam", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	H5Fclose(h);
	expect_refused(p, "'/adam' is an external link", NULL);
	h = edit_copy(good, in_dir(p, sizeof p, "softlink.h5"));
	CHECK(H5Ldelete(h, "/params/head.w", H5P_DEFAULT) >= 0);
	CHECK(H5Lcreate_soft("/adam/m/head.w", h, "/params/head.w", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	H5Fclose(h);
	expect_refused(p, "'/params/head.w' is a soft link", NULL);

	/* ---- unwritable destination ---- */
	CHECK(ckpt_save("/nonexistent-dir/x.h5", m, &info) < 0 &&
	      test_contains(nb_errmsg(), "cannot write checkpoint '/nonexistent-dir/x.h5'") &&
	      test_contains(nb_errmsg(), "No such file or directory"));
	CHECK(access("/nonexistent-dir", F_OK) != 0);

	free(am);
	free(av);
	vlm_free(m);
	return test_summary("test_checkpoint");
}
