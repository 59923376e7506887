/* Shard checksums (issue #13): every chunk of every dataset carries a
 * Fletcher-32 checksum, so a single flipped bit anywhere in chunk data is an
 * error naming the shard, the dataset and the chunk's row range, never wrong
 * data. Bits are flipped at spread offsets of every chunk of every dataset
 * (chunk addresses from H5Dget_chunk_info), for a zstd and an unfiltered
 * shard; each flipped file is opened and read completely. Also: HDF5's own
 * filter pipeline reads the writer's chunks (our checksum is HDF5's), a
 * shard written without checksums (as before) is read with a warning printed
 * once per process, and a flipped bit anywhere outside the chunks (HDF5's
 * own metadata: superblock, object headers with the attributes, chunk
 * indexes) is an error or changes nothing, never a crash or silently
 * different data or metadata: shards are written with HDF5's 1.10 file
 * format, whose metadata blocks all carry checksums. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "store/h5util.h"
#include "store/shard_store.h"
#include "test/test_util.h"

/* libhdf5 1.10.8 leaks some of its own blocks when a file's metadata fails
 * its checksum (check_metadata_flips opens thousands of such files); the
 * leak is in the library, as in the fuzz targets (fuzz_shard_reader.c).
 * Leaks of nboost's allocations are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libhdf5\n";
}

#define N 40
#define H 6
#define W 5
#define CHUNK 16
#define FLIPS_PER_CHUNK 10

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

typedef struct {
	uint8_t images[N][H * W * 3];
	uint64_t ids[N];
	char sources[N][16];
	uint16_t tokens[N][8];
	int ntokens[N];
	float score[N];
	uint8_t objects[N][SCENE_CELLS];
} data;

static void make_data(data *d)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < N; i++) {
		for (int b = 0; b < H * W * 3; b++)
			d->images[i][b] = (uint8_t)rnd(&s); /* noise: zstd stores raw blocks */
		d->ids[i] = rnd(&s);
		snprintf(d->sources[i], sizeof d->sources[i], "s%d", (int)(rnd(&s) % 100000));
		d->ntokens[i] = 1 + (int)(rnd(&s) % 8);
		for (int j = 0; j < d->ntokens[i]; j++)
			d->tokens[i][j] = (uint16_t)(5 + rnd(&s) % 22);
		d->score[i] = (float)(rnd(&s) % 1000) / 999.0f;
		for (int k = 0; k < SCENE_CELLS; k++)
			d->objects[i][k] = (uint8_t)(rnd(&s) % (SCENE_MAX_CODE + 1));
	}
}

static shard_meta meta_for(int level, int no_checksum)
{
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_CAPTIONS;
	m.height = H;
	m.width = W;
	m.has_objects = 1;
	snprintf(m.origin, sizeof m.origin, "pseudo");
	m.zstd_level = level;
	m.chunk_images = CHUNK;
	m.no_checksum = no_checksum;
	return m;
}

