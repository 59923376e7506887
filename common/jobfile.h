/* Job files (schemas/job_file.md): INI-style "[section]" headers and
 * "key = value" lines, '#' comments. Every key is addressed as
 * "section.key" and can be overridden on the command line as
 * --section.key=value. Values keep their origin ("demo.conf:12" or
 * "command line") so errors can point at them. */
#ifndef NB_JOBFILE_H
#define NB_JOBFILE_H

typedef struct jobfile jobfile;

jobfile *jobfile_new(void);
/* Parses a job file. NULL + nb_errmsg ("job file 'x' line N: cause"). */
jobfile *jobfile_load(const char *path);
/* Parses text already in memory; `name` is used in messages. */
jobfile *jobfile_parse(const char *text, const char *name);
void jobfile_free(jobfile *j);

/* Sets section.key (replacing an earlier value). 0 or nb_error. */
int jobfile_set(jobfile *j, const char *key, const char *value, const char *origin);
/* 1 when the command-line argument is an override "--section.key[=value]"
 * (a dot in the name before any '=' tells it apart from the command's own
 * options), else 0. */
int jobfile_is_override(const char *arg);
/* Applies one override "--section.key=value" with origin "command line".
 * 0 or nb_error (no value, invalid key). */
int jobfile_apply_override(jobfile *j, const char *arg);
/* Removes every override argument from argv and applies it. Updates *argc.
 * 0 or nb_error for a malformed override. */
int jobfile_apply_overrides(jobfile *j, int *argc, char **argv);

/* NULL if unset. */
const char *jobfile_get(const jobfile *j, const char *key);
const char *jobfile_origin(const jobfile *j, const char *key);
/* Typed getters: the default when unset, nb_error naming the key, its value
 * and origin when the value does not parse or is out of [lo, hi]. */
int jobfile_int(const jobfile *j, const char *key, long def, long lo, long hi, long *out);
int jobfile_double(const jobfile *j, const char *key, double def, double lo, double hi, double *out);
int jobfile_bool(const jobfile *j, const char *key, int def, int *out);
/* String: the default when unset; *out points into j (or is def). */
const char *jobfile_str(const jobfile *j, const char *key, const char *def);
/* Errors on the first key not in `known` (NULL-terminated; an entry
 * "section.*" admits every key of that section), naming where it was set,
 * with a "did you mean" when a known key is up to two edits away, or when
 * the key's section is unknown, a known section is. */
int jobfile_check_known(const jobfile *j, const char *const *known);

int jobfile_count(const jobfile *j);
/* i-th key/value in insertion order, for printing the effective config. */
const char *jobfile_key_at(const jobfile *j, int i);
const char *jobfile_value_at(const jobfile *j, int i);

#endif
