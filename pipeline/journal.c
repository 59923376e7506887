#include "pipeline/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"

/* ---------------------------------------------------------------- UTF-8 */

/* Length (1..4) of the valid UTF-8 sequence at p (n bytes available), 0 if
 * invalid: overlong forms, surrogates and code points over U+10FFFF are. */
static int utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0], cp, min;
	int len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)len > n)
		return 0;
	for (int i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* -------------------------------------------------- flat JSON: writer */

void jsonl_begin(nb_buf *b) { nb_buf_add(b, "{", 1); }

static void put_key(nb_buf *b, const char *key)
{
	for (const char *k = key; *k; k++)
		if (*k < 0x21 || *k > 0x7e || *k == '"' || *k == '\\')
			NB_BUG("jsonl: key '%s' needs escaping", key);
	if (!b->len || b->data[b->len - 1] != '{')
		nb_buf_add(b, ",", 1);
	nb_buf_add(b, "\"", 1);
	nb_buf_adds(b, key);
	nb_buf_add(b, "\":", 2);
}

void jsonl_str(nb_buf *b, const char *key, const char *val)
{
	put_key(b, key);
	nb_buf_add(b, "\"", 1);
	const unsigned char *p = (const unsigned char *)val;
	size_t n = strlen(val);
	while (n) {
		unsigned c = *p;
		int k = utf8_len(p, n);
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			nb_buf_add(b, e, 2);
		} else if (c == '\n') {
			nb_buf_add(b, "\\n", 2);
		} else if (c == '\r') {
			nb_buf_add(b, "\\r", 2);
		} else if (c == '\t') {
			nb_buf_add(b, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			nb_buf_addf(b, "\\u%04x", c);
		} else if (k == 0) {
			nb_buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
			k = 1;
		} else {
			nb_buf_add(b, p, (size_t)k);
		}
		p += k;
		n -= (size_t)k;
	}
	nb_buf_add(b, "\"", 1);
}

void jsonl_int(nb_buf *b, const char *key, int64_t v)
{
	put_key(b, key);
	nb_buf_addf(b, "%" PRId64, v);
}

void jsonl_num(nb_buf *b, const char *key, double v, int decimals)
{
	put_key(b, key);
	if (decimals < 0)
		decimals = 0;
	if (decimals > 17)
		decimals = 17;
	if (isfinite(v))
		nb_buf_addf(b, "%.*f", decimals, v);
	else
		nb_buf_adds(b, "null");
}

void jsonl_end(nb_buf *b) { nb_buf_add(b, "}\n", 2); }

/* -------------------------------------------------- flat JSON: parser */

typedef struct {
	const char *s;
	size_t len, pos;
} cursor;

static int perr(const cursor *c, const char *what)
{
	if (c->pos >= c->len)
		return nb_error("column %zu: unexpected end of line, expected %s", c->pos + 1, what);
	unsigned char ch = (unsigned char)c->s[c->pos];
	if (ch >= 0x20 && ch < 0x7f)
		return nb_error("column %zu: expected %s, found '%c'", c->pos + 1, what, ch);
	return nb_error("column %zu: expected %s, found byte 0x%02x", c->pos + 1, what, ch);
}

static void skip_ws(cursor *c)
{
	while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t'))
		c->pos++;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A string at c (on its '"'), decoded into *out (advanced, NUL-terminated). */
static int parse_string(cursor *c, char **out)
{
	char *d = *out;
	if (c->pos >= c->len || c->s[c->pos] != '"')
		return perr(c, "'\"'");
	c->pos++;
	for (;;) {
		if (c->pos >= c->len)
			return perr(c, "'\"' closing the string");
		const unsigned char *p = (const unsigned char *)c->s + c->pos;
		if (*p == '"') {
			c->pos++;
			break;
		}
		if (*p < 0x20)
			return nb_error("column %zu: control character 0x%02x in a string", c->pos + 1, *p);
		if (*p != '\\') {
			int k = utf8_len(p, c->len - c->pos);
			if (k == 0)
				return nb_error("column %zu: invalid UTF-8 in a string", c->pos + 1);
			memcpy(d, p, (size_t)k);
			d += k;
			c->pos += (size_t)k;
			continue;
		}
		if (c->pos + 1 >= c->len)
			return nb_error("column %zu: unexpected end of line in an escape", c->pos + 2);
		char e = 0;
		switch (p[1]) {
		case '"': e = '"'; break;
		case '\\': e = '\\'; break;
		case '/': e = '/'; break;
		case 'b': e = '\b'; break;
		case 'f': e = '\f'; break;
		case 'n': e = '\n'; break;
		case 'r': e = '\r'; break;
		case 't': e = '\t'; break;
		case 'u': break;
		default: return nb_error("column %zu: bad escape in a string", c->pos + 1);
		}
		if (e) {
			*d++ = e;
			c->pos += 2;
			continue;
		}
		unsigned cp = 0;
		for (int i = 0; i < 4; i++) {
			int h = c->pos + 2 + (size_t)i < c->len ? hexval(p[2 + i]) : -1;
			if (h < 0)
				return nb_error("column %zu: bad \\u escape in a string", c->pos + 1);
			cp = cp << 4 | (unsigned)h;
		}
		if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
			return nb_error("column %zu: \\u%04x is not allowed in a string", c->pos + 1, cp);
		if (cp < 0x80) {
			*d++ = (char)cp;
		} else if (cp < 0x800) {
			*d++ = (char)(0xc0 | cp >> 6);
			*d++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*d++ = (char)(0xe0 | cp >> 12);
			*d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*d++ = (char)(0x80 | (cp & 0x3f));
		}
		c->pos += 6;
	}
	*d++ = '\0';
	*out = d;
	return 0;
}

static int is_digit(const cursor *c)
{
	return c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9';
}

static int parse_number(cursor *c, jsonl_field *f)
{
	size_t start = c->pos;
	int integer = 1;
	if (c->pos < c->len && c->s[c->pos] == '-')
		c->pos++;
	if (c->pos < c->len && c->s[c->pos] == '0')
		c->pos++;
	else if (is_digit(c))
		while (is_digit(c))
			c->pos++;
	else
		return perr(c, "a digit");
	if (c->pos < c->len && c->s[c->pos] == '.') {
		integer = 0;
		c->pos++;
		if (!is_digit(c))
			return perr(c, "a digit after '.'");
		while (is_digit(c))
			c->pos++;
	}
	if (c->pos < c->len && (c->s[c->pos] == 'e' || c->s[c->pos] == 'E')) {
		integer = 0;
		c->pos++;
		if (c->pos < c->len && (c->s[c->pos] == '+' || c->s[c->pos] == '-'))
			c->pos++;
		if (!is_digit(c))
			return perr(c, "a digit in the exponent");
		while (is_digit(c))
			c->pos++;
	}
	/* Room for anything jsonl_num writes: "%.17f" of -DBL_MAX is 327 bytes. */
	char tmp[400];
	size_t n = c->pos - start;
	if (n >= sizeof tmp)
		return nb_error("column %zu: number longer than %zu characters", start + 1, sizeof tmp - 1);
	memcpy(tmp, c->s + start, n);
	tmp[n] = '\0';
	errno = 0;
	if (integer) {
		long long v = strtoll(tmp, NULL, 10);
		if (errno == ERANGE)
			return nb_error("column %zu: integer %s out of range", start + 1, tmp);
		f->type = JSONL_INT;
		f->i = v;
		f->d = (double)v;
	} else {
		double v = strtod(tmp, NULL);
		if (!isfinite(v))
			return nb_error("column %zu: number %s out of range", start + 1, tmp);
		f->type = JSONL_NUM;
		f->d = v;
	}
	return 0;
}

int jsonl_parse(jsonl_obj *o, const char *line, size_t len)
{
	o->n = 0;
	if (len > JSONL_MAX_LINE)
		return nb_error("line longer than %d bytes", JSONL_MAX_LINE);
	/* Decoded strings are never longer than their quoted source, and the
	 * two quotes pay for the NUL: len + 1 bytes hold them all. */
	NB_GROW(o->mem, o->cap, len + 1, 256);
	char *mem = o->mem;
	cursor c = {line, len, 0};
	skip_ws(&c);
	if (c.pos >= c.len || line[c.pos] != '{')
		return perr(&c, "'{'");
	c.pos++;
	skip_ws(&c);
	if (c.pos < c.len && line[c.pos] == '}') {
		c.pos++;
	} else {
		for (;;) {
			if (o->n == JSONL_MAX_FIELDS)
				return nb_error("column %zu: more than %d fields", c.pos + 1, JSONL_MAX_FIELDS);
			jsonl_field *f = &o->f[o->n];
			memset(f, 0, sizeof *f);
			size_t kpos = c.pos;
			f->key = mem;
			if (parse_string(&c, &mem) < 0)
				return -1;
			for (int i = 0; i < o->n; i++)
				if (!strcmp(o->f[i].key, f->key))
					return nb_error("column %zu: duplicate key '%s'", kpos + 1, f->key);
			skip_ws(&c);
			if (c.pos >= c.len || line[c.pos] != ':')
				return perr(&c, "':'");
			c.pos++;
			skip_ws(&c);
			if (c.pos < c.len && line[c.pos] == '"') {
				f->type = JSONL_STR;
				f->s = mem;
				if (parse_string(&c, &mem) < 0)
					return -1;
			} else if (c.pos < c.len && (line[c.pos] == '-' || (line[c.pos] >= '0' && line[c.pos] <= '9'))) {
				if (parse_number(&c, f) < 0)
					return -1;
			} else {
				return perr(&c, "a string or a number");
			}
			o->n++;
			skip_ws(&c);
			if (c.pos < c.len && line[c.pos] == ',') {
				c.pos++;
				skip_ws(&c);
				continue;
			}
			if (c.pos < c.len && line[c.pos] == '}') {
				c.pos++;
				break;
			}
			return perr(&c, "',' or '}'");
		}
	}
	skip_ws(&c);
	if (c.pos < c.len)
		return perr(&c, "the end of the line");
	return 0;
}

const jsonl_field *jsonl_get(const jsonl_obj *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->f[i].key, key))
			return &o->f[i];
	return NULL;
}

