/* BLAS kernel selection (model/blas.h, docs/performance.md).
 *
 * Debian's OpenBLAS is a DYNAMIC_ARCH build: it picks its kernels from cpuid
 * when the library loads, and OPENBLAS_CORETYPE overrides that choice. On
 * some CPUs (Intel with AVX-512 in some virtual machines) it misdetects and
 * silently falls back to a generic kernel several times slower. We compute
 * the best kernel the CPU and OS support ourselves, and if OpenBLAS chose a
 * different one, set OPENBLAS_CORETYPE and re-exec once: the variable is only
 * read at load time, before main(). An OPENBLAS_CORETYPE already present is
 * the user's (or a test's) choice and is never touched. */
#include "model/blas.h"

#include <cblas.h>
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The best OpenBLAS core for this CPU: SkylakeX needs AVX-512F, Haswell (and
 * Zen, its AMD twin) needs AVX2 + FMA, each with the OS saving the wider
 * registers (XCR0). NULL: leave OpenBLAS's choice alone. */
static const char *best_core(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return NULL;
	int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
	if (!osxsave || !avx)
		return NULL;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	int ymm_ok = (lo & 0x6) == 0x6, zmm_ok = (lo & 0xe6) == 0xe6;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return NULL;
	int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
	if (avx512f && zmm_ok)
		return "SkylakeX";
	if (avx2 && fma && ymm_ok) {
		unsigned vendor[4] = {0};
		__get_cpuid(0, &a, &vendor[0], &vendor[2], &vendor[1]);
		return !memcmp(vendor, "AuthenticAMD", 12) ? "Zen" : "Haswell";
	}
#endif
	return NULL;
}

/* Zen and Haswell share their sgemm kernels in OpenBLAS 0.3.21. */
static int same_family(const char *x, const char *y)
{
	int xh = !strcmp(x, "Haswell") || !strcmp(x, "Zen");
	int yh = !strcmp(y, "Haswell") || !strcmp(y, "Zen");
	return !strcmp(x, y) || (xh && yh);
}

void blas_runtime_init(int argc, char **argv)
{
	(void)argc;
	if (getenv("OPENBLAS_CORETYPE"))
		return;
	const char *want = best_core();
	const char *have = openblas_get_corename();
	if (!want || !have || same_family(want, have))
		return;
	if (setenv("OPENBLAS_CORETYPE", want, 1) != 0)
		return;
	fflush(NULL);
	execv("/proc/self/exe", argv);
	/* The re-exec failed (no /proc): run on, with the slower kernel. */
	fprintf(stderr, "nboost: warning: BLAS uses the '%s' kernel; set OPENBLAS_CORETYPE=%s for speed\n",
		have, want);
}

const char *blas_describe(void)
{
	/* openblas_get_config() is static text inside the library. */
	return openblas_get_config();
}
