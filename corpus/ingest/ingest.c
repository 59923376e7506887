/* The ingest driver: shards of list records -> fetch -> decode -> resize ->
 * dedup -> image shard + status table + stats. One process's work; the
 * ranks are the caller's (cli/cmd_ingest.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_time.h"
#include "corpus/ingest/ingest.h"
#include "corpus/ingest/ingest_tally.h"
#include "corpus/ingest/urllist.h"
#include "store/shard_store.h"

void ingest_opts_default(ingest_opts *o)
{
	memset(o, 0, sizeof(*o));
	fetch_opts_default(&o->fetch);
	o->size = 48;
	o->mode = RESIZE_CENTER_CROP;
	o->max_pixels = 40000000;
	o->shard_size = 1000;
	o->dct_scaling = 1;
	o->progress = 1;
}

/* ---- content hash (dedup) ---- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return z ^ (z >> 33);
}

/* Two independent 64-bit lanes; collisions within a shard of a thousand
 * images are not a practical concern at 128 bits. */
static void content_hash(const uint8_t *p, size_t n, uint64_t h[2])
{
	uint64_t a = 0x9e3779b97f4a7c15ULL ^ n, b = 0x632be59bd9b4e019ULL + n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		a = (a ^ mix64(v)) * 0x100000001b3ULL;
		b = ((b ^ v) * 0x9fb21c651e98df25ULL) ^ (b >> 29);
	}
	uint64_t v = 0;
	memcpy(&v, p + i, n - i);
	a = mix64(a ^ mix64(v ^ 0xa5a5a5a5ULL));
	b = mix64(b ^ v ^ (a << 1));
	h[0] = a;
	h[1] = b;
}

/* The digest of a list record, as a status row keeps it: what the row was
 * made from (url, caption, key, and why the line is bad). Never 0, which
 * a row read from an older table has. */
static uint64_t entry_digest(const urllist_entry *e)
{
	const char *part[4] = {e->url, e->caption, e->key, e->bad ? e->bad : ""};
	uint64_t h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < 4; i++) {
		for (const unsigned char *c = (const unsigned char *)part[i]; *c; c++)
			h = (h ^ *c) * 0x100000001b3ULL;
		h = (h ^ 0xff) * 0x100000001b3ULL; /* field end: not a byte of UTF-8 */
	}
	h = mix64(h ^ (uint64_t)(e->bad != NULL));
	return h ? h : 1;
}

/* ---- one shard ---- */

/* Shard k of a run: rows[i] and img[i] are list entry lo + i. */
typedef struct {
	const ingest_job *j;
	int k, rank;
	char h5[4096], status[4096], stats[4096];
	size_t lo, n;
	ingest_row *rows;
	size_t nrows;              /* rows allocated (n once they are checked) */
	uint8_t **img;             /* the ok images, size x size RGB, else NULL */
	int rerun;                 /* the shard was complete: a --retry-failed run */
	double t0;                 /* start of the fetch: the shard's wall time */
	ingest_tally y;            /* this run of the shard */
} shard_run;

static void set_status(ingest_row *r, const char *status, const char *detail)
{
	snprintf(r->status, sizeof(r->status), "%s", status);
	free(r->detail);
	r->detail = nb_xstrdup(detail ? detail : "");
}

/* Counts the rows' statuses, and their ok images, into y. */
static void tally_rows(ingest_tally *y, const ingest_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tally_count(y, rows[i].status, 1);
		y->images += !strcmp(rows[i].status, "ok");
	}
}

/* Hashes, decodes and resizes the body fetched for row ri. */
static void take_image(shard_run *s, size_t ri, const fetch_result *fr)
{
	const ingest_opts *o = &s->j->o;
	ingest_row *r = &s->rows[ri];
	double t0 = nb_now();
	content_hash(fr->body, fr->len, r->hash);
	double t1 = nb_now();
	nb_image im = {0};
	int hint = o->dct_scaling ? o->size : 0;
	image_status st = image_decode_hint(fr->body, fr->len, o->max_pixels, hint, hint, &im);
	double t2 = nb_now();
	s->y.t[T_HASH] += t1 - t0;
	s->y.t[T_DECODE] += t2 - t1;
	if (st != IMG_OK) {
		set_status(r, image_status_name(st), nb_errmsg());
		return;
	}
	s->img[ri] = nb_xmalloc((size_t)o->size * (size_t)o->size * 3);
	image_resize(&im, o->size, o->size, o->mode, s->img[ri]);
	image_free(&im);
	s->y.t[T_RESIZE] += nb_now() - t2;
	set_status(r, "ok", "");
}

