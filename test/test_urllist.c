/* URL list parsing: formats, quoting, escapes, bad lines keep their place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/ingest/urllist.h"
#include "test_util.h"

static int parse(const char *text, const char *name, urllist *l)
{
	return urllist_parse(text, strlen(text), name, URLLIST_AUTO, l);
}

/* Parses text as name, checking that it succeeds with format fmt and n
 * records; whether the records are there to be checked. */
static int parse_as(const char *text, const char *name, urllist_format fmt, size_t n, urllist *l)
{
	CHECK_MSG(parse(text, name, l) == 0, "%s: %s", name, nb_errmsg());
	CHECK_MSG(l->format == fmt, "%s: format %s", name, urllist_format_name(l->format));
	CHECK_MSG(l->n == n, "%s: n = %zu, expected %zu", name, l->n, n);
	return l->n == n;
}

static void test_tsv(void)
{
	urllist l;
	const char *t = "key\turl\tcaption\r\n"
			"a1\thttp://x/1.jpg\ta red circle\r\n"
			"\n"
			"a2\t  http://x/2.png \tsecond\n"
			"a3\thttp://x/3.png\n"
			"a4\tnot a url\tx\n"
			"a5\t\tempty\n";
	if (parse_as(t, "list.tsv", URLLIST_TSV, 5, &l)) {
		CHECK(l.e[0].line == 2 && !strcmp(l.e[0].url, "http://x/1.jpg"));
		CHECK(!strcmp(l.e[0].caption, "a red circle") && !strcmp(l.e[0].key, "a1"));
		CHECK(l.e[1].line == 4 && !strcmp(l.e[1].url, "http://x/2.png") && !l.e[1].bad);
		CHECK(l.e[2].line == 5 && l.e[2].bad && test_contains(l.e[2].bad, "fewer fields"));
		CHECK(l.e[3].line == 6 && l.e[3].bad && test_contains(l.e[3].bad, "whitespace"));
		CHECK(l.e[4].line == 7 && l.e[4].bad && test_contains(l.e[4].bad, "empty url"));
		CHECK(!strcmp(l.e[3].url, ""));
	}
	urllist_free(&l);
}

static void test_csv(void)
{
	urllist l;
	const char *t = "\xef\xbb\xbfURL,TEXT\n"
			"http://h/a.jpg,\"hello, \"\"world\"\"\"\n"
			"\"http://h/b.jpg\",\"two\nlines\"\n"
			"http://h/c.jpg,\"bad\"x\n"
			"http://h/d.jpg,plain\n"
			"http://h/e.jpg,\"never closed\n"
			"http://h/f.jpg,after\n";
	if (parse_as(t, "data.csv", URLLIST_CSV, 6, &l)) {
		CHECK(!strcmp(l.e[0].caption, "hello, \"world\"") && l.e[0].line == 2);
		CHECK(!strcmp(l.e[1].url, "http://h/b.jpg") && !strcmp(l.e[1].caption, "two\nlines"));
		CHECK(l.e[1].line == 3);
		CHECK(l.e[2].line == 5 && l.e[2].bad && test_contains(l.e[2].bad, "after closing quote"));
		CHECK(l.e[3].line == 6 && !l.e[3].bad && !strcmp(l.e[3].caption, "plain"));
		CHECK(l.e[4].line == 7 && l.e[4].bad && test_contains(l.e[4].bad, "unterminated quote"));
		/* the record after an unterminated quote survives */
		CHECK(l.e[5].line == 8 && !l.e[5].bad && !strcmp(l.e[5].url, "http://h/f.jpg"));
	}
	urllist_free(&l);
}