static void write_shard(const char *path, const data *d, int level, int no_checksum)
{
	shard_meta m = meta_for(level, no_checksum);
	shard_writer *w = shard_create(path, &m);
	if (!w) {
		fprintf(stderr, "%s\n", nb_errmsg());
		abort();
	}
	for (int i = 0; i < N; i++) {
		shard_sample s = {.id = d->ids[i], .image = d->images[i], .source = d->sources[i],
				  .tokens = d->tokens[i], .ntokens = d->ntokens[i], .score = d->score[i],
				  .objects = d->objects[i]};
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

/* 1 when every sample reads back equal to d, 0 when one differs, -1 on a
 * read error (nb_errmsg). */
static int read_all(shard_reader *r, const data *d)
{
	shard_sample s;
	int rc, i = 0, same = 1;
	while ((rc = shard_next(r, &s)) == 1) {
		same = same && s.id == d->ids[i] && !memcmp(s.image, d->images[i], H * W * 3) &&
		       !strcmp(s.source, d->sources[i]) && s.ntokens == d->ntokens[i] &&
		       !memcmp(s.tokens, d->tokens[i], (size_t)s.ntokens * 2) && s.score == d->score[i] &&
		       !memcmp(s.objects, d->objects[i], SCENE_CELLS);
		i++;
	}
	if (rc < 0)
		return -1;
	return same && i == N;
}

/* A stored chunk: where it lies in the file and which rows it holds. */
typedef struct {
	const char *dataset, *unit;
	haddr_t addr;
	hsize_t size, first, last;
} chunk_at;

static const struct {
	const char *name, *unit;
} datasets[] = {
	{"images", "samples"}, {"ids", "samples"},   {"sources", "bytes"},  {"source_offsets", "entries"},
	{"tokens", "tokens"},  {"offsets", "entries"}, {"score", "samples"}, {"objects", "samples"},
};
#define NDATASETS (sizeof datasets / sizeof datasets[0])

static int list_chunks(const char *path, chunk_at *out, int max)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	int n = 0;
	for (size_t k = 0; k < NDATASETS; k++) {
		hid_t ds = H5Dopen2(f, datasets[k].name, H5P_DEFAULT);
		hid_t sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
		hsize_t dims[4], cdims[4], nchunks = 0;
		H5Sget_simple_extent_dims(sp, dims, NULL);
		H5Pget_chunk(dcpl, 4, cdims);
		H5Dget_num_chunks(ds, sp, &nchunks);
		for (hsize_t c = 0; c < nchunks && n < max; c++) {
			hsize_t off[4];
			chunk_at *a = &out[n++];
			a->dataset = datasets[k].name;
			a->unit = datasets[k].unit;
			H5Dget_chunk_info(ds, sp, c, off, NULL, &a->addr, &a->size);
			a->first = off[0];
			a->last = off[0] + cdims[0] > dims[0] ? dims[0] - 1 : off[0] + cdims[0] - 1;
		}
		H5Pclose(dcpl);
		H5Sclose(sp);
		H5Dclose(ds);
	}
	H5Fclose(f);
	return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st) < 0)
		abort();
	uint8_t *b = malloc((size_t)st.st_size);
	if (fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		abort();
	fclose(f);
	*len = (size_t)st.st_size;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0)
		abort();
}

/* Flips bits across every chunk of `good`; every flip must be reported
 * (naming the shard, the dataset and the chunk's rows) or leave the data
 * unchanged. With checksums every single-bit flip is detected. */
static void check_flips(const char *dir, const char *good, const data *d, const char *label)
{
	chunk_at chunks[64];
	int nc = list_chunks(good, chunks, 64);
	CHECK_MSG(nc >= (int)NDATASETS + 2, "%s: only %d chunks", label, nc);
	size_t len;
	uint8_t *orig = slurp(good, &len);
	char path[4096];
	snprintf(path, sizeof path, "%s/flipped.h5", dir);
	int flips = 0, detected = 0, harmless = 0, silent = 0;
	for (int c = 0; c < nc; c++) {
		const chunk_at *a = &chunks[c];
		char rows[128], name[64];
		snprintf(rows, sizeof rows, "%s %llu..%llu", a->unit, (unsigned long long)a->first,
			 (unsigned long long)a->last);
		snprintf(name, sizeof name, "'/%s'", a->dataset);
		for (int k = 0; k < FLIPS_PER_CHUNK; k++) {
			/* spread over the chunk, the last bytes (the checksum) included */
			hsize_t at = k == FLIPS_PER_CHUNK - 1 ? a->size - 1 : a->size * (hsize_t)k / (FLIPS_PER_CHUNK - 1);
			size_t byte = (size_t)(a->addr + at);
			if (byte >= len)
				continue;
			orig[byte] ^= (uint8_t)(1u << (k * 3 % 8));
			spit(path, orig, len);
			orig[byte] ^= (uint8_t)(1u << (k * 3 % 8));
			flips++;
			shard_reader *r = shard_open(path);
			int rc = r ? read_all(r, d) : -1;
			if (rc < 0) {
				detected++;
				CHECK_MSG(test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), name) &&
						  test_contains(nb_errmsg(), rows) && test_contains(nb_errmsg(), "checksum"),
					  "%s: flip at byte %llu of %s chunk %s: message lacks the shard, %s, '%s' or "
					  "'checksum': %s", label, (unsigned long long)at, name, rows, name, rows,
					  nb_errmsg());
			} else if (rc == 1) {
				harmless++;
			} else {
				silent++;
				fprintf(stderr, "%s: flip at byte %llu of %s chunk %s changed the data silently\n", label,
					(unsigned long long)at, name, rows);
			}
			shard_close(r);
		}
	}
	printf("%s: %d flips in %d chunks: %d detected, %d harmless, %d silent\n", label, flips, nc, detected,
	       harmless, silent);
	CHECK_MSG(silent == 0, "%s: %d flips changed the data without an error", label, silent);
	CHECK_MSG(detected == flips, "%s: %d of %d flips not detected", label, flips - detected, flips);
	free(orig);
}