typedef struct {
	shard_run *s;
	const size_t *todo;        /* fetch index -> row index */
	size_t done, total;
	double last_progress;
} fetch_ctx;

static void on_fetched(void *ctx, const fetch_result *fr)
{
	fetch_ctx *c = ctx;
	shard_run *s = c->s;
	size_t ri = c->todo[fr->index];
	s->rows[ri].attempts += fr->attempts;
	c->done++;
	if (strcmp(fr->status, "ok") != 0)
		set_status(&s->rows[ri], fr->status, fr->detail);
	else
		take_image(s, ri, fr);
	double now = nb_now();
	if (s->j->o.progress && now - c->last_progress >= 2.0) {
		c->last_progress = now;
		fprintf(stderr, "ingest: rank %d: shard %d: %zu/%zu fetched, %.1f records/s\n", s->rank, s->k,
			c->done, c->total, (double)c->done / (now - s->t0));
	}
}

typedef struct {
	uint64_t h0, h1;
	size_t row;
} hash_ref;

static int hash_ref_cmp(const void *pa, const void *pb)
{
	const hash_ref *a = pa, *b = pb;
	if (a->h0 != b->h0)
		return a->h0 < b->h0 ? -1 : 1;
	if (a->h1 != b->h1)
		return a->h1 < b->h1 ? -1 : 1;
	return a->row < b->row ? -1 : (a->row > b->row);
}

/* Later records with the bytes of an earlier ok record become duplicates. */
static void dedup(ingest_row *rows, uint8_t **img, size_t n)
{
	hash_ref *refs = nb_xmalloc((n ? n : 1) * sizeof(hash_ref));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].status, "ok"))
			refs[m++] = (hash_ref){rows[i].hash[0], rows[i].hash[1], i};
	qsort(refs, m, sizeof(hash_ref), hash_ref_cmp);
	for (size_t i = 1; i < m; i++) {
		size_t g = i;
		while (g > 0 && refs[g - 1].h0 == refs[i].h0 && refs[g - 1].h1 == refs[i].h1)
			g--;
		if (g == i)
			continue;
		char d[64];
		snprintf(d, sizeof(d), "same content as line %ld", rows[refs[g].row].line);
		set_status(&rows[refs[i].row], "duplicate", d);
		free(img[refs[i].row]);
		img[refs[i].row] = NULL;
	}
	free(refs);
}

/* Loads the ok images of a completed shard into img[] for a retry run. */
static int load_ok_images(const char *h5, const ingest_row *rows, size_t n, int size, uint8_t **img)
{
	shard_reader *rd = shard_open(h5);
	if (!rd)
		return -1;
	const shard_meta *m = shard_reader_meta(rd);
	if (m->height != size || m->width != size) {
		shard_close(rd);
		return nb_error("cannot retry shard '%s': images are %dx%d, --size is %d", h5, m->width,
				m->height, size);
	}
	shard_sample s;
	size_t i = 0;
	int rc;
	while ((rc = shard_next(rd, &s)) == 1) {
		while (i < n && strcmp(rows[i].status, "ok"))
			i++;
		if (i == n || rows[i].id != s.id) {
			shard_close(rd);
			return nb_error("cannot retry shard '%s': image id %" PRIu64 " does not match its status table",
					h5, s.id);
		}
		img[i] = nb_xmalloc((size_t)size * (size_t)size * 3);
		memcpy(img[i], s.image, (size_t)size * (size_t)size * 3);
		i++;
	}
	shard_close(rd);
	return rc < 0 ? -1 : 0;
}

