#include "test/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_passed, test_failed;

int test_near(double a, double b, double tol)
{
	double scale = fabs(b) > 1.0 ? fabs(b) : 1.0;
	return fabs(a - b) <= tol * scale;
}

int test_contains(const char *hay, const char *needle)
{
	return hay && needle && strstr(hay, needle) != NULL;
}

char *test_tmpdir(const char *name)
{
	const char *base = getenv("TMPDIR");
	char buf[4096];
	snprintf(buf, sizeof buf, "%s/nboost-%s-XXXXXX", base && *base ? base : "/tmp", name);
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		exit(2);
	}
	return strdup(buf);
}

int test_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
	return test_failed ? 1 : 0;
}

void test_write_bin(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write '%s'\n", path);
		exit(2);
	}
}

void *test_read_bin(const char *dir, const char *name, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	void *p = calloc(1, n ? n : 1);
	size_t got = f ? fread(p, 1, n, f) : 0;
	if (f)
		fclose(f);
	CHECK_MSG(got == n, "'%s': read %zu of %zu bytes", path, got, n);
	if (got != n)
		memset(p, 0, n);
	return p;
}
