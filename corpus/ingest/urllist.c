/* URL list parsing: TSV, CSV (RFC 4180 quoting), JSONL and bare lists. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/ingest/urllist.h"

static void put_char(nb_buf *b, char c) { nb_buf_add(b, &c, 1); }

/* The string built in b (owned by the caller; "" when empty); b is reset. */
static char *buf_take(nb_buf *b)
{
	char *s = b->data ? b->data : nb_xstrdup("");
	*b = (nb_buf){0};
	return s;
}

const char *urllist_format_name(urllist_format f)
{
	switch (f) {
	case URLLIST_TSV: return "tsv";
	case URLLIST_CSV: return "csv";
	case URLLIST_JSONL: return "jsonl";
	case URLLIST_PLAIN: return "plain";
	default: return "auto";
	}
}

/* extra: l->ncols strings (taken over; NULL entries become "") or NULL. */
static void add_entry(urllist *l, size_t *cap, long line, char *url, char *caption, char *key,
		      const char *bad, char **extra)
{
	NB_GROW(l->e, *cap, l->n + 1, 256);
	urllist_entry *e = &l->e[l->n++];
	e->line = line;
	e->bad = bad;
	e->extra = NULL;
	if (l->ncols) {
		e->extra = extra ? extra : nb_xcalloc((size_t)l->ncols, sizeof(char *));
		for (int c = 0; c < l->ncols; c++)
			if (!e->extra[c] || bad) {
				free(e->extra[c]);
				e->extra[c] = nb_xstrdup("");
			}
	} else {
		free(extra);
	}
	if (bad) {
		free(url);
		url = nb_xstrdup("");
	}
	e->url = url ? url : nb_xstrdup("");
	e->caption = caption ? caption : nb_xstrdup("");
	e->key = key ? key : nb_xstrdup("");
}

/* NULL if the URL is acceptable, else why not. Scheme checks belong to the
 * fetcher, which reports them per URL. */
static const char *url_problem(const char *u)
{
	if (!*u)
		return "empty url";
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return "url contains whitespace or control characters";
	if (!strstr(u, "://"))
		return "url has no scheme";
	return NULL;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	char *r = nb_xmalloc(n + 1);
	memcpy(r, s, n);
	r[n] = 0;
	return r;
}

/* ---- delimited (TSV/CSV) ---- */

typedef struct {
	char **f;
	int n;
	size_t cap;
} fields;

static void fields_clear(fields *fs)
{
	for (int i = 0; i < fs->n; i++)
		free(fs->f[i]);
	fs->n = 0;
}

static void fields_push(fields *fs, char *s)
{
	NB_GROW(fs->f, fs->cap, fs->n + 1, 8);
	fs->f[fs->n++] = s;
}

/* Reads one record starting at *pos. Returns 0 at end of input, else 1 with
 * the fields, *start_line, and *bad set when malformed. *line counts lines. */
static int read_record(const char *buf, size_t len, size_t *pos, long *line, char delim, int quoting,
		       fields *fs, long *start_line, const char **bad)
{
	fields_clear(fs);
	*bad = NULL;
	if (*pos >= len)
		return 0;
	*start_line = *line;
	size_t rec_start = *pos;
	size_t i = *pos;
	nb_buf cur = {0};
	for (;;) {
		/* one field */
		if (quoting && i < len && buf[i] == '"') {
			long qline = *line;
			i++;
			for (;;) {
				if (i >= len) {
					/* Unterminated: the record is bad, and parsing resumes
					 * after its first line so later records survive. */
					free(cur.data);
					size_t e = rec_start;
					while (e < len && buf[e] != '\n')
						e++;
					*pos = e < len ? e + 1 : len;
					*line = qline + 1;
					*bad = "unterminated quote";
					fields_clear(fs);
					return 1;
				}
				char c = buf[i];
				if (c == '"') {
					if (i + 1 < len && buf[i + 1] == '"') {
						put_char(&cur, '"');
						i += 2;
						continue;
					}
					i++;
					break;
				}
				if (c == '\n')
					(*line)++;
				put_char(&cur, c);
				i++;
			}
			if (i < len && buf[i] == '\r')
				i++;
			if (i < len && buf[i] != delim && buf[i] != '\n' && !*bad)
				*bad = "text after closing quote";
			/* skip the rest of a malformed field */
			while (i < len && buf[i] != delim && buf[i] != '\n')
				i++;
			fields_push(fs, buf_take(&cur));
		} else {
			size_t s = i;
			while (i < len && buf[i] != delim && buf[i] != '\n')
				i++;
			size_t e = i;
			if (e > s && buf[e - 1] == '\r')
				e--;
			char *f = nb_xmalloc(e - s + 1);
			memcpy(f, buf + s, e - s);
			f[e - s] = 0;
			if (memchr(f, 0, e - s) && !*bad)
				*bad = "nul byte in line";
			fields_push(fs, f);
		}
		if (i >= len) {
			*pos = len;
			(*line)++;
			return 1;
		}
		if (buf[i] == '\n') {
			*pos = i + 1;
			(*line)++;
			return 1;
		}
		i++; /* delimiter */
	}
}

