/* libFuzzer target: the captions TSV reader (labeler/captions_tsv.h) on
 * arbitrary bytes. Besides memory safety it checks the reader's promises:
 * either a message naming the file, or rows sorted by unique id, each with
 * a line number in range and a caption that is one line of the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
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
		REQUIRE(!memchr(r->text, '\n', l));
	}
	captions_tsv_free(&t);
	free(buf);
	return 0;
}
