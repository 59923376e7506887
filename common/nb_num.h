/* Strict number parsing for every option, job-file value and text table:
 * the whole string must be the number (no trailing text, no empty string),
 * and the range is checked. Each returns 0 and sets *out, or nb_error with
 * the cause ("'12x' is not an integer", "500 is out of range [1, 100]"),
 * prefixed by "`what`: " (for example "--steps" or "demo.conf:12:
 * train.steps"), or the bare cause when what is NULL. */
#ifndef NB_NUM_H
#define NB_NUM_H

#include <stdint.h>

int nb_parse_long(const char *s, long lo, long hi, const char *what, long *out);
int nb_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out);
/* Finite numbers only. */
int nb_parse_double(const char *s, double lo, double hi, const char *what, double *out);
/* A byte or item count with an optional k, M or G suffix (powers of 1024):
 * "64", "8k", "2M". */
int nb_parse_size(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out);

#endif
