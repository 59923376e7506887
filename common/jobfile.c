#include "common/jobfile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"
#include "common/nb_num.h"

typedef struct {
	char *key, *value, *origin;
} entry;

struct jobfile {
	entry *e;
	int n;
	size_t cap;
};

jobfile *jobfile_new(void) { return nb_xcalloc(1, sizeof(jobfile)); }

void jobfile_free(jobfile *j)
{
	if (!j)
		return;
	for (int i = 0; i < j->n; i++) {
		free(j->e[i].key);
		free(j->e[i].value);
		free(j->e[i].origin);
	}
	free(j->e);
	free(j);
}

static int find(const jobfile *j, const char *key)
{
	for (int i = 0; i < j->n; i++)
		if (strcmp(j->e[i].key, key) == 0)
			return i;
	return -1;
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int valid_key(const char *key)
{
	const char *dot = strchr(key, '.');
	if (!dot || strchr(dot + 1, '.'))
		return 0;
	return valid_name(key, (size_t)(dot - key)) && valid_name(dot + 1, strlen(dot + 1));
}

int jobfile_set(jobfile *j, const char *key, const char *value, const char *origin)
{
	if (!valid_key(key))
		return nb_error("%s: invalid key '%s' (expected section.key, letters, digits, '_' or '-')",
				origin, key);
	int i = find(j, key);
	if (i >= 0) {
		free(j->e[i].value);
		free(j->e[i].origin);
	} else {
		NB_GROW(j->e, j->cap, (size_t)j->n + 1, 16);
		i = j->n++;
		j->e[i].key = nb_xstrdup(key);
	}
	j->e[i].value = nb_xstrdup(value);
	j->e[i].origin = nb_xstrdup(origin);
	return 0;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

#define BOM "\xef\xbb\xbf"

/* A line's first control character (not TAB; CR only as the last byte, of
 * a CRLF line end): job files are text, and a line is quoted in messages. */
static const char *control_char(const char *line)
{
	for (const unsigned char *p = (const unsigned char *)line; *p; p++)
		if ((*p < 0x20 && *p != '\t' && !(*p == '\r' && !p[1])) || *p == 0x7f)
			return (const char *)p;
	return NULL;
}

/* Checks that a line is text: 0, or nb_error naming the line and what is
 * wrong with it. */
static int check_line(const char *line, const char *name, int lineno)
{
	if (strlen(line) > 4096)
		return nb_error("job file '%s' line %d: line longer than 4096 characters", name, lineno);
	if (!strncmp(line, BOM, 3))
		return nb_error("job file '%s' line %d: a byte-order mark inside the file (were files concatenated?)",
				name, lineno);
	const char *c = control_char(line);
	if (c) {
		char one[2] = {*c, '\0'}, q[8];
		return nb_error("job file '%s' line %d: control character '%s' in a text file", name, lineno,
				nb_quote(q, sizeof q, one));
	}
	return 0;
}

jobfile *jobfile_parse(const char *text, const char *name)
{
	jobfile *j = jobfile_new();
	char section[128] = "", q[200];
	/* A UTF-8 byte-order mark (Windows editors write one) is not text. */
	if (!strncmp(text, BOM, 3))
		text += 3;
	char *copy = nb_xstrdup(text);
	char *line = copy;
	int lineno = 0;
	while (line) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (check_line(line, name, lineno) < 0)
			goto fail;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(line);
		if (*s == '\0') {
			line = next;
			continue;
		}
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (!close || *trim(close + 1) != '\0') {
				nb_error("job file '%s' line %d: malformed section header '%s' (expected [name])",
					 name, lineno, nb_quote(q, sizeof q, s));
				goto fail;
			}
			*close = '\0';
			char *sec = trim(s + 1);
			if (!valid_name(sec, strlen(sec)) || strlen(sec) >= sizeof section) {
				nb_error("job file '%s' line %d: invalid section name '%s'", name, lineno,
					 nb_quote(q, sizeof q, sec));
				goto fail;
			}
			snprintf(section, sizeof section, "%s", sec);
		} else {
			char *eq = strchr(s, '=');
			if (!eq) {
				nb_error("job file '%s' line %d: expected 'key = value', got '%s'", name, lineno,
					 nb_quote(q, sizeof q, s));
				goto fail;
			}
			*eq = '\0';
			char *k = trim(s), *v = trim(eq + 1);
			if (!section[0]) {
				nb_error("job file '%s' line %d: key '%s' comes before any [section]", name, lineno,
					 nb_quote(q, sizeof q, k));
				goto fail;
			}
			char key[300], origin[600];
			if (snprintf(key, sizeof key, "%s.%s", section, k) >= (int)sizeof key) {
				nb_error("job file '%s' line %d: key too long", name, lineno);
				goto fail;
			}
			snprintf(origin, sizeof origin, "%s:%d", name, lineno);
			if (find(j, key) >= 0) {
				nb_error("job file '%s' line %d: key '%s' set twice (first at %s)", name, lineno, key,
					 jobfile_origin(j, key));
				goto fail;
			}
			if (jobfile_set(j, key, v, origin) < 0) {
				nb_error("job file '%s' line %d: invalid key '%s'", name, lineno, nb_quote(q, sizeof q, k));
				goto fail;
			}
		}
		line = next;
	}
	free(copy);
	return j;
fail:
	free(copy);
	jobfile_free(j);
	return NULL;
}