static int record_blank(const fields *fs)
{
	if (fs->n != 1)
		return 0;
	for (const char *p = fs->f[0]; *p; p++)
		if (!isspace((unsigned char)*p))
			return 0;
	return 1;
}

static int find_col(const fields *h, const char *const *names)
{
	for (const char *const *n = names; *n; n++)
		for (int i = 0; i < h->n; i++) {
			char *t = trim_dup(h->f[i], strlen(h->f[i]));
			int eq = strcasecmp(t, *n) == 0;
			free(t);
			if (eq)
				return i;
		}
	return -1;
}

static int parse_delimited(const char *buf, size_t len, const char *name, char delim, int quoting,
			   urllist *l, size_t *cap)
{
	static const char *const url_names[] = {"url", "image_url", "img_url", NULL};
	static const char *const cap_names[] = {"caption", "text", "title", NULL};
	static const char *const key_names[] = {"key", "id", NULL};
	fields fs = {0}, hdr = {0};
	size_t pos = 0;
	long line = 1, start = 0;
	const char *bad;
	int have_hdr = 0, cu = -1, cc = -1, ck = -1;
	int *keep = nb_xcalloc((size_t)l->ncols + 1, sizeof(int));
	while (read_record(buf, len, &pos, &line, delim, quoting, &fs, &start, &bad)) {
		if (!bad && record_blank(&fs))
			continue;
		if (!have_hdr) {
			if (bad) {
				fields_clear(&fs);
				free(fs.f);
				free(keep);
				return nb_error("cannot read url list '%s': line %ld: header: %s", name, start, bad);
			}
			hdr = fs;
			fs = (fields){0};
			have_hdr = 1;
			cu = find_col(&hdr, url_names);
			cc = find_col(&hdr, cap_names);
			ck = find_col(&hdr, key_names);
			const char *missing = NULL;
			for (int c = 0; c < l->ncols && !missing; c++) {
				const char *one[2] = {l->cols[c], NULL};
				keep[c] = find_col(&hdr, one);
				if (keep[c] < 0)
					missing = l->cols[c];
			}
			if (cu < 0 || missing) {
				fields_clear(&hdr);
				free(hdr.f);
				free(keep);
				if (missing)
					return nb_error("cannot read url list '%s': --keep-columns names '%s', but the "
							"header on line %ld has no such column", name, missing, start);
				return nb_error("cannot read url list '%s': header on line %ld has no url column",
						name, start);
			}
			continue;
		}
		if (!bad && fs.n != hdr.n)
			bad = fs.n < hdr.n ? "fewer fields than the header" : "more fields than the header";
		if (bad) {
			add_entry(l, cap, start, NULL, NULL, NULL, bad, NULL);
			continue;
		}
		char *url = trim_dup(fs.f[cu], strlen(fs.f[cu]));
		bad = url_problem(url);
		char **extra = l->ncols ? nb_xcalloc((size_t)l->ncols, sizeof(char *)) : NULL;
		for (int c = 0; c < l->ncols; c++)
			extra[c] = nb_xstrdup(fs.f[keep[c]]);
		add_entry(l, cap, start, url, cc >= 0 ? nb_xstrdup(fs.f[cc]) : NULL,
			  ck >= 0 ? trim_dup(fs.f[ck], strlen(fs.f[ck])) : NULL, bad, extra);
	}
	free(keep);
	fields_clear(&fs);
	free(fs.f);
	fields_clear(&hdr);
	free(hdr.f);
	if (!have_hdr)
		return nb_error("cannot read url list '%s': no header line", name);
	return 0;
}

/* ---- JSONL ---- */

typedef struct {
	const char *p, *end;
	const char *bad;
} jcur;

