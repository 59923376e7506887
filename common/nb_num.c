#include "common/nb_num.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "common/nb_error.h"

int nb_parse_long(const char *s, long lo, long hi, const char *what, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(s, &end, 10);
	if (end == s || *end != '\0' || isspace((unsigned char)*s))
		return nb_error("%s: '%s' is not an integer", what, s);
	if (errno == ERANGE || x < lo || x > hi)
		return nb_error("%s: '%s' is out of range [%ld, %ld]", what, s, lo, hi);
	*out = x;
	return 0;
}

static int parse_u64(const char *s, const char *what, uint64_t *out, char **end)
{
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return nb_error("%s: '%s' is not a non-negative integer", what, s);
	unsigned long long x = strtoull(s, end, 10);
	if (errno == ERANGE)
		return nb_error("%s: '%s' is out of range (max %" PRIu64 ")", what, s, UINT64_MAX);
	*out = (uint64_t)x;
	return 0;
}

int nb_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
	char *end;
	uint64_t x;
	if (parse_u64(s, what, &x, &end) < 0)
		return -1;
	if (*end != '\0')
		return nb_error("%s: '%s' is not a non-negative integer", what, s);
	if (x < lo || x > hi)
		return nb_error("%s: '%s' is out of range [%" PRIu64 ", %" PRIu64 "]", what, s, lo, hi);
	*out = x;
	return 0;
}

int nb_parse_double(const char *s, double lo, double hi, const char *what, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (end == s || *end != '\0' || isspace((unsigned char)*s) || !isfinite(x))
		return nb_error("%s: '%s' is not a number", what, s);
	if (errno == ERANGE || x < lo || x > hi)
		return nb_error("%s: '%s' is out of range [%g, %g]", what, s, lo, hi);
	*out = x;
	return 0;
}

int nb_parse_size(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
	char *end;
	uint64_t x;
	if (parse_u64(s, what, &x, &end) < 0)
		return -1;
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
		return nb_error("%s: '%s' is not a size (an integer with an optional k, M or G)", what, s);
	if (shift && x > (UINT64_MAX >> shift))
		return nb_error("%s: '%s' is out of range (max %" PRIu64 ")", what, s, hi);
	x <<= shift;
	if (x < lo || x > hi)
		return nb_error("%s: '%s' is out of range [%" PRIu64 ", %" PRIu64 "]", what, s, lo, hi);
	*out = x;
	return 0;
}
