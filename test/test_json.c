/* common/nb_json.h: the JSON reader on valid text, its errors (with line
 * and column) on invalid text, and the string writer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_json.h"
#include "test/test_util.h"

static nb_json *parse(const char *s)
{
	return nb_json_parse(s, strlen(s), "t.json");
}

static void test_valid(void)
{
	nb_json *v = parse(" {\"split\":\"test\",\"n\":40,\"chair_i\":0.25,\"by\":[1,-2.5e2,0],"
			   "\"ok\":true,\"no\":false,\"x\":null,\"o\":{}} \n");
	CHECK(v && v->type == NB_JSON_OBJ && v->n == 8);
	CHECK(!strcmp(nb_json_getstr(v, "split", ""), "test"));
	CHECK(nb_json_getnum(v, "n", -1) == 40);
	CHECK(nb_json_getnum(v, "chair_i", -1) == 0.25);
	CHECK(nb_json_getnum(v, "missing", -7) == -7);
	CHECK(nb_json_getnum(v, "split", -7) == -7); /* not a number */
	const nb_json *by = nb_json_get(v, "by");
	CHECK(by && by->type == NB_JSON_ARR && by->n == 3 && by->items[1]->num == -250.0);
	CHECK(nb_json_get(v, "ok")->boolean == 1 && nb_json_get(v, "no")->boolean == 0);
	CHECK(nb_json_get(v, "x")->type == NB_JSON_NULL);
	CHECK(nb_json_get(v, "o")->type == NB_JSON_OBJ && nb_json_get(v, "o")->n == 0);
	nb_json_free(v);

	v = parse("\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000z\"");
	CHECK(v && v->type == NB_JSON_STR);
	CHECK(v && v->len == 17 && !memcmp(v->str, "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80", 15) && v->str[15] == 0 &&
	      v->str[16] == 'z');
	nb_json_free(v);

	v = parse("{\"k\":1,\"k\":2}"); /* the last duplicate wins */
	CHECK(v && nb_json_getnum(v, "k", 0) == 2);
	nb_json_free(v);
	v = parse("-0.0e-0");
	CHECK(v && v->type == NB_JSON_NUM && v->num == 0);
	nb_json_free(v);
}

static void expect_error(const char *text, const char *where, const char *cause)
{
	nb_json *v = parse(text);
	CHECK_MSG(!v, "'%s' parsed", text);
	CHECK_MSG(test_contains(nb_errmsg(), where) && test_contains(nb_errmsg(), cause), "'%s': %s", text,
		  nb_errmsg());
	nb_json_free(v);
}

static void test_invalid(void)
{
	expect_error("", "t.json line 1 column 1", "ends where a value");
	expect_error("{\"a\":1,}", "column 8", "string key");
	expect_error("[1,2", "column 5", "',' or ']'");
	expect_error("{\"a\" 1}", "column 6", "':'");
	expect_error("{\n  \"a\": tru}", "line 2 column 8", "unknown word");
	expect_error("01", "column 2", "text after");
	expect_error("1.", "column 1", "no digit after '.'");
	expect_error("1e+", "column 1", "exponent");
	expect_error("+1", "column 1", "unexpected character");
	expect_error("\"abc", "column 1", "unterminated");
	expect_error("\"a\tb\"", "column 3", "raw control character");
	expect_error("\"\\x\"", "column 2", "bad escape");
	expect_error("\"\\u12g4\"", "column 2", "\\u escape");
	expect_error("\"\\ud83d\"", "column 2", "low half");
	expect_error("\"\\ude00\"", "column 2", "low surrogate");
	expect_error("[1] [2]", "column 5", "text after");
	expect_error("123456789012345678901234567890123456789012345678901234567890123456789", "column 1", "longer");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	nb_json *v = nb_json_parse(deep, 200, "deep.json");
	CHECK(!v && test_contains(nb_errmsg(), "deep.json") && test_contains(nb_errmsg(), "nesting deeper than 64"));
	v = nb_json_parse(deep + 100 - NB_JSON_MAX_DEPTH, 2 * NB_JSON_MAX_DEPTH, "ok.json");
	CHECK(v != NULL);
	nb_json_free(v);
}

static void test_writer(void)
{
	nb_buf b = {0};
	nb_json_put_str(&b, "q\"b\\ tab\t nl\n \x01 \x7f \xc3\xa9");
	nb_buf_adds(&b, " ");
	nb_json_put_num(&b, 0.125);
	nb_buf_adds(&b, " ");
	nb_json_put_num(&b, NAN);
	CHECK(!strcmp(b.data, "\"q\\\"b\\\\ tab\\u0009 nl\\u000a \\u0001 \\u007f \xc3\xa9\" 0.125 null"));
	nb_json *v = nb_json_parse(b.data, strchr(b.data + 1, '"') - b.data, "w.json");
	CHECK(!v); /* cut inside the string */
	size_t end = (size_t)(strstr(b.data, " 0.125") - b.data);
	v = nb_json_parse(b.data, end, "w.json");
	CHECK(v && !strcmp(v->str, "q\"b\\ tab\t nl\n \x01 \x7f \xc3\xa9"));
	nb_json_free(v);
	free(b.data);
}

int main(void)
{
	test_valid();
	test_invalid();
	test_writer();
	return test_summary("test_json");
}
