/* Shard store throughput: writing and reading 48x48 RGB images (scene-like:
 * gray background with independent Gaussian noise of std 12 per channel plus
 * 2-6 flat discs, as in the scene grammar) at zstd levels 1, 3 and 9 against unfiltered
 * chunks (the baseline). Each figure is the median of 5 runs. Write time
 * includes the commit (fsync + rename); read time is a sequential pass.
 * Shards carry checksums (Fletcher-32 per chunk, zstd frame checksums);
 * unfiltered and level 1 are also measured without them
 * (shard_meta.no_checksum), alternating rep by rep with the checksummed
 * runs, and the with/without ratios printed: the cost of the checksums.
 *
 * Figures per CPU-second (process CPU time) are the per-core rate; they
 * stay meaningful when other jobs share the cores. In the JSON, zstd_level
 * 0 is the unfiltered baseline; "checksums": false marks the runs without
 * checksums.
 *
 * usage: bench_shard [IMAGES] [DIR]   (default 4096 images, $TMPDIR or /tmp)
 * The last line is JSON. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "store/shard_store.h"
#include "bench/bench_util.h"

#define SIDE 48
#define REPS 5

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double uniform(uint64_t *s)
{
	return (double)(next(s) >> 11) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
	double u = uniform(s) + 1e-12, v = uniform(s);
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void render(uint8_t *img, uint64_t *s)
{
	double bg = 30 + 60 * uniform(s);
	for (int p = 0; p < SIDE * SIDE * 3; p++) {
		double v = bg + 12 * gauss(s) + 0.5;
		img[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
	}
	int nobj = 2 + (int)(next(s) % 5);
	for (int o = 0; o < nobj; o++) {
		int cell = (int)(next(s) % 9);
		double cx = (cell % 3 + 0.5) * SIDE / 3.0, cy = (cell / 3 + 0.5) * SIDE / 3.0;
		double r = (next(s) & 1 ? 0.39 : 0.2) * SIDE / 3.0;
		uint8_t rgb[3] = {(uint8_t)next(s), (uint8_t)next(s), (uint8_t)next(s)};
		for (int y = 0; y < SIDE; y++)
			for (int x = 0; x < SIDE; x++)
				if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
					memcpy(img + 3 * (y * SIDE + x), rgb, 3);
	}
}

typedef struct {
	int level, checksum;
	double write_s, read_s, write_cpu, read_cpu, ratio;
} result;

typedef struct {
	double tw[REPS], tr[REPS], cw[REPS], cr[REPS];
	off_t size;
} samples;

/* One write (with commit) and one sequential read of n images. */
static void measure(const char *path, const shard_meta *m, const uint8_t *images, size_t n, samples *out, int rep)
{
	size_t img_bytes = SIDE * SIDE * 3;
	double t0 = bench_clock(CLOCK_MONOTONIC), c0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	shard_writer *w = shard_create(path, m);
	if (!w)
		nb_die("%s", nb_errmsg());
	for (size_t i = 0; i < n; i++) {
		shard_sample s = {.id = i, .image = images + i * img_bytes, .source = ""};
		if (shard_append(w, &s) < 0)
			nb_die("%s", nb_errmsg());
	}
	if (shard_commit(w) < 0)
		nb_die("%s", nb_errmsg());
	double t1 = bench_clock(CLOCK_MONOTONIC), c1 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	shard_reader *r = shard_open(path);
	if (!r)
		nb_die("%s", nb_errmsg());
	if (shard_has_checksums(r) == m->no_checksum)
		nb_die("%s: checksums %s", path, m->no_checksum ? "present" : "missing");
	shard_sample s;
	size_t got = 0;
	unsigned sum = 0;
	int rc;
	while ((rc = shard_next(r, &s)) == 1) {
		sum += s.image[got % img_bytes];
		got++;
	}
	if (rc < 0 || got != n)
		nb_die("read back %zu of %zu images: %s", got, n, nb_errmsg());
	shard_close(r);
	double t2 = bench_clock(CLOCK_MONOTONIC), c2 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	out->tw[rep] = t1 - t0;
	out->tr[rep] = t2 - t1;
	out->cw[rep] = c1 - c0;
	out->cr[rep] = c2 - c1;
	struct stat st = {0};
	stat(path, &st);
	out->size = st.st_size;
	unlink(path);
	(void)sum;
}