void jsonl_obj_free(jsonl_obj *o)
{
	free(o->mem);
	memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------- hash sets */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return mix64(h);
}

/* Open addressing, linear probing; keys are unit + 1 (0 = empty slot). */
typedef struct {
	uint64_t *slot;
	size_t cap, n;
} u64set;

static int set_has(const u64set *s, uint64_t k)
{
	if (!s->cap)
		return 0;
	for (size_t i = mix64(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == k)
			return 1;
		if (s->slot[i] == 0)
			return 0;
	}
}

static void set_put(uint64_t *slot, size_t cap, uint64_t k)
{
	size_t i = mix64(k) & (cap - 1);
	while (slot[i])
		i = (i + 1) & (cap - 1);
	slot[i] = k;
}

static void set_add(u64set *s, uint64_t k)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		uint64_t *slot = nb_xcalloc(cap, sizeof *slot);
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				set_put(slot, cap, s->slot[i]);
		free(s->slot);
		s->slot = slot;
		s->cap = cap;
	}
	set_put(s->slot, s->cap, k);
	s->n++;
}

/* ------------------------------------------------------- the journal */

typedef struct {
	char *name;
	int64_t units, samples;
} jshard;

typedef struct {
	u64set done;
	int64_t accepted, rejected, seen;
	jshard *shards;
	size_t nshards, shcap;
	uint32_t *shidx; /* open addressing: index + 1 into shards, 0 = empty */
	size_t shidx_cap;
	char *teacher, *teacher_digest;
	int complete;
} jround;