static void jws(jcur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int hex4(const char *p, const char *end, unsigned *v)
{
	if (end - p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0'
			: (ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : (ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1));
		if (d < 0)
			return -1;
		*v = *v * 16 + (unsigned)d;
	}
	return 0;
}

static void put_utf8(nb_buf *b, unsigned cp)
{
	if (cp < 0x80) {
		put_char(b, (char)cp);
	} else if (cp < 0x800) {
		put_char(b, (char)(0xc0 | (cp >> 6)));
		put_char(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		put_char(b, (char)(0xe0 | (cp >> 12)));
		put_char(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put_char(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		put_char(b, (char)(0xf0 | (cp >> 18)));
		put_char(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
		put_char(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put_char(b, (char)(0x80 | (cp & 0x3f)));
	}
}

/* Parses a string at c->p (which is at '"'); out may be NULL to skip. */
static int jstring(jcur *c, nb_buf *out)
{
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch == '"')
			return 0;
		if (ch < 0x20) {
			c->bad = "control character in json string";
			return -1;
		}
		if (ch != '\\') {
			if (out)
				put_char(out, (char)ch);
			continue;
		}
		if (c->p >= c->end)
			break;
		char e = *c->p++;
		unsigned cp;
		switch (e) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (hex4(c->p, c->end, &cp) < 0) {
				c->bad = "bad \\u escape in json string";
				return -1;
			}
			c->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				unsigned lo;
				if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u' &&
				    hex4(c->p + 2, c->end, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					c->p += 6;
				} else {
					c->bad = "unpaired surrogate in json string";
					return -1;
				}
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				c->bad = "unpaired surrogate in json string";
				return -1;
			}
			if (cp == 0) {
				c->bad = "nul character in json string";
				return -1;
			}
			break;
		default:
			c->bad = "bad escape in json string";
			return -1;
		}
		if (out)
			put_utf8(out, cp);
	}
	c->bad = "unterminated json string";
	return -1;
}

static int jvalue(jcur *c, int depth);

static int jcontainer(jcur *c, int depth, char close, int object)
{
	c->p++;
	jws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return 0;
	}
	for (;;) {
		jws(c);
		if (object) {
			if (c->p >= c->end || *c->p != '"' || jstring(c, NULL) < 0) {
				if (!c->bad)
					c->bad = "expected a json key";
				return -1;
			}
			jws(c);
			if (c->p >= c->end || *c->p != ':') {
				c->bad = "expected ':' in json object";
				return -1;
			}
			c->p++;
		}
		if (jvalue(c, depth + 1) < 0)
			return -1;
		jws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == close) {
			c->p++;
			return 0;
		}
		c->bad = "expected ',' or end of json container";
		return -1;
	}
}

static int jvalue(jcur *c, int depth)
{
	jws(c);
	if (depth > 64) {
		c->bad = "json nested too deeply";
		return -1;
	}
	if (c->p >= c->end) {
		c->bad = "truncated json";
		return -1;
	}
	char ch = *c->p;
	if (ch == '"')
		return jstring(c, NULL);
	if (ch == '{')
		return jcontainer(c, depth, '}', 1);
	if (ch == '[')
		return jcontainer(c, depth, ']', 0);
	const char *s = c->p;
	while (c->p < c->end && (isalnum((unsigned char)*c->p) || *c->p == '-' || *c->p == '+' || *c->p == '.'))
		c->p++;
	size_t n = (size_t)(c->p - s);
	if (n == 0) {
		c->bad = "unexpected character in json";
		return -1;
	}
	if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5)) ||
	    (n == 4 && !memcmp(s, "null", 4)))
		return 0;
	if (!(isdigit((unsigned char)s[0]) || s[0] == '-')) {
		c->bad = "unexpected word in json";
		return -1;
	}
	return 0;
}

/* Index of JSON key k among the kept columns, or -1. */
static int kept_col(const urllist *l, const char *k)
{
	for (int c = 0; c < l->ncols; c++)
		if (!strcmp(l->cols[c], k))
			return c;
	return -1;
}

/* Parses one JSONL object; sets url, caption and key (owned), and extra[c]
 * for the kept columns it has, or returns the reason it is bad. */