/* Makes r (empty, or holding an earlier run's row: its strings are freed)
 * the unfetched row of list entry e: pending, or bad_line at once. */
static void fresh_row(const ingest_job *j, const urllist_entry *e, ingest_row *r)
{
	free(r->url);
	free(r->key);
	free(r->detail);
	memset(r, 0, sizeof(*r));
	r->line = e->line;
	r->id = (uint64_t)e->line;
	r->digest = entry_digest(e);
	r->url = nb_xstrdup(e->url);
	r->key = nb_xstrdup(e->key);
	if (e->bad) {
		char d[4200];
		snprintf(d, sizeof(d), "%s:%ld: %s", j->list_path, e->line, e->bad);
		set_status(r, "bad_line", d);
	} else {
		set_status(r, "pending", "");
	}
}

/* A first run: one pending row per list entry, bad lines settled at once. */
static void new_rows(shard_run *s)
{
	s->rows = nb_xcalloc(s->n ? s->n : 1, sizeof(ingest_row));
	s->nrows = s->n;
	for (size_t i = 0; i < s->n; i++)
		fresh_row(s->j, &s->j->list.e[s->lo + i], &s->rows[i]);
}

/* Whether row r was made from another version of list entry e. A row of a
 * table without digests (0) is compared by what it kept: url and key. */
static int row_changed(const ingest_row *r, const urllist_entry *e)
{
	if (r->digest == 0)
		return strcmp(r->url, e->url) || strcmp(r->key, e->key) ||
		       (e->bad != NULL) != !strcmp(r->status, "bad_line");
	return r->digest != entry_digest(e);
}

/* Says which records of the shard changed in the list since their rows were
 * written (stderr, whatever --quiet says: the input moved under the
 * output) and counts them in s->y.changed. */
static void report_changed(shard_run *s, const unsigned char *changed, size_t nchanged)
{
	s->y.changed = nchanged;
	nb_buf b = {0};
	size_t shown = 0;
	for (size_t i = 0; i < s->n && shown < 10; i++)
		if (changed[i])
			nb_buf_addf(&b, "%s%ld", shown++ ? ", " : "", s->rows[i].line);
	fprintf(stderr, "ingest: shard %d: %zu record%s of '%s' changed since the last run (line%s %s%s): fetched again\n",
		s->k, nchanged, nchanged == 1 ? "" : "s", s->j->list_path, nchanged == 1 ? "" : "s", b.data,
		nchanged > shown ? ", ..." : "");
	free(b.data);
}

/* A complete shard: its status table must describe the same list lines.
 * 1 when there is nothing to redo (its counts go to s->y), 0 when records
 * are to be fetched again (the ok images are read back first): with
 * retry_failed the retryable ones; always those whose list line changed,
 * and then the duplicates too, whose original may be among them. -1 on
 * error. */
static int resume_rows(shard_run *s)
{
	const ingest_job *j = s->j;
	if (ingest_status_read(s->status, &s->rows, &s->nrows) < 0)
		return -1;
	int same = s->nrows == s->n;
	for (size_t i = 0; same && i < s->n; i++)
		same = s->rows[i].line == j->list.e[s->lo + i].line;
	if (!same)
		return nb_error("cannot resume shard %d: status table '%s' does not match the list '%s' "
				"(lines were added or removed: use a new --out)", s->k, s->status, j->list_path);
	unsigned char *changed = nb_xcalloc(s->n ? s->n : 1, 1);
	size_t retry = 0, nchanged = 0;
	for (size_t i = 0; i < s->n; i++) {
		changed[i] = (unsigned char)row_changed(&s->rows[i], &j->list.e[s->lo + i]);
		nchanged += changed[i];
		retry += j->o.retry_failed && fetch_status_retryable(s->rows[i].status);
	}
	if (retry == 0 && nchanged == 0) {
		free(changed);
		tally_rows(&s->y, s->rows, s->n);
		return 1;
	}
	if (load_ok_images(s->h5, s->rows, s->n, j->o.size, s->img) < 0) {
		free(changed);
		return -1;
	}
	if (nchanged) {
		report_changed(s, changed, nchanged);
		for (size_t i = 0; i < s->n; i++) {
			if (!changed[i] && strcmp(s->rows[i].status, "duplicate"))
				continue;
			int attempts = changed[i] ? 0 : s->rows[i].attempts;
			fresh_row(j, &j->list.e[s->lo + i], &s->rows[i]);
			s->rows[i].attempts = attempts;
			free(s->img[i]);
			s->img[i] = NULL;
		}
	}
	free(changed);
	return 0;
}

