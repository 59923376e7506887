/* The ingest driver: shards of list records -> fetch -> decode -> resize ->
 * dedup -> image shard + status table + stats. */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/ingest/ingest.h"
#include "store/shard_store.h"
#include "corpus/ingest/urllist.h"

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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- status counters ---- */

typedef struct {
	char name[32];
	uint64_t count;
} counter;

typedef struct {
	counter *c;
	int n, cap;
} counters;

static void count_add(counters *t, const char *name, uint64_t k)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->c[i].name, name)) {
			t->c[i].count += k;
			return;
		}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->c = nb_xrealloc(t->c, (size_t)t->cap * sizeof(counter));
	}
	snprintf(t->c[t->n].name, sizeof(t->c[t->n].name), "%s", name);
	t->c[t->n++].count = k;
}

static int counter_cmp(const void *a, const void *b)
{
	return strcmp(((const counter *)a)->name, ((const counter *)b)->name);
}

/* Time breakdown, seconds. */
enum { T_WALL, T_NETWORK, T_DECODE, T_RESIZE, T_HASH, T_WRITE, T_N };
static const char *const timer_names[T_N] = {"wall", "network", "decode", "resize", "hash", "write"};

typedef struct {
	counters status;
	double t[T_N];
	uint64_t bytes, attempts, retries, images;
} tally;