static int same_meta(const shard_meta *a, const shard_meta *b)
{
	return a->kind == b->kind && a->height == b->height && a->width == b->width &&
	       a->has_objects == b->has_objects && !strcmp(a->origin, b->origin) &&
	       !strcmp(a->teacher_digest, b->teacher_digest) && !strcmp(a->vocab_digest, b->vocab_digest) &&
	       a->round == b->round && a->sigma == b->sigma && a->K == b->K && a->vote == b->vote;
}

/* Flips one bit in each of about `want` bytes spread over everything
 * outside the chunks of `good`. Each flipped file must fail to open or read
 * with a message naming it, or read back the same samples and metadata. */
static void check_metadata_flips(const char *dir, const char *good, const data *d, const char *label, int want)
{
	chunk_at chunks[64];
	int nc = list_chunks(good, chunks, 64);
	size_t len;
	uint8_t *orig = slurp(good, &len);
	uint8_t *in_chunk = calloc(len, 1);
	size_t outside = len;
	for (int c = 0; c < nc; c++)
		for (hsize_t b = chunks[c].addr; b < chunks[c].addr + chunks[c].size && b < len; b++)
			if (!in_chunk[b]) {
				in_chunk[b] = 1;
				outside--;
			}
	shard_reader *r0 = shard_open(good);
	CHECK_MSG(r0, "%s", nb_errmsg());
	if (!r0)
		return;
	shard_meta m0 = *shard_reader_meta(r0);
	shard_close(r0);
	char path[4096];
	snprintf(path, sizeof path, "%s/meta-flipped.h5", dir);
	size_t step = outside / (size_t)want ? outside / (size_t)want : 1;
	int flips = 0, detected = 0, harmless = 0, silent = 0, unnamed = 0;
	size_t seen = 0;
	for (size_t byte = 0; byte < len; byte++) {
		if (in_chunk[byte] || seen++ % step)
			continue;
		uint8_t bit = (uint8_t)(1u << (flips * 5 % 8));
		orig[byte] ^= bit;
		spit(path, orig, len);
		orig[byte] ^= bit;
		flips++;
		nb_errclear();
		shard_reader *r = shard_open(path);
		int rc = r ? read_all(r, d) : -1;
		if (rc == 1 && !same_meta(shard_reader_meta(r), &m0))
			rc = 0;
		if (rc == 1 && shard_verify(r) < 0)
			rc = -1;
		if (rc < 0) {
			detected++;
			if (!test_contains(nb_errmsg(), path) && unnamed++ < 3)
				fprintf(stderr, "%s: flip at byte %zu: the error does not name the shard: %s\n", label, byte,
					nb_errmsg());
		} else if (rc == 1) {
			harmless++;
		} else if (silent++ < 10) {
			fprintf(stderr, "%s: flip at metadata byte %zu of %zu changed the data silently\n", label, byte, len);
		}
		shard_close(r);
	}
	printf("%s: %d flips in %zu bytes of metadata: %d detected, %d harmless, %d silent\n", label, flips, outside,
	       detected, harmless, silent);
	CHECK_MSG(flips >= want / 2, "%s: only %d flips", label, flips);
	CHECK_MSG(silent == 0, "%s: %d of %d metadata flips changed the data without an error", label, silent, flips);
	CHECK_MSG(unnamed == 0, "%s: %d errors do not name the shard", label, unnamed);
	free(in_chunk);
	free(orig);
}

/* HDF5's pipeline (Fletcher-32 then zstd) reads what the writer stored. */
static void check_hdf5_reads(const char *path, const data *d)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t ds = H5Dopen2(f, "images", H5P_DEFAULT);
	hid_t dcpl = H5Dget_create_plist(ds);
	int fletcher = 0;
	for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
		unsigned flags;
		size_t ncd = 0;
		fletcher |= H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32;
	}
	CHECK_MSG(fletcher, "%s: /images has no Fletcher-32 filter", path);
	static uint8_t buf[N][H * W * 3];
	CHECK_MSG(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 &&
			  !memcmp(buf, d->images, sizeof buf),
		  "%s: HDF5 does not read the writer's /images chunks", path);
	H5Pclose(dcpl);
	H5Dclose(ds);
	H5Fclose(f);
}