typedef struct {
	int round;
	int64_t unit, accepted, rejected, seen;
	char *shard;
} jpending;

struct journal {
	char *path;
	int fd; /* -1: read-only */
	int broken;
	off_t size; /* bytes of complete records on disk */
	char *digest;
	jround *rounds;
	size_t nrounds, rcap;
	int current; /* rounds complete */
	jpending *pending;
	size_t npending, pcap;
	int has_ckpt, ckpt_round;
	int64_t ckpt_step;
	char *ckpt_path;
	int done, resumes;
	int64_t records;
	size_t drop_line; /* journal_parse: line number of a dropped torn line, 0 if none */
	jsonl_obj obj;
	nb_buf line;
};

enum rec_kind { REC_HEADER, REC_UNIT, REC_SHARD, REC_CHECKPOINT, REC_TEACHER, REC_ROUND, REC_RESUME, REC_DONE };

typedef struct {
	enum rec_kind kind;
	int round;
	int64_t unit, accepted, rejected, seen, step, units, samples, dropped, version;
	const char *shard, *path, *digest, *schema;
} rec;

static const char *const kind_name[] = {"header", "unit", "shard", "checkpoint", "teacher", "round", "resume", "done"};

static jround *round_get(const journal *j, int round)
{
	return round >= 0 && (size_t)round < j->nrounds ? &j->rounds[round] : NULL;
}

static jround *round_make(journal *j, int round)
{
	if ((size_t)round >= j->nrounds) {
		NB_GROW(j->rounds, j->rcap, (size_t)round + 1, 4);
		memset(j->rounds + j->nrounds, 0, ((size_t)round + 1 - j->nrounds) * sizeof *j->rounds);
		j->nrounds = (size_t)round + 1;
	}
	return &j->rounds[round];
}

static long shard_find(const jround *r, const char *name)
{
	if (!r || !r->shidx_cap)
		return -1;
	for (size_t i = hash_str(name) & (r->shidx_cap - 1);; i = (i + 1) & (r->shidx_cap - 1)) {
		if (r->shidx[i] == 0)
			return -1;
		if (!strcmp(r->shards[r->shidx[i] - 1].name, name))
			return (long)r->shidx[i] - 1;
	}
}

static void shard_index(uint32_t *idx, size_t cap, const char *name, uint32_t v)
{
	size_t i = hash_str(name) & (cap - 1);
	while (idx[i])
		i = (i + 1) & (cap - 1);
	idx[i] = v;
}

static void shard_add(jround *r, const char *name, int64_t units, int64_t samples)
{
	NB_GROW(r->shards, r->shcap, r->nshards + 1, 16);
	r->shards[r->nshards] = (jshard){nb_xstrdup(name), units, samples};
	r->nshards++;
	if (2 * r->nshards > r->shidx_cap) {
		size_t cap = r->shidx_cap ? 2 * r->shidx_cap : 32;
		free(r->shidx);
		r->shidx = nb_xcalloc(cap, sizeof *r->shidx);
		r->shidx_cap = cap;
		for (size_t i = 0; i < r->nshards; i++)
			shard_index(r->shidx, cap, r->shards[i].name, (uint32_t)i + 1);
	} else {
		shard_index(r->shidx, r->shidx_cap, name, (uint32_t)r->nshards);
	}
}

static journal *journal_new(const char *path)
{
	journal *j = nb_xcalloc(1, sizeof *j);
	j->path = nb_xstrdup(path);
	j->fd = -1;
	return j;
}

static void free_pending(journal *j)
{
	for (size_t i = 0; i < j->npending; i++)
		free(j->pending[i].shard);
	j->npending = 0;
}

