/* libFuzzer target: the JSON reader (common/nb_json.h). Whatever parses is
 * written back (numbers with 17 digits) and must parse again to the same
 * tree; whatever fails must say why. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_json.h"

static void put(nb_buf *b, const nb_json *v)
{
	switch (v->type) {
	case NB_JSON_NULL: nb_buf_adds(b, "null"); break;
	case NB_JSON_BOOL: nb_buf_adds(b, v->boolean ? "true" : "false"); break;
	case NB_JSON_NUM:
		if (isfinite(v->num))
			nb_buf_addf(b, "%.17g", v->num);
		else
			nb_buf_adds(b, v->num > 0 ? "1e999" : "-1e999");
		break;
	case NB_JSON_STR:
		if (strlen(v->str) == v->len)
			nb_json_put_str(b, v->str);
		else
			nb_buf_adds(b, "\"\\u0000\"");
		break;
	case NB_JSON_ARR:
	case NB_JSON_OBJ:
		nb_buf_adds(b, v->type == NB_JSON_ARR ? "[" : "{");
		for (int i = 0; i < v->n; i++) {
			if (i)
				nb_buf_adds(b, ",");
			if (v->type == NB_JSON_OBJ) {
				nb_json_put_str(b, v->keys[i]);
				nb_buf_adds(b, ":");
			}
			put(b, v->items[i]);
		}
		nb_buf_adds(b, v->type == NB_JSON_ARR ? "]" : "}");
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nb_json *v = nb_json_parse((const char *)data, size, "fuzz.json");
	if (!v) {
		if (!strstr(nb_errmsg(), "fuzz.json line "))
			abort();
		return 0;
	}
	nb_buf a = {0}, b = {0};
	put(&a, v);
	nb_json *w = nb_json_parse(a.data, a.len, "again.json");
	if (!w)
		abort();
	put(&b, w);
	if (a.len != b.len || memcmp(a.data, b.data, a.len))
		abort();
	nb_json_free(v);
	nb_json_free(w);
	free(a.data);
	free(b.data);
	return 0;
}
