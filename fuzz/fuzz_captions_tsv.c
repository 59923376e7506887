/* libFuzzer target: the captions TSV reader (labeler/captions_tsv.h) on
 * arbitrary bytes. Besides memory safety it checks the reader's promises:
 * either a message naming the file, or rows sorted by unique id, each with
 * a line number in range and a caption unescaped from one field of the
 * input (schemas/captions_tsv.md): escaping it again and undoing that gives
 * it back, and a newline in it came from a "\n" escape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "labeler/captions_tsv.h"

#define REQUIRE(c)       \
	do {             \
		if (!(c))    \
			abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* size bytes and the one spare byte the reader may write a NUL to; no
	 * terminator, so reading past the input is caught by ASan. */
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	long lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	captions_tsv t;
	nb_errclear();
	if (captions_tsv_parse("f.tsv", buf, size, &t) < 0) {
		REQUIRE(strstr(nb_errmsg(), "captions 'f.tsv' line ") != NULL);
		REQUIRE(t.rows == NULL && t.n == 0);
		free(buf);
		return 0;
	}
	REQUIRE(t.n >= 0 && t.n <= lines);
	for (long i = 0; i < t.n; i++) {
		const captions_tsv_row *r = &t.rows[i];
		REQUIRE(i == 0 || r->id > t.rows[i - 1].id);
		REQUIRE(r->line >= 1 && r->line <= lines);
		REQUIRE(r->text > buf && r->text <= buf + size);
		/* The caption ends at a NUL the reader wrote over the line end (or
		 * the CR before it), so it holds neither. */
		size_t l = strlen(r->text);
		REQUIRE(r->text + l <= buf + size);
		nb_buf e = {0};
		nb_buf_add_escaped(&e, r->text, l);
		nb_buf_add(&e, "", 1);
		REQUIRE(!memchr(e.data, '\n', e.len) && !memchr(e.data, '\t', e.len));
		size_t back, at;
		REQUIRE(nb_unescape(e.data, e.len - 1, &back, &at) == 0);
		REQUIRE(back == l && memcmp(e.data, r->text, l) == 0);
		free(e.data);
	}
	captions_tsv_free(&t);
	free(buf);
	return 0;
}
