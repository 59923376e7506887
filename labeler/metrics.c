#include "labeler/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/vocab.h"
#include "labeler/caption_parse.h"

enum { MAXN = 4 };
/* An n-gram of vocabulary ids is a dense index: base-VOCAB_SIZE digits after
 * the offset of its order, so document frequencies fit one flat array and no
 * hashing is needed. */
static const long ngram_offset[MAXN + 1] = {0, 0, 27L, 27L + 27 * 27, 27L + 27 * 27 + 27 * 27 * 27};
_Static_assert(VOCAB_SIZE == 27, "the n-gram index space above assumes a 27-word vocabulary");

typedef struct {
	size_t cand;                 /* offset of the candidate in tok */
	int ncand;
	size_t refs;                 /* index of the first reference in the ref tables */
	int nrefs;
} image_entry;

struct metrics_acc {
	metrics_result r;            /* counts so far; ratios filled by finish */
	uint16_t *tok;               /* every candidate and reference, back to back */
	size_t ntok, captok;
	size_t *ref_off;             /* offset in tok of each reference */
	int *ref_len;
	size_t nref, capref;
	image_entry *img;
	size_t nimg, capimg;
};

typedef struct {
	long key;
	int count;
} ngram_count;

metrics_acc *metrics_new(void) { return nb_xcalloc(1, sizeof(metrics_acc)); }

void metrics_free(metrics_acc *a)
{
	if (!a)
		return;
	free(a->tok);
	free(a->ref_off);
	free(a->ref_len);
	free(a->img);
	free(a);
}

static int order_of(long key)
{
	int n = 1;
	while (n < MAXN && key >= ngram_offset[n + 1])
		n++;
	return n;
}

static int cmp_long(const void *x, const void *y)
{
	long a = *(const long *)x, b = *(const long *)y;
	return (a > b) - (a < b);
}

/* Every n-gram (n = 1..4) of ids as sorted (key, count) runs. Returns the
 * number of distinct n-grams; *out is malloc'ed (caller frees). */
static int ngram_counts(const uint16_t *ids, int len, ngram_count **out)
{
	long cap = 4L * len + 1;
	long *keys = nb_xmalloc((size_t)cap * sizeof(long));
	long nk = 0;
	for (int i = 0; i < len; i++) {
		long v = 0;
		for (int n = 1; n <= MAXN && i + n <= len; n++) {
			v = v * VOCAB_SIZE + ids[i + n - 1];
			keys[nk++] = ngram_offset[n] + v;
		}
	}
	qsort(keys, (size_t)nk, sizeof(long), cmp_long);
	ngram_count *c = nb_xmalloc((size_t)(nk + 1) * sizeof(ngram_count));
	int nc = 0;
	for (long i = 0; i < nk; i++) {
		if (nc > 0 && c[nc - 1].key == keys[i]) {
			c[nc - 1].count++;
		} else {
			c[nc].key = keys[i];
			c[nc].count = 1;
			nc++;
		}
	}
	free(keys);
	*out = c;
	return nc;
}