static void journal_free(journal *j)
{
	if (!j)
		return;
	for (size_t r = 0; r < j->nrounds; r++) {
		jround *x = &j->rounds[r];
		free(x->done.slot);
		for (size_t i = 0; i < x->nshards; i++)
			free(x->shards[i].name);
		free(x->shards);
		free(x->shidx);
		free(x->teacher);
		free(x->teacher_digest);
	}
	free(j->rounds);
	free_pending(j);
	free(j->pending);
	free(j->ckpt_path);
	free(j->digest);
	free(j->path);
	jsonl_obj_free(&j->obj);
	free(j->line.data);
	free(j);
}

/* ---- field checks, shared by the writers (on the caller's strings) and
 * the loader (on decoded strings) ---- */

static int check_text(const char *what, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return nb_error("%s is longer than %zu bytes", what, max);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return nb_error("%s '%s' has a control character", what, s);
		int k = utf8_len(p + i, n - i);
		if (k == 0)
			return nb_error("%s '%s' is not valid UTF-8", what, s);
		i += (size_t)k;
	}
	return 0;
}

/* A shard file name: "" allowed only where empty says so. */
static int check_shard_name(const char *s, int empty)
{
	if (!*s)
		return empty ? 0 : nb_error("empty shard name");
	if (!strcmp(s, ".") || !strcmp(s, "..") || strchr(s, '/'))
		return nb_error("shard name '%s' is not a file name", s);
	return check_text("shard name", s, JOURNAL_MAX_NAME);
}

static int check_path(const char *s)
{
	if (!*s)
		return nb_error("empty path");
	return check_text("path", s, JOURNAL_MAX_PATH);
}

static int check_digest(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOURNAL_MAX_DIGEST || strspn(s, "0123456789abcdef") != n)
		return nb_error("digest '%.*s' is not 1 to %d lowercase hex digits", 140, s, JOURNAL_MAX_DIGEST);
	return 0;
}

/* ---- decoding a parsed line into a record: exact field sets, types, ranges ---- */

static int get_int(const jsonl_obj *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	const jsonl_field *f = jsonl_get(o, key);
	if (!f)
		return nb_error("missing field '%s'", key);
	if (f->type != JSONL_INT)
		return nb_error("field '%s' is not an integer", key);
	if (f->i < lo || f->i > hi)
		return nb_error("field '%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", key, f->i, lo, hi);
	*out = f->i;
	return 0;
}

static int get_str(const jsonl_obj *o, const char *key, const char **out)
{
	const jsonl_field *f = jsonl_get(o, key);
	if (!f)
		return nb_error("missing field '%s'", key);
	if (f->type != JSONL_STR)
		return nb_error("field '%s' is not a string", key);
	*out = f->s;
	return 0;
}

/* Every field of o must be one of keys (NULL-terminated). */
static int only_keys(const jsonl_obj *o, const char *kind, const char *const *keys)
{
	for (int i = 0; i < o->n; i++) {
		int ok = 0;
		for (const char *const *k = keys; *k; k++)
			ok |= !strcmp(o->f[i].key, *k);
		if (!ok)
			return nb_error("unknown field '%s' in a %s record", o->f[i].key, kind);
	}
	return 0;
}

static int get_round(const jsonl_obj *o, rec *r)
{
	int64_t v;
	if (get_int(o, "round", 0, JOURNAL_MAX_ROUND, &v) < 0)
		return -1;
	r->round = (int)v;
	return 0;
}

