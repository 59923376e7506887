#include "common/nb_time.h"

#include <stdio.h>
#include <time.h>

double nb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nb_fmt_duration(char *buf, size_t n, double seconds)
{
	if (!(seconds >= 0) || seconds > 1e8) {
		snprintf(buf, n, "?");
		return;
	}
	/* Whole seconds, truncated like the larger units: rounding 59.6 up
	 * would print "60s" where 60.0 prints "1m00s". */
	long s = (long)seconds;
	if (s >= 3600)
		snprintf(buf, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
	else
		snprintf(buf, n, "%lds", s);
}