static void tally_json(const tally *y, const char *head, char **out, size_t *len)
{
	size_t cap = 4096 + (size_t)y->status.n * 64;
	char *s = nb_xmalloc(cap);
	size_t k = 0;
	k += (size_t)snprintf(s + k, cap - k, "{%s\"status\": {", head);
	counter *sorted = nb_xmalloc(sizeof(counter) * (size_t)(y->status.n + 1));
	memcpy(sorted, y->status.c, sizeof(counter) * (size_t)y->status.n);
	qsort(sorted, (size_t)y->status.n, sizeof(counter), counter_cmp);
	uint64_t records = 0;
	for (int i = 0; i < y->status.n; i++) {
		k += (size_t)snprintf(s + k, cap - k, "%s\"%s\": %" PRIu64, i ? ", " : "", sorted[i].name,
				      sorted[i].count);
		records += sorted[i].count;
	}
	free(sorted);
	k += (size_t)snprintf(s + k, cap - k,
			      "}, \"records\": %" PRIu64 ", \"images\": %" PRIu64 ", \"bytes\": %" PRIu64
			      ", \"attempts\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"time_s\": {",
			      records, y->images, y->bytes, y->attempts, y->retries);
	for (int i = 0; i < T_N; i++)
		k += (size_t)snprintf(s + k, cap - k, "%s\"%s\": %.6f", i ? ", " : "", timer_names[i], y->t[i]);
	double ips = y->t[T_WALL] > 0 ? (double)y->images / y->t[T_WALL] : 0;
	k += (size_t)snprintf(s + k, cap - k, "}, \"images_per_s\": %.2f}\n", ips);
	*out = s;
	*len = k;
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

/* ---- one shard ---- */

typedef struct {
	const ingest_opts *o;
	ingest_row *rows;
	uint8_t **img;
	size_t *todo;              /* fetch index -> row index */
	tally *y;
	int rank, shard;
	size_t done, total;
	double last_progress, start;
} shard_job;

static void set_detail(ingest_row *r, const char *msg)
{
	free(r->detail);
	r->detail = nb_xstrdup(msg ? msg : "");
}

static void on_fetched(void *ctx, const fetch_result *fr)
{
	shard_job *j = ctx;
	size_t ri = j->todo[fr->index];
	ingest_row *r = &j->rows[ri];
	r->attempts += fr->attempts;
	j->done++;
	if (strcmp(fr->status, "ok") != 0) {
		snprintf(r->status, sizeof(r->status), "%s", fr->status);
		set_detail(r, fr->detail);
	} else {
		const ingest_opts *o = j->o;
		double t0 = now_s();
		content_hash(fr->body, fr->len, r->hash);
		double t1 = now_s();
		nb_image im = {0};
		int hint = o->dct_scaling ? o->size : 0;
		image_status st = image_decode_hint(fr->body, fr->len, o->max_pixels, hint, hint, &im);
		double t2 = now_s();
		j->y->t[T_HASH] += t1 - t0;
		j->y->t[T_DECODE] += t2 - t1;
		if (st != IMG_OK) {
			snprintf(r->status, sizeof(r->status), "%s", image_status_name(st));
			set_detail(r, nb_errmsg());
		} else {
			j->img[ri] = nb_xmalloc((size_t)o->size * (size_t)o->size * 3);
			image_resize(&im, o->size, o->size, o->mode, j->img[ri]);
			image_free(&im);
			j->y->t[T_RESIZE] += now_s() - t2;
			snprintf(r->status, sizeof(r->status), "ok");
			set_detail(r, "");
		}
	}
	double now = now_s();
	if (j->o->progress && now - j->last_progress >= 2.0) {
		j->last_progress = now;
		fprintf(stderr, "ingest: rank %d: shard %d: %zu/%zu fetched, %.1f records/s\n", j->rank,
			j->shard, j->done, j->total, (double)j->done / (now - j->start));
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
		ingest_row *r = &rows[refs[i].row];
		snprintf(r->status, sizeof(r->status), "duplicate");
		char d[64];
		snprintf(d, sizeof(d), "same content as line %ld", rows[refs[g].row].line);
		set_detail(r, d);
		free(img[refs[i].row]);
		img[refs[i].row] = NULL;
	}
	free(refs);
}

static void shard_names(const char *dir, int k, char *h5, char *st, char *js, size_t cap)
{
	snprintf(h5, cap, "%s/ingest-%05d.h5", dir, k);
	snprintf(st, cap, "%s/ingest-%05d.status.tsv", dir, k);
	snprintf(js, cap, "%s/ingest-%05d.stats.json", dir, k);
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

static void tally_rows(tally *y, const ingest_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		count_add(&y->status, rows[i].status, 1);
}

static int run_shard(const urllist *l, const char *list_path, const char *dir, const ingest_opts *o,
		     int k, int rank, tally *total)
{
	char h5[4096], stp[4096], js[4096];
	shard_names(dir, k, h5, stp, js, sizeof(h5));
	size_t lo = (size_t)k * o->shard_size;
	size_t hi = lo + o->shard_size < l->n ? lo + o->shard_size : l->n;
	size_t n = hi - lo;
	ingest_row *rows = NULL;
	size_t nrows = 0;
	uint8_t **img = nb_xcalloc(n ? n : 1, sizeof(uint8_t *));
	int rerun = access(stp, F_OK) == 0 && access(h5, F_OK) == 0;
	if (rerun) {
		if (ingest_status_read(stp, &rows, &nrows) < 0) {
			free(img);
			return -1;
		}
		int same = nrows == n;
		for (size_t i = 0; same && i < n; i++)
			same = rows[i].line == l->e[lo + i].line;
		if (!same) {
			ingest_rows_free(rows, nrows);
			free(img);
			return nb_error("cannot resume shard %d: status table '%s' does not match the list '%s' "
					"(was the list edited?)", k, stp, list_path);
		}
		size_t retry = 0;
		for (size_t i = 0; i < n; i++)
			retry += o->retry_failed && fetch_status_retryable(rows[i].status);
		if (retry == 0) {
			tally_rows(total, rows, n);
			for (size_t i = 0; i < n; i++)
				total->images += !strcmp(rows[i].status, "ok");
			ingest_rows_free(rows, nrows);
			free(img);
			return 0;
		}
		if (load_ok_images(h5, rows, n, o->size, img) < 0)
			goto fail;
	} else {
		rows = nb_xcalloc(n ? n : 1, sizeof(ingest_row));
		for (size_t i = 0; i < n; i++) {
			const urllist_entry *e = &l->e[lo + i];
			ingest_row *r = &rows[i];
			r->line = e->line;
			r->id = (uint64_t)e->line;
			r->url = nb_xstrdup(e->url);
			r->key = nb_xstrdup(e->key);
			if (e->bad) {
				snprintf(r->status, sizeof(r->status), "bad_line");
				char d[4200];
				snprintf(d, sizeof(d), "%s:%ld: %s", list_path, e->line, e->bad);
				r->detail = nb_xstrdup(d);
			} else {
				snprintf(r->status, sizeof(r->status), "pending");
				r->detail = nb_xstrdup("");
			}
		}
	}

	tally y = {0};
	double t0 = now_s();
	size_t *todo = nb_xmalloc((n ? n : 1) * sizeof(size_t));
	const char **urls = nb_xmalloc((n ? n : 1) * sizeof(char *));
	size_t nt = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].status, "pending") || (rerun && fetch_status_retryable(rows[i].status))) {
			todo[nt] = i;
			urls[nt++] = rows[i].url;
		}
	shard_job job = {o, rows, img, todo, &y, rank, k, 0, nt, t0, t0};
	fetch_stats fs;
	int rc = fetch_run(&o->fetch, urls, nt, on_fetched, &job, &fs);
	free(urls);
	free(todo);
	if (rc < 0)
		goto fail_tally;
	y.t[T_NETWORK] = fs.wall_s - fs.callback_s;
	y.bytes = fs.bytes;
	y.attempts = fs.attempts;
	y.retries = fs.retries;
	dedup(rows, img, n);

	double tw = now_s();
	shard_meta meta = {0};
	meta.kind = SHARD_IMAGES;
	meta.height = meta.width = o->size;
	meta.zstd_level = o->zstd_level;
	shard_writer *w = shard_create(h5, &meta);
	if (!w)
		goto fail_tally;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rows[i].status, "ok"))
			continue;
		shard_sample s = {0};
		s.id = rows[i].id;
		s.image = img[i];
		s.source = rows[i].url;
		if (shard_append(w, &s) < 0) {
			shard_abort(w);
			goto fail_tally;
		}
		y.images++;
	}
	if (shard_commit(w) < 0)
		goto fail_tally;
	y.t[T_WRITE] = now_s() - tw;
	if (ingest_status_write(stp, rows, n) < 0)
		goto fail_tally;
	y.t[T_WALL] = now_s() - t0;
	tally_rows(&y, rows, n);
	char head[64];
	snprintf(head, sizeof(head), "\"shard\": %d, ", k);
	char *json;
	size_t jl;
	tally_json(&y, head, &json, &jl);
	rc = ingest_write_atomic(js, json, jl);
	free(json);
	if (rc < 0)
		goto fail_tally;
	for (int i = 0; i < y.status.n; i++)
		count_add(&total->status, y.status.c[i].name, y.status.c[i].count);
	for (int i = 0; i < T_N; i++)
		total->t[i] += y.t[i];
	total->bytes += y.bytes;
	total->attempts += y.attempts;
	total->retries += y.retries;
	total->images += y.images;
	free(y.status.c);
	for (size_t i = 0; i < n; i++)
		free(img[i]);
	free(img);
	ingest_rows_free(rows, n);
	return 0;
