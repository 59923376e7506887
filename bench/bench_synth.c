/* Synthetic corpus speed at 48x48, one thread: render only, render + shard
 * write (the real synth_write_rank path, shards committed with fsync), and
 * render + shard + PNG. Median of 5 runs. The baseline, measured in the
 * same run, is render only; the requirement is 2000 scenes/s per core
 * including the shard write. Rates are given by wall time and by this
 * process's CPU time: on a shared machine the CPU rate is the per-core
 * figure, the wall rate also counts waiting for the core and for fsync.
 *   bench_synth [scenes per run, default 4000] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_num.h"
#include "corpus/synth/synth.h"
#include "bench/bench_util.h"

#define REPS 5
#define REQUIRED 2000.0

typedef struct {
	double wall, cpu; /* scenes per second */
} rate;

static rate rate_since(uint64_t n, double w0, double c0)
{
	rate r = {(double)n / (bench_now() - w0), (double)n / (bench_cpu() - c0)};
	return r;
}

static rate run_render(uint64_t n, int rep)
{
	uint8_t img[48 * 48 * 3];
	unsigned sink = 0;
	double t0 = bench_now(), c0 = bench_cpu();
	for (uint64_t i = 0; i < n; i++) {
		synth_scene sc;
		synth_make((uint64_t)rep + 1, SYNTH_LABELED, i, 48, &sc, img);
		sink += img[i % sizeof img];
	}
	rate r = rate_since(n, t0, c0);
	if (sink == 0xFFFFFFFFu)
		printf("(unlikely)\n");
	return r;
}

static rate run_write(const char *dir, const char *png, uint64_t n, int rep)
{
	synth_opts o;
	memset(&o, 0, sizeof o);
	o.out = dir;
	o.png = png;
	o.count[SYNTH_LABELED] = n;
	o.seed = (uint64_t)rep + 1;
	o.size = 48;
	o.shard_size = 1000;
	o.force = 1;
	if (synth_prepare(&o))
		nb_die("%s", nb_errmsg());
	synth_stats st;
	double t0 = bench_now(), c0 = bench_cpu();
	if (synth_write_rank(&o, 0, 1, &st))
		nb_die("%s", nb_errmsg());
	return rate_since(n, t0, c0);
}

int main(int argc, char **argv)
{
	uint64_t n = 4000;
	if (argc > 1 && nb_parse_u64(argv[1], 1, 100000000, "bench_synth: scenes per run", &n) < 0)
		nb_die("%s", nb_errmsg());
	char dir[] = "/tmp/nboost-bench-synth-XXXXXX";
	if (!mkdtemp(dir))
		nb_die("cannot create a temporary directory: mkdtemp failed");
	char out[4096], png[4096];
	snprintf(out, sizeof out, "%s/out", dir);
	snprintf(png, sizeof png, "%s/png", dir);

	/* [0] render, [1] + shard, [2] + shard + png; wall and cpu rates */
	double wall[3][REPS], cpu[3][REPS];
	for (int rep = 0; rep < REPS; rep++) {
		rate r[3] = {run_render(n, rep), run_write(out, NULL, n, rep), run_write(out, png, n / 4, rep)};
		for (int k = 0; k < 3; k++) {
			wall[k][rep] = r[k].wall;
			cpu[k][rep] = r[k].cpu;
		}
		printf("run %d (wall / cpu scenes/s): render %.0f / %.0f, render+shard %.0f / %.0f, "
		       "render+shard+png %.0f / %.0f\n",
		       rep, r[0].wall, r[0].cpu, r[1].wall, r[1].cpu, r[2].wall, r[2].cpu);
	}
	double mw[3], mc[3];
	for (int k = 0; k < 3; k++) {
		mw[k] = bench_median(wall[k], REPS);
		mc[k] = bench_median(cpu[k], REPS);
	}
	printf("median of %d runs, %llu scenes each (png: %llu), 48x48, one thread; wall / cpu:\n", REPS,
	       (unsigned long long)n, (unsigned long long)(n / 4));
	printf("  render only (baseline)   %7.0f / %7.0f scenes/s\n", mw[0], mc[0]);
	printf("  render + shard write     %7.0f / %7.0f scenes/s  (%.2fx / %.2fx baseline; "
	       "%.2fx / %.2fx the %.0f/s requirement)\n",
	       mw[1], mc[1], mw[1] / mw[0], mc[1] / mc[0], mw[1] / REQUIRED, mc[1] / REQUIRED, REQUIRED);
	printf("  render + shard + png     %7.0f / %7.0f scenes/s  (%.2fx / %.2fx baseline)\n", mw[2], mc[2],
	       mw[2] / mw[0], mc[2] / mc[0]);
	printf("{\"bench\":\"synth\",\"size\":48,\"threads\":1,\"reps\":%d,\"scenes\":%llu,"
	       "\"render_wall\":%.0f,\"render_cpu\":%.0f,\"shard_wall\":%.0f,\"shard_cpu\":%.0f,"
	       "\"png_wall\":%.0f,\"png_cpu\":%.0f,\"shard_vs_render_wall\":%.3f,"
	       "\"required\":%.0f,\"shard_vs_required_wall\":%.3f,\"shard_vs_required_cpu\":%.3f,"
	       "\"unit\":\"scenes/s\"}\n",
	       REPS, (unsigned long long)n, mw[0], mc[0], mw[1], mc[1], mw[2], mc[2], mw[1] / mw[0], REQUIRED,
	       mw[1] / REQUIRED, mc[1] / REQUIRED);

	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		nb_warn("could not remove '%s'", dir);
	return 0;
}
