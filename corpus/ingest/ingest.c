/* The ingest driver: shards of list records -> fetch -> decode -> resize ->
 * dedup -> image shard + status table + stats. One process's work; the
 * ranks are the caller's (cli/cmd_ingest.c). */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_json.h"
#include "common/nb_time.h"
#include "corpus/ingest/ingest.h"
#include "corpus/ingest/ingest_tally.h"
#include "corpus/ingest/urllist.h"
#include "store/h5util.h"
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
	o->nslices = 1;
}

/* ---- content hash ---- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return z ^ (z >> 33);
}

/* SHA-256 of the fetched bytes (OpenSSL's libcrypto, which libcurl already
 * links); its first 128 bits, big-endian, are the dedup key. */
static void content_hash(const uint8_t *p, size_t n, ingest_row *r)
{
	unsigned int len = 0;
	if (!EVP_Digest(p, n, r->sha256, &len, EVP_sha256(), NULL) || len != 32)
		NB_BUG("EVP_Digest(sha256) failed");
	r->hash[0] = r->hash[1] = 0;
	for (int i = 0; i < 8; i++) {
		r->hash[0] = r->hash[0] << 8 | r->sha256[i];
		r->hash[1] = r->hash[1] << 8 | r->sha256[8 + i];
	}
}

/* The digest of a list record, as a status row keeps it: what the row was
 * made from (url, caption, key, and why the line is bad). Never 0, which
 * a row read from an older table has. */
static uint64_t digest_add(uint64_t h, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		h = (h ^ *c) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL; /* field end: not a byte of UTF-8 */
}

/* The kept columns count too (a table written without them has the same
 * digest as before: none are added when there are none). */
static uint64_t entry_digest(const urllist_entry *e, int ncols)
{
	const char *part[4] = {e->url, e->caption, e->key, e->bad ? e->bad : ""};
	uint64_t h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < 4; i++)
		h = digest_add(h, part[i]);
	for (int c = 0; c < ncols && e->extra; c++)
		h = digest_add(h, e->extra[c]);
	h = mix64(h ^ (uint64_t)(e->bad != NULL));
	return h ? h : 1;
}

/* ---- one shard ---- */

/* A rank's whole run, for its progress line. */
typedef struct {
	int rank;
	size_t total;              /* records in this rank's shards */
	size_t done;               /* of them settled: fetched, or in a skipped shard */
	size_t fetched;            /* settled by a fetch in this run (the rate) */
	double t0, last_print, last_record;
	int shard;                 /* being fetched, -1 between shards */
	size_t in_flight;          /* records of that shard not settled yet */
} run_progress;

/* Shard k of a run: rows[i] and img[i] are list entry lo + i. */
typedef struct {
	run_progress *pr;
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
	content_hash(fr->body, fr->len, r);
	double t1 = nb_now();
	nb_image im = {0};
	int hint = o->dct_scaling ? o->size : 0;
	image_status st = image_decode_src(fr->body, fr->len, o->max_pixels, hint, hint, &im, &r->width, &r->height);
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
} fetch_ctx;

/* The rank's progress line, at most every 2 s: the whole run's records, the
 * rate, the ETA of this rank's share, and how long since the last record
 * arrived (so a stall shows as a growing number, not as silence). */
static void progress_print(run_progress *p, int force)
{
	double now = nb_now();
	if (!force && now - p->last_print < 2.0)
		return;
	p->last_print = now;
	double el = now - p->t0, rate = el > 0 ? (double)p->fetched / el : 0;
	size_t left = p->total - p->done;
	char eta[32] = "unknown", stall[64] = "";
	if (left == 0)
		snprintf(eta, sizeof eta, "0s");
	else if (rate > 0)
		nb_fmt_duration(eta, sizeof eta, (double)left / rate);
	if (p->shard >= 0 && now - p->last_record >= 5.0)
		snprintf(stall, sizeof stall, ", no record for %.0f s", now - p->last_record);
	fprintf(stderr, "ingest: rank %d: %zu/%zu records (%.1f%%), %.1f records/s, ETA %s", p->rank, p->done,
		p->total, p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, rate, eta);
	if (p->shard >= 0)
		fprintf(stderr, "; shard %d: %zu in flight%s", p->shard, p->in_flight, stall);
	fputc('\n', stderr);
}