static void test_jsonl(void)
{
	urllist l;
	const char *t = "{\"url\": \"http://j/1.png\", \"caption\": \"caf\\u00e9 \\ud83d\\ude00\", \"key\": 17}\n"
			"{\"URL\":\"http://j/2.png\",\"extra\":{\"a\":[1,2,{\"b\":null}]},\"TEXT\":\"t\\n2\"}\n"
			"{\"caption\": \"no url\"}\n"
			"{\"url\": 5}\n"
			"[1,2]\n"
			"{\"url\": \"http://j/3.png\"} trailing\n"
			"{\"url\": \"http://j/4.png\", \"caption\": \"\\ud800\"}\n"
			"{\"url\": \"http://j/5.png\"\n"
			"   \n"
			"{\"url\":\"http:\\/\\/j\\/6.png\",\"id\":\"k6\"}";
	if (parse_as(t, "x.jsonl", URLLIST_JSONL, 9, &l)) {
		CHECK(!l.e[0].bad && !strcmp(l.e[0].url, "http://j/1.png"));
		CHECK(!strcmp(l.e[0].caption, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
		CHECK(!strcmp(l.e[0].key, "17"));
		CHECK(!l.e[1].bad && !strcmp(l.e[1].url, "http://j/2.png") && !strcmp(l.e[1].caption, "t\n2"));
		CHECK(l.e[2].bad && test_contains(l.e[2].bad, "no url"));
		CHECK(l.e[3].bad && test_contains(l.e[3].bad, "not a string"));
		CHECK(l.e[4].bad && test_contains(l.e[4].bad, "not a json object"));
		CHECK(l.e[5].bad && test_contains(l.e[5].bad, "after the json object"));
		CHECK(l.e[6].bad && test_contains(l.e[6].bad, "surrogate"));
		CHECK(l.e[7].bad && l.e[7].line == 8);
		CHECK(!l.e[8].bad && l.e[8].line == 10 && !strcmp(l.e[8].url, "http://j/6.png"));
		CHECK(!strcmp(l.e[8].key, "k6"));
	}
	urllist_free(&l);
}

static void test_plain_and_sniff(void)
{
	urllist l;
	if (parse_as("# comment\nhttp://p/1.jpg\n\nhttps://p/2.jpg\nfile:///tmp/x.png\n", "list", URLLIST_PLAIN, 3,
		     &l))
		CHECK(l.e[2].line == 5 && !strcmp(l.e[2].url, "file:///tmp/x.png"));
	urllist_free(&l);
	parse_as("{\"url\":\"http://a/b\"}\n", "noext", URLLIST_JSONL, 1, &l);
	urllist_free(&l);
	parse_as("url,caption\nhttp://a/b,c\n", "noext", URLLIST_CSV, 1, &l);
	urllist_free(&l);
	parse_as("url\nhttp://a/b\n", "noext", URLLIST_TSV, 1, &l);
	urllist_free(&l);
	/* no header with a url column: the whole file is unusable */
	CHECK(parse("name\tcaption\nx\ty\n", "bad.tsv", &l) == -1);
	CHECK(test_contains(nb_errmsg(), "bad.tsv") && test_contains(nb_errmsg(), "no url column"));
	CHECK(parse("", "empty.csv", &l) == -1);
	CHECK(test_contains(nb_errmsg(), "no header"));
	CHECK(parse("", "empty.jsonl", &l) == 0 && l.n == 0);
	urllist_free(&l);
	/* embedded NUL bytes are a bad line, not a truncated URL */
	const char nul[] = "url\nhttp://a/b\0c\nhttp://a/d\n";
	CHECK(urllist_parse(nul, sizeof(nul) - 1, "n.tsv", URLLIST_AUTO, &l) == 0);
	CHECK(l.n == 2 && l.e[0].bad && !l.e[1].bad);
	urllist_free(&l);
	CHECK(urllist_load("/nonexistent/list.tsv", URLLIST_AUTO, &l) == -1);
	CHECK(test_contains(nb_errmsg(), "/nonexistent/list.tsv"));
}

static void test_keep_columns(void)
{
	urllist l;
	const char *t = "URL\tALT\tlicense\tcaption\n"
			"http://x/1.jpg\tan alt\tcc0\tc1\n"
			"http://x/2.jpg\tshort\n"
			"http://x/3.jpg\t\tby\tc3\n";
	CHECK_MSG(urllist_parse_cols(t, strlen(t), "l.tsv", URLLIST_AUTO, " alt , LICENSE", &l) == 0, "%s", nb_errmsg());
	CHECK(l.ncols == 2 && !strcmp(l.cols[0], "alt") && !strcmp(l.cols[1], "LICENSE") && l.n == 3);
	if (l.n == 3) {
		CHECK(!strcmp(l.e[0].extra[0], "an alt") && !strcmp(l.e[0].extra[1], "cc0"));
		CHECK(l.e[1].bad && !strcmp(l.e[1].extra[0], "") && !strcmp(l.e[1].extra[1], ""));
		CHECK(!strcmp(l.e[2].extra[0], "") && !strcmp(l.e[2].extra[1], "by"));
	}
	urllist_free(&l);
	const char *j = "{\"url\": \"http://x/1\", \"alt\": \"a\\\"b\", \"n\": 3.5}\n"
			"{\"url\": \"http://x/2\", \"n\": null}\n"
			"{\"url\": \"http://x/3\", \"alt\": [1, 2], \"n\": true}\n";
	CHECK_MSG(urllist_parse_cols(j, strlen(j), "l.jsonl", URLLIST_AUTO, "alt,n", &l) == 0, "%s", nb_errmsg());
	if (l.n == 3) {
		CHECK(!strcmp(l.e[0].extra[0], "a\"b") && !strcmp(l.e[0].extra[1], "3.5"));
		CHECK(!strcmp(l.e[1].extra[0], "") && !strcmp(l.e[1].extra[1], ""));
		CHECK(!strcmp(l.e[2].extra[0], "[1, 2]") && !strcmp(l.e[2].extra[1], "true"));
	}
	urllist_free(&l);
	CHECK(urllist_parse_cols(t, strlen(t), "l.tsv", URLLIST_AUTO, "alt,nosuch", &l) < 0);
	CHECK(test_contains(nb_errmsg(), "'l.tsv': --keep-columns names 'nosuch', but the header on line 1 has no such column"));
	const char *plain = "http://x/1\n";
	CHECK(urllist_parse_cols(plain, strlen(plain), "l.txt", URLLIST_AUTO, "alt", &l) < 0);
	CHECK(test_contains(nb_errmsg(), "a bare URL list has no columns"));
	CHECK(urllist_parse_cols(t, strlen(t), "l.tsv", URLLIST_AUTO, "alt,,x", &l) < 0);
	CHECK(test_contains(nb_errmsg(), "has an empty name"));
	const char *badhdr = "url,\"alt\n"; /* a bad header with kept columns: no leak (found by fuzz_urllist) */
	CHECK(urllist_parse_cols(badhdr, strlen(badhdr), "l.csv", URLLIST_AUTO, "alt", &l) < 0);
	CHECK(test_contains(nb_errmsg(), "header: unterminated quote"));
	CHECK(urllist_parse_cols(t, strlen(t), "l.tsv", URLLIST_AUTO, "alt,ALT", &l) < 0);
	CHECK(test_contains(nb_errmsg(), "names a column twice"));
}

/* text as one gzip member appended to out. */
static void gz(const char *text, nb_buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	CHECK(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	unsigned char buf[4096];
	z.next_in = (unsigned char *)(uintptr_t)text;
	z.avail_in = (unsigned)strlen(text);
	z.next_out = buf;
	z.avail_out = sizeof buf;
	CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
	nb_buf_add(out, (const char *)buf, sizeof buf - z.avail_out);
	deflateEnd(&z);
}

static void test_gzip(void)
{
	urllist l;
	nb_buf b = {0};
	gz("url\tcaption\nhttp://x/1\tone\n", &b);
	gz("http://x/2\ttwo\n", &b); /* a second member */
	CHECK_MSG(urllist_parse(b.data, b.len, "l.tsv.gz", URLLIST_AUTO, &l) == 0, "%s", nb_errmsg());
	CHECK(l.format == URLLIST_TSV && l.n == 2);
	if (l.n == 2)
		CHECK(!strcmp(l.e[1].url, "http://x/2") && !strcmp(l.e[1].caption, "two") && l.e[1].line == 3);
	urllist_free(&l);
	/* the format from the name before .gz: a one-column CSV */
	nb_buf c = {0};
	gz("url\n\"http://x/1\"\n", &c);
	CHECK(urllist_parse(c.data, c.len, "l.csv.gz", URLLIST_AUTO, &l) == 0 && l.format == URLLIST_CSV);
	CHECK(l.n == 1 && !strcmp(l.e[0].url, "http://x/1"));
	urllist_free(&l);
	CHECK(urllist_parse(b.data, b.len / 2, "cut.gz", URLLIST_AUTO, &l) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "'cut.gz': gzip data is truncated"), "%s", nb_errmsg());
	char *bad = malloc(b.len);
	memcpy(bad, b.data, b.len);
	bad[12] ^= 0x5a;
	bad[13] ^= 0xff;
	CHECK(urllist_parse(bad, b.len, "bad.gz", URLLIST_AUTO, &l) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "'bad.gz': corrupt gzip data") ||
		  test_contains(nb_errmsg(), "'bad.gz': gzip data is truncated"), "%s", nb_errmsg());
	nb_buf_add(&c, "junk", 4);
	CHECK(urllist_parse(c.data, c.len, "junk.gz", URLLIST_AUTO, &l) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "4 bytes of trailing garbage"), "%s", nb_errmsg());
	free(bad);
	free(b.data);
	free(c.data);
}

int main(void)
{
	test_tsv();
	test_csv();
	test_jsonl();
	test_plain_and_sniff();
	test_keep_columns();
	test_gzip();
	return test_summary("test_urllist");
}
