#include "common/nb_num.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "common/nb_error.h"

/* "WHAT: cause", or the bare cause when what is NULL (for callers that put
 * the value in their own frame, like job files' "origin: key = ..."). */
#define FAIL(what, fmt, ...)                                                          \
	((what) ? nb_error("%s: " fmt, (what), __VA_ARGS__) : nb_error(fmt, __VA_ARGS__))

/* Text that is not a number is quoted; a number out of range is shown as
 * written, since it is one. */
int nb_parse_long(const char *s, long lo, long hi, const char *what, long *out)
{
	char *end;
	/* strtol skips leading white space; strict parsing does not. */
	if (isspace((unsigned char)*s))
		return FAIL(what, "'%s' is not an integer", s);
	errno = 0;
	long x = strtol(s, &end, 10);
	if (end == s || *end != '\0')
		return FAIL(what, "'%s' is not an integer", s);
	if (errno == ERANGE || x < lo || x > hi)
		return FAIL(what, "%s is out of range [%ld, %ld]", s, lo, hi);
	*out = x;
	return 0;
}

/* The digits at the start of s (no sign, no space). Sets *end after them and
 * *overflow when they exceed UINT64_MAX; -1 when s does not start with a
 * digit. The callers check the rest, so that trailing junk is reported as
 * such even on a huge number. */
static int parse_digits(const char *s, uint64_t *out, char **end, int *overflow)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, end, 10);
	*overflow = errno == ERANGE;
	*out = (uint64_t)x;
	return 0;
}

int nb_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
	char *end;
	uint64_t x;
	int overflow;
	if (parse_digits(s, &x, &end, &overflow) < 0 || *end != '\0')
		return FAIL(what, "'%s' is not a non-negative integer", s);
	if (overflow || x < lo || x > hi)
		return FAIL(what, "%s is out of range [%" PRIu64 ", %" PRIu64 "]", s, lo, hi);
	*out = x;
	return 0;
}

int nb_parse_double(const char *s, double lo, double hi, const char *what, double *out)
{
	char *end;
	if (isspace((unsigned char)*s))
		return FAIL(what, "'%s' is not a number", s);
	errno = 0;
	double x = strtod(s, &end);
	int overflow = errno == ERANGE && isinf(x);
	/* "nan" and "inf" are spelled like numbers but are not finite ones. */
	if (end == s || *end != '\0' || (!isfinite(x) && !overflow))
		return FAIL(what, "'%s' is not a number", s);
	/* ERANGE with a finite result is underflow: the value rounds to (near)
	 * zero, as close as a double gets to what was written, so it stands. */
	if (overflow || x < lo || x > hi)
		return FAIL(what, "%s is out of range [%g, %g]", s, lo, hi);
	*out = x;
	return 0;
}

int nb_parse_size(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
	char *end;
	uint64_t x;
	int overflow;
	if (parse_digits(s, &x, &end, &overflow) < 0)
		return FAIL(what, "'%s' is not a size (an integer with an optional k, M or G)", s);
	unsigned shift = 0;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'M')
		shift = 20;
	else if (*end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (*end != '\0')
		return FAIL(what, "'%s' is not a size (an integer with an optional k, M or G)", s);
	if (overflow || x > (UINT64_MAX >> shift) || (x << shift) < lo || (x << shift) > hi)
		return FAIL(what, "%s is out of range [%" PRIu64 ", %" PRIu64 "]", s, lo, hi);
	*out = x << shift;
	return 0;
}