/* Fetches the pending records (on a rerun: the retryable ones), decodes
 * what arrives, then marks duplicates. 0 or nb_error. */
static int fetch_shard(shard_run *s)
{
	size_t n = s->n, nt = 0;
	size_t *todo = nb_xmalloc((n ? n : 1) * sizeof(size_t));
	const char **urls = nb_xmalloc((n ? n : 1) * sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s->rows[i].status, "pending") ||
		    (s->rerun && s->j->o.retry_failed && fetch_status_retryable(s->rows[i].status))) {
			todo[nt] = i;
			urls[nt++] = s->rows[i].url;
		}
	fetch_ctx c = {s, todo, 0, nt, s->t0};
	fetch_stats fs;
	int rc = fetch_run(&s->j->o.fetch, urls, nt, on_fetched, &c, &fs);
	free(urls);
	free(todo);
	if (rc < 0)
		return -1;
	s->y.t[T_NETWORK] = fs.wall_s - fs.callback_s;
	s->y.bytes = fs.bytes;
	s->y.attempts = fs.attempts;
	s->y.retries = fs.retries;
	dedup(s->rows, s->img, n);
	return 0;
}

/* The effective options, "key=value" lines, for the shards' provenance
 * (schemas/provenance.md). */
static void options_text(const ingest_opts *o, char *buf, size_t n)
{
	const fetch_opts *f = &o->fetch;
	snprintf(buf, n,
		 "size=%d\nresize=%s\nmax_pixels=%zu\nshard_size=%zu\ndct_scaling=%d\nzstd_level=%d\n"
		 "concurrency=%d\nper_host=%d\nconnect_timeout_ms=%ld\ntimeout_ms=%ld\nmax_bytes=%zu\n"
		 "max_redirects=%d\nretries=%d\nallow_file=%d",
		 o->size, o->mode == RESIZE_PAD ? "pad" : "center_crop", o->max_pixels, o->shard_size, o->dct_scaling,
		 o->zstd_level, f->concurrency, f->per_host, f->connect_timeout_ms, f->timeout_ms, f->max_bytes,
		 f->max_redirects, f->retries, f->allow_file);
}

/* The ok images, in record order, into the shard's .h5. 0 or nb_error. */
static int write_images(shard_run *s)
{
	double t0 = nb_now();
	shard_meta meta = {0};
	meta.kind = SHARD_IMAGES;
	meta.height = meta.width = s->j->o.size;
	meta.zstd_level = s->j->o.zstd_level;
	char options[1024];
	options_text(&s->j->o, options, sizeof options);
	meta.options = options;
	shard_writer *w = shard_create(s->h5, &meta);
	if (!w)
		return -1;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->rows[i].status, "ok"))
			continue;
		shard_sample smp = {0};
		smp.id = s->rows[i].id;
		smp.image = s->img[i];
		smp.source = s->rows[i].url;
		if (shard_append(w, &smp) < 0) {
			shard_abort(w);
			return -1;
		}
	}
	if (shard_commit(w) < 0)
		return -1;
	s->y.t[T_WRITE] = nb_now() - t0;
	return 0;
}

/* The status table, which marks the shard complete, then its stats. */
static int write_tables(shard_run *s)
{
	if (ingest_status_write(s->status, s->rows, s->n) < 0)
		return -1;
	s->y.t[T_WALL] = nb_now() - s->t0;
	tally_rows(&s->y, s->rows, s->n);
	char head[64];
	snprintf(head, sizeof(head), "\"shard\": %d, ", s->k);
	nb_buf json = {0};
	tally_json(&s->y, head, &json);
	int rc = nb_write_file_atomic(s->stats, json.data, json.len);
	free(json.data);
	return rc;
}

