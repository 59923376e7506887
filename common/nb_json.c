/* JSON reader: a recursive-descent parser over a byte range, building a
 * tree of nb_json nodes. See nb_json.h. */
#include "common/nb_json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"

typedef struct {
	const char *s, *end, *name;
	const char *at; /* where the error is */
	char err[160];
} jparser;

static nb_json *parse_value(jparser *p, int depth);

static int fail(jparser *p, const char *at, const char *fmt, const char *arg)
{
	if (!p->err[0]) {
		p->at = at;
		snprintf(p->err, sizeof p->err, fmt, arg);
	}
	return -1;
}

static void skip_ws(jparser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static nb_json *node(nb_json_type t)
{
	nb_json *v = nb_xcalloc(1, sizeof *v);
	v->type = t;
	return v;
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void put_utf8(nb_buf *b, unsigned cp)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80)
		u[0] = (unsigned char)cp, n = 1;
	else if (cp < 0x800)
		u[0] = (unsigned char)(0xC0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3F)), n = 2;
	else if (cp < 0x10000)
		u[0] = (unsigned char)(0xE0 | cp >> 12), u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
		u[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
	else
		u[0] = (unsigned char)(0xF0 | cp >> 18), u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F)),
		u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (unsigned char)(0x80 | (cp & 0x3F)), n = 4;
	nb_buf_add(b, u, n);
}

/* \uXXXX at p->s (after the backslash and 'u'), with a surrogate pair. */
static int parse_uescape(jparser *p, nb_buf *b)
{
	const char *at = p->s - 2;
	unsigned cp, lo;
	if (p->end - p->s < 4 || hex4(p->s, &cp) < 0)
		return fail(p, at, "%sbad \\u escape (4 hex digits expected)", "");
	p->s += 4;
	if (cp >= 0xDC00 && cp < 0xE000)
		return fail(p, at, "%sa low surrogate \\u escape without a high one", "");
	if (cp >= 0xD800 && cp < 0xDC00) {
		if (p->end - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' || hex4(p->s + 2, &lo) < 0 || lo < 0xDC00 ||
		    lo >= 0xE000)
			return fail(p, at, "%sa high surrogate \\u escape without its low half", "");
		p->s += 6;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	put_utf8(b, cp);
	return 0;
}

/* A string literal at p->s (the opening quote); the text into b. */
static int parse_string_into(jparser *p, nb_buf *b)
{
	const char *start = p->s++;
	nb_buf_add(b, "", 0);
	for (;;) {
		if (p->s >= p->end)
			return fail(p, start, "%san unterminated string", "");
		unsigned char c = (unsigned char)*p->s;
		if (c == '"') {
			p->s++;
			return 0;
		}
		if (c < 0x20)
			return fail(p, p->s, "%sa raw control character in a string (must be escaped)", "");
		if (c != '\\') {
			const char *run = p->s;
			while (p->s < p->end && *p->s != '"' && *p->s != '\\' && (unsigned char)*p->s >= 0x20)
				p->s++;
			nb_buf_add(b, run, (size_t)(p->s - run));
			continue;
		}
		if (p->end - p->s < 2)
			return fail(p, start, "%san unterminated string", "");
		char e = p->s[1];
		p->s += 2;
		const char *map = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", e);
		if (e == 'u') {
			if (parse_uescape(p, b) < 0)
				return -1;
		} else if (e && map && (map - "\"\"\\\\//b\bf\fn\nr\rt\t") % 2 == 0) {
			nb_buf_add(b, map + 1, 1);
		} else {
			return fail(p, p->s - 2, "%sa bad escape in a string", "");
		}
	}
}

static nb_json *parse_string(jparser *p)
{
	nb_buf b = {0};
	if (parse_string_into(p, &b) < 0) {
		free(b.data);
		return NULL;
	}
	nb_json *v = node(NB_JSON_STR);
	v->len = b.len;
	v->str = b.data ? b.data : nb_xstrdup("");
	return v;
}

static nb_json *parse_number(jparser *p)
{
	const char *s = p->s, *e = p->end, *q = s;
	if (q < e && *q == '-')
		q++;
	if (q < e && *q == '0')
		q++;
	else if (q < e && *q >= '1' && *q <= '9')
		while (q < e && *q >= '0' && *q <= '9')
			q++;
	else
		return fail(p, s, "%san unexpected character (a value expected)", ""), NULL;
	if (q < e && *q == '.') {
		if (++q >= e || *q < '0' || *q > '9')
			return fail(p, s, "%sa number with no digit after '.'", ""), NULL;
		while (q < e && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < e && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < e && (*q == '+' || *q == '-'))
			q++;
		if (q >= e || *q < '0' || *q > '9')
			return fail(p, s, "%sa number with no digit in its exponent", ""), NULL;
		while (q < e && *q >= '0' && *q <= '9')
			q++;
	}
	char tmp[64];
	size_t n = (size_t)(q - s);
	if (n >= sizeof tmp)
		return fail(p, s, "%sa number longer than 63 characters", ""), NULL;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	nb_json *v = node(NB_JSON_NUM);
	v->num = strtod(tmp, NULL); /* grammar checked above; overflow gives +-HUGE_VAL */
	p->s = q;
	return v;
}

static int word(jparser *p, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n))
		return 0;
	p->s += n;
	return 1;
}