static const char *json_line(const char *s, size_t n, char **url, char **caption, char **key,
			     const urllist *l, char **extra)
{
	jcur c = {s, s + n, NULL};
	*url = *caption = *key = NULL;
	jws(&c);
	if (c.p >= c.end || *c.p != '{')
		return "line is not a json object";
	c.p++;
	jws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto tail;
	}
	for (;;) {
		jws(&c);
		nb_buf k = {0};
		if (c.p >= c.end || *c.p != '"' || jstring(&c, &k) < 0) {
			free(k.data);
			return c.bad ? c.bad : "expected a json key";
		}
		char *kname = buf_take(&k);
		jws(&c);
		if (c.p >= c.end || *c.p != ':') {
			free(kname);
			return "expected ':' in json object";
		}
		c.p++;
		jws(&c);
		char **slot = NULL;
		int kc = kept_col(l, kname);
		if (!strcmp(kname, "url") || !strcmp(kname, "URL"))
			slot = url;
		else if (!strcmp(kname, "caption") || !strcmp(kname, "text") || !strcmp(kname, "TEXT"))
			slot = caption;
		else if (!strcmp(kname, "key") || !strcmp(kname, "id"))
			slot = key;
		free(kname);
		const char *vs = c.p;
		if (kc >= 0) {
			/* a kept column: its text, whatever else the key is */
			jcur v = c;
			nb_buf t = {0};
			if (v.p < v.end && *v.p == '"') {
				if (jstring(&v, &t) < 0) {
					free(t.data);
					return v.bad;
				}
			} else {
				if (jvalue(&v, 1) < 0)
					return v.bad;
				if (!(vs < v.end && *vs == 'n' && v.p - vs == 4)) /* null: "" */
					nb_buf_add(&t, vs, (size_t)(v.p - vs));
			}
			free(extra[kc]);
			extra[kc] = buf_take(&t);
		}
		if (slot && c.p < c.end && *c.p == '"') {
			nb_buf v = {0};
			if (jstring(&c, &v) < 0) {
				free(v.data);
				return c.bad;
			}
			free(*slot);
			*slot = buf_take(&v);
		} else {
			if (jvalue(&c, 1) < 0)
				return c.bad;
			if (slot == url)
				return "json url is not a string";
			if (slot && slot == key && vs < c.p && *vs != '{' && *vs != '[') {
				free(*slot);
				*slot = trim_dup(vs, (size_t)(c.p - vs));
			}
		}
		jws(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		return "expected ',' or '}' in json object";
	}
tail:
	jws(&c);
	if (c.p != c.end)
		return "text after the json object";
	if (!*url)
		return "json object has no url";
	return NULL;
}

/* The line at *pos, without its '\n', in s[0..n); advances *pos past it.
 * 0 at the end of the input. */
static int next_line(const char *buf, size_t len, size_t *pos, const char **s, size_t *n)
{
	if (*pos >= len)
		return 0;
	const char *nl = memchr(buf + *pos, '\n', len - *pos);
	size_t e = nl ? (size_t)(nl - buf) : len;
	*s = buf + *pos;
	*n = e - *pos;
	*pos = nl ? e + 1 : len;
	return 1;
}

/* One line of a line-based format: sets url, caption and key (owned, NULL
 * when absent) and returns why the record is bad, or NULL. *skip set: the
 * line is not a record (blank, a comment). */
typedef const char *(*line_parser)(const char *s, size_t n, char **url, char **caption, char **key,
				   int *skip, const urllist *l, char **extra);

static const char *jsonl_line(const char *s, size_t n, char **url, char **caption, char **key, int *skip,
			      const urllist *l, char **extra)
{
	size_t k = 0;
	while (k < n && isspace((unsigned char)s[k]))
		k++;
	if (k == n) {
		*skip = 1;
		return NULL;
	}
	if (memchr(s, 0, n))
		return "nul byte in line";
	const char *bad = json_line(s, n, url, caption, key, l, extra);
	if (bad)
		return bad;
	char *t = trim_dup(*url, strlen(*url));
	free(*url);
	*url = t;
	return url_problem(*url);
}

static const char *plain_line(const char *s, size_t n, char **url, char **caption, char **key, int *skip,
			      const urllist *l, char **extra)
{
	(void)caption;
	(void)key;
	(void)l;
	(void)extra;
	char *u = trim_dup(s, n);
	if (!*u || *u == '#') {
		free(u);
		*skip = 1;
		return NULL;
	}
	*url = u;
	return memchr(s, 0, n) ? "nul byte in line" : url_problem(u);
}

static int parse_lines(const char *buf, size_t len, urllist *l, size_t *cap, line_parser parse)
{
	size_t pos = 0, n;
	const char *s;
	long line = 0;
	while (next_line(buf, len, &pos, &s, &n)) {
		line++;
		char *url = NULL, *caption = NULL, *key = NULL;
		char **extra = l->ncols ? nb_xcalloc((size_t)l->ncols, sizeof(char *)) : NULL;
		int skip = 0;
		const char *bad = parse(s, n, &url, &caption, &key, &skip, l, extra);
		if (!skip) {
			add_entry(l, cap, line, url, caption, key, bad, extra);
		} else {
			for (int c = 0; c < l->ncols; c++)
				free(extra[c]);
			free(extra);
			free(url);
		}
	}
	return 0;
}