/* fetch_opts.tick: called by the fetch loop whatever arrives. */
static void on_tick(void *ctx)
{
	fetch_ctx *c = ctx;
	if (c->s->j->o.progress)
		progress_print(c->s->pr, 0);
}

static void on_fetched(void *ctx, const fetch_result *fr)
{
	fetch_ctx *c = ctx;
	shard_run *s = c->s;
	size_t ri = c->todo[fr->index];
	s->rows[ri].attempts += fr->attempts;
	if (strcmp(fr->status, "ok") != 0)
		set_status(&s->rows[ri], fr->status, fr->detail);
	else
		take_image(s, ri, fr);
	run_progress *p = s->pr;
	p->done++;
	p->fetched++;
	p->in_flight--;
	p->last_record = nb_now();
	if (s->j->o.progress)
		progress_print(p, 0);
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
	r->digest = entry_digest(e, j->list.ncols);
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
static int row_changed(const ingest_row *r, const urllist_entry *e, int ncols)
{
	if (r->digest == 0)
		return strcmp(r->url, e->url) || strcmp(r->key, e->key) ||
		       (e->bad != NULL) != !strcmp(r->status, "bad_line");
	return r->digest != entry_digest(e, ncols);
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
		changed[i] = (unsigned char)row_changed(&s->rows[i], &j->list.e[s->lo + i], j->list.ncols);
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
 * what arrives, then marks duplicates. 0, 1 when stopped (the shard is
 * then abandoned), or nb_error. */
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
	fetch_ctx c = {s, todo};
	fetch_opts fo = s->j->o.fetch;
	fo.tick = on_tick;
	s->pr->shard = s->k;
	s->pr->in_flight = nt;
	s->pr->done += n - nt; /* settled before: bad lines, rows kept from the last run */
	s->pr->last_record = nb_now();
	fetch_stats fs;
	int rc = fetch_run(&fo, urls, nt, on_fetched, &c, &fs);
	s->pr->shard = -1;
	free(urls);
	free(todo);
	if (rc != 0)
		return rc;
	s->y.t[T_NETWORK] = fs.wall_s - fs.callback_s;
	s->y.bytes = fs.bytes;
	s->y.attempts = fs.attempts;
	s->y.retries = fs.retries;
	dedup(s->rows, s->img, n);
	return 0;
}

/* ---- the shard file ---- */

/* Writes one dataset under g: n elements of type t (rank 1, or rank 2 with
 * width columns), chunked (whole rows, <= 64 Ki elements), zstd and
 * Fletcher-32 as the store's own datasets. 0 or nb_error naming path. */
static int put_array(hid_t g, const char *name, hid_t ftype, hid_t mtype, size_t n, size_t width,
		     const void *data, int zstd_level, const char *path)
{
	int rank = width ? 2 : 1;
	hsize_t dims[2] = {n, width}, maxd[2] = {H5S_UNLIMITED, width};
	size_t rows = 65536 / (width ? width : 1);
	hsize_t chunk[2] = {n < rows ? (n ? n : 1) : rows, width};
	hid_t dcpl = h5u_dcpl(rank, chunk, zstd_level);
	char cause[256] = "";
	int rc = dcpl < 0 ? -1
			  : h5u_write_dataset(g, name, ftype, mtype, rank, dims, maxd, dcpl, data, cause,
					      sizeof cause);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	return rc < 0 ? nb_error("cannot write shard '%s': dataset '%s': %s", path, name, cause) : 0;
}

/* A text column: the texts of the ok rows, concatenated (NAME, uint8) with
 * offsets (NAME_offsets, uint64 [N+1]), as the store keeps /sources. */
static int put_text(hid_t g, const char *name, const char *const *text, size_t n, int zstd_level,
		    const char *path)
{
	uint64_t *off = nb_xmalloc((n + 1) * sizeof(uint64_t));
	nb_buf flat = {0};
	off[0] = 0;
	for (size_t i = 0; i < n; i++) {
		nb_buf_adds(&flat, text[i]);
		off[i + 1] = flat.len;
	}
	char oname[512];
	snprintf(oname, sizeof oname, "%s_offsets", name);
	int rc = put_array(g, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, flat.len, 0, flat.data ? flat.data : "",
			   zstd_level, path);
	if (rc == 0)
		rc = put_array(g, oname, H5T_STD_U64LE, H5T_NATIVE_UINT64, n + 1, 0, off, zstd_level, path);
	free(off);
	free(flat.data);
	return rc;
}

/* The /ingest group of a committed shard file (the staging copy): caption,
 * kept columns, original sizes and SHA-256 of its ok rows ok[0..m). */
static int put_ingest_group(const shard_run *s, const char *file, const size_t *ok, size_t m)
{
	const ingest_job *j = s->j;
	int level = j->o.zstd_level ? j->o.zstd_level : SHARD_ZSTD_DEFAULT;
	if (level < 0)
		level = 0;
	if (shard_zstd_register() < 0)
		return -1;
	h5u_quiet();
	/* The shard's own format (checksummed metadata, no timestamps) for
	 * the objects added here too. */
	hid_t fapl = h5u_fapl_new();
	hid_t f = fapl >= 0 ? H5Fopen(file, H5F_ACC_RDWR, fapl) : -1;
	if (fapl >= 0)
		H5Pclose(fapl);
	if (f < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		return nb_error("cannot write shard '%s': cannot reopen '%s': %s", s->h5, file, cause);
	}
	hid_t gcpl = h5u_gcpl_new();
	hid_t g = gcpl >= 0 ? H5Gcreate2(f, "ingest", H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
	hid_t gc = g >= 0 ? H5Gcreate2(g, "columns", H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
	if (gcpl >= 0)
		H5Pclose(gcpl);
	int rc = g >= 0 && gc >= 0 ? 0 : nb_error("cannot write shard '%s': cannot create group /ingest", s->h5);
	const char **text = nb_xmalloc((m ? m : 1) * sizeof(char *));
	uint32_t *wh = nb_xmalloc((m ? m : 1) * 2 * sizeof(uint32_t));
	uint8_t *sha = nb_xmalloc((m ? m : 1) * 32);
	for (size_t i = 0; i < m; i++) {
		const ingest_row *r = &s->rows[ok[i]];
		text[i] = j->list.e[s->lo + ok[i]].caption;
		wh[i] = (uint32_t)r->width;
		wh[m + i] = (uint32_t)r->height;
		memcpy(sha + 32 * i, r->sha256, 32);
	}
	if (rc == 0)
		rc = put_text(g, "caption", text, m, level, s->h5);
	if (rc == 0)
		rc = put_array(g, "orig_width", H5T_STD_U32LE, H5T_NATIVE_UINT32, m, 0, wh, level, s->h5);
	if (rc == 0)
		rc = put_array(g, "orig_height", H5T_STD_U32LE, H5T_NATIVE_UINT32, m, 0, wh + m, level, s->h5);
	if (rc == 0)
		rc = put_array(g, "sha256", H5T_STD_U8LE, H5T_NATIVE_UINT8, m, 32, sha, level, s->h5);
	for (int c = 0; rc == 0 && c < j->list.ncols; c++) {
		for (size_t i = 0; i < m; i++)
			text[i] = j->list.e[s->lo + ok[i]].extra[c];
		rc = put_text(gc, j->list.cols[c], text, m, level, s->h5);
	}
	if (rc == 0) {
		nb_buf names = {0};
		for (int c = 0; c < j->list.ncols; c++)
			nb_buf_addf(&names, "%s%s", c ? "," : "", j->list.cols[c]);
		if (h5u_put_str(g, "columns", names.data ? names.data : "") < 0)
			rc = nb_error("cannot write shard '%s': attribute /ingest/columns", s->h5);
		free(names.data);
	}
	free(text);
	free(wh);
	free(sha);
	if (gc >= 0)
		H5Gclose(gc);
	if (g >= 0)
		H5Gclose(g);
	if (H5Fclose(f) < 0 && rc == 0)
		rc = nb_error("cannot write shard '%s': closing '%s' failed", s->h5, file);
	return rc;
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

/* The ok images, in record order, into the shard's .h5, then its /ingest
 * group: written in the hidden out_dir/.staging/ (the store's commit),
 * completed there, then published under the final name, so no reader sees
 * half of it. A staging file left by a killed run is overwritten by the
 * rerun. 0 or nb_error. */
static int write_images(shard_run *s)
{
	double t0 = nb_now();
	char staging[4200];
	snprintf(staging, sizeof staging, "%s/.staging", s->j->out_dir);
	if (nb_mkdir_p(staging) < 0)
		return -1;
	snprintf(staging, sizeof staging, "%s/.staging/ingest-%05d.h5", s->j->out_dir, s->k);
	shard_meta meta = {0};
	meta.kind = SHARD_IMAGES;
	meta.height = meta.width = s->j->o.size;
	meta.zstd_level = s->j->o.zstd_level;
	char options[1024];
	options_text(&s->j->o, options, sizeof options);
	meta.options = options;
	shard_writer *w = shard_create(staging, &meta);
	if (!w)
		return -1;
	size_t *ok = nb_xmalloc((s->n ? s->n : 1) * sizeof(size_t)), m = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->rows[i].status, "ok"))
			continue;
		ok[m++] = i;
		shard_sample smp = {0};
		smp.id = s->rows[i].id;
		smp.image = s->img[i];
		smp.source = s->rows[i].url;
		if (shard_append(w, &smp) < 0) {
			shard_abort(w);
			free(ok);
			return -1;
		}
	}
	int rc = shard_commit(w);
	if (rc == 0 && put_ingest_group(s, staging, ok, m) < 0)
		rc = -1;
	free(ok);
	if (rc == 0)
		rc = nb_publish(staging, s->h5, 1);
	else
		unlink(staging);
	if (rc < 0)
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

static void shard_begin(shard_run *s, const ingest_job *j, int k, int rank, run_progress *pr)
{
	memset(s, 0, sizeof(*s));
	s->pr = pr;
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

/* Runs shard k (skipping it when complete) and adds it to total. 0, 1 when
 * stopped (nothing of the shard written), or nb_error. */
static int run_shard(const ingest_job *j, int k, int rank, run_progress *pr, ingest_tally *total)
{
	shard_run s;
	shard_begin(&s, j, k, rank, pr);
	int rc = 0;
	if (s.rerun)
		rc = resume_rows(&s);
	else
		new_rows(&s);
	if (rc == 1)
		pr->done += s.n;
	if (rc == 0) {
		s.t0 = nb_now();
		rc = fetch_shard(&s);
		if (rc == 0 && (write_images(&s) < 0 || write_tables(&s) < 0))
			rc = -1;
		if (rc == 1) {
			shard_end(&s);
			return 1;
		}
	}
	if (rc >= 0)
		tally_add(total, &s.y);
	shard_end(&s);
	return rc < 0 ? -1 : 0;
}

/* ---- ingest.json: the options that shape the output ---- */

/* One recorded option: its key in ingest.json, the command-line option a
 * user changes, and its value as written (a JSON number, or a string). */
typedef struct {
	const char *key, *option;
	char value[600];
} recorded;

/* s as a JSON string literal into out (common/nb_json.h's escaping). */
static void json_str(char *out, size_t n, const char *s)
{
	nb_buf b = {0};
	nb_json_put_str(&b, s);
	snprintf(out, n, "%s", b.data);
	free(b.data);
}

#define NREC 9

static void recorded_options(const ingest_opts *o, recorded *r)
{
	static const char *const mode[] = {"center_crop", "pad"};
	recorded t[NREC] = {
		{"size", "--size", ""}, {"resize", "--resize", ""}, {"shard_size", "--shard-size", ""},
		{"max_pixels", "--max-pixels", ""}, {"max_bytes", "--max-bytes", ""},
		{"dct_scaling", "--no-dct-scaling", ""}, {"zstd_level", "--zstd-level", ""},
		{"keep_columns", "--keep-columns", ""}, {"respect_optout", "--no-respect-optout", ""},
	};
	snprintf(t[0].value, sizeof t[0].value, "%d", o->size);
	json_str(t[1].value, sizeof t[1].value, mode[o->mode == RESIZE_PAD]);
	snprintf(t[2].value, sizeof t[2].value, "%zu", o->shard_size);
	snprintf(t[3].value, sizeof t[3].value, "%zu", o->max_pixels);
	snprintf(t[4].value, sizeof t[4].value, "%zu", o->fetch.max_bytes);
	snprintf(t[5].value, sizeof t[5].value, "%s", o->dct_scaling ? "true" : "false");
	snprintf(t[6].value, sizeof t[6].value, "%d", o->zstd_level);
	json_str(t[7].value, sizeof t[7].value, o->keep_columns ? o->keep_columns : "");
	snprintf(t[8].value, sizeof t[8].value, "%s", o->fetch.respect_optout ? "true" : "false");
	memcpy(r, t, sizeof t);
}

/* The text after "key": on its line in an ingest.json we wrote, without
 * the trailing comma; -1 when absent. */
static int recorded_value(const char *text, const char *key, char *out, size_t n)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\n  \"%s\": ", key);
	const char *p = strstr(text, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	size_t len = strcspn(p, "\n");
	if (len && p[len - 1] == ',')
		len--;
	snprintf(out, n, "%.*s", (int)len, p);
	return 0;
}

static void options_json(const recorded *r, nb_buf *b)
{
	nb_buf_adds(b, "{\n  \"format\": \"nboost.ingest-options\",\n  \"version\": 1");
	for (int i = 0; i < NREC; i++)
		nb_buf_addf(b, ",\n  \"%s\": %s", r[i].key, r[i].value);
	nb_buf_adds(b, "\n}\n");
}

/* 1 when dir holds a shard or a status table of an earlier ingest. */
static int has_ingest_output(const char *dir)
{
	char **paths = NULL;
	int n = shard_list(dir, &paths);
	if (n > 0) {
		shard_list_free(paths, n);
		return 1;
	}
	if (n == 0)
		shard_list_free(paths, n);
	char p[4200];
	snprintf(p, sizeof p, "%s/ingest-00000.status.tsv", dir);
	return access(p, F_OK) == 0;
}

/* Checks out_dir/ingest.json against o, or writes it on the first run. */
static int check_options(const char *out_dir, const ingest_opts *o)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/ingest.json", out_dir);
	recorded want[NREC];
	recorded_options(o, want);
	size_t len;
	char *text = nb_read_file(path, &len);
	if (!text && errno != ENOENT)
		return nb_error("cannot read '%s': %s", path, strerror(errno));
	if (!text) {
		if (has_ingest_output(out_dir))
			return nb_error("refusing to write into '%s': it holds ingest output but no ingest.json "
					"(the record of the options it was made with); use a new --out", out_dir);
		nb_buf b = {0};
		options_json(want, &b);
		int rc = nb_write_file_atomic(path, b.data, b.len);
		free(b.data);
		return rc;
	}
	int rc = 0;
	for (int i = 0; i < NREC && rc == 0; i++) {
		char have[sizeof want[i].value];
		if (recorded_value(text, want[i].key, have, sizeof have) < 0)
			rc = nb_error("cannot resume in '%s': '%s' has no \"%s\"; use a new --out", out_dir, path,
				      want[i].key);
		else if (strcmp(have, want[i].value))
			rc = nb_error("refusing to mix ingests in '%s': '%s' records \"%s\": %s but this run asks "
				      "for %s (%s); rerun with the recorded options or use a new --out",
				      out_dir, path, want[i].key, have, want[i].value, want[i].option);
	}
	free(text);
	return rc;
}

/* ---- the run ---- */

int ingest_open(ingest_job *j, const char *list_path, const char *out_dir, const ingest_opts *o,
		int prepare_dir)
{
	memset(j, 0, sizeof(*j));
	j->t0 = nb_now();
	if (o->size < 1 || o->size > 4096 || o->shard_size < 1)
		return nb_error("cannot ingest: bad size %d or shard size %zu", o->size, o->shard_size);
	if (o->nslices < 1 || o->slice < 0 || o->slice >= o->nslices)
		return nb_error("cannot ingest: slice %d of %d does not exist (slices are 0..N-1)", o->slice,
				o->nslices);
	if (urllist_load_cols(list_path, URLLIST_AUTO, o->keep_columns, &j->list) < 0)
		return -1;
	for (int c = 0; c < j->list.ncols; c++)
		if (strchr(j->list.cols[c], '/') || !strcmp(j->list.cols[c], ".")) {
			int rc = nb_error("cannot ingest: --keep-columns: '%s' cannot name an HDF5 dataset "
					  "(no '/', not '.')", j->list.cols[c]);
			urllist_free(&j->list);
			return rc;
		}
	if (prepare_dir) {
		if (nb_mkdir_p(out_dir) < 0) {
			urllist_free(&j->list);
			return -1;
		}
		/* A directory that cannot be listed only keeps its garbage; the
		 * shard writes report any real problem with it. */
		(void)shard_sweep_tmp(out_dir);
		char staging[4200];
		snprintf(staging, sizeof staging, "%s/.staging", out_dir);
		(void)shard_sweep_tmp(staging);
		if (check_options(out_dir, o) < 0) {
			urllist_free(&j->list);
			return -1;
		}
	}
	j->o = *o;
	j->list_path = list_path;
	j->out_dir = out_dir;
	j->nshards = (j->list.n + o->shard_size - 1) / o->shard_size;
	return 0;
}

void ingest_close(ingest_job *j) { urllist_free(&j->list); }

/* The first shard of this rank in the slice, and the step to the next. */
static void rank_shards(const ingest_job *j, int rank, int nranks, size_t *first, size_t *step)
{
	size_t ns = (size_t)(j->o.nslices > 0 ? j->o.nslices : 1);
	*first = (size_t)j->o.slice + ns * (size_t)rank;
	*step = ns * (size_t)nranks;
}

int ingest_run_rank(const ingest_job *j, int rank, int nranks, ingest_tally *t)
{
	size_t first, step;
	rank_shards(j, rank, nranks, &first, &step);
	run_progress pr = {.rank = rank, .t0 = nb_now(), .shard = -1};
	pr.last_print = pr.t0;
	for (size_t k = first; k < j->nshards; k += step) {
		size_t lo = k * j->o.shard_size;
		pr.total += lo + j->o.shard_size < j->list.n ? j->o.shard_size : j->list.n - lo;
	}
	volatile sig_atomic_t *stop = j->o.fetch.stop;
	int rc = 0;
	for (size_t k = first; k < j->nshards && rc == 0; k += step) {
		if (stop && *stop) {
			rc = 1;
			break;
		}
		rc = run_shard(j, (int)k, rank, &pr, t);
	}
	if (j->o.progress && rc >= 0)
		progress_print(&pr, 1);
	return rc;
}

int ingest_write_totals(const ingest_job *j, const ingest_tally *t, int nranks)
{
	char path[4096], head[192];
	size_t ns = (size_t)j->o.nslices, shards = j->nshards;
	if (ns > 1) {
		/* one totals file per slice: the jobs of an array do not share one */
		snprintf(path, sizeof(path), "%s/ingest-stats.slice-%d-of-%d.json", j->out_dir, j->o.slice,
			 j->o.nslices);
		shards = j->nshards > (size_t)j->o.slice ? (j->nshards - (size_t)j->o.slice + ns - 1) / ns : 0;
	} else {
		snprintf(path, sizeof(path), "%s/ingest-stats.json", j->out_dir);
	}
	snprintf(head, sizeof(head), "\"shards\": %zu, \"slice\": %d, \"slices\": %d, \"ranks\": %d, \"run_wall_s\": %.3f, ",
		 shards, j->o.slice, j->o.nslices, nranks, nb_now() - j->t0);
	nb_buf json = {0};
	tally_json(t, head, &json);
	int rc = nb_write_file_atomic(path, json.data, json.len);
	if (rc == 0 && j->o.progress)
		fprintf(stderr, "ingest: done: %s", json.data);
	free(json.data);
	return rc;
}