/* Job files are small; anything this big is a mistake (or /dev/zero). */
#define JOBFILE_MAX_BYTES ((size_t)16 << 20)

jobfile *jobfile_load(const char *path)
{
	int fd = nb_open_input(path, "job file");
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "rb");
	if (!f) {
		close(fd);
		nb_error("cannot open job file '%s': %s", path, strerror(errno));
		return NULL;
	}
	/* Not nb_read_file: it has no size limit. */
	nb_buf b = {0};
	char chunk[4096];
	size_t k;
	while (b.len <= JOBFILE_MAX_BYTES && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
		nb_buf_add(&b, chunk, k);
	int bad = ferror(f) ? errno : 0;
	fclose(f);
	if (b.len > JOBFILE_MAX_BYTES) {
		free(b.data);
		nb_error("job file '%s': larger than 16 MiB, not a job file", path);
		return NULL;
	}
	if (bad) {
		free(b.data);
		nb_error("cannot read job file '%s': %s", path, strerror(bad));
		return NULL;
	}
	nb_buf_add(&b, "", 0);
	size_t nul = strlen(b.data);
	if (nul != b.len) {
		int line = 1;
		for (size_t i = 0; i < nul; i++)
			line += b.data[i] == '\n';
		free(b.data);
		nb_error("job file '%s' line %d: NUL byte, not a text file", path, line);
		return NULL;
	}
	jobfile *j = jobfile_parse(b.data, path);
	free(b.data);
	return j;
}

int jobfile_is_override(const char *arg)
{
	if (strncmp(arg, "--", 2) != 0 || arg[2] == '.')
		return 0;
	const char *eq = strchr(arg, '='), *dot = strchr(arg, '.');
	return dot && (!eq || dot < eq);
}

int jobfile_apply_override(jobfile *j, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq)
		return nb_error("override '%s' needs a value: --section.key=value", arg);
	char key[300];
	size_t kn = (size_t)(eq - (arg + 2));
	if (kn >= sizeof key)
		return nb_error("override '%s': key too long", arg);
	memcpy(key, arg + 2, kn);
	key[kn] = '\0';
	return jobfile_set(j, key, eq + 1, "command line");
}

