/* Shard store guards (issue #13): a shard must not make the reader touch any
 * other file (external raw storage, external links, virtual datasets, soft
 * links); shard_list refuses entries that are not regular files instead of
 * skipping them; empty captions (no token but <pad>) are refused on write
 * and on read; shard_sweep_tmp treats a zombie writer as dead. Each error
 * must name the file (or entry) and the cause. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "store/h5util.h"
#include "store/shard_store.h"
#include "test/test_util.h"

#define SECRET "root:x:0:0:secret"

static char *dir;

static void path_of(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

/* A valid caption shard of 3 samples, 2x2 images, sources "" (so /sources
 * is empty), captions of 2 tokens. */
static void write_small(const char *path)
{
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_CAPTIONS;
	m.height = m.width = 2;
	snprintf(m.origin, sizeof m.origin, "human");
	shard_writer *w = shard_create(path, &m);
	if (!w) {
		fprintf(stderr, "%s\n", nb_errmsg());
		abort();
	}
	uint8_t img[12] = {1, 2, 3};
	uint16_t tok[2] = {VOCAB_SIZE0, VOCAB_COLOR0};
	for (int i = 0; i < 3; i++) {
		shard_sample s = {.id = 10 + (uint64_t)i, .image = img, .source = "", .tokens = tok, .ntokens = 2,
				  .score = 1};
		if (shard_append(w, &s) < 0) {
			fprintf(stderr, "%s\n", nb_errmsg());
			abort();
		}
	}
	if (shard_commit(w) < 0) {
		fprintf(stderr, "%s\n", nb_errmsg());
		abort();
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

/* secret.h5 with /leak (uint8, the secret) and /g/leak (same). */
static void write_secret_h5(const char *path)
{
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hsize_t n = strlen(SECRET);
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t g = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	hid_t locs[2] = {f, g};
	for (int i = 0; i < 2; i++) {
		hid_t ds = H5Dcreate2(locs[i], "leak", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, SECRET);
		H5Dclose(ds);
	}
	H5Gclose(g);
	H5Sclose(sp);
	H5Fclose(f);
}

/* Replaces /sources with a dataset of strlen(SECRET) bytes made by `make`
 * and /source_offsets with [0, len, len, len], so that, read naively,
 * sample 0's source is the secret. */
typedef void (*make_fn)(hid_t f, hsize_t n);

static void make_external_storage(hid_t f, hsize_t n)
{
	char secret[4096];
	path_of(secret, sizeof secret, "passwd");
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_external(dcpl, secret, 0, n);
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t ds = H5Dcreate2(f, "sources", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Pclose(dcpl);
}

static void make_external_link(hid_t f, hsize_t n)
{
	(void)n;
	char secret[4096];
	path_of(secret, sizeof secret, "secret.h5");
	H5Lcreate_external(secret, "/leak", f, "sources", H5P_DEFAULT, H5P_DEFAULT);
}

static void make_virtual(hid_t f, hsize_t n)
{
	char secret[4096];
	path_of(secret, sizeof secret, "secret.h5");
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_virtual(dcpl, sp, secret, "/leak", sp);
	hid_t ds = H5Dcreate2(f, "sources", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Dclose(ds);
	H5Pclose(dcpl);
	H5Sclose(sp);
}

static void make_soft_link(hid_t f, hsize_t n)
{
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t ds = H5Dcreate2(f, "hidden", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, SECRET);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Lcreate_soft("/hidden", f, "sources", H5P_DEFAULT, H5P_DEFAULT);
}

static void craft_sources(const char *path, make_fn make)
{
	write_small(path);
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	if (f < 0)
		abort();
	H5Ldelete(f, "sources", H5P_DEFAULT);
	H5Ldelete(f, "source_offsets", H5P_DEFAULT);
	hsize_t n = strlen(SECRET), four = 4;
	uint64_t off[4] = {0, n, n, n};
	hid_t sp = H5Screate_simple(1, &four, NULL);
	hid_t ds = H5Dcreate2(f, "source_offsets", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
	H5Dclose(ds);
	H5Sclose(sp);
	make(f, n);
	H5Fclose(f);
}

static void expect_refused(const char *name, make_fn make, const char *cause)
{
	char path[4096];
	path_of(path, sizeof path, name);
	craft_sources(path, make);
	shard_reader *r = shard_open(path);
	shard_sample s;
	if (r && shard_next(r, &s) == 1)
		fprintf(stderr, "%s: sample 0 has source '%s'\n", name, s.source);
	CHECK_MSG(r == NULL && test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), "'/sources'") &&
			  test_contains(nb_errmsg(), cause),
		  "%s: expected a refusal naming the shard, '/sources' and '%s', got %s: %s", name, cause,
		  r ? "success" : "error", nb_errmsg());
	shard_close(r);
}

static void check_foreign_data(void)
{
	char p[4096];
	path_of(p, sizeof p, "passwd");
	write_file(p, SECRET);
	path_of(p, sizeof p, "secret.h5");
	write_secret_h5(p);
	expect_refused("external-storage.h5", make_external_storage, "external file");
	expect_refused("external-link.h5", make_external_link, "external link");
	expect_refused("virtual.h5", make_virtual, "virtual dataset");
	expect_refused("soft-link.h5", make_soft_link, "soft link");
}

/* The helper the checkpoint reader calls: nested paths are checked link by
 * link, so an external link on a group is refused before it is followed. */
static void check_open_dataset_safe(void)
{
	char path[4096], secret[4096], why[512];
	path_of(path, sizeof path, "nested.h5");
	path_of(secret, sizeof secret, "secret.h5");
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	hsize_t n = 3;
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t ds = H5Dcreate2(g, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Gclose(g);
	H5Lcreate_external(secret, "/g", f, "adam", H5P_DEFAULT, H5P_DEFAULT);
	H5Fclose(f);
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t d = h5u_open_dataset_safe(f, "/params/w", why, sizeof why);
	CHECK_MSG(d >= 0, "%s", why);
	if (d >= 0)
		H5Dclose(d);
	d = h5u_open_dataset_safe(f, "/adam/leak", why, sizeof why);
	CHECK_MSG(d < 0 && test_contains(why, "'/adam'") && test_contains(why, "external link"), "%s", why);
	if (d >= 0)
		H5Dclose(d);
	d = h5u_open_dataset_safe(f, "/params/none", why, sizeof why);
	CHECK_MSG(d < 0 && test_contains(why, "'/params/none'") && test_contains(why, "missing"), "%s", why);
	d = h5u_open_dataset_safe(f, "/params", why, sizeof why);
	CHECK_MSG(d < 0 && test_contains(why, "'/params'") && test_contains(why, "not a dataset"), "%s", why);
	H5Fclose(f);
}

/* shard_open_image (the fuzz target's entry): the same validation on a
 * file image in memory; no file of the label's name is touched. */
static void check_open_image(void)
{
	char path[4096];
	path_of(path, sizeof path, "image-src.h5");
	write_small(path);
	FILE *f = fopen(path, "rb");
	static uint8_t buf[1 << 20];
	size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (f)
		fclose(f);
	CHECK(n > 0 && n < sizeof buf);
	shard_reader *r = shard_open_image(buf, n, "in-memory.h5");
	shard_sample s;
	int got = 0;
	while (r && shard_next(r, &s) == 1)
		got += s.id == 10 + (uint64_t)got && s.ntokens == 2;
	CHECK_MSG(r && got == 3 && shard_has_checksums(r), "%s", r ? "bad samples" : nb_errmsg());
	shard_close(r);
	r = shard_open_image(buf, 100, "cut.h5");
	CHECK_MSG(!r && test_contains(nb_errmsg(), "cannot open shard 'cut.h5'"), "%s", nb_errmsg());
	shard_close(r);
	path_of(path, sizeof path, "external-link.h5");
	f = fopen(path, "rb");
	n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (f)
		fclose(f);
	r = shard_open_image(buf, n, "link.h5");
	CHECK_MSG(!r && test_contains(nb_errmsg(), "'link.h5'") && test_contains(nb_errmsg(), "external link"), "%s",
		  nb_errmsg());
	shard_close(r);
}

/* ---- shard_list ---- */

static void expect_list_error(const char *sub, const char *entry, const char *cause)
{
	char d[4096], p[4200];
	path_of(d, sizeof d, sub);
	snprintf(p, sizeof p, "%s/%s", d, entry);
	char **paths = NULL;
	alarm(20); /* a FIFO must never be opened: a blocked open would hang here */
	int n = shard_list(d, &paths);
	alarm(0);
	CHECK_MSG(n < 0 && test_contains(nb_errmsg(), p) && test_contains(nb_errmsg(), cause),
		  "%s: expected an error naming '%s' and '%s', got %d: %s", sub, p, cause, n, n < 0 ? nb_errmsg() : "");
	if (n >= 0)
		shard_list_free(paths, n);
}

static void make_listdir(const char *sub, char *d, size_t n)
{
	path_of(d, n, sub);
	mkdir(d, 0755);
	char p[4200];
	snprintf(p, sizeof p, "%s/shard-000000.h5", d);
	write_small(p);
}

static void check_list(void)
{
	char d[4096], p[4200], t[4200];
	make_listdir("dangling", d, sizeof d);
	snprintf(p, sizeof p, "%s/shard-000001.h5", d);
	snprintf(t, sizeof t, "%s/gone.h5", d);
	CHECK(symlink(t, p) == 0);
	expect_list_error("dangling", "shard-000001.h5", "dangling symbolic link");

	make_listdir("fifo", d, sizeof d);
	snprintf(p, sizeof p, "%s/shard-000001.h5", d);
	CHECK(mkfifo(p, 0644) == 0);
	expect_list_error("fifo", "shard-000001.h5", "FIFO");

	make_listdir("subdir", d, sizeof d);
	snprintf(p, sizeof p, "%s/shard-000001.h5", d);
	CHECK(mkdir(p, 0755) == 0);
	expect_list_error("subdir", "shard-000001.h5", "directory");

	/* a symbolic link to a good shard is fine; so are hidden entries and
	 * other names */
	make_listdir("goodlink", d, sizeof d);
	snprintf(p, sizeof p, "%s/shard-000001.h5", d);
	snprintf(t, sizeof t, "%s/shard-000000.h5", d);
	CHECK(symlink(t, p) == 0);
	snprintf(p, sizeof p, "%s/.hidden.h5", d);
	CHECK(mkfifo(p, 0644) == 0);
	snprintf(p, sizeof p, "%s/notes", d);
	CHECK(mkdir(p, 0755) == 0);
	char **paths = NULL;
	int n = shard_list(d, &paths);
	CHECK_MSG(n == 2, "%d: %s", n, nb_errmsg());
	if (n >= 0)
		shard_list_free(paths, n);
}

/* ---- empty captions ---- */

static void check_empty_caption_write(void)
{
	char path[4096];
	path_of(path, sizeof path, "empty-write.h5");
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_CAPTIONS;
	m.height = m.width = 2;
	snprintf(m.origin, sizeof m.origin, "pseudo");
	shard_writer *w = shard_create(path, &m);
	CHECK_MSG(w != NULL, "%s", nb_errmsg());
	if (!w)
		return;
	uint8_t img[12] = {0};
	uint16_t pads[3] = {VOCAB_PAD, VOCAB_PAD, VOCAB_PAD}, good[1] = {VOCAB_SHAPE0};
	shard_sample s = {.id = 77, .image = img, .source = "", .tokens = good, .ntokens = 0, .score = 1};
	CHECK_MSG(shard_append(w, &s) < 0 && test_contains(nb_errmsg(), path) &&
			  test_contains(nb_errmsg(), "sample 77") && test_contains(nb_errmsg(), "empty caption"),
		  "no tokens: %s", nb_errmsg());
	s.id = 78;
	s.tokens = pads;
	s.ntokens = 3;
	CHECK_MSG(shard_append(w, &s) < 0 && test_contains(nb_errmsg(), path) &&
			  test_contains(nb_errmsg(), "sample 78") && test_contains(nb_errmsg(), "empty caption"),
		  "only <pad>: %s", nb_errmsg());
	CHECK(shard_writer_count(w) == 0);
	s.id = 79;
	s.tokens = good;
	s.ntokens = 1;
	CHECK_MSG(shard_append(w, &s) == 0, "%s", nb_errmsg());
	CHECK_MSG(shard_commit(w) == 0, "%s", nb_errmsg());
}

/* Rewrites /tokens (4 entries) and /offsets (4 entries) of a write_small
 * shard, bypassing the writer's check. */
static void craft_captions(const char *path, const uint16_t *tok, hsize_t ntok, const uint64_t *off)
{
	write_small(path);
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	H5Ldelete(f, "tokens", H5P_DEFAULT);
	H5Ldelete(f, "offsets", H5P_DEFAULT);
	hsize_t four = 4;
	hid_t sp = H5Screate_simple(1, &ntok, NULL);
	hid_t ds = H5Dcreate2(f, "tokens", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok);
	H5Dclose(ds);
	H5Sclose(sp);
	sp = H5Screate_simple(1, &four, NULL);
	ds = H5Dcreate2(f, "offsets", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Fclose(f);
}

static void check_empty_caption_read(void)
{
	char path[4096];
	const uint16_t tok[6] = {5, 7, 0, 0, 9, 15};
	const uint64_t pad_off[4] = {0, 2, 4, 6}, none_off[4] = {0, 2, 2, 4};
	path_of(path, sizeof path, "empty-pad.h5");
	craft_captions(path, tok, 6, pad_off);
	shard_reader *r = shard_open(path);
	CHECK_MSG(r == NULL && test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), "sample 1 (id 11)") &&
			  test_contains(nb_errmsg(), "empty caption"),
		  "only <pad>: %s", r ? "opened" : nb_errmsg());
	shard_close(r);
	const uint16_t tok4[4] = {5, 7, 9, 15};
	path_of(path, sizeof path, "empty-none.h5");
	craft_captions(path, tok4, 4, none_off);
	r = shard_open(path);
	CHECK_MSG(r == NULL && test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), "sample 1 (id 11)") &&
			  test_contains(nb_errmsg(), "empty caption"),
		  "no tokens: %s", r ? "opened" : nb_errmsg());
	shard_close(r);
}

/* ---- shard_sweep_tmp and zombies ---- */

static char proc_state(pid_t pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *close = strrchr(buf, ')');
	return close && close[1] == ' ' ? close[2] : '?';
}

static void check_sweep_zombie(void)
{
	char d[4096], p[4200];
	path_of(d, sizeof d, "sweep");
	mkdir(d, 0755);
	pid_t zombie = fork();
	if (zombie == 0)
		_exit(0);
	pid_t live = fork();
	if (live == 0) {
		pause();
		_exit(0);
	}
	for (int i = 0; i < 2000 && proc_state(zombie) != 'Z'; i++)
		usleep(5000);
	CHECK(proc_state(zombie) == 'Z');
	snprintf(p, sizeof p, "%s/.a.h5.tmp.%d", d, (int)zombie);
	write_file(p, "x");
	char q[4200];
	snprintf(q, sizeof q, "%s/.b.h5.tmp.%d", d, (int)live);
	write_file(q, "x");
	int removed = shard_sweep_tmp(d);
	CHECK_MSG(removed == 1, "removed %d", removed);
	CHECK_MSG(access(p, F_OK) != 0, "the zombie writer's temporary is still there");
	CHECK_MSG(access(q, F_OK) == 0, "the live writer's temporary was removed");
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	waitpid(zombie, NULL, 0);
}

int main(void)
{
	h5u_quiet();
	if (shard_zstd_register() < 0)
		return 1;
	dir = test_tmpdir("shard-guard");
	check_foreign_data();
	check_open_dataset_safe();
	check_open_image();
	check_list();
	check_empty_caption_write();
	check_empty_caption_read();
	check_sweep_zombie();
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (!test_failed && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(dir);
	return test_summary("test_shard_guard");
}
