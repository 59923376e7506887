/* Shard store throughput: writing and reading 48x48 RGB images (scene-like:
 * gray background with independent Gaussian noise of std 12 per channel plus
 * 2-6 flat discs, as in the scene grammar) at zstd levels 1, 3 and 9 against unfiltered
 * chunks (the baseline). Each figure is the median of 5 runs. Write time
 * includes the commit (fsync + rename); read time is a sequential pass.
 *
 * Figures per CPU-second (process CPU time) are the per-core rate; they
 * stay meaningful when other jobs share the cores. In the JSON, zstd_level
 * 0 is the unfiltered baseline.
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
	int level;
	double write_s, read_s, write_cpu, read_cpu, ratio;
} result;

static result run_level(const char *dir, int level, const uint8_t *images, size_t n)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/bench-%d.h5", dir, level);
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_IMAGES;
	m.height = m.width = SIDE;
	m.zstd_level = level;
	double tw[REPS], tr[REPS], cw[REPS], cr[REPS];
	size_t img_bytes = SIDE * SIDE * 3;
	struct stat st = {0};
	for (int rep = 0; rep < REPS; rep++) {
		double t0 = bench_clock(CLOCK_MONOTONIC), c0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
		shard_writer *w = shard_create(path, &m);
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
		tw[rep] = t1 - t0;
		tr[rep] = t2 - t1;
		cw[rep] = c1 - c0;
		cr[rep] = c2 - c1;
		(void)sum;
	}
	stat(path, &st);
	unlink(path);
	result res = {level, bench_median(tw, REPS), bench_median(tr, REPS), bench_median(cw, REPS), bench_median(cr, REPS),
		      (double)(n * img_bytes) / (double)st.st_size};
	return res;
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
	result res[4];
	printf("bench_shard: %zu images of %dx%d RGB, 64 per chunk, median of %d runs\n", n, SIDE, SIDE, REPS);
	for (int k = 0; k < 4; k++) {
		res[k] = run_level(dir, levels[k], images, n);
		char name[16];
		if (levels[k] == SHARD_NO_COMPRESSION)
			snprintf(name, sizeof name, "none");
		else
			snprintf(name, sizeof name, "zstd%d", levels[k]);
		printf("  %-6s write %7.0f img/s (%.2fx baseline, %7.0f per CPU-second)  read %7.0f img/s (%.2fx "
		       "baseline, %7.0f per CPU-second)  ratio %.2f\n", name, n / res[k].write_s,
		       res[0].write_s / res[k].write_s, n / res[k].write_cpu, n / res[k].read_s,
		       res[0].read_s / res[k].read_s, n / res[k].read_cpu, res[k].ratio);
	}
	rmdir(dir);
	printf("{\"bench\": \"shard\", \"images\": %zu, \"side\": %d, \"reps\": %d, \"results\": [", n, SIDE, REPS);
	for (int k = 0; k < 4; k++)
		printf("%s{\"zstd_level\": %d, \"write_img_s\": %.0f, \"read_img_s\": %.0f, "
		       "\"write_img_per_cpu_s\": %.0f, \"read_img_per_cpu_s\": %.0f, \"write_vs_none\": %.3f, "
		       "\"read_vs_none\": %.3f, \"ratio\": %.3f}", k ? ", " : "",
		       levels[k] == SHARD_NO_COMPRESSION ? 0 : levels[k], n / res[k].write_s, n / res[k].read_s,
		       n / res[k].write_cpu, n / res[k].read_cpu, res[0].write_s / res[k].write_s,
		       res[0].read_s / res[k].read_s, res[k].ratio);
	printf("]}\n");
	free(images);
	return 0;
}