/* Shards without checksums still read; one warning per process. */
static void check_old_shards(const char *dir, const data *d)
{
	char a[4096], b[4096], log[4096];
	snprintf(a, sizeof a, "%s/old-a.h5", dir);
	snprintf(b, sizeof b, "%s/old-b.h5", dir);
	snprintf(log, sizeof log, "%s/stderr.txt", dir);
	write_shard(a, d, 1, 1);
	write_shard(b, d, SHARD_NO_COMPRESSION, 1);
	fflush(stderr);
	int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 2);
	close(fd);
	shard_reader *ra = shard_open(a), *rb = shard_open(b);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK_MSG(ra && rb, "%s", nb_errmsg());
	CHECK(ra && !shard_has_checksums(ra) && read_all(ra, d) == 1);
	CHECK(rb && !shard_has_checksums(rb) && read_all(rb, d) == 1);
	shard_close(ra);
	shard_close(rb);
	size_t len;
	uint8_t *text = slurp(log, &len);
	char *s = calloc(len + 1, 1);
	memcpy(s, text, len);
	int count = 0;
	for (char *p = strstr(s, "no checksums"); p; p = strstr(p + 1, "no checksums"))
		count++;
	CHECK_MSG(count == 1 && test_contains(s, a), "expected one warning naming %s, got: %s", a, s);
	free(s);
	free(text);
}

/* HDF5's Fletcher-32 as H5checksum.c writes it, word by word, for
 * comparison with the blocked h5u_fletcher32. */
static uint32_t fletcher_ref(const uint8_t *p, size_t n)
{
	uint32_t a = 0, b = 0;
	for (size_t words = n / 2; words;) {
		size_t k = words > 360 ? 360 : words;
		words -= k;
		for (; k; k--, p += 2) {
			a += (uint32_t)p[0] << 8 | p[1];
			b += a;
		}
		a = (a & 0xffff) + (a >> 16);
		b = (b & 0xffff) + (b >> 16);
	}
	if (n % 2) {
		a += (uint32_t)p[0] << 8;
		b += a;
		a = (a & 0xffff) + (a >> 16);
		b = (b & 0xffff) + (b >> 16);
	}
	a = (a & 0xffff) + (a >> 16);
	b = (b & 0xffff) + (b >> 16);
	return b << 16 | a;
}

static void check_fletcher(void)
{
	static uint8_t buf[70000];
	uint64_t s = 12345;
	int bad = 0;
	for (int t = 0; t < 600; t++) {
		size_t n = t < 40 ? (size_t)t : (size_t)(rnd(&s) % sizeof buf);
		int fill = t % 4; /* random, zeros, 0xff, zeros with one byte */
		for (size_t i = 0; i < n; i++)
			buf[i] = fill == 0 ? (uint8_t)rnd(&s) : fill == 2 ? 0xff : 0;
		if (fill == 3 && n)
			buf[rnd(&s) % n] = (uint8_t)rnd(&s);
		if (h5u_fletcher32(buf, n) != fletcher_ref(buf, n) && bad++ < 5)
			fprintf(stderr, "fletcher32 of %zu bytes (fill %d): %08x, HDF5's %08x\n", n, fill,
				h5u_fletcher32(buf, n), fletcher_ref(buf, n));
	}
	CHECK_MSG(bad == 0, "%d sums differ from HDF5's", bad);
}

int main(void)
{
	h5u_quiet();
	char *dir = test_tmpdir("shard-checksum");
	static data d;
	make_data(&d);
	check_fletcher();
	char path[4096];
	int levels[2] = {1, SHARD_NO_COMPRESSION};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/good-%d.h5", dir, i);
		write_shard(path, &d, levels[i], 0);
		shard_reader *r = shard_open(path);
		CHECK_MSG(r && shard_has_checksums(r) && read_all(r, &d) == 1, "%s", nb_errmsg());
		shard_close(r);
		check_hdf5_reads(path, &d);
		check_flips(dir, path, &d, i ? "unfiltered" : "zstd");
		/* fewer under valgrind (each flip opens and reads a shard) */
		check_metadata_flips(dir, path, &d, i ? "unfiltered" : "zstd", getenv("NB_UNDER_VALGRIND") ? 120 : 1500);
	}
	check_old_shards(dir, &d);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (!test_failed && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(dir);
	return test_summary("test_shard_checksum");
}