static int decode(const jsonl_obj *o, rec *r)
{
	memset(r, 0, sizeof *r);
	const int64_t M = JOURNAL_MAX_COUNT;
	if (jsonl_get(o, "journal")) {
		static const char *const k[] = {"journal", "version", "config_digest", NULL};
		r->kind = REC_HEADER;
		if (get_str(o, "journal", &r->schema) < 0)
			return -1;
		if (strcmp(r->schema, JOURNAL_SCHEMA))
			return nb_error("not an nboost run journal (schema '%s', expected '%s')", r->schema, JOURNAL_SCHEMA);
		if (get_int(o, "version", 1, INT32_MAX, &r->version) < 0)
			return -1;
		if (r->version > JOURNAL_VERSION)
			return nb_error("journal version %" PRId64 " was written by a newer nboost (this one reads version %d)",
					r->version, JOURNAL_VERSION);
		if (only_keys(o, "header", k) < 0 || get_str(o, "config_digest", &r->digest) < 0)
			return -1;
		return check_digest(r->digest);
	}
	const char *ev;
	if (get_str(o, "ev", &ev) < 0)
		return -1;
	if (!strcmp(ev, "unit")) {
		static const char *const k[] = {"ev", "round", "unit", "shard", "accepted", "rejected", "seen", NULL};
		r->kind = REC_UNIT;
		if (only_keys(o, ev, k) < 0 || get_round(o, r) < 0 || get_int(o, "unit", 0, M, &r->unit) < 0 ||
		    get_str(o, "shard", &r->shard) < 0 || get_int(o, "accepted", 0, M, &r->accepted) < 0 ||
		    get_int(o, "rejected", 0, M, &r->rejected) < 0 || get_int(o, "seen", 0, M, &r->seen) < 0 ||
		    check_shard_name(r->shard, 1) < 0)
			return -1;
		if ((r->accepted == 0) != (r->shard[0] == '\0'))
			return nb_error("unit %" PRId64 ": the shard must be \"\" exactly when no sample was accepted "
					"(shard '%s', accepted %" PRId64 ")", r->unit, r->shard, r->accepted);
		return 0;
	}
	if (!strcmp(ev, "shard")) {
		static const char *const k[] = {"ev", "round", "shard", "units", "samples", NULL};
		r->kind = REC_SHARD;
		return only_keys(o, ev, k) < 0 || get_round(o, r) < 0 || get_str(o, "shard", &r->shard) < 0 ||
				       get_int(o, "units", 1, M, &r->units) < 0 || get_int(o, "samples", 1, M, &r->samples) < 0 ||
				       check_shard_name(r->shard, 0) < 0
			       ? -1
			       : 0;
	}
	if (!strcmp(ev, "checkpoint")) {
		static const char *const k[] = {"ev", "round", "step", "path", NULL};
		r->kind = REC_CHECKPOINT;
		return only_keys(o, ev, k) < 0 || get_round(o, r) < 0 || get_int(o, "step", 0, M, &r->step) < 0 ||
				       get_str(o, "path", &r->path) < 0 || check_path(r->path) < 0
			       ? -1
			       : 0;
	}
	if (!strcmp(ev, "teacher")) {
		static const char *const k[] = {"ev", "round", "path", "digest", NULL};
		r->kind = REC_TEACHER;
		return only_keys(o, ev, k) < 0 || get_round(o, r) < 0 || get_str(o, "path", &r->path) < 0 ||
				       get_str(o, "digest", &r->digest) < 0 || check_path(r->path) < 0 ||
				       check_digest(r->digest) < 0
			       ? -1
			       : 0;
	}
	if (!strcmp(ev, "round")) {
		static const char *const k[] = {"ev", "round", NULL};
		r->kind = REC_ROUND;
		return only_keys(o, ev, k) < 0 || get_round(o, r) < 0 ? -1 : 0;
	}
	if (!strcmp(ev, "resume")) {
		static const char *const k[] = {"ev", "dropped", NULL};
		r->kind = REC_RESUME;
		return only_keys(o, ev, k) < 0 || get_int(o, "dropped", 0, M, &r->dropped) < 0 ? -1 : 0;
	}
	if (!strcmp(ev, "done")) {
		static const char *const k[] = {"ev", NULL};
		r->kind = REC_DONE;
		return only_keys(o, ev, k);
	}
	return nb_error("unknown record \"ev\":\"%.64s\"", ev);
}

/* ---- consistency of a record with the journal so far (no changes) ---- */

static const jpending *pending_find(const journal *j, int round, int64_t unit)
{
	for (size_t i = 0; i < j->npending; i++)
		if (j->pending[i].round == round && j->pending[i].unit == unit)
			return &j->pending[i];
	return NULL;
}

static int check(const journal *j, const rec *r)
{
	if (r->kind == REC_HEADER)
		return j->digest ? nb_error("a second header") : 0;
	if (!j->digest)
		return nb_error("the first line is not a journal header");
	if (j->done)
		return nb_error("a %s record after \"done\"", kind_name[r->kind]);
	int has_round = r->kind == REC_UNIT || r->kind == REC_SHARD || r->kind == REC_CHECKPOINT ||
			r->kind == REC_TEACHER || r->kind == REC_ROUND;
	if (has_round && r->round < j->current)
		return nb_error("a %s record for round %d, which is already complete", kind_name[r->kind], r->round);
	if (has_round && r->round > j->current)
		return nb_error("a %s record for round %d before round %d is complete", kind_name[r->kind], r->round,
				j->current);
	const jround *x = round_get(j, r->round);
	switch (r->kind) {
	case REC_UNIT: {
		if (x && set_has(&x->done, (uint64_t)r->unit + 1))
			return nb_error("unit %" PRId64 " of round %d is already done", r->unit, r->round);
		const jpending *p = pending_find(j, r->round, r->unit);
		if (p)
			return nb_error("unit %" PRId64 " of round %d is already pending in shard '%s'", r->unit, r->round,
					p->shard);
		if (r->shard[0] && shard_find(x, r->shard) >= 0)
			return nb_error("unit %" PRId64 " names shard '%s', which round %d already committed", r->unit,
					r->shard, r->round);
		return 0;
	}
	case REC_SHARD: {
		if (shard_find(x, r->shard) >= 0)
			return nb_error("shard '%s' of round %d is already committed", r->shard, r->round);
		int64_t units = 0, samples = 0;
		for (size_t i = 0; i < j->npending; i++)
			if (j->pending[i].round == r->round && !strcmp(j->pending[i].shard, r->shard))
				units++, samples += j->pending[i].accepted;
		if (units == 0)
			return nb_error("shard '%s' of round %d has no pending units", r->shard, r->round);
		if (units != r->units || samples != r->samples)
			return nb_error("shard '%s' of round %d: the record says %" PRId64 " units and %" PRId64
					" samples, the unit records say %" PRId64 " and %" PRId64,
					r->shard, r->round, r->units, r->samples, units, samples);
		return 0;
	}
	case REC_TEACHER:
		if (x && x->teacher)
			return nb_error("round %d already has a teacher ('%s')", r->round, x->teacher);
		return 0;
	case REC_ROUND:
	case REC_DONE:
		if (j->npending)
			return nb_error("%s with %zu units still pending (unit %" PRId64 " of round %d in shard '%s')",
					r->kind == REC_DONE ? "run done" : "round complete", j->npending,
					j->pending[0].unit, j->pending[0].round, j->pending[0].shard);
		return 0;
	case REC_RESUME:
		if (r->dropped != (int64_t)j->npending)
			return nb_error("resume drops %" PRId64 " pending units, but %zu are pending", r->dropped,
					j->npending);
		return 0;
	default:
		return 0;
	}
}