static urllist_format sniff(const char *buf, size_t len, const char *name)
{
	/* The extension, or for "x.tsv.gz" the one before ".gz". */
	char ext[16] = "";
	const char *dot = name ? strrchr(name, '.') : NULL;
	size_t en = dot ? strlen(dot) : 0;
	if (dot && !strcasecmp(dot, ".gz")) {
		const char *d = dot;
		while (d > name && d[-1] != '.' && d[-1] != '/')
			d--;
		en = d > name && d[-1] == '.' ? (size_t)(dot - d) + 1 : 0;
		dot = d - 1;
	}
	if (en && en < sizeof ext)
		snprintf(ext, sizeof ext, "%.*s", (int)en, dot);
	if (!strcasecmp(ext, ".tsv"))
		return URLLIST_TSV;
	if (!strcasecmp(ext, ".csv"))
		return URLLIST_CSV;
	if (!strcasecmp(ext, ".jsonl") || !strcasecmp(ext, ".json") || !strcasecmp(ext, ".ndjson"))
		return URLLIST_JSONL;
	size_t i = 0;
	for (;;) {
		while (i < len && isspace((unsigned char)buf[i]))
			i++;
		if (i >= len || buf[i] != '#')
			break;
		/* comment lines only occur in bare lists */
		while (i < len && buf[i] != '\n')
			i++;
	}
	if (i < len && buf[i] == '{')
		return URLLIST_JSONL;
	size_t e = i;
	while (e < len && buf[e] != '\n')
		e++;
	const char *first = buf + i;
	size_t n = e - i;
	if (memchr(first, '\t', n))
		return URLLIST_TSV;
	if (n >= 3 && strstr(first, "://") && (size_t)(strstr(first, "://") - first) < n &&
	    !memchr(first, ',', n))
		return URLLIST_PLAIN;
	if (memchr(first, ',', n))
		return URLLIST_CSV;
	return URLLIST_TSV; /* a single header column, e.g. "url" */
}

/* ---- gzip ---- */

static int is_gzip(const char *buf, size_t len)
{
	return len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b;
}

/* Inflates every gzip member of buf[0..len) into *out (malloc'ed, *outlen
 * bytes). 0, or nb_error naming the list and the cause. */
static int gunzip(const char *buf, size_t len, const char *name, char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return nb_error("cannot read url list '%s': zlib cannot start", name);
	nb_buf b = {0};
	size_t pos = 0;
	int rc = 0;
	unsigned char chunk[65536];
	for (;;) {
		size_t in = len - pos < (1u << 30) ? len - pos : (1u << 30);
		z.next_in = (unsigned char *)(uintptr_t)(buf + pos);
		z.avail_in = (unsigned)in;
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		int zr = inflate(&z, Z_NO_FLUSH);
		size_t used = in - z.avail_in;
		pos += used;
		nb_buf_add(&b, (const char *)chunk, sizeof chunk - z.avail_out);
		if (zr == Z_STREAM_END) {
			/* another member may follow (cat a.gz b.gz) */
			if (pos < len && is_gzip(buf + pos, len - pos)) {
				inflateReset(&z);
				continue;
			}
			if (pos < len)
				rc = nb_error("cannot read url list '%s': %zu bytes of trailing garbage after the "
					      "gzip data (at byte %zu)", name, len - pos, pos);
			break;
		}
		if (zr == Z_OK || (zr == Z_BUF_ERROR && z.avail_out == 0))
			continue;
		if (zr == Z_BUF_ERROR && pos >= len) {
			rc = nb_error("cannot read url list '%s': gzip data is truncated (ends after %zu "
				      "compressed bytes)", name, len);
			break;
		}
		rc = nb_error("cannot read url list '%s': corrupt gzip data at byte %zu: %s", name, pos,
			      z.msg ? z.msg : "inflate failed");
		break;
	}
	inflateEnd(&z);
	if (rc < 0) {
		free(b.data);
		return -1;
	}
	*outlen = b.len;
	*out = b.data ? b.data : nb_xstrdup("");
	return 0;
}

