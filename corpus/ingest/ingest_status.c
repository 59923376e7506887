/* The per-shard status table (schemas/ingest_status.md). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_num.h"
#include "corpus/ingest/ingest.h"

#define STATUS_HEADER "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\tdigest\twidth\theight\tsha256\n"
/* Older tables, read: without the original size and SHA-256 (0 and zeros),
 * and before that without the digest (0: unknown). */
#define STATUS_HEADER_V2 "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\tdigest\n"
#define STATUS_HEADER_V1 "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\n"
#define STATUS_FIELDS 12

/* Tabs, newlines and backslashes are escaped so every row stays one line. */
static void put_field(nb_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '\t': nb_buf_add(b, "\\t", 2); break;
		case '\n': nb_buf_add(b, "\\n", 2); break;
		case '\r': nb_buf_add(b, "\\r", 2); break;
		case '\\': nb_buf_add(b, "\\\\", 2); break;
		default: nb_buf_add(b, s, 1);
		}
	}
}

static char *unescape(const char *s, size_t n)
{
	char *r = nb_xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			char c = s[++i];
			r[k++] = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
		} else {
			r[k++] = s[i];
		}
	}
	r[k] = 0;
	return r;
}

int ingest_status_write(const char *path, const ingest_row *rows, size_t n)
{
	nb_buf b = {0};
	nb_buf_adds(&b, STATUS_HEADER);
	for (size_t i = 0; i < n; i++) {
		const ingest_row *r = &rows[i];
		nb_buf_addf(&b, "%ld\t%" PRIu64 "\t%s\t%d\t%016" PRIx64 "%016" PRIx64 "\t", r->line, r->id,
			    r->status, r->attempts, r->hash[0], r->hash[1]);
		put_field(&b, r->url);
		nb_buf_add(&b, "\t", 1);
		put_field(&b, r->key);
		nb_buf_add(&b, "\t", 1);
		put_field(&b, r->detail);
		nb_buf_addf(&b, "\t%016" PRIx64 "\t%d\t%d\t", r->digest, r->width, r->height);
		for (int k = 0; k < 32; k++)
			nb_buf_addf(&b, "%02x", r->sha256[k]);
		nb_buf_add(&b, "\n", 1);
	}
	int rc = nb_write_file_atomic(path, b.data, b.len);
	free(b.data);
	return rc;
}

void ingest_rows_free(ingest_row *rows, size_t n)
{
	for (size_t i = 0; i < n && rows; i++) {
		free(rows[i].url);
		free(rows[i].key);
		free(rows[i].detail);
	}
	free(rows);
}

static int parse_hex64(const char *s, uint64_t *v)
{
	*v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
		if (d < 0)
			return -1;
		*v = *v << 4 | (uint64_t)d;
	}
	return 0;
}

static int parse_hex_bytes(const char *s, uint8_t *v, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
		if (d < 0)
			return -1;
		v[i / 2] = (uint8_t)(i % 2 ? v[i / 2] | d : d << 4);
	}
	return 0;
}

/* Splits a row (NUL-terminated, without its newline) at its tabs into r.
 * -1 when it does not have nexp fields (12; 9 for a table without the
 * size and SHA-256, 8 without the digest either; *nf says how many); else
 * r owns its strings, and the result is 1 when a field is malformed, 0
 * otherwise. */
static int parse_row(char *p, ingest_row *r, int nexp, int *nf)
{
	char *fld[STATUS_FIELDS];
	*nf = 0;
	fld[(*nf)++] = p;
	for (; *p; p++)
		if (*p == '\t') {
			if (*nf == nexp) {
				++*nf;
				return -1;
			}
			*p = 0;
			fld[(*nf)++] = p + 1;
		}
	if (*nf != nexp)
		return -1;
	memset(r, 0, sizeof(*r));
	long attempts = 0;
	int bad = nb_parse_long(fld[0], LONG_MIN, LONG_MAX, "line", &r->line) < 0;
	bad |= nb_parse_u64(fld[1], 0, UINT64_MAX, "id", &r->id) < 0;
	bad |= snprintf(r->status, sizeof(r->status), "%s", fld[2]) >= (int)sizeof(r->status);
	bad |= nb_parse_long(fld[3], INT_MIN, INT_MAX, "attempts", &attempts) < 0;
	r->attempts = (int)attempts;
	bad |= strlen(fld[4]) != 32 || parse_hex64(fld[4], &r->hash[0]) < 0 ||
	       parse_hex64(fld[4] + 16, &r->hash[1]) < 0;
	if (nexp >= 9)
		bad |= strlen(fld[8]) != 16 || parse_hex64(fld[8], &r->digest) < 0;
	if (nexp == STATUS_FIELDS) {
		long w = 0, h = 0;
		bad |= nb_parse_long(fld[9], 0, INT_MAX, "width", &w) < 0;
		bad |= nb_parse_long(fld[10], 0, INT_MAX, "height", &h) < 0;
		bad |= parse_hex_bytes(fld[11], r->sha256, 32) < 0;
		r->width = (int)w;
		r->height = (int)h;
	}
	r->url = unescape(fld[5], strlen(fld[5]));
	r->key = unescape(fld[6], strlen(fld[6]));
	r->detail = unescape(fld[7], strlen(fld[7]));
	return bad;
}

int ingest_status_read(const char *path, ingest_row **rows_out, size_t *n_out)
{
	size_t len;
	char *text = nb_read_file(path, &len);
	if (!text)
		return errno == EIO ? -1 : nb_error("cannot open status table '%s': %s", path, strerror(errno));
	size_t hl = strlen(STATUS_HEADER), hl1 = strlen(STATUS_HEADER_V1), hl2 = strlen(STATUS_HEADER_V2);
	int nexp = STATUS_FIELDS;
	if (len >= hl1 && !memcmp(text, STATUS_HEADER_V1, hl1)) {
		hl = hl1;
		nexp = 8;
	} else if (len >= hl2 && !memcmp(text, STATUS_HEADER_V2, hl2)) {
		hl = hl2;
		nexp = 9;
	} else if (len < hl || memcmp(text, STATUS_HEADER, hl)) {
		free(text);
		return nb_error("cannot read status table '%s': missing header line", path);
	}
	ingest_row *rows = NULL;
	size_t n = 0, cap = 0, pos = hl;
	long lineno = 1;
	int rc = 0;
	while (rc == 0 && pos < len) {
		lineno++;
		char *nl = memchr(text + pos, '\n', len - pos);
		if (!nl) {
			rc = nb_error("cannot read status table '%s': line %ld is truncated", path, lineno);
			break;
		}
		*nl = 0;
		NB_GROW(rows, cap, n + 1, 256);
		int nf;
		int bad = parse_row(text + pos, &rows[n], nexp, &nf);
		pos = (size_t)(nl - text) + 1;
		if (bad < 0) {
			rc = nb_error("cannot read status table '%s': line %ld has %s%d fields, expected %d", path,
				      lineno, nf > nexp ? "more than " : "", nf > nexp ? nexp : nf, nexp);
			break;
		}
		n++; /* a malformed row owns its strings too */
		if (bad)
			rc = nb_error("cannot read status table '%s': line %ld is malformed", path, lineno);
	}
	free(text);
	if (rc < 0) {
		ingest_rows_free(rows, n);
		return -1;
	}
	*rows_out = rows;
	*n_out = n;
	return 0;
}
