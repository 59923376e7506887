/* The per-shard status table (schemas/ingest_status.md) and atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "pipeline/ingest.h"

#define STATUS_HEADER "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\n"

int ingest_write_atomic(const char *path, const char *text, size_t len)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return nb_error("cannot write '%s': path too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return nb_error("cannot create '%s': %s", tmp, strerror(errno));
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return nb_error("cannot write '%s': %s", tmp, strerror(e));
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		int e = errno;
		unlink(tmp);
		return nb_error("cannot write '%s': %s", tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return nb_error("cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
	}
	return 0;
}

typedef struct {
	char *s;
	size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->s = nb_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

/* Tabs, newlines and backslashes are escaped so every row stays one line. */
static void put_field(buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '\t': put(b, "\\t", 2); break;
		case '\n': put(b, "\\n", 2); break;
		case '\r': put(b, "\\r", 2); break;
		case '\\': put(b, "\\\\", 2); break;
		default: put(b, s, 1);
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
	buf b = {0};
	put(&b, STATUS_HEADER, strlen(STATUS_HEADER));
	for (size_t i = 0; i < n; i++) {
		const ingest_row *r = &rows[i];
		char head[160];
		int k = snprintf(head, sizeof(head), "%ld\t%" PRIu64 "\t%s\t%d\t%016" PRIx64 "%016" PRIx64 "\t",
				 r->line, r->id, r->status, r->attempts, r->hash[0], r->hash[1]);
		put(&b, head, (size_t)k);
		put_field(&b, r->url);
		put(&b, "\t", 1);
		put_field(&b, r->key);
		put(&b, "\t", 1);
		put_field(&b, r->detail);
		put(&b, "\n", 1);
	}
	int rc = ingest_write_atomic(path, b.s, b.n);
	free(b.s);
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
	buf b = {0};
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		put(&b, chunk, got);
	fclose(f);
	if (b.n < strlen(STATUS_HEADER) || memcmp(b.s, STATUS_HEADER, strlen(STATUS_HEADER))) {
		free(b.s);
		return nb_error("cannot read status table '%s': missing header line", path);
	}
	ingest_row *rows = NULL;
	size_t n = 0, cap = 0;
	size_t pos = strlen(STATUS_HEADER);
	long lineno = 1;
	while (pos < b.n) {
		lineno++;
		char *nl = memchr(b.s + pos, '\n', b.n - pos);
		if (!nl) {
			ingest_rows_free(rows, n);
			free(b.s);
			return nb_error("cannot read status table '%s': line %ld is truncated", path, lineno);
		}
		*nl = 0;
		char *fld[8];
		int nf = 0;
		char *p = b.s + pos;
		fld[nf++] = p;
		for (; *p && nf < 8; p++)
			if (*p == '\t') {
				*p = 0;
				fld[nf++] = p + 1;
			}
		pos = (size_t)(nl - b.s) + 1;
		if (nf != 8 || strlen(fld[4]) != 32) {
			ingest_rows_free(rows, n);
			free(b.s);
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
			free(b.s);
			return nb_error("cannot read status table '%s': line %ld is malformed", path, lineno);
		}
	}
	free(b.s);
	*rows_out = rows;
	*n_out = n;
	return 0;
}
