/* A small JSON reader (RFC 8259) for the files nboost reads back: eval's
 * JSON lines, a run's labels.json, an experiment's per-arm results. The
 * whole text becomes a tree; errors name the file, the line and column,
 * and the cause. Nesting is limited to NB_JSON_MAX_DEPTH; duplicate keys
 * keep the last value (as most readers do). And the one JSON string
 * writer (nb_json_put_str). */
#ifndef NB_JSON_H
#define NB_JSON_H

#include <stddef.h>

#include "common/nb_io.h"

#define NB_JSON_MAX_DEPTH 64

typedef enum { NB_JSON_NULL, NB_JSON_BOOL, NB_JSON_NUM, NB_JSON_STR, NB_JSON_ARR, NB_JSON_OBJ } nb_json_type;

typedef struct nb_json nb_json;
struct nb_json {
	nb_json_type type;
	int boolean;     /* NB_JSON_BOOL */
	double num;      /* NB_JSON_NUM */
	char *str;       /* NB_JSON_STR: UTF-8, may hold NUL bytes (\u0000): len */
	size_t len;      /* NB_JSON_STR */
	int n;           /* NB_JSON_ARR, NB_JSON_OBJ: items */
	nb_json **items; /* values */
	char **keys;     /* NB_JSON_OBJ: keys, parallel to items */
};

/* Parses one JSON value (surrounding white space allowed) from text[0..len).
 * `name` (a file name) starts error messages. NULL + nb_error. */
nb_json *nb_json_parse(const char *text, size_t len, const char *name);
/* Reads and parses a whole file (a regular file). NULL + nb_error. */
nb_json *nb_json_load(const char *path);
void nb_json_free(nb_json *v);

/* The value of `key` in an object, NULL when absent or v is not an object. */
const nb_json *nb_json_get(const nb_json *v, const char *key);
/* The number at `key`, or `def` when absent or not a number. */
double nb_json_getnum(const nb_json *v, const char *key, double def);
/* The string at `key` (NUL-terminated), or `def`. */
const char *nb_json_getstr(const nb_json *v, const char *key, const char *def);

/* Appends s as a JSON string literal (quotes included): ", \ and control
 * characters escaped; other bytes copied as they are. */
void nb_json_put_str(nb_buf *b, const char *s);
/* Appends a number: %.9g, or null for NaN and infinities (not JSON). */
void nb_json_put_num(nb_buf *b, double x);

#endif