static void mark_done(journal *j, int round, int64_t unit, int64_t accepted, int64_t rejected, int64_t seen)
{
	jround *x = round_make(j, round);
	set_add(&x->done, (uint64_t)unit + 1);
	x->accepted += accepted;
	x->rejected += rejected;
	x->seen += seen;
}

static void apply(journal *j, const rec *r)
{
	j->records++;
	switch (r->kind) {
	case REC_HEADER:
		j->digest = nb_xstrdup(r->digest);
		break;
	case REC_UNIT:
		if (r->accepted == 0) {
			mark_done(j, r->round, r->unit, 0, r->rejected, r->seen);
		} else {
			NB_GROW(j->pending, j->pcap, j->npending + 1, 16);
			j->pending[j->npending++] = (jpending){r->round, r->unit, r->accepted, r->rejected, r->seen,
							       nb_xstrdup(r->shard)};
		}
		break;
	case REC_SHARD: {
		int64_t units = 0, samples = 0;
		size_t keep = 0;
		for (size_t i = 0; i < j->npending; i++) {
			jpending *p = &j->pending[i];
			if (p->round == r->round && !strcmp(p->shard, r->shard)) {
				mark_done(j, p->round, p->unit, p->accepted, p->rejected, p->seen);
				units++, samples += p->accepted;
				free(p->shard);
			} else {
				j->pending[keep++] = *p;
			}
		}
		j->npending = keep;
		shard_add(round_make(j, r->round), r->shard, units, samples);
		break;
	}
	case REC_CHECKPOINT:
		free(j->ckpt_path);
		j->ckpt_path = nb_xstrdup(r->path);
		j->ckpt_round = r->round;
		j->ckpt_step = r->step;
		j->has_ckpt = 1;
		break;
	case REC_TEACHER: {
		jround *x = round_make(j, r->round);
		x->teacher = nb_xstrdup(r->path);
		x->teacher_digest = nb_xstrdup(r->digest);
		break;
	}
	case REC_ROUND:
		round_make(j, r->round)->complete = 1;
		j->current = r->round + 1;
		break;
	case REC_RESUME:
		free_pending(j);
		j->resumes++;
		break;
	case REC_DONE:
		j->done = 1;
		break;
	}
}

/* ---- loading ---- */

/* Whether the bytes a load would drop, in a journal with no header, are a
 * torn header: up to the first NUL (zero fill), a prefix of what every
 * header starts with, or starting with it. */
static int torn_header(const char *p, size_t n)
{
	static const char start[] = "{\"journal\":\"" JOURNAL_SCHEMA "\"";
	const char *nul = memchr(p, '\0', n);
	size_t m = nul ? (size_t)(nul - p) : n;
	return memcmp(p, start, m < sizeof start - 1 ? m : sizeof start - 1) == 0;
}

journal *journal_parse(const char *data, size_t len, const char *name, size_t *keep)
{
	journal *j = journal_new(name);
	size_t pos = 0, lineno = 0;
	while (pos < len) {
		lineno++;
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl) {
			j->drop_line = lineno; /* no '\n': the write was torn */
			break;
		}
		size_t n = (size_t)(nl - (data + pos));
		int last = (size_t)(nl - data) + 1 == len;
		rec r;
		if (jsonl_parse(&j->obj, data + pos, n) < 0) {
			if (last) {
				j->drop_line = lineno;
				break;
			}
			nb_error("%s:%zu: %s", name, lineno, nb_errmsg());
			goto fail;
		}
		if (decode(&j->obj, &r) < 0 || check(j, &r) < 0) {
			nb_error("%s:%zu: %s", name, lineno, nb_errmsg());
			goto fail;
		}
		apply(j, &r);
		pos += n + 1;
	}
	if (pos < len && !j->digest && !torn_header(data + pos, len - pos)) {
		nb_error("'%s' is not an nboost run journal (its first line is not a journal header)", name);
		goto fail;
	}
	j->size = (off_t)pos;
	*keep = pos;
	return j;
fail:
	journal_free(j);
	return NULL;
}

journal *journal_read(const char *path)
{
	size_t len, keep;
	char *data = nb_read_file(path, &len);
	if (!data)
		return NULL;
	journal *j = journal_parse(data, len, path, &keep);
	free(data);
	return j;
}

/* ---- appending ---- */

/* One write() of the whole line (looping only on a short write), then
 * fdatasync. On failure cuts the file back to the last good record and
 * refuses every later record. */
