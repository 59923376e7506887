/* Ingest tallies: counting, adding, the stats JSON, and the text form in
 * which ranks send theirs to rank 0. */
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_num.h"
#include "corpus/ingest/ingest_tally.h"

static const char *const timer_names[T_N] = {"wall", "network", "decode", "resize", "hash", "write"};

ingest_tally *ingest_tally_new(void) { return nb_xcalloc(1, sizeof(ingest_tally)); }

void tally_clear(ingest_tally *t)
{
	free(t->status);
	memset(t, 0, sizeof *t);
}

void ingest_tally_free(ingest_tally *t)
{
	if (t)
		tally_clear(t);
	free(t);
}

void tally_count(ingest_tally *t, const char *name, uint64_t k)
{
	for (size_t i = 0; i < t->nstatus; i++)
		if (!strncmp(t->status[i].name, name, sizeof t->status[i].name - 1)) {
			t->status[i].count += k;
			return;
		}
	NB_GROW(t->status, t->cap, t->nstatus + 1, 16);
	snprintf(t->status[t->nstatus].name, sizeof t->status[t->nstatus].name, "%s", name);
	t->status[t->nstatus++].count = k;
}

void tally_add(ingest_tally *t, const ingest_tally *add)
{
	for (size_t i = 0; i < add->nstatus; i++)
		tally_count(t, add->status[i].name, add->status[i].count);
	for (int i = 0; i < T_N; i++)
		t->t[i] += add->t[i];
	t->bytes += add->bytes;
	t->attempts += add->attempts;
	t->retries += add->retries;
	t->images += add->images;
	t->changed += add->changed;
}

static int count_cmp(const void *a, const void *b)
{
	return strcmp(((const ingest_count *)a)->name, ((const ingest_count *)b)->name);
}

void tally_json(const ingest_tally *t, const char *head, nb_buf *out)
{
	nb_buf_addf(out, "{%s\"status\": {", head);
	ingest_count *sorted = nb_xmalloc(sizeof(ingest_count) * (t->nstatus + 1));
	if (t->nstatus)
		memcpy(sorted, t->status, sizeof(ingest_count) * t->nstatus);
	qsort(sorted, t->nstatus, sizeof(ingest_count), count_cmp);
	uint64_t records = 0;
	for (size_t i = 0; i < t->nstatus; i++) {
		nb_buf_addf(out, "%s\"%s\": %" PRIu64, i ? ", " : "", sorted[i].name, sorted[i].count);
		records += sorted[i].count;
	}
	free(sorted);
	nb_buf_addf(out,
		    "}, \"records\": %" PRIu64 ", \"images\": %" PRIu64 ", \"bytes\": %" PRIu64
		    ", \"attempts\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"changed\": %" PRIu64
		    ", \"time_s\": {",
		    records, t->images, t->bytes, t->attempts, t->retries, t->changed);
	for (int i = 0; i < T_N; i++)
		nb_buf_addf(out, "%s\"%s\": %.6f", i ? ", " : "", timer_names[i], t->t[i]);
	double ips = t->t[T_WALL] > 0 ? (double)t->images / t->t[T_WALL] : 0;
	nb_buf_addf(out, "}, \"images_per_s\": %.2f}\n", ips);
}

/* ---- the text form: one "key value" a line ---- */

/* "status COUNT NAME" puts the name last: it is the only field that could
 * hold a space (a status read back from an edited table). %.17g gives the
 * times back exactly. */
void ingest_tally_encode(const ingest_tally *t, nb_buf *out)
{
	for (size_t i = 0; i < t->nstatus; i++)
		nb_buf_addf(out, "status %" PRIu64 " %s\n", t->status[i].count, t->status[i].name);
	for (int i = 0; i < T_N; i++)
		nb_buf_addf(out, "time.%s %.17g\n", timer_names[i], t->t[i]);
	nb_buf_addf(out,
		    "bytes %" PRIu64 "\nattempts %" PRIu64 "\nretries %" PRIu64 "\nimages %" PRIu64
		    "\nchanged %" PRIu64 "\n",
		    t->bytes, t->attempts, t->retries, t->images, t->changed);
}

/* Where the value of key adds up in t, or NULL for an unknown key. */
static uint64_t *count_field(ingest_tally *t, const char *key)
{
	return !strcmp(key, "bytes")      ? &t->bytes
	       : !strcmp(key, "attempts") ? &t->attempts
	       : !strcmp(key, "retries")  ? &t->retries
	       : !strcmp(key, "images")   ? &t->images
	       : !strcmp(key, "changed")  ? &t->changed
					  : NULL;
}

/* Adds one line of the text form (without its newline) to t. Every line
 * adds, so concatenated tallies sum. 0 or nb_error. */
static int merge_line(ingest_tally *t, char *line)
{
	char *val = strchr(line, ' ');
	if (!val)
		return nb_error("no value");
	*val++ = 0;
	uint64_t k;
	if (!strcmp(line, "status")) {
		char *name = strchr(val, ' ');
		if (!name || !name[1])
			return nb_error("status without a name");
		*name++ = 0;
		if (nb_parse_u64(val, 0, UINT64_MAX, "status count", &k) < 0)
			return -1;
		tally_count(t, name, k);
		return 0;
	}
	for (int i = 0; i < T_N; i++)
		if (!strncmp(line, "time.", 5) && !strcmp(line + 5, timer_names[i])) {
			double v;
			if (nb_parse_double(val, -DBL_MAX, DBL_MAX, line, &v) < 0)
				return -1;
			t->t[i] += v;
			return 0;
		}
	uint64_t *f = count_field(t, line);
	if (!f)
		return nb_error("unknown key '%s'", line);
	if (nb_parse_u64(val, 0, UINT64_MAX, line, &k) < 0)
		return -1;
	*f += k;
	return 0;
}

int ingest_tally_merge(ingest_tally *t, const char *text, size_t len)
{
	if (len && memchr(text, 0, len))
		return nb_error("cannot merge ingest tallies: the text holds a nul byte");
	char *s = nb_xmalloc(len + 1);
	if (len)
		memcpy(s, text, len);
	s[len] = 0;
	/* Into a scratch tally first, so that t is left alone on an error. */
	ingest_tally sum = {0};
	int rc = 0;
	for (char *p = s; rc == 0 && *p;) {
		char *nl = strchr(p, '\n');
		if (!nl) {
			rc = nb_error("cannot merge ingest tallies: the text does not end with a newline");
			break;
		}
		*nl = 0;
		if (merge_line(&sum, p) < 0) {
			/* nb_error must not read the buffer it writes */
			char why[1024];
			snprintf(why, sizeof why, "%s", nb_errmsg());
			rc = nb_error("cannot merge ingest tallies: %s", why);
		}
		p = nl + 1;
	}
	if (rc == 0)
		tally_add(t, &sum);
	tally_clear(&sum);
	free(s);
	return rc;
}
