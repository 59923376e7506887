/* libFuzzer target: the URL list parser, in each format, plain or
 * gzip-compressed (the seed corpus has .gz lists; inflated text goes
 * through the same parser), with and without kept columns, must never
 * crash, and every entry it returns must be well formed. */
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
	const char *keep = (data[0] / 5) % 2 ? "caption,extra" : NULL;
	urllist l;
	if (urllist_parse_cols((const char *)data + 1, size - 1, name, URLLIST_AUTO, keep, &l) < 0)
		return 0;
	if (keep && l.ncols != 2)
		abort();
	long prev = 0;
	for (size_t i = 0; i < l.n; i++) {
		const urllist_entry *e = &l.e[i];
		if (!e->url || !e->caption || !e->key || e->line <= prev)
			abort();
		if (!e->bad && (!*e->url || !strstr(e->url, "://")))
			abort();
		for (int c = 0; c < l.ncols; c++)
			if (!e->extra || !e->extra[c])
				abort();
		prev = e->line;
	}
	urllist_free(&l);
	return 0;
}