static int append(journal *j, const char *line, size_t len)
{
	size_t off = 0;
	int e = 0;
	while (off < len) {
		ssize_t w = write(j->fd, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = w < 0 ? errno : EIO;
			break;
		}
		off += (size_t)w;
	}
	if (!e && fdatasync(j->fd) < 0)
		e = errno;
	if (!e) {
		j->size += (off_t)len;
		return 0;
	}
	j->broken = 1;
	if (ftruncate(j->fd, j->size) < 0)
		return nb_error("cannot append to journal '%s': %s; cutting the partial record off failed too: %s",
				j->path, strerror(e), strerror(errno));
	return nb_error("cannot append to journal '%s': %s", j->path, strerror(e));
}

/* Validates j->line (one record + '\n') as the loader would, writes it, and
 * applies it. what names the record for messages. */
static int write_line(journal *j, const char *what)
{
	rec r;
	if (j->fd < 0)
		return nb_error("journal '%s' is open read-only", j->path);
	if (j->broken)
		return nb_error("journal '%s': an earlier write failed, no more records are accepted", j->path);
	if (jsonl_parse(&j->obj, j->line.data, j->line.len - 1) < 0)
		NB_BUG("journal: wrote an unparsable line: %s: %s", nb_errmsg(), j->line.data);
	if (decode(&j->obj, &r) < 0 || check(j, &r) < 0)
		return nb_error("%s: refusing the %s record: %s", j->path, what, nb_errmsg());
	if (append(j, j->line.data, j->line.len) < 0)
		return -1;
	apply(j, &r);
	return 0;
}

static void line_start(journal *j, const char *ev)
{
	j->line.len = 0;
	jsonl_begin(&j->line);
	if (ev)
		jsonl_str(&j->line, "ev", ev);
}

/* Checks the caller's own strings before they are escaped: a byte the
 * writer would have to replace must be refused, not journaled altered. */
#define CHECK_ARG(call, what)                                                                        \
	do {                                                                                         \
		if ((call) < 0)                                                                      \
			return nb_error("%s: refusing the %s record: %s", j->path, what, nb_errmsg()); \
	} while (0)

int journal_unit(journal *j, int round, int64_t unit, const char *shard, int64_t accepted, int64_t rejected,
		 int64_t seen)
{
	CHECK_ARG(check_shard_name(shard, 1), "unit");
	line_start(j, "unit");
	jsonl_int(&j->line, "round", round);
	jsonl_int(&j->line, "unit", unit);
	jsonl_str(&j->line, "shard", shard);
	jsonl_int(&j->line, "accepted", accepted);
	jsonl_int(&j->line, "rejected", rejected);
	jsonl_int(&j->line, "seen", seen);
	jsonl_end(&j->line);
	return write_line(j, "unit");
}

int journal_shard(journal *j, int round, const char *shard)
{
	CHECK_ARG(check_shard_name(shard, 0), "shard");
	int64_t units = 0, samples = 0;
	for (size_t i = 0; i < j->npending; i++)
		if (j->pending[i].round == round && !strcmp(j->pending[i].shard, shard))
			units++, samples += j->pending[i].accepted;
	if (units == 0) /* the record below would be out of range: say why */
		return nb_error("%s: refusing the shard record: shard '%s' of round %d has no pending units", j->path,
				shard, round);
	line_start(j, "shard");
	jsonl_int(&j->line, "round", round);
	jsonl_str(&j->line, "shard", shard);
	jsonl_int(&j->line, "units", units);
	jsonl_int(&j->line, "samples", samples);
	jsonl_end(&j->line);
	return write_line(j, "shard");
}

int journal_checkpoint(journal *j, int round, int64_t step, const char *path)
{
	CHECK_ARG(check_path(path), "checkpoint");
	line_start(j, "checkpoint");
	jsonl_int(&j->line, "round", round);
	jsonl_int(&j->line, "step", step);
	jsonl_str(&j->line, "path", path);
	jsonl_end(&j->line);
	return write_line(j, "checkpoint");
}

int journal_teacher(journal *j, int round, const char *path, const char *digest)
{
	CHECK_ARG(check_path(path), "teacher");
	CHECK_ARG(check_digest(digest), "teacher");
	const jround *x = round_get(j, round);
	if (x && x->teacher && !strcmp(x->teacher, path) && !strcmp(x->teacher_digest, digest) && j->fd >= 0)
		return 0;
	line_start(j, "teacher");
	jsonl_int(&j->line, "round", round);
	jsonl_str(&j->line, "path", path);
	jsonl_str(&j->line, "digest", digest);
	jsonl_end(&j->line);
	return write_line(j, "teacher");
}

int journal_round(journal *j, int round)
{
	line_start(j, "round");
	jsonl_int(&j->line, "round", round);
	jsonl_end(&j->line);
	return write_line(j, "round");
}

int journal_done(journal *j)
{
	line_start(j, "done");
	jsonl_end(&j->line);
	return write_line(j, "done");
}

/* ---- open / close ---- */

static char *read_fd(int fd, const char *path, size_t *len)
{
	nb_buf b = {0};
	char chunk[65536];
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof chunk, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			nb_error("cannot read journal '%s': %s", path, strerror(errno));
			free(b.data);
			return NULL;
		}
		if (n == 0)
			break;
		nb_buf_add(&b, chunk, (size_t)n);
		off += n;
	}
	nb_buf_add(&b, "", 0);
	*len = b.len;
	return b.data;
}

