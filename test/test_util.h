/* Minimal test harness: CHECK records a failure with file and line and goes
 * on; a test binary ends with test_summary(), which prints the
 * "N passed, N failed" line and returns the exit code. */
#ifndef NB_TEST_UTIL_H
#define NB_TEST_UTIL_H

#include <stddef.h>

#include <stdio.h>

extern int test_passed, test_failed;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (cond) {                                                             \
			test_passed++;                                                  \
		} else {                                                                \
			test_failed++;                                                  \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                       \
	} while (0)

#define CHECK_MSG(cond, ...)                                                            \
	do {                                                                            \
		if (cond) {                                                             \
			test_passed++;                                                  \
		} else {                                                                \
			test_failed++;                                                  \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
		}                                                                       \
	} while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol) CHECK_MSG(test_near((a), (b), (tol)), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

int test_near(double a, double b, double tol);
/* Contains substring: for asserting on error messages. */
int test_contains(const char *hay, const char *needle);
/* A fresh empty directory under $TMPDIR (or /tmp), for this test. Caller frees. */
char *test_tmpdir(const char *name);
int test_summary(const char *name);
/* DIR/NAME written with n bytes of p (exit 2 when it cannot be), and read
 * back: n bytes, zeroed (and a failed CHECK) when the file is shorter. For
 * the tests that talk to test/torch_ref.py through files. Caller frees. */
void test_write_bin(const char *dir, const char *name, const void *p, size_t n);
void *test_read_bin(const char *dir, const char *name, size_t n);

#endif