/* Count of key in a sorted run list, 0 if absent. */
static int lookup(const ngram_count *c, int nc, long key)
{
	int lo = 0, hi = nc;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (c[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nc && c[lo].key == key ? c[lo].count : 0;
}

static size_t push_tokens(metrics_acc *a, const uint16_t *ids, int n)
{
	NB_GROW(a->tok, a->captok, a->ntok + (size_t)n, 64);
	size_t at = a->ntok;
	for (int i = 0; i < n; i++)
		a->tok[at + (size_t)i] = ids[i] < VOCAB_SIZE ? ids[i] : VOCAB_UNK;
	a->ntok += (size_t)n;
	return at;
}

static void add_objects(metrics_acc *a, const caption_tuple *t, int nt, const uint8_t cells[SCENE_CELLS])
{
	metrics_result *r = &a->r;
	int present[SCENE_PAIRS] = {0}, mentioned[SCENE_PAIRS] = {0}, matched[SCENE_CELLS] = {0};
	for (int c = 0; c < SCENE_CELLS; c++)
		if (cells[c] && cells[c] <= SCENE_MAX_CODE) {
			present[scene_obj_pair(cells[c])] = 1;
			r->gt_objects++;
			r->gt_tuples++;
		}
	int hallucinating = 0;
	for (int i = 0; i < nt; i++) {
		uint8_t code = caption_tuple_code(&t[i]);
		int pair = scene_obj_pair(code);
		mentioned[pair] = 1;
		r->mentions++;
		int pos = i < METRICS_POSITIONS ? i : METRICS_POSITIONS - 1;
		r->pos_mentions[pos]++;
		if (!present[pair]) {
			r->hallucinated++;
			r->pos_hallucinated[pos]++;
			hallucinating = 1;
		}
		r->cand_tuples++;
		/* A ground-truth object is matched at most once: a repeated statement counts once. */
		if (cells[t[i].cell] == code && !matched[t[i].cell]) {
			matched[t[i].cell] = 1;
			r->tuple_matches++;
		}
	}
	r->hallucinating_captions += hallucinating;
	for (int c = 0; c < SCENE_CELLS; c++)
		if (cells[c] && cells[c] <= SCENE_MAX_CODE && mentioned[scene_obj_pair(cells[c])])
			r->gt_recalled++;
}

/* BLEU's clipped counts need no corpus statistics, so they are summed as
 * images arrive. The effective reference length is the closest one, the
 * shorter on a tie (coco-caption's "closest"). */
static void add_bleu(metrics_acc *a, const uint16_t *cand, int nc, const uint16_t *const *refs,
		     const int *ref_lens, int nrefs)
{
	metrics_result *r = &a->r;
	ngram_count *cc;
	int ncc = ngram_counts(cand, nc, &cc);
	int *maxref = nb_xcalloc((size_t)ncc + 1, sizeof(int));
	int closest = ref_lens[0];
	for (int k = 0; k < nrefs; k++) {
		int len = ref_lens[k];
		if (abs(len - nc) < abs(closest - nc) || (abs(len - nc) == abs(closest - nc) && len < closest))
			closest = len;
		ngram_count *rc;
		uint16_t *clean = nb_xmalloc((size_t)len * sizeof(uint16_t) + 1);
		for (int i = 0; i < len; i++)
			clean[i] = refs[k][i] < VOCAB_SIZE ? refs[k][i] : VOCAB_UNK;
		int nrc = ngram_counts(clean, len, &rc);
		for (int i = 0; i < ncc; i++) {
			int c = lookup(rc, nrc, cc[i].key);
			if (c > maxref[i])
				maxref[i] = c;
		}
		free(rc);
		free(clean);
	}
	for (int i = 0; i < ncc; i++) {
		int n = order_of(cc[i].key);
		r->ngram_match[n - 1] += cc[i].count < maxref[i] ? cc[i].count : maxref[i];
	}
	for (int n = 1; n <= MAXN; n++)
		r->ngram_total[n - 1] += nc - n + 1 > 0 ? nc - n + 1 : 0;
	r->cand_words += nc;
	r->ref_words += closest;
	free(maxref);
	free(cc);
}

void metrics_add_refs(metrics_acc *a, const uint16_t *ids, int n, const uint16_t *const *refs,
		      const int *ref_lens, int nrefs, const uint8_t cells[SCENE_CELLS])
{
	if (nrefs < 1)
		NB_BUG("metrics_add_refs needs at least one reference");
	if (n < 0)
		n = 0;
	a->r.captions++;

	uint16_t *clean = nb_xmalloc((size_t)n * sizeof(uint16_t) + 1);
	for (int i = 0; i < n; i++)
		clean[i] = ids[i] < VOCAB_SIZE ? ids[i] : VOCAB_UNK;
	caption_stats st;
	caption_tuple *t = nb_xmalloc(((size_t)n / 6 + 1) * sizeof(caption_tuple));
	caption_parse_tokens(clean, n, t, n / 6 + 1, &st);
	a->r.statements += st.statements;
	a->r.malformed += st.malformed;
	add_objects(a, t, st.ntuples, cells);
	free(t);

	add_bleu(a, clean, n, refs, ref_lens, nrefs);

	NB_GROW(a->img, a->capimg, a->nimg + 1, 16);
	if (a->nref + (size_t)nrefs > a->capref) {
		/* ref_off sets the growth; ref_len follows its capacity. */
		NB_GROW(a->ref_off, a->capref, a->nref + (size_t)nrefs, 16);
		a->ref_len = nb_xrealloc(a->ref_len, a->capref * sizeof(int));
	}
	image_entry *e = &a->img[a->nimg++];
	e->cand = push_tokens(a, clean, n);
	e->ncand = n;
	e->refs = a->nref;
	e->nrefs = nrefs;
	for (int k = 0; k < nrefs; k++) {
		int len = ref_lens[k] > 0 ? ref_lens[k] : 0;
		a->ref_off[a->nref] = push_tokens(a, refs[k], len);
		a->ref_len[a->nref] = len;
		a->nref++;
	}
	free(clean);
}

void metrics_add_tokens(metrics_acc *a, const uint16_t *ids, int n, const uint8_t cells[SCENE_CELLS])
{
	/* Room for all 9 cells filled (38 bytes and 6 tokens each at most), so
	 * ground truth beyond SCENE_MAX_OBJECTS is scored rather than refused. */
	char ref[512];
	uint16_t rid[64];
	if (scene_caption(cells, ref, (int)sizeof ref) < 0)
		NB_BUG("scene caption does not fit %zu bytes", sizeof ref);
	int rn = caption_tokenize(ref, rid, 64);
	if (rn > 64)
		NB_BUG("scene caption has %d tokens", rn);
	const uint16_t *refs[1] = {rid};
	metrics_add_refs(a, ids, n, refs, &rn, 1, cells);
}

void metrics_add(metrics_acc *a, const char *caption, const uint8_t cells[SCENE_CELLS])
{
	uint16_t small[256];
	uint16_t *ids = small;
	int n = caption_tokenize(caption, small, 256);
	if (n > 256) {
		ids = nb_xmalloc((size_t)n * sizeof(uint16_t));
		caption_tokenize(caption, ids, n);
	}
	metrics_add_tokens(a, ids, n, cells);
	if (ids != small)
		free(ids);
}

static double ratio(long num, long den) { return den > 0 ? (double)num / (double)den : 0.0; }

static void finish_bleu(metrics_result *r)
{
	/* coco-caption's smoothing constants, kept so values agree with it to
	 * the last digits, including the degenerate cases (no n-grams). */
	const double tiny = 1e-15, small = 1e-9;
	double logsum = 0;
	double bp = 1;
	double len_ratio = ((double)r->cand_words + tiny) / ((double)r->ref_words + small);
	if (len_ratio < 1)
		bp = exp(1 - 1 / len_ratio);
	for (int n = 1; n <= MAXN; n++) {
		logsum += log(((double)r->ngram_match[n - 1] + tiny) / ((double)r->ngram_total[n - 1] + small));
		r->bleu[n - 1] = exp(logsum / n) * bp;
	}
}

typedef struct {
	double vec_norm[MAXN];
	int length;                  /* coco-caption's length: the number of bigrams */
} tfidf_info;

/* Document frequencies: the n-grams that occur in some reference, sorted,
 * each with the number of images whose references hold it. (A dense table
 * of all 551,880 possible n-grams cost 2.2 MB zeroed per metrics_finish.) */
typedef struct {
	long *key;
	int *count;
	size_t n;
} df_table;

static int df_of(const df_table *df, long key)
{
	size_t lo = 0, hi = df->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (df->key[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < df->n && df->key[lo] == key ? df->count[lo] : 0;
}

static double idf_weight(const df_table *df, long key, double log_images)
{
	int d = df_of(df, key);
	return log_images - log(d > 1 ? (double)d : 1.0);
}

static void tfidf_norms(const ngram_count *c, int nc, const df_table *df, double log_images, tfidf_info *info)
{
	memset(info, 0, sizeof *info);
	for (int i = 0; i < nc; i++) {
		int n = order_of(c[i].key);
		double w = c[i].count * idf_weight(df, c[i].key, log_images);
		info->vec_norm[n - 1] += w * w;
		if (n == 2)
			info->length += c[i].count;
	}
	for (int n = 0; n < MAXN; n++)
		info->vec_norm[n] = sqrt(info->vec_norm[n]);
}

/* CIDEr-D of one candidate against one reference: per order, the clipped
 * tf-idf product over the norms, times the gaussian length penalty; then the
 * mean over the orders. */
static double cider_pair(const ngram_count *cc, int ncc, const tfidf_info *ci, const ngram_count *rc, int nrc,
			 const tfidf_info *ri, const df_table *df, double log_images)
{
	double val[MAXN] = {0};
	for (int i = 0; i < ncc; i++) {
		int rcount = lookup(rc, nrc, cc[i].key);
		if (!rcount)
			continue;
		double w = idf_weight(df, cc[i].key, log_images);
		double vc = cc[i].count * w, vr = rcount * w;
		val[order_of(cc[i].key) - 1] += (vc < vr ? vc : vr) * vr;
	}
	const double sigma = 6.0;
	double delta = (double)(ci->length - ri->length);
	double penalty = exp(-(delta * delta) / (2 * sigma * sigma));
	double sum = 0;
	for (int n = 0; n < MAXN; n++) {
		if (ci->vec_norm[n] != 0 && ri->vec_norm[n] != 0)
			val[n] /= ci->vec_norm[n] * ri->vec_norm[n];
		sum += val[n] * penalty;
	}
	return sum / MAXN;
}

static void finish_cider(metrics_acc *a, metrics_result *r)
{
	if (a->nimg == 0) {
		r->cider_d = 0;
		return;
	}
	/* each image's distinct reference n-grams, all images together */
	long *all = NULL;
	size_t nall = 0, cap = 0;
	for (size_t i = 0; i < a->nimg; i++) {
		const image_entry *e = &a->img[i];
		/* Document frequency counts images, so n-grams shared by several
		 * references of one image count once: collect, sort, keep one. */
		size_t total = 0;
		for (int k = 0; k < e->nrefs; k++)
			total += 4 * (size_t)a->ref_len[e->refs + (size_t)k];
		NB_GROW(all, cap, nall + total + 1, 1024);
		size_t start = nall;
		for (int k = 0; k < e->nrefs; k++) {
			ngram_count *rc;
			size_t ref = e->refs + (size_t)k;
			int nrc = ngram_counts(a->tok + a->ref_off[ref], a->ref_len[ref], &rc);
			for (int j = 0; j < nrc; j++)
				all[nall++] = rc[j].key;
			free(rc);
		}
		qsort(all + start, nall - start, sizeof(long), cmp_long);
		size_t w = start;
		for (size_t j = start; j < nall; j++)
			if (j == start || all[j] != all[j - 1])
				all[w++] = all[j];
		nall = w;
	}
	qsort(all, nall, sizeof(long), cmp_long);
	df_table dft = {nb_xmalloc((nall + 1) * sizeof(long)), nb_xmalloc((nall + 1) * sizeof(int)), 0};
	for (size_t j = 0; j < nall; j++) {
		if (dft.n > 0 && dft.key[dft.n - 1] == all[j]) {
			dft.count[dft.n - 1]++;
			continue;
		}
		dft.key[dft.n] = all[j];
		dft.count[dft.n++] = 1;
	}
	free(all);
	const df_table *df = &dft;
	double log_images = log((double)a->nimg);
	double total = 0;
	for (size_t i = 0; i < a->nimg; i++) {
		const image_entry *e = &a->img[i];
		ngram_count *cc;
		int ncc = ngram_counts(a->tok + e->cand, e->ncand, &cc);
		tfidf_info ci;
		tfidf_norms(cc, ncc, df, log_images, &ci);
		double score = 0;
		for (int k = 0; k < e->nrefs; k++) {
			ngram_count *rc;
			size_t ref = e->refs + (size_t)k;
			int nrc = ngram_counts(a->tok + a->ref_off[ref], a->ref_len[ref], &rc);
			tfidf_info ri;
			tfidf_norms(rc, nrc, df, log_images, &ri);
			score += cider_pair(cc, ncc, &ci, rc, nrc, &ri, df, log_images);
			free(rc);
		}
		total += score / e->nrefs * 10.0;
		free(cc);
	}
	r->cider_d = total / (double)a->nimg;
	free(dft.key);
	free(dft.count);
}

void metrics_finish(metrics_acc *a, metrics_result *res)
{
	metrics_result r = a->r;
	r.chair_i = ratio(r.hallucinated, r.mentions);
	for (int k = 0; k < METRICS_POSITIONS; k++)
		r.pos_chair_i[k] = ratio(r.pos_hallucinated[k], r.pos_mentions[k]);
	r.chair_s = ratio(r.hallucinating_captions, r.captions);
	r.recall = ratio(r.gt_recalled, r.gt_objects);
	r.tuple_p = ratio(r.tuple_matches, r.cand_tuples);
	r.tuple_r = ratio(r.tuple_matches, r.gt_tuples);
	r.tuple_f1 = r.tuple_p + r.tuple_r > 0 ? 2 * r.tuple_p * r.tuple_r / (r.tuple_p + r.tuple_r) : 0;
	finish_bleu(&r);
	finish_cider(a, &r);
	*res = r;
}