journal *journal_open(const char *rundir, const char *config_digest)
{
	char path[4200];
	if (snprintf(path, sizeof path, "%s/%s", rundir, JOURNAL_FILE) >= (int)sizeof path) {
		nb_error("cannot open the journal of '%.64s...': path too long", rundir);
		return NULL;
	}
	if (check_digest(config_digest) < 0) {
		nb_error("cannot open journal '%s': config %s", path, nb_errmsg());
		return NULL;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		nb_error("cannot open journal '%s': %s", path, strerror(errno));
		return NULL;
	}
	/* One writer per run directory. File systems without flock (ENOLCK,
	 * EOPNOTSUPP on some network mounts) go unguarded. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		nb_error("journal '%s' is in use by another nboost run (locked)", path);
		close(fd);
		return NULL;
	}
	size_t len, keep;
	char *data = read_fd(fd, path, &len);
	journal *j = data ? journal_parse(data, len, path, &keep) : NULL;
	free(data);
	if (!j) {
		close(fd);
		return NULL;
	}
	j->fd = fd;
	/* Checked before anything is changed: a refused job leaves the file as it was. */
	if (j->digest && strcmp(j->digest, config_digest)) {
		nb_error("journal '%s' belongs to a different job configuration (config digest %s, this job %s): "
			 "the job changed in a way that alters results; restore the job file or use a new run directory",
			 path, j->digest, config_digest);
		goto fail;
	}
	if (keep < len) {
		nb_warn("journal '%s': dropping its incomplete last line (line %zu, %zu bytes), left by an interrupted write",
			path, j->drop_line, len - keep);
		if (ftruncate(fd, (off_t)keep) < 0 || fdatasync(fd) < 0) {
			nb_error("cannot truncate journal '%s' to its last complete line: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (!j->digest) {
		line_start(j, NULL);
		jsonl_str(&j->line, "journal", JOURNAL_SCHEMA);
		jsonl_int(&j->line, "version", JOURNAL_VERSION);
		jsonl_str(&j->line, "config_digest", config_digest);
		jsonl_end(&j->line);
		if (write_line(j, "header") < 0 || nb_fsync_parent(path) < 0)
			goto fail;
		return j;
	}
	if (!j->done) {
		line_start(j, "resume");
		jsonl_int(&j->line, "dropped", (int64_t)j->npending);
		jsonl_end(&j->line);
		if (write_line(j, "resume") < 0)
			goto fail;
	}
	return j;
fail:
	close(fd);
	j->fd = -1;
	journal_free(j);
	return NULL;
}

int journal_close(journal *j)
{
	int rc = 0;
	if (!j)
		return 0;
	if (j->fd >= 0 && close(j->fd) < 0)
		rc = nb_error("cannot close journal '%s': %s", j->path, strerror(errno));
	journal_free(j);
	return rc;
}

/* ---- queries ---- */

const char *journal_digest(const journal *j) { return j->digest; }
int64_t journal_records(const journal *j) { return j->records; }
int journal_resumes(const journal *j) { return j->resumes; }
int64_t journal_pending(const journal *j) { return (int64_t)j->npending; }

int journal_unit_done(const journal *j, int round, int64_t unit)
{
	const jround *x = round_get(j, round);
	return x && unit >= 0 && unit < JOURNAL_MAX_COUNT && set_has(&x->done, (uint64_t)unit + 1);
}

int64_t journal_units_done(const journal *j, int round)
{
	const jround *x = round_get(j, round);
	return x ? (int64_t)x->done.n : 0;
}

void journal_round_totals(const journal *j, int round, int64_t *accepted, int64_t *rejected, int64_t *seen)
{
	const jround *x = round_get(j, round);
	if (accepted)
		*accepted = x ? x->accepted : 0;
	if (rejected)
		*rejected = x ? x->rejected : 0;
	if (seen)
		*seen = x ? x->seen : 0;
}

int journal_shard_count(const journal *j, int round)
{
	const jround *x = round_get(j, round);
	return x ? (int)x->nshards : 0;
}

const char *journal_shard_at(const journal *j, int round, int i, int64_t *units, int64_t *samples)
{
	const jround *x = round_get(j, round);
	if (!x || i < 0 || (size_t)i >= x->nshards)
		return NULL;
	if (units)
		*units = x->shards[i].units;
	if (samples)
		*samples = x->shards[i].samples;
	return x->shards[i].name;
}

int journal_shard_known(const journal *j, int round, const char *shard)
{
	return shard_find(round_get(j, round), shard) >= 0;
}

int journal_last_checkpoint(const journal *j, int *round, int64_t *step, const char **path)
{
	if (!j->has_ckpt)
		return 0;
	if (round)
		*round = j->ckpt_round;
	if (step)
		*step = j->ckpt_step;
	if (path)
		*path = j->ckpt_path;
	return 1;
}

const char *journal_teacher_of(const journal *j, int round, const char **digest)
{
	const jround *x = round_get(j, round);
	if (digest)
		*digest = x ? x->teacher_digest : NULL;
	return x ? x->teacher : NULL;
}

int journal_round_complete(const journal *j, int round)
{
	const jround *x = round_get(j, round);
	return x && x->complete;
}

int journal_rounds_complete(const journal *j) { return j->current; }
int journal_run_done(const journal *j) { return j->done; }
