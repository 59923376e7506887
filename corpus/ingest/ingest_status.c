/* The per-shard status table (schemas/ingest_status.md) and atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/ingest/ingest.h"

#define STATUS_HEADER "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\n"

int ingest_write_atomic(const char *path, const char *text, size_t len)
{
	return nb_write_file_atomic(path, text, len);
}


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
	nb_buf_add(&b, STATUS_HEADER, strlen(STATUS_HEADER));
	for (size_t i = 0; i < n; i++) {
		const ingest_row *r = &rows[i];
		char head[160];
		int k = snprintf(head, sizeof(head), "%ld\t%" PRIu64 "\t%s\t%d\t%016" PRIx64 "%016" PRIx64 "\t",
				 r->line, r->id, r->status, r->attempts, r->hash[0], r->hash[1]);
		nb_buf_add(&b, head, (size_t)k);
		put_field(&b, r->url);
		nb_buf_add(&b, "\t", 1);
		put_field(&b, r->key);
		nb_buf_add(&b, "\t", 1);
		put_field(&b, r->detail);
		nb_buf_add(&b, "\n", 1);
	}
	int rc = ingest_write_atomic(path, b.data, b.len);
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

int ingest_status_read(const char *path, ingest_row **rows_out, size_t *n_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return nb_error("cannot open status table '%s': %s", path, strerror(errno));
	nb_buf b = {0};
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		nb_buf_add(&b, chunk, got);
	fclose(f);
	if (b.len < strlen(STATUS_HEADER) || memcmp(b.data, STATUS_HEADER, strlen(STATUS_HEADER))) {
		free(b.data);
		return nb_error("cannot read status table '%s': missing header line", path);
	}
	ingest_row *rows = NULL;
	size_t n = 0, cap = 0;
	size_t pos = strlen(STATUS_HEADER);
	long lineno = 1;
	while (pos < b.len) {
		lineno++;
		char *nl = memchr(b.data + pos, '\n', b.len - pos);
		if (!nl) {
			ingest_rows_free(rows, n);
			free(b.data);
			return nb_error("cannot read status table '%s': line %ld is truncated", path, lineno);
		}
		*nl = 0;
		char *fld[8];
		int nf = 0;
		char *p = b.data + pos;
		fld[nf++] = p;
		for (; *p && nf < 8; p++)
			if (*p == '\t') {
				*p = 0;
				fld[nf++] = p + 1;
			}
		pos = (size_t)(nl - b.data) + 1;
		if (nf != 8 || strlen(fld[4]) != 32) {
			ingest_rows_free(rows, n);
			free(b.data);
			return nb_error("cannot read status table '%s': line %ld has %d fields, expected 8", path,
					lineno, nf);
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			rows = nb_xrealloc(rows, cap * sizeof(*rows));
		}
		ingest_row *r = &rows[n];
		memset(r, 0, sizeof(*r));
		char *end;
		r->line = strtol(fld[0], &end, 10);
		int bad = *end != 0;
		r->id = strtoull(fld[1], &end, 10);
		bad |= *end != 0;
		bad |= snprintf(r->status, sizeof(r->status), "%s", fld[2]) >= (int)sizeof(r->status);
		r->attempts = (int)strtol(fld[3], &end, 10);
		bad |= *end != 0;
		bad |= parse_hex64(fld[4], &r->hash[0]) < 0 || parse_hex64(fld[4] + 16, &r->hash[1]) < 0;
		r->url = unescape(fld[5], strlen(fld[5]));
		r->key = unescape(fld[6], strlen(fld[6]));
		r->detail = unescape(fld[7], strlen(fld[7]));
		n++;
		if (bad) {
			ingest_rows_free(rows, n);
			free(b.data);
			return nb_error("cannot read status table '%s': line %ld is malformed", path, lineno);
		}
	}
	free(b.data);
	*rows_out = rows;
	*n_out = n;
	return 0;
}
