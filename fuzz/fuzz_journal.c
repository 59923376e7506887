/* libFuzzer target: the run journal loader (pipeline/journal.h) and its flat
 * JSON parser, on arbitrary bytes. Checked, besides memory safety:
 *   - every line jsonl_parse accepts is written back by the jsonl writer and
 *     parses again to the same keys, types, strings and integers;
 *   - a journal journal_parse accepts loads again from its kept prefix with
 *     the same state, and from any cut after its first line (a torn write)
 *     without error and keeping every complete line before the cut;
 *   - the queries are consistent (every listed shard is known, counts add up). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_io.h"
#include "pipeline/journal.h"

static void roundtrip_lines(const char *data, size_t size)
{
	jsonl_obj o = {0}, back = {0};
	nb_buf b = {0};
	for (size_t pos = 0; pos < size;) {
		const char *nl = memchr(data + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
		if (jsonl_parse(&o, data + pos, n) == 0) {
			if (o.n < 0 || o.n > JSONL_MAX_FIELDS)
				abort();
			b.len = 0;
			jsonl_begin(&b);
			for (int i = 0; i < o.n; i++) {
				const jsonl_field *f = &o.f[i];
				/* The writer takes plain ASCII keys only. */
				int plain = *f->key != '\0';
				for (const char *k = f->key; *k; k++)
					plain &= *k > 0x20 && *k < 0x7f && *k != '"' && *k != '\\';
				if (!plain)
					goto next;
				if (f->type == JSONL_STR)
					jsonl_str(&b, f->key, f->s);
				else if (f->type == JSONL_INT)
					jsonl_int(&b, f->key, f->i);
				else
					jsonl_num(&b, f->key, f->d, 17);
			}
			jsonl_end(&b);
			if (jsonl_parse(&back, b.data, b.len - 1) < 0 || back.n != o.n)
				abort();
			for (int i = 0; i < o.n; i++) {
				const jsonl_field *f = &o.f[i], *g = &back.f[i];
				if (strcmp(f->key, g->key) || f->type != g->type)
					abort();
				if (f->type == JSONL_STR && strcmp(f->s, g->s))
					abort();
				if (f->type == JSONL_INT && f->i != g->i)
					abort();
			}
		}
	next:
		pos += n + 1;
	}
	free(b.data);
	jsonl_obj_free(&o);
	jsonl_obj_free(&back);
}

static void check_queries(const journal *j)
{
	int rounds = journal_rounds_complete(j);
	for (int r = 0; r <= rounds + 1; r++) {
		int64_t done = journal_units_done(j, r), a, rj, s, su = 0;
		journal_round_totals(j, r, &a, &rj, &s);
		if (done < 0 || a < 0 || rj < 0 || s < 0)
			abort();
		int n = journal_shard_count(j, r);
		for (int i = 0; i < n; i++) {
			int64_t units, samples;
			const char *name = journal_shard_at(j, r, i, &units, &samples);
			if (!name || !journal_shard_known(j, r, name) || units < 1 || samples < 1)
				abort();
			su += units;
		}
		if (su > done || journal_shard_at(j, r, n, NULL, NULL))
			abort();
		for (int64_t u = 0; u < 8; u++)
			(void)journal_unit_done(j, r, u);
		(void)journal_teacher_of(j, r, NULL);
		if (journal_round_complete(j, r) != (r < rounds))
			abort();
	}
	int cr;
	int64_t step;
	const char *path;
	if (journal_last_checkpoint(j, &cr, &step, &path) && (!path || cr < 0 || cr > rounds || step < 0))
		abort();
	(void)journal_run_done(j);
	(void)journal_pending(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	roundtrip_lines(text, size);

	size_t keep = 0;
	journal *j = journal_parse(text, size, "fuzz.jsonl", &keep);
	if (!j)
		return 0;
	if (keep > size || (keep && text[keep - 1] != '\n'))
		abort();
	check_queries(j);
	int64_t records = journal_records(j);

	/* The kept prefix loads to the same state, with nothing dropped. */
	size_t keep2 = 1;
	journal *k = journal_parse(text, keep, "fuzz.jsonl", &keep2);
	if (!k || keep2 != keep || journal_records(k) != records ||
	    journal_units_done(k, 0) != journal_units_done(j, 0) || journal_pending(k) != journal_pending(j))
		abort();
	journal_close(k);

	/* A cut after the first line, as a crash would leave it. */
	const char *first = memchr(text, '\n', keep);
	if (first && size > 0) {
		size_t start = (size_t)(first - text) + 1;
		size_t cut = start + (size_t)data[size - 1] * (keep - start + 1) / 256;
		size_t complete = 0, lines = 0;
		for (size_t i = 0; i < cut; i++)
			if (text[i] == '\n')
				complete = i + 1, lines++;
		k = journal_parse(text, cut, "fuzz.jsonl", &keep2);
		if (!k || keep2 != complete || journal_records(k) != (int64_t)lines)
			abort();
		journal_close(k);
	}
	journal_close(j);
	return 0;
}