/* Splits keep ("a, b") into l->cols. 0, or nb_error. */
static int set_cols(urllist *l, const char *keep, const char *name)
{
	if (!keep)
		return 0;
	const char *p = keep;
	while (*p) {
		size_t n = strcspn(p, ",");
		char *c = trim_dup(p, n);
		int dup = 0;
		for (int i = 0; i < l->ncols; i++)
			dup |= !strcasecmp(l->cols[i], c);
		if (!*c || dup) {
			int empty = !*c;
			free(c);
			return empty ? nb_error("cannot read url list '%s': --keep-columns '%s' has an empty name", name, keep)
				     : nb_error("cannot read url list '%s': --keep-columns '%s' names a column twice", name, keep);
		}
		l->cols = nb_xrealloc(l->cols, (size_t)(l->ncols + 1) * sizeof(char *));
		l->cols[l->ncols++] = c;
		p += n;
		if (*p == ',')
			p++;
		if (*p == 0 && p > keep && p[-1] == ',')
			return nb_error("cannot read url list '%s': --keep-columns '%s' has an empty name", name, keep);
	}
	return 0;
}

static int parse_text(const char *buf, size_t len, const char *name, urllist_format fmt, urllist *out);

int urllist_parse(const char *buf, size_t len, const char *name, urllist_format fmt, urllist *out)
{
	return urllist_parse_cols(buf, len, name, fmt, NULL, out);
}

int urllist_parse_cols(const char *buf, size_t len, const char *name, urllist_format fmt, const char *keep,
		       urllist *out)
{
	memset(out, 0, sizeof(*out));
	if (!name)
		name = "(memory)";
	if (set_cols(out, keep, name) < 0) {
		urllist_free(out);
		return -1;
	}
	if (!is_gzip(buf, len))
		return parse_text(buf, len, name, fmt, out);
	char *text;
	size_t tlen;
	if (gunzip(buf, len, name, &text, &tlen) < 0) {
		urllist_free(out);
		return -1;
	}
	int rc = parse_text(text, tlen, name, fmt, out);
	free(text);
	return rc;
}

/* The parse proper, into out (whose cols are set); frees out on error. */
static int parse_text(const char *buf, size_t len, const char *name, urllist_format fmt, urllist *out)
{
	/* A UTF-8 byte order mark would otherwise hide the header's first name. */
	if (len >= 3 && (unsigned char)buf[0] == 0xef && (unsigned char)buf[1] == 0xbb &&
	    (unsigned char)buf[2] == 0xbf) {
		buf += 3;
		len -= 3;
	}
	/* sniff() uses strstr on the first line, which needs a terminator. */
	char *copy = nb_xmalloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = 0;
	if (fmt == URLLIST_AUTO)
		fmt = sniff(copy, len, name);
	out->format = fmt;
	size_t cap = 0;
	int rc;
	if (fmt == URLLIST_PLAIN && out->ncols) {
		free(copy);
		urllist_free(out);
		return nb_error("cannot read url list '%s': --keep-columns: a bare URL list has no columns", name);
	}
	switch (fmt) {
	case URLLIST_TSV: rc = parse_delimited(copy, len, name, '\t', 0, out, &cap); break;
	case URLLIST_CSV: rc = parse_delimited(copy, len, name, ',', 1, out, &cap); break;
	case URLLIST_JSONL: rc = parse_lines(copy, len, out, &cap, jsonl_line); break;
	default: rc = parse_lines(copy, len, out, &cap, plain_line); break;
	}
	free(copy);
	if (rc < 0)
		urllist_free(out);
	return rc;
}

int urllist_load(const char *path, urllist_format fmt, urllist *out)
{
	return urllist_load_cols(path, fmt, NULL, out);
}

int urllist_load_cols(const char *path, urllist_format fmt, const char *keep, urllist *out)
{
	size_t len;
	char *text = nb_read_file(path, &len);
	if (!text)
		return errno == EIO ? nb_error("cannot read url list '%s': read error", path)
				    : nb_error("cannot open url list '%s': %s", path, strerror(errno));
	int rc = urllist_parse_cols(text, len, path, fmt, keep, out);
	free(text);
	return rc;
}

void urllist_free(urllist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].url);
		free(l->e[i].caption);
		free(l->e[i].key);
		for (int c = 0; l->e[i].extra && c < l->ncols; c++)
			free(l->e[i].extra[c]);
		free(l->e[i].extra);
	}
	free(l->e);
	l->e = NULL;
	l->n = 0;
	for (int c = 0; c < l->ncols; c++)
		free(l->cols[c]);
	free(l->cols);
	l->cols = NULL;
	l->ncols = 0;
}