static result summarize(int level, int checksum, samples *x, size_t n)
{
	result res = {level, checksum, bench_median(x->tw, REPS), bench_median(x->tr, REPS),
		      bench_median(x->cw, REPS), bench_median(x->cr, REPS),
		      (double)(n * SIDE * SIDE * 3) / (double)x->size};
	return res;
}

/* A level with checksums, and (with_baseline) without: the two alternate
 * rep by rep, so that load from other jobs hits both alike. */
static void run_level(const char *dir, int level, const uint8_t *images, size_t n, int with_baseline, result *on,
		      result *off)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/bench-%d.h5", dir, level);
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_IMAGES;
	m.height = m.width = SIDE;
	m.zstd_level = level;
	samples a, b;
	for (int rep = 0; rep < REPS; rep++) {
		m.no_checksum = 0;
		measure(path, &m, images, n, &a, rep);
		if (with_baseline) {
			m.no_checksum = 1;
			measure(path, &m, images, n, &b, rep);
		}
	}
	*on = summarize(level, 1, &a, n);
	if (with_baseline)
		*off = summarize(level, 0, &b, n);
}

static void print_json(const result *res, int k, size_t n, const result *base)
{
	printf("%s{\"zstd_level\": %d, \"checksums\": %s, \"write_img_s\": %.0f, \"read_img_s\": %.0f, "
	       "\"write_img_per_cpu_s\": %.0f, \"read_img_per_cpu_s\": %.0f, \"write_vs_none\": %.3f, "
	       "\"read_vs_none\": %.3f, \"ratio\": %.3f}", k ? ", " : "",
	       res->level == SHARD_NO_COMPRESSION ? 0 : res->level, res->checksum ? "true" : "false", n / res->write_s,
	       n / res->read_s, n / res->write_cpu, n / res->read_cpu, base->write_s / res->write_s,
	       base->read_s / res->read_s, res->ratio);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 4096;
	const char *base = argc > 2 ? argv[2] : getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/nboost-bench-shard-XXXXXX", base && *base ? base : "/tmp");
	if (!n || !mkdtemp(dir))
		nb_die("usage: bench_shard [IMAGES>0] [DIR]");
	uint8_t *images = nb_xmalloc(n * SIDE * SIDE * 3);
	uint64_t seed = 0x243f6a8885a308d3ULL;
	for (size_t i = 0; i < n; i++)
		render(images + i * SIDE * SIDE * 3, &seed);
	int levels[] = {SHARD_NO_COMPRESSION, 1, 3, 9};
	result res[4], plain[2];
	printf("bench_shard: %zu images of %dx%d RGB, %zu per chunk (the default), median of %d runs\n", n, SIDE, SIDE,
	       SHARD_CHUNK_TARGET / ((size_t)SIDE * SIDE * 3), REPS);
	for (int k = 0; k < 4; k++) {
		run_level(dir, levels[k], images, n, k < 2, &res[k], &plain[k < 2 ? k : 0]);
		char name[16];
		if (levels[k] == SHARD_NO_COMPRESSION)
			snprintf(name, sizeof name, "none");
		else
			snprintf(name, sizeof name, "zstd%d", levels[k]);
		printf("  %-6s write %7.0f img/s (%.2fx baseline, %7.0f per CPU-second)  read %7.0f img/s (%.2fx "
		       "baseline, %7.0f per CPU-second)  ratio %.2f\n", name, n / res[k].write_s,
		       res[0].write_s / res[k].write_s, n / res[k].write_cpu, n / res[k].read_s,
		       res[0].read_s / res[k].read_s, n / res[k].read_cpu, res[k].ratio);
		if (k < 2)
			printf("         without checksums: write %7.0f img/s (%7.0f per CPU-second)  read %7.0f img/s "
			       "(%7.0f per CPU-second); with/without: write %.3f (CPU %.3f), read %.3f (CPU %.3f)\n",
			       n / plain[k].write_s, n / plain[k].write_cpu, n / plain[k].read_s, n / plain[k].read_cpu,
			       plain[k].write_s / res[k].write_s, plain[k].write_cpu / res[k].write_cpu,
			       plain[k].read_s / res[k].read_s, plain[k].read_cpu / res[k].read_cpu);
	}
	rmdir(dir);
	printf("{\"bench\": \"shard\", \"images\": %zu, \"side\": %d, \"reps\": %d, \"results\": [", n, SIDE, REPS);
	for (int k = 0; k < 4; k++)
		print_json(&res[k], k, n, &res[0]);
	for (int k = 0; k < 2; k++)
		print_json(&plain[k], 1, n, &res[0]);
	printf("]}\n");
	free(images);
	return 0;
}
