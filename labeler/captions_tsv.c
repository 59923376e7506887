#include "labeler/captions_tsv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"

#define BOM "\xef\xbb\xbf"

static int parse_id(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int cmp_row(const void *a, const void *b)
{
	const captions_tsv_row *x = a, *y = b;
	if (x->id != y->id)
		return (x->id > y->id) - (x->id < y->id);
	return (x->line > y->line) - (x->line < y->line);
}

/* One line (NUL-terminated in place, line end removed) into *r. */
static int parse_line(const char *name, long line, char *s, size_t l, captions_tsv_row *r)
{
	if (memchr(s, '\0', l))
		return nb_error("captions '%s' line %ld: NUL byte", name, line);
	if (l > 0 && s[l - 1] == '\r')
		l--;
	s[l] = '\0';
	if (l == 0)
		return nb_error("captions '%s' line %ld: empty line (expected id<TAB>caption)", name, line);
	if (l >= 3 && !memcmp(s, BOM, 3))
		return nb_error("captions '%s' line %ld: a byte-order mark inside the file (were files "
				"concatenated?)", name, line);
	char *tab = memchr(s, '\t', l);
	if (!tab)
		return nb_error("captions '%s' line %ld: malformed line (expected id<TAB>caption)", name, line);
	if (parse_id(s, (size_t)(tab - s), &r->id) < 0) {
		char q[200];
		*tab = '\0';
		return nb_error("captions '%s' line %ld: id '%s' is not an unsigned integer", name, line,
				nb_quote(q, sizeof q, s));
	}
	char *text = tab + 1;
	size_t tl = l - (size_t)(text - s), at;
	if (memchr(text, '\t', tl))
		return nb_error("captions '%s' line %ld: a TAB inside the caption (write it as \\t; "
				"expected id<TAB>caption)", name, line);
	if (nb_unescape(text, tl, &tl, &at) < 0)
		return nb_error("captions '%s' line %ld: %s", name, line, nb_errmsg());
	r->line = line;
	r->text = text;
	return 0;
}

int captions_tsv_parse(const char *name, char *data, size_t len, captions_tsv *t)
{
	memset(t, 0, sizeof *t);
	size_t pos = len >= 3 && !memcmp(data, BOM, 3) ? 3 : 0, cap = 0;
	long n = 0, line = 0;
	captions_tsv_row *rows = NULL;
	while (pos < len) {
		char *start = data + pos, *nl = memchr(start, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - start) : len - pos;
		pos += l + (nl ? 1 : 0);
		NB_GROW(rows, cap, (size_t)n + 1, 1024);
		if (parse_line(name, ++line, start, l, &rows[n]) < 0) {
			free(rows);
			return -1;
		}
		n++;
	}
	if (n > 1) /* qsort must not get the NULL of an empty file */
		qsort(rows, (size_t)n, sizeof *rows, cmp_row);
	for (long i = 1; i < n; i++)
		if (rows[i].id == rows[i - 1].id) {
			nb_error("captions '%s' line %ld: duplicate id %" PRIu64 " (first on line %ld)", name,
				 rows[i].line, rows[i].id, rows[i - 1].line);
			free(rows);
			return -1;
		}
	t->rows = rows;
	t->n = n;
	return 0;
}

int captions_tsv_read(const char *path, captions_tsv *t)
{
	memset(t, 0, sizeof *t);
	size_t len;
	char *data = nb_read_input(path, "captions", &len);
	if (!data)
		return -1;
	if (captions_tsv_parse(path, data, len, t) < 0) {
		free(data);
		return -1;
	}
	t->buf = data;
	return 0;
}

void captions_tsv_add(nb_buf *b, uint64_t id, const char *caption)
{
	nb_buf_addf(b, "%" PRIu64 "\t", id);
	nb_buf_add_escaped(b, caption, strlen(caption));
	nb_buf_add(b, "\n", 1);
}

void captions_tsv_free(captions_tsv *t)
{
	free(t->rows);
	free(t->buf);
	memset(t, 0, sizeof *t);
}
