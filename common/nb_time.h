/* The clock: monotonic seconds for rates and ETAs, and one way to print a
 * duration. */
#ifndef NB_TIME_H
#define NB_TIME_H

#include <stddef.h>

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin: use differences). */
double nb_now(void);
/* "42s", "3m05s", "2h07m"; "?" for a negative, NaN or absurd value. */
void nb_fmt_duration(char *buf, size_t n, double seconds);

#endif
