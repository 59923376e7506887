/* sgemm GFLOP/s of each BLAS on this machine, at the model's GEMM shapes and
 * a square 1024, single-thread and 2-thread: the measurement behind the
 * BLAS choice in docs/performance.md.
 *
 * Each (library, kernel, threads) runs in a child process, because
 * OpenBLAS reads OPENBLAS_CORETYPE and its thread count only when it loads;
 * the child dlopen()s the library and prints one line per shape. Rounds are
 * interleaved and each figure is the median over rounds.
 *
 * usage: bench_sgemm [rounds]       (default 3) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/bench_util.h"

enum { ROW = 101, COL = 102 };
enum { NT = 111, TR = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
			 float *, int);

typedef struct {
	const char *name;
	int ta, tb, M, N, K;
} shape;

/* B = 64: decoder rows 64 * 77 = 4928 */
static const shape shapes[] = {
	{"qkv fwd 4928x384x128", NT, TR, 4928, 384, 128},
	{"fc1 fwd 4928x512x128", NT, TR, 4928, 512, 128},
	{"fc2 fwd 4928x128x512", NT, TR, 4928, 128, 512},
	{"fc1 dW 512x128x4928", TR, NT, 512, 128, 4928},
	{"fc2 dx 4928x512x128", NT, NT, 4928, 512, 128},
	{"square 1024", NT, NT, 1024, 1024, 1024},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static int child(const char *lib, int threads)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "cannot load '%s': %s\n", lib, dlerror());
		return 1;
	}
	sgemm_fn sgemm = (sgemm_fn)(void (*)(void))dlsym(h, "cblas_sgemm");
	void (*set_openblas)(int) = (void (*)(int))(void (*)(void))dlsym(h, "openblas_set_num_threads");
	void (*set_blis)(long) = (void (*)(long))(void (*)(void))dlsym(h, "bli_thread_set_num_threads");
	char *(*corename)(void) = (char *(*)(void))(void (*)(void))dlsym(h, "openblas_get_corename");
	if (!sgemm) {
		fprintf(stderr, "'%s' has no cblas_sgemm\n", lib);
		return 1;
	}
	if (set_openblas)
		set_openblas(threads);
	if (set_blis)
		set_blis(threads);
	printf("core %s\n", corename ? corename() : "-");
	size_t big = 4928 * 512 + 1024 * 1024;
	float *a = malloc(sizeof(float) * big), *b = malloc(sizeof(float) * big), *c = malloc(sizeof(float) * big);
	for (size_t i = 0; i < big; i++) {
		a[i] = (float)(i % 7) * 0.1f;
		b[i] = (float)(i % 5) * 0.1f;
		c[i] = 0.0f;
	}
	for (int s = 0; s < NSHAPES; s++) {
		const shape *p = &shapes[s];
		int lda = p->ta == NT ? p->K : p->M, ldb = p->tb == NT ? p->N : p->K;
		double flop = 2.0 * p->M * p->N * p->K;
		sgemm(ROW, p->ta, p->tb, p->M, p->N, p->K, 1.0f, a, lda, b, ldb, 0.0f, c, p->N);
		double t[5];
		for (int r = 0; r < 5; r++) {
			int it = 0;
			double t0 = bench_now(), t1;
			do {
				sgemm(ROW, p->ta, p->tb, p->M, p->N, p->K, 1.0f, a, lda, b, ldb, 0.0f, c, p->N);
				it++;
				t1 = bench_now();
			} while (t1 - t0 < 0.05);
			t[r] = flop * it / (t1 - t0) / 1e9;
		}
		bench_sort(t, 5);
		printf("gflops %d %.2f\n", s, t[2]);
	}
	free(a), free(b), free(c);
	return 0;
}

typedef struct {
	const char *label, *lib, *core;
	int threads;
	double g[NSHAPES][16];
	int n;
} variant;

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return child(argv[2], atoi(argv[3]));
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	if (rounds < 1 || rounds > 16)
		rounds = 3;
	const char *ob = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0";
	const char *blis = "/usr/lib/x86_64-linux-gnu/libblis.so.4";
	variant v[] = {
		{"openblas auto", ob, NULL, 1, {{0}}, 0},     {"openblas Haswell", ob, "Haswell", 1, {{0}}, 0},
		{"openblas Zen", ob, "Zen", 1, {{0}}, 0},     {"openblas Prescott", ob, "Prescott", 1, {{0}}, 0},
		{"blis", blis, NULL, 1, {{0}}, 0},            {"openblas auto", ob, NULL, 2, {{0}}, 0},
		{"openblas Haswell", ob, "Haswell", 2, {{0}}, 0}, {"blis", blis, NULL, 2, {{0}}, 0},
	};
	int nvar = (int)(sizeof v / sizeof v[0]);
	char cores[8][64] = {{0}};
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < nvar; i++) {
			char cmd[1024];
			snprintf(cmd, sizeof cmd, "%s%s%s OMP_NUM_THREADS=%d BLIS_NUM_THREADS=%d %s --child %s %d",
				 v[i].core ? "OPENBLAS_CORETYPE=" : "env -u OPENBLAS_CORETYPE", v[i].core ? v[i].core : "",
				 v[i].core ? "" : "", v[i].threads, v[i].threads, argv[0], v[i].lib, v[i].threads);
			FILE *p = popen(cmd, "r");
			char line[256];
			while (p && fgets(line, sizeof line, p)) {
				int s;
				double g;
				if (sscanf(line, "gflops %d %lf", &s, &g) == 2 && s >= 0 && s < NSHAPES)
					v[i].g[s][v[i].n] = g;
				else if (!strncmp(line, "core ", 5))
					snprintf(cores[i], sizeof cores[i], "%.*s", (int)(strcspn(line + 5, "\n") % 60), line + 5);
			}
			if (p)
				pclose(p);
			v[i].n++;
		}
	printf("sgemm GFLOP/s, median of %d interleaved rounds (each round: median of 5 timings)\n", rounds);
	printf("%-28s", "variant (threads, core)");
	for (int s = 0; s < NSHAPES; s++)
		printf(" %22s", shapes[s].name);
	printf("\n");
	double med[8][NSHAPES];
	for (int i = 0; i < nvar; i++) {
		char lab[160];
		snprintf(lab, sizeof lab, "%s (%dt, %.60s)", v[i].label, v[i].threads, cores[i]);
		printf("%-28s", lab);
		for (int s = 0; s < NSHAPES; s++) {
			bench_sort(v[i].g[s], v[i].n);
			med[i][s] = v[i].g[s][v[i].n / 2];
			printf(" %22.1f", med[i][s]);
		}
		printf("\n");
	}
	/* Ratios against the best single-thread library per shape: the 80% rule. */
	printf("{\"bench\":\"sgemm\",\"rounds\":%d,\"shapes\":[", rounds);
	for (int s = 0; s < NSHAPES; s++)
		printf("%s\"%s\"", s ? "," : "", shapes[s].name);
	printf("],\"variants\":[");
	for (int i = 0; i < nvar; i++) {
		printf("%s{\"name\":\"%s\",\"threads\":%d,\"core\":\"%s\",\"gflops\":[", i ? "," : "", v[i].label,
		       v[i].threads, cores[i]);
		for (int s = 0; s < NSHAPES; s++)
			printf("%s%.2f", s ? "," : "", med[i][s]);
		printf("]}");
	}
	printf("]}\n");
	return 0;
}