fail_tally:
	free(y.status.c);
fail:
	for (size_t i = 0; i < n; i++)
		free(img[i]);
	free(img);
	ingest_rows_free(rows, rerun ? nrows : n);
	return -1;
}

/* Rank 0 receives every rank's counters as "name count" lines. */
static void gather_totals(tally *t, int rank, int nranks)
{
	/* A line is at most 31 (name) + 1 + 20 (digits) + 1 bytes. */
	char *text = nb_xmalloc((size_t)t->status.n * 64 + 1);
	size_t k = 0;
	text[0] = 0;
	for (int i = 0; i < t->status.n; i++)
		k += (size_t)snprintf(text + k, 64, "%s %" PRIu64 "\n", t->status.c[i].name, t->status.c[i].count);
	int len = (int)k;
	int *lens = rank == 0 ? nb_xcalloc((size_t)nranks, sizeof(int)) : NULL;
	MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
	int *displ = NULL;
	char *all = NULL;
	int sum = 0;
	if (rank == 0) {
		displ = nb_xcalloc((size_t)nranks, sizeof(int));
		for (int r = 0; r < nranks; r++) {
			displ[r] = sum;
			sum += lens[r];
		}
		all = nb_xmalloc((size_t)sum + 1);
	}
	MPI_Gatherv(text, len, MPI_CHAR, all, lens, displ, MPI_CHAR, 0, MPI_COMM_WORLD);
	double tin[T_N + 4], tout[T_N + 4];
	for (int i = 0; i < T_N; i++)
		tin[i] = t->t[i];
	tin[T_N] = (double)t->bytes;
	tin[T_N + 1] = (double)t->attempts;
	tin[T_N + 2] = (double)t->retries;
	tin[T_N + 3] = (double)t->images;
	MPI_Reduce(tin, tout, T_N + 4, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		counters merged = {0};
		all[sum] = 0;
		char *p = all;
		while (*p) {
			char *nl = strchr(p, '\n');
			*nl = 0;
			char *sp = strrchr(p, ' ');
			*sp = 0;
			count_add(&merged, p, strtoull(sp + 1, NULL, 10));
			p = nl + 1;
		}
		free(t->status.c);
		t->status = merged;
		for (int i = 0; i < T_N; i++)
			t->t[i] = tout[i];
		t->bytes = (uint64_t)tout[T_N];
		t->attempts = (uint64_t)tout[T_N + 1];
		t->retries = (uint64_t)tout[T_N + 2];
		t->images = (uint64_t)tout[T_N + 3];
	}
	free(text);
	free(lens);
	free(displ);
	free(all);
}

