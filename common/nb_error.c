#include "common/nb_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

/* "nboost: <prefix><message>" on stderr, after whatever stdout holds, so
 * that the two streams interleave in the order things happened. */
static void report(const char *prefix, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "nboost: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void nb_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

int nb_error(const char *fmt, ...)
{
	/* Format into a local buffer first: callers may pass nb_errmsg() as an
	 * argument to add context ("cannot load 'x': %s"). */
	char tmp[sizeof last_error];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	memcpy(last_error, tmp, sizeof tmp);
	return -1;
}

const char *nb_errmsg(void) { return last_error; }
void nb_errclear(void) { last_error[0] = '\0'; }

void nb_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("warning: ", fmt, ap);
	va_end(ap);
}

void nb_bug(const char *file, int line, const char *fmt, ...)
{
	char where[512];
	snprintf(where, sizeof where, "BUG at %s:%d: ", file, line);
	va_list ap;
	va_start(ap, fmt);
	report(where, fmt, ap);
	va_end(ap);
	abort();
}

void *nb_malloc_at(size_t n, const char *file, int line)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		nb_die("out of memory allocating %zu bytes at %s:%d", n, file, line);
	return p;
}

void *nb_calloc_at(size_t n, size_t size, const char *file, int line)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		nb_die("out of memory allocating %zu x %zu bytes at %s:%d", n, size, file, line);
	return p;
}

void *nb_realloc_at(void *p, size_t n, const char *file, int line)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		nb_die("out of memory reallocating %zu bytes at %s:%d", n, file, line);
	return q;
}

char *nb_strdup_at(const char *s, const char *file, int line)
{
	size_t n = strlen(s) + 1;
	char *p = nb_malloc_at(n, file, line);
	memcpy(p, s, n);
	return p;
}