static nb_json *parse_array(jparser *p, int depth)
{
	nb_json *v = node(NB_JSON_ARR);
	size_t cap = 0;
	p->s++;
	skip_ws(p);
	if (p->s < p->end && *p->s == ']') {
		p->s++;
		return v;
	}
	for (;;) {
		nb_json *item = parse_value(p, depth + 1);
		if (!item)
			break;
		NB_GROW(v->items, cap, (size_t)v->n + 1, 8);
		v->items[v->n++] = item;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == ']') {
			p->s++;
			return v;
		}
		fail(p, p->s, "%sexpected ',' or ']' in an array", "");
		break;
	}
	nb_json_free(v);
	return NULL;
}

static nb_json *parse_object(jparser *p, int depth)
{
	nb_json *v = node(NB_JSON_OBJ);
	size_t cap = 0, kcap = 0;
	p->s++;
	skip_ws(p);
	if (p->s < p->end && *p->s == '}') {
		p->s++;
		return v;
	}
	for (;;) {
		skip_ws(p);
		if (p->s >= p->end || *p->s != '"') {
			fail(p, p->s, "%sexpected a string key in an object", "");
			break;
		}
		nb_buf key = {0};
		if (parse_string_into(p, &key) < 0) {
			free(key.data);
			break;
		}
		skip_ws(p);
		if (p->s >= p->end || *p->s != ':') {
			free(key.data);
			fail(p, p->s, "%sexpected ':' after a key", "");
			break;
		}
		p->s++;
		nb_json *item = parse_value(p, depth + 1);
		if (!item) {
			free(key.data);
			break;
		}
		NB_GROW(v->items, cap, (size_t)v->n + 1, 8);
		NB_GROW(v->keys, kcap, (size_t)v->n + 1, 8);
		v->keys[v->n] = key.data ? key.data : nb_xstrdup("");
		v->items[v->n++] = item;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == '}') {
			p->s++;
			return v;
		}
		fail(p, p->s, "%sexpected ',' or '}' in an object", "");
		break;
	}
	nb_json_free(v);
	return NULL;
}

static nb_json *parse_value(jparser *p, int depth)
{
	skip_ws(p);
	if (depth > NB_JSON_MAX_DEPTH)
		return fail(p, p->s, "nesting deeper than %s levels", "64"), NULL;
	if (p->s >= p->end)
		return fail(p, p->s, "%sthe text ends where a value was expected", ""), NULL;
	switch (*p->s) {
	case '{': return parse_object(p, depth);
	case '[': return parse_array(p, depth);
	case '"': return parse_string(p);
	case 't':
	case 'f':
	case 'n':
		if (word(p, "true") || word(p, "false")) {
			nb_json *v = node(NB_JSON_BOOL);
			v->boolean = p->s[-1] == 'e' && p->s[-2] == 'u';
			return v;
		}
		if (word(p, "null"))
			return node(NB_JSON_NULL);
		return fail(p, p->s, "%san unknown word (true, false or null expected)", ""), NULL;
	default: return parse_number(p);
	}
}

nb_json *nb_json_parse(const char *text, size_t len, const char *name)
{
	jparser p = {.s = text, .end = text + len, .name = name};
	nb_json *v = parse_value(&p, 0);
	if (v) {
		skip_ws(&p);
		if (p.s < p.end) {
			fail(&p, p.s, "%stext after the JSON value", "");
			nb_json_free(v);
			v = NULL;
		}
	}
	if (!v) {
		long line = 1, col = 1;
		for (const char *c = text; c < p.at && c < p.end; c++)
			line += *c == '\n', col = *c == '\n' ? 1 : col + 1;
		nb_error("%s line %ld column %ld: not valid JSON: %s", name, line, col, p.err);
	}
	return v;
}

nb_json *nb_json_load(const char *path)
{
	size_t len;
	char *text = nb_read_input(path, "JSON file", &len);
	if (!text)
		return NULL;
	nb_json *v = nb_json_parse(text, len, path);
	free(text);
	return v;
}

void nb_json_free(nb_json *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->n; i++) {
		nb_json_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	free(v);
}

const nb_json *nb_json_get(const nb_json *v, const char *key)
{
	if (!v || v->type != NB_JSON_OBJ)
		return NULL;
	for (int i = v->n - 1; i >= 0; i--)
		if (!strcmp(v->keys[i], key))
			return v->items[i];
	return NULL;
}

double nb_json_getnum(const nb_json *v, const char *key, double def)
{
	const nb_json *x = nb_json_get(v, key);
	return x && x->type == NB_JSON_NUM ? x->num : def;
}

const char *nb_json_getstr(const nb_json *v, const char *key, const char *def)
{
	const nb_json *x = nb_json_get(v, key);
	return x && x->type == NB_JSON_STR ? x->str : def;
}

void nb_json_put_str(nb_buf *b, const char *s)
{
	nb_buf_add(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			char e[2] = {'\\', (char)*c};
			nb_buf_add(b, e, 2);
		} else if (*c < 0x20 || *c == 0x7f) {
			nb_buf_addf(b, "\\u%04x", *c);
		} else {
			nb_buf_add(b, c, 1);
		}
	}
	nb_buf_add(b, "\"", 1);
}

void nb_json_put_num(nb_buf *b, double x)
{
	if (isfinite(x))
		nb_buf_addf(b, "%.9g", x);
	else
		nb_buf_adds(b, "null");
}
