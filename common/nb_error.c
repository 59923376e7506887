#include "common/nb_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages longer than this keep their start and their end (the cause),
 * with "..." for the middle (shorten_middle). */
#define NB_ERRMSG_MAX 2048

static _Thread_local char last_error[NB_ERRMSG_MAX];

/* Copies the n-byte message msg into out (cap bytes), cutting its middle
 * when it does not fit, at UTF-8 character boundaries: a long path in a
 * message must not push the cause ("File name too long") out of it. */
static void shorten_middle(char *out, size_t cap, const char *msg, size_t n)
{
	if (n < cap) {
		memcpy(out, msg, n + 1);
		return;
	}
	size_t keep = (cap - 4) / 2, head = keep, tail = n - keep;
	while (head > 0 && ((unsigned char)msg[head] & 0xc0) == 0x80)
		head--;
	while (tail < n && ((unsigned char)msg[tail] & 0xc0) == 0x80)
		tail++;
	memcpy(out, msg, head);
	memcpy(out + head, "...", 3);
	memcpy(out + head + 3, msg + tail, n - tail + 1);
}

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
	/* Format in full first (callers may pass nb_errmsg() as an argument to
	 * add context: "cannot load 'x': %s"), then shorten. */
	char local[8192], *tmp = local;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(local, sizeof local, fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(local, sizeof local, "unprintable error message");
		n = (int)strlen(local);
	} else if ((size_t)n >= sizeof local && (tmp = malloc((size_t)n + 1)) != NULL) {
		va_start(ap, fmt);
		vsnprintf(tmp, (size_t)n + 1, fmt, ap);
		va_end(ap);
	} else if ((size_t)n >= sizeof local) {
		tmp = local; /* no memory: the first 8 KiB, as they are */
		n = (int)sizeof local - 1;
	}
	shorten_middle(last_error, sizeof last_error, tmp, (size_t)n);
	if (tmp != local)
		free(tmp);
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