int ingest_run(const char *list_path, const char *out_dir, const ingest_opts *o, int rank, int nranks)
{
	double t0 = now_s();
	if (o->size < 1 || o->size > 4096 || o->shard_size < 1)
		return nb_error("cannot ingest: bad size %d or shard size %zu", o->size, o->shard_size);
	urllist l;
	int ok = urllist_load(list_path, URLLIST_AUTO, &l) == 0;
	if (ok && rank == 0 && nb_mkdir_p(out_dir) < 0)
		ok = 0;
	if (nranks > 1) {
		int all;
		MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
		if (!all && ok) {
			urllist_free(&l);
			return nb_error("cannot ingest '%s': another rank failed to start", list_path);
		}
	}
	if (!ok)
		return -1;
	if (rank == 0)
		shard_sweep_tmp(out_dir);
	if (nranks > 1)
		MPI_Barrier(MPI_COMM_WORLD);
	size_t nshards = (l.n + o->shard_size - 1) / o->shard_size;
	tally total = {0};
	int rc = 0;
	for (size_t k = (size_t)rank; k < nshards; k += (size_t)nranks)
		if (run_shard(&l, list_path, out_dir, o, (int)k, rank, &total) < 0) {
			rc = -1;
			break;
		}
	urllist_free(&l);
	if (nranks > 1) {
		/* A failed rank still takes part in the collectives below, so
		 * the others do not hang; its error decides the exit status. */
		int mine = rc == 0, all;
		MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
		char saved[1024];
		snprintf(saved, sizeof(saved), "%s", nb_errmsg());
		gather_totals(&total, rank, nranks);
		if (rc == 0 && !all)
			rc = nb_error("cannot ingest '%s': another rank failed", list_path);
		else if (rc < 0)
			nb_error("%s", saved);
	}
	double wall = now_s() - t0;
	if (rank == 0 && rc == 0) {
		char path[4096], head[128];
		snprintf(path, sizeof(path), "%s/ingest-stats.json", out_dir);
		snprintf(head, sizeof(head), "\"shards\": %zu, \"ranks\": %d, \"run_wall_s\": %.3f, ", nshards,
			 nranks, wall);
		char *json;
		size_t jl;
		tally_json(&total, head, &json, &jl);
		rc = ingest_write_atomic(path, json, jl);
		if (rc == 0 && o->progress)
			fprintf(stderr, "ingest: done: %s", json);
		free(json);
	}
	free(total.status.c);
	return rc;
}
