/* The captions TSV reader (labeler/captions_tsv.h): good files in every
 * accepted shape, and each kind of bad input refused with the file, the
 * line and the cause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "labeler/captions_tsv.h"
#include "test_util.h"

/* Parses a copy of text (len bytes, so NULs can be embedded). */
static int parse(const char *text, size_t len, captions_tsv *t)
{
	char *copy = malloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	int rc = captions_tsv_parse("c.tsv", copy, len, t);
	/* The rows point into copy: hand it to t so captions_tsv_free frees it. */
	if (rc == 0)
		t->buf = copy;
	else
		free(copy);
	return rc;
}

static void check_row(const captions_tsv *t, long i, unsigned long long id, long line, const char *text)
{
	CHECK_MSG(i < t->n && t->rows[i].id == id && t->rows[i].line == line && !strcmp(t->rows[i].text, text),
		  "row %ld: expected %llu line %ld '%s'", i, id, line, text);
}

static void test_good(void)
{
	captions_tsv t;
	static const char plain[] = "7\tsmall red circle top left .\n3\tlarge blue square middle center .\n";
	CHECK_MSG(parse(plain, strlen(plain), &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 2);
	check_row(&t, 0, 3, 2, "large blue square middle center .");
	check_row(&t, 1, 7, 1, "small red circle top left .");
	captions_tsv_free(&t);
	CHECK(t.rows == NULL && t.n == 0 && t.buf == NULL);

	/* CRLF, no newline at the end, an empty caption, an escaped tab */
	static const char crlf[] = "1\ta b\r\n2\t\r\n3\tx\\ty";
	CHECK_MSG(parse(crlf, strlen(crlf), &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 3);
	check_row(&t, 0, 1, 1, "a b");
	check_row(&t, 1, 2, 2, "");
	check_row(&t, 2, 3, 3, "x\ty");
	captions_tsv_free(&t);

	/* Escapes (common/nb_escape.h) are undone */
	static const char esc[] = "1\ta\\tb\\nc\\\\d\\x1b[0m\\r\\xc3\\xa9 \xc3\xa9\n";
	CHECK_MSG(parse(esc, strlen(esc), &t) == 0, "%s", nb_errmsg());
	check_row(&t, 0, 1, 1, "a\tb\nc\\d\x1b[0m\r\xc3\xa9 \xc3\xa9");
	captions_tsv_free(&t);

	/* A UTF-8 byte-order mark at the start is skipped; line numbers still count from 1 */
	static const char bom[] = "\xef\xbb\xbf" "5\tred\n";
	CHECK_MSG(parse(bom, strlen(bom), &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 1);
	check_row(&t, 0, 5, 1, "red");
	captions_tsv_free(&t);

	/* The largest id, and ids in any order */
	static const char big[] = "18446744073709551615\tz\n0\ta\n";
	CHECK_MSG(parse(big, strlen(big), &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 2);
	check_row(&t, 0, 0, 2, "a");
	check_row(&t, 1, 18446744073709551615ULL, 1, "z");
	captions_tsv_free(&t);

	/* Empty files (and a lone BOM) hold no rows */
	CHECK(parse("", 0, &t) == 0 && t.n == 0);
	captions_tsv_free(&t);
	CHECK(parse("\xef\xbb\xbf", 3, &t) == 0 && t.n == 0);
	captions_tsv_free(&t);
}

/* text must be refused with a message containing want. */
static void bad(const char *text, size_t len, const char *want)
{
	captions_tsv t;
	nb_errclear();
	int rc = parse(text, len, &t);
	CHECK_MSG(rc < 0 && test_contains(nb_errmsg(), want), "input '%.*s': rc %d, message '%s', expected '%s'",
		  (int)len, text, rc, nb_errmsg(), want);
	if (rc == 0)
		captions_tsv_free(&t);
}

#define BAD(lit, want) bad(lit, sizeof lit - 1, want)

static void test_bad(void)
{
	BAD("1\ta\n2 b\n", "captions 'c.tsv' line 2: malformed line (expected id<TAB>caption)");
	BAD("1\ta\n\n2\tb\n", "captions 'c.tsv' line 2: empty line");
	BAD("1\ta\n\r\n", "line 2: empty line");
	BAD("x12\ta\n", "captions 'c.tsv' line 1: id 'x12' is not an unsigned integer");
	BAD("\ta\n", "line 1: id '' is not an unsigned integer");
	BAD("-1\ta\n", "line 1: id '-1' is not an unsigned integer");
	BAD(" 1\ta\n", "line 1: id ' 1' is not an unsigned integer");
	BAD("18446744073709551616\ta\n", "id '18446744073709551616' is not an unsigned integer");
	BAD("1\x01\x80\ta\n", "id '1\\x01\\x80' is not an unsigned integer");
	BAD("\x1b[31m\ta\n", "id '\\x1b[31m' is not an unsigned integer");
	/* A raw TAB inside the caption would be a third field */
	BAD("1\ta\n3\tx\ty\n", "captions 'c.tsv' line 2: a TAB inside the caption (write it as \\t");
	/* Bad escapes name the line and the escape */
	BAD("1\ta \\q\n", "captions 'c.tsv' line 1: bad escape '\\q'");
	BAD("1\ta \\\n", "captions 'c.tsv' line 1: bad escape '\\' at the end");
	BAD("1\ta \\\r\n", "captions 'c.tsv' line 1: bad escape '\\' at the end");
	BAD("1\ta \\x0\n", "captions 'c.tsv' line 1: bad escape '\\x0'");
	BAD("1\ta \\x00\n", "captions 'c.tsv' line 1: bad escape '\\x00' (a NUL byte)");
	BAD("1\ta\n2\tb\0c\n", "captions 'c.tsv' line 2: NUL byte");
	BAD("4\ta\n5\tb\n4\tc\n", "captions 'c.tsv' line 3: duplicate id 4 (first on line 1)");
	/* A BOM past the start: two files concatenated */
	BAD("1\ta\n\xef\xbb\xbf" "2\tb\n", "captions 'c.tsv' line 2: a byte-order mark inside the file");
	/* A BOM not followed by a valid line is still named by line */
	BAD("\xef\xbb\xbf" "nope\n", "captions 'c.tsv' line 1: malformed line");
}

/* What captions_tsv_add writes, the reader gives back: every byte from 1
 * to 255 in a caption, and every line keeps two fields. */
static void test_roundtrip(void)
{
	char caption[256];
	for (int i = 0; i < 255; i++)
		caption[i] = (char)(i + 1);
	caption[255] = '\0';
	nb_buf b = {0};
	captions_tsv_add(&b, 18446744073709551615ULL, caption);
	captions_tsv_add(&b, 7, "small red circle top left .");
	captions_tsv_add(&b, 8, "");
	captions_tsv_add(&b, 9, "\x1b[31m\tx\ny\\");
	int tabs = 0, lines = 0;
	for (size_t i = 0; i < b.len; i++)
		tabs += b.data[i] == '\t', lines += b.data[i] == '\n';
	CHECK(tabs == 4 && lines == 4);
	captions_tsv t;
	CHECK_MSG(captions_tsv_parse("r.tsv", b.data, b.len, &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 4);
	check_row(&t, 0, 7, 2, "small red circle top left .");
	check_row(&t, 1, 8, 3, "");
	check_row(&t, 2, 9, 4, "\x1b[31m\tx\ny\\");
	check_row(&t, 3, 18446744073709551615ULL, 1, caption);
	captions_tsv_free(&t);
	free(b.data);
}

static void test_read(void)
{
	char *dir = test_tmpdir("captions-tsv");
	char path[4200];
	snprintf(path, sizeof path, "%s/c.tsv", dir);
	FILE *f = fopen(path, "w");
	fputs("2\tsmall red circle top left .\n1\tlarge blue square middle center .\n", f);
	fclose(f);
	captions_tsv t;
	CHECK_MSG(captions_tsv_read(path, &t) == 0, "%s", nb_errmsg());
	CHECK(t.n == 2 && t.buf != NULL);
	check_row(&t, 0, 1, 2, "large blue square middle center .");
	check_row(&t, 1, 2, 1, "small red circle top left .");
	captions_tsv_free(&t);

	f = fopen(path, "w");
	fputs("1\ta\nbad\n", f);
	fclose(f);
	char want[4300];
	snprintf(want, sizeof want, "captions '%s' line 2: malformed line", path);
	CHECK_MSG(captions_tsv_read(path, &t) < 0 && test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	CHECK(t.rows == NULL && t.buf == NULL);
	unlink(path);

	snprintf(want, sizeof want, "cannot open captions '%s': No such file or directory", path);
	CHECK_MSG(captions_tsv_read(path, &t) < 0 && test_contains(nb_errmsg(), want), "%s", nb_errmsg());

	/* A FIFO is refused at once (the alarm turns a blocked open into a
	 * failure), and so is a directory. */
	CHECK(mkfifo(path, 0644) == 0);
	alarm(20);
	CHECK(captions_tsv_read(path, &t) < 0);
	alarm(0);
	snprintf(want, sizeof want, "cannot open captions '%s': it is a FIFO, not a regular file", path);
	CHECK_MSG(test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	unlink(path);
	snprintf(want, sizeof want, "cannot open captions '%s': it is a directory, not a regular file", dir);
	CHECK_MSG(captions_tsv_read(dir, &t) < 0 && test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	rmdir(dir);
	free(dir);
}

int main(void)
{
	test_good();
	test_bad();
	test_roundtrip();
	test_read();
	return test_summary("test_captions_tsv");
}