static void shard_begin(shard_run *s, const ingest_job *j, int k, int rank)
{
	memset(s, 0, sizeof(*s));
	s->j = j;
	s->k = k;
	s->rank = rank;
	snprintf(s->h5, sizeof(s->h5), "%s/ingest-%05d.h5", j->out_dir, k);
	snprintf(s->status, sizeof(s->status), "%s/ingest-%05d.status.tsv", j->out_dir, k);
	snprintf(s->stats, sizeof(s->stats), "%s/ingest-%05d.stats.json", j->out_dir, k);
	s->lo = (size_t)k * j->o.shard_size;
	s->n = s->lo + j->o.shard_size < j->list.n ? j->o.shard_size : j->list.n - s->lo;
	s->img = nb_xcalloc(s->n ? s->n : 1, sizeof(uint8_t *));
	s->rerun = access(s->status, F_OK) == 0 && access(s->h5, F_OK) == 0;
}

static void shard_end(shard_run *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->img[i]);
	free(s->img);
	ingest_rows_free(s->rows, s->nrows);
	tally_clear(&s->y);
}

/* Runs shard k (skipping it when complete) and adds it to total. */
static int run_shard(const ingest_job *j, int k, int rank, ingest_tally *total)
{
	shard_run s;
	shard_begin(&s, j, k, rank);
	int rc = 0;
	if (s.rerun)
		rc = resume_rows(&s);
	else
		new_rows(&s);
	if (rc == 0) {
		s.t0 = nb_now();
		if (fetch_shard(&s) < 0 || write_images(&s) < 0 || write_tables(&s) < 0)
			rc = -1;
	}
	if (rc >= 0)
		tally_add(total, &s.y);
	shard_end(&s);
	return rc < 0 ? -1 : 0;
}

/* ---- the run ---- */

int ingest_open(ingest_job *j, const char *list_path, const char *out_dir, const ingest_opts *o,
		int prepare_dir)
{
	memset(j, 0, sizeof(*j));
	j->t0 = nb_now();
	if (o->size < 1 || o->size > 4096 || o->shard_size < 1)
		return nb_error("cannot ingest: bad size %d or shard size %zu", o->size, o->shard_size);
	if (urllist_load(list_path, URLLIST_AUTO, &j->list) < 0)
		return -1;
	if (prepare_dir) {
		if (nb_mkdir_p(out_dir) < 0) {
			urllist_free(&j->list);
			return -1;
		}
		/* A directory that cannot be listed only keeps its garbage; the
		 * shard writes report any real problem with it. */
		(void)shard_sweep_tmp(out_dir);
	}
	j->o = *o;
	j->list_path = list_path;
	j->out_dir = out_dir;
	j->nshards = (j->list.n + o->shard_size - 1) / o->shard_size;
	return 0;
}

void ingest_close(ingest_job *j) { urllist_free(&j->list); }

int ingest_run_rank(const ingest_job *j, int rank, int nranks, ingest_tally *t)
{
	for (size_t k = (size_t)rank; k < j->nshards; k += (size_t)nranks)
		if (run_shard(j, (int)k, rank, t) < 0)
			return -1;
	return 0;
}

int ingest_write_totals(const ingest_job *j, const ingest_tally *t, int nranks)
{
	char path[4096], head[128];
	snprintf(path, sizeof(path), "%s/ingest-stats.json", j->out_dir);
	snprintf(head, sizeof(head), "\"shards\": %zu, \"ranks\": %d, \"run_wall_s\": %.3f, ", j->nshards,
		 nranks, nb_now() - j->t0);
	nb_buf json = {0};
	tally_json(t, head, &json);
	int rc = nb_write_file_atomic(path, json.data, json.len);
	if (rc == 0 && j->o.progress)
		fprintf(stderr, "ingest: done: %s", json.data);
	free(json.data);
	return rc;
}