int jobfile_apply_overrides(jobfile *j, int *argc, char **argv)
{
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		if (jobfile_is_override(argv[i])) {
			if (jobfile_apply_override(j, argv[i]) < 0)
				return -1;
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

const char *jobfile_get(const jobfile *j, const char *key)
{
	int i = find(j, key);
	return i >= 0 ? j->e[i].value : NULL;
}

const char *jobfile_origin(const jobfile *j, const char *key)
{
	int i = find(j, key);
	return i >= 0 ? j->e[i].origin : "default";
}

/* The number parsers say what is wrong with the value; this names where it
 * was set: "demo.conf:12: train.steps = 'x' is not an integer". nb_error
 * formats before it stores, so its own message may be an argument. */
static int bad_value(const jobfile *j, const char *key)
{
	return nb_error("%s: %s = %s", jobfile_origin(j, key), key, nb_errmsg());
}

int jobfile_int(const jobfile *j, const char *key, long def, long lo, long hi, long *out)
{
	const char *v = jobfile_get(j, key);
	if (!v) {
		*out = def;
		return 0;
	}
	return nb_parse_long(v, lo, hi, NULL, out) < 0 ? bad_value(j, key) : 0;
}

int jobfile_double(const jobfile *j, const char *key, double def, double lo, double hi, double *out)
{
	const char *v = jobfile_get(j, key);
	if (!v) {
		*out = def;
		return 0;
	}
	return nb_parse_double(v, lo, hi, NULL, out) < 0 ? bad_value(j, key) : 0;
}

int jobfile_bool(const jobfile *j, const char *key, int def, int *out)
{
	const char *v = jobfile_get(j, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
		*out = 0;
		return 0;
	}
	return nb_error("%s: %s = '%s' is not a boolean (true/false)", jobfile_origin(j, key), key, v);
}

const char *jobfile_str(const jobfile *j, const char *key, const char *def)
{
	const char *v = jobfile_get(j, key);
	return v ? v : def;
}

/* Damerau-free edit distance, capped: enough for "did you mean". */
static int edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > 64 || m > 64)
		return 99;
	int d[65][65];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (int)i;
	for (size_t k = 0; k <= m; k++)
		d[0][k] = (int)k;
	for (size_t i = 1; i <= n; i++)
		for (size_t k = 1; k <= m; k++) {
			int c = d[i - 1][k - 1] + (a[i - 1] != b[k - 1]);
			int x = d[i - 1][k] + 1, y = d[i][k - 1] + 1;
			d[i][k] = c < x ? (c < y ? c : y) : (x < y ? x : y);
		}
	return d[n][m];
}

/* Known entry q covers key k: equal, or q is "section.*" and k is in it. */
static int known_covers(const char *q, const char *k)
{
	size_t n = strlen(q);
	if (n >= 2 && !strcmp(q + n - 2, ".*"))
		return !strncmp(q, k, n - 1);
	return !strcmp(q, k);
}

/* The section of a key or a "section.*" entry, as a NUL-terminated copy. */
static void section_of(const char *key, char *out, size_t n)
{
	const char *dot = strchr(key, '.');
	snprintf(out, n, "%.*s", dot ? (int)(dot - key) : (int)strlen(key), key);
}

/* The nearest name (one or two edits away) among the known keys, or with
 * sections set, among their sections (copied to buf); NULL if none. */
static const char *nearest(const char *name, const char *const *known, int sections, char *buf, size_t n)
{
	const char *best = NULL;
	int bestd = 3;
	char qsec[128];
	for (const char *const *q = known; *q; q++) {
		int d;
		if (sections) {
			section_of(*q, qsec, sizeof qsec);
			d = edit_distance(qsec, name);
		} else {
			d = strchr(*q, '*') ? 99 : edit_distance(*q, name);
		}
		if (d < bestd) {
			bestd = d;
			best = *q;
			if (sections) {
				snprintf(buf, n, "%s", qsec);
				best = buf;
			}
		}
	}
	return best;
}

static int has_section(const char *const *known, const char *sec)
{
	char qsec[128];
	for (const char *const *q = known; *q; q++) {
		section_of(*q, qsec, sizeof qsec);
		if (!strcmp(qsec, sec))
			return 1;
	}
	return 0;
}

int jobfile_check_known(const jobfile *j, const char *const *known)
{
	for (int i = 0; i < j->n; i++) {
		const char *k = j->e[i].key, *origin = j->e[i].origin;
		int ok = 0;
		for (const char *const *q = known; *q && !ok; q++)
			ok = known_covers(*q, k);
		if (ok)
			continue;
		char sec[128], buf[128];
		section_of(k, sec, sizeof sec);
		const char *best = nearest(k, known, 0, buf, sizeof buf);
		if (best)
			return nb_error("%s: unknown key '%s' (did you mean '%s'?)", origin, k, best);
		if (has_section(known, sec))
			return nb_error("%s: unknown key '%s' (see schemas/job_file.md)", origin, k);
		best = nearest(sec, known, 1, buf, sizeof buf);
		if (best)
			return nb_error("%s: unknown key '%s': no section [%s] (did you mean [%s]?)", origin, k, sec,
					best);
		return nb_error("%s: unknown key '%s': no section [%s] (see schemas/job_file.md)", origin, k, sec);
	}
	return 0;
}

int jobfile_count(const jobfile *j) { return j->n; }
const char *jobfile_key_at(const jobfile *j, int i) { return j->e[i].key; }
const char *jobfile_value_at(const jobfile *j, int i) { return j->e[i].value; }
