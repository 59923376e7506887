/* libFuzzer target: the URL list parser, in each format, must never crash,
 * and every entry it returns must be well formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "corpus/ingest/urllist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"x.tsv", "x.csv", "x.jsonl", "x", "x.txt"};
	if (size < 1)
		return 0;
	/* The first byte picks the file name, hence the format detection. */
	const char *name = names[data[0] % 5];
	urllist l;
	if (urllist_parse((const char *)data + 1, size - 1, name, URLLIST_AUTO, &l) < 0)
		return 0;
	long prev = 0;
	for (size_t i = 0; i < l.n; i++) {
		const urllist_entry *e = &l.e[i];
		if (!e->url || !e->caption || !e->key || e->line <= prev)
			abort();
		if (!e->bad && (!*e->url || !strstr(e->url, "://")))
			abort();
		prev = e->line;
	}
	urllist_free(&l);
	return 0;
}
