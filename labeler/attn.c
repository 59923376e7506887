/* Attention shares (labeler/attn.h, docs/metrics.md "Attention shares"). */
#include "labeler/attn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_time.h"
#include "common/vocab.h"
#include "labeler/caption_parse.h"
#include "labeler/evaluate.h"
#include "model/decode.h"
#include "store/shard_store.h"

void attn_groups(const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS], int8_t *group,
		 attn_result *r)
{
	int present[SCENE_PAIRS] = {0};
	for (int c = 0; c < SCENE_CELLS; c++)
		if (cells[c] && cells[c] <= SCENE_MAX_CODE)
			present[scene_obj_pair(cells[c])] = 1;
	for (int p = 0; p <= n; p++)
		group[p] = ATTN_OTHER;
	/* Each "."-ended span is parsed on its own, so a valid statement's
	 * positions are known: position p predicts tokens[p]. */
	int start = 0;
	for (int i = 0; i < n; i++) {
		if (tokens[i] != VOCAB_DOT)
			continue;
		caption_tuple tup;
		caption_stats st;
		caption_parse_tokens(tokens + start, i - start + 1, &tup, 1, &st);
		if (st.ntuples == 1) {
			int g = present[tup.color * SCENE_SHAPES + tup.shape] ? ATTN_CORRECT : ATTN_HALLUCINATED;
			for (int p = start; p <= i; p++)
				group[p] = (int8_t)g;
			if (r) {
				r->statements[ATTN_ALL]++;
				r->statements[g]++;
			}
		}
		start = i + 1;
	}
	if (r) {
		caption_stats st;
		caption_parse_tokens(tokens, n, NULL, 0, &st);
		r->malformed += st.malformed;
	}
}

/* The shares of query row i of one head: visual keys [0, nv), text keys
 * [nv, i], the largest probability. */
static void row_shares(const float *a, int nv, int i, double *vis, double *txt, double *mx)
{
	double v = 0, t = 0;
	float m = 0;
	for (int j = 0; j < nv; j++) {
		v += a[j];
		m = a[j] > m ? a[j] : m;
	}
	for (int j = nv; j <= i; j++) {
		t += a[j];
		m = a[j] > m ? a[j] : m;
	}
	*vis += v;
	*txt += t;
	*mx += m;
}

static int check_shape(attn_result *r, int layers, int heads, int nv, int Lb, int n)
{
	if (layers < 1 || layers > ATTN_MAX_LAYERS || heads < 1 || nv < 0 || n < 0)
		return nb_error("attention shares: bad shape (%d layers, %d heads, %d visual tokens, %d words)",
				layers, heads, nv, n);
	if (nv + n + 1 > Lb)
		return nb_error("attention shares: a caption of %d words after %d visual tokens does not fit "
				"rows of %d keys",
				n, nv, Lb);
	if (r->images > 0 && (r->layers != layers || r->heads != heads || r->nv != nv))
		return nb_error("attention shares: %d layers, %d heads, %d visual tokens, but earlier images "
				"had %d, %d, %d",
				layers, heads, nv, r->layers, r->heads, r->nv);
	r->layers = layers;
	r->heads = heads;
	r->nv = nv;
	return 0;
}

int attn_add(attn_result *r, const float *const *att, int layers, int heads, int nv, int Lb,
	     const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS])
{
	if (check_shape(r, layers, heads, nv, Lb, n) < 0)
		return -1;
	int8_t *group = nb_xmalloc((size_t)n + 1);
	attn_groups(tokens, n, cells, group, r);
	for (int t = 0; t <= n; t++) {
		r->positions[ATTN_ALL]++;
		if (group[t] != ATTN_OTHER)
			r->positions[group[t]]++;
	}
	for (int l = 0; l < layers; l++) {
		for (int t = 0; t <= n; t++) {
			int i = nv + t;
			double v = 0, x = 0, m = 0;
			for (int h = 0; h < heads; h++)
				row_shares(att[l] + ((size_t)h * Lb + i) * Lb, nv, i, &v, &x, &m);
			v /= heads, x /= heads, m /= heads;
			int gs[2] = {ATTN_ALL, group[t]};
			for (int k = 0; k < 2 && gs[k] != ATTN_OTHER; k++) {
				attn_share *s = &r->share[gs[k]][l];
				s->visual += v;
				s->text += x;
				s->max += m;
			}
		}
	}
	free(group);
	r->images++;
	return 0;
}

int attn_add_batch(attn_result *r, vlm_model *m, const uint8_t *images, const uint16_t *tokens, int stride,
		   const int *lens, const uint8_t (*cells)[SCENE_CELLS], int n)
{
	const vlm_config *c = vlm_get_config(m);
	if (n < 1 || n > vlm_max_batch(m))
		return nb_error("attention shares: %d images not in 1..%d (the model's max_batch)", n,
				vlm_max_batch(m));
	if (c->dec_layers > ATTN_MAX_LAYERS)
		return nb_error("attention shares: %d decoder layers, more than %d", c->dec_layers, ATTN_MAX_LAYERS);
	int T = 1;
	for (int i = 0; i < n; i++) {
		if (lens[i] < 0 || lens[i] > c->max_text - 1 || lens[i] > stride)
			return nb_error("attention shares: a caption of %d words does not fit max_text %d "
					"(bos + words) or the token stride %d",
					lens[i], c->max_text, stride);
		T = lens[i] + 1 > T ? lens[i] + 1 : T;
	}
	uint16_t *in = nb_xmalloc(sizeof(uint16_t) * (size_t)n * (size_t)T);
	for (int i = 0; i < n; i++) {
		uint16_t *row = in + (size_t)i * T;
		row[0] = VOCAB_BOS;
		memcpy(row + 1, tokens + (size_t)i * stride, sizeof(uint16_t) * (size_t)lens[i]);
		for (int k = lens[i] + 1; k < T; k++)
			row[k] = VOCAB_PAD; /* causal: later positions do not change earlier rows */
	}
	vlm_batch b = {.B = n, .T = T, .images = images, .inputs = in};
	const float *logits = vlm_forward_logits(m, &b, NULL);
	free(in);
	if (!logits)
		return -1;
	int layers = c->dec_layers, NH = c->dec_heads, nv = vlm_visual_tokens(m), Lb = nv + T;
	const float *base[ATTN_MAX_LAYERS], *att[ATTN_MAX_LAYERS];
	for (int l = 0; l < layers; l++)
		if (!(base[l] = vlm_attention(m, l, NULL, NULL)))
			return -1;
	for (int i = 0; i < n; i++) {
		for (int l = 0; l < layers; l++)
			att[l] = base[l] + (size_t)i * NH * Lb * Lb;
		if (attn_add(r, att, layers, NH, nv, Lb, tokens + (size_t)i * stride, lens[i], cells[i]) < 0)
			return -1;
	}
	return 0;
}

void attn_finish(attn_result *r)
{
	for (int g = 0; g < ATTN_GROUPS; g++) {
		double k = r->positions[g] > 0 ? 1.0 / (double)r->positions[g] : 0.0;
		for (int l = 0; l < ATTN_MAX_LAYERS; l++) {
			attn_share *s = &r->share[g][l];
			s->visual *= k;
			s->text *= k;
			s->max *= k;
		}
	}
}

/* A batch of images being filled, decoded, then teacher-forced. */
typedef struct {
	vlm_model *m;
	decoder *d;
	decode_opts dopt;
	int batch, n;
	size_t isz;
	uint8_t *images;
	uint64_t *keys;
	uint8_t (*cells)[SCENE_CELLS];
	uint16_t *tokens;
	int *lens;
} attn_batch;

static int flush(attn_batch *b, attn_result *r, const char *path)
{
	if (b->n == 0)
		return 0;
	if (decode_greedy(b->d, b->images, b->keys, b->n, &b->dopt, b->tokens, b->lens) < 0 ||
	    attn_add_batch(r, b->m, b->images, b->tokens, b->dopt.max_tokens, b->lens,
			   (const uint8_t(*)[SCENE_CELLS])b->cells, b->n) < 0) {
		char why[1024];
		snprintf(why, sizeof why, "%s", nb_errmsg());
		return nb_error("shard '%s': %s", path, why);
	}
	b->n = 0;
	return 0;
}

static void batch_free(attn_batch *b)
{
	free(b->images);
	free(b->keys);
	free(b->cells);
	free(b->tokens);
	free(b->lens);
	decoder_free(b->d);
}

/* One shard's images into r, up to *left more (negative: no limit). */
static int add_shard(attn_batch *b, attn_result *r, const char *path, int size, long *left)
{
	shard_reader *rd = shard_open(path);
	if (!rd)
		return -1;
	const shard_meta *meta = shard_reader_meta(rd);
	int rc = 0;
	if (!meta->has_objects || meta->height != size || meta->width != size)
		rc = nb_error("shard '%s': changed while it was being read", path);
	shard_sample s;
	int got = 0;
	while (rc == 0 && *left != 0 && (got = shard_next(rd, &s)) == 1) {
		memcpy(b->images + (size_t)b->n * b->isz, s.image, b->isz);
		b->keys[b->n] = s.id;
		memcpy(b->cells[b->n], s.objects, SCENE_CELLS);
		if (*left > 0)
			(*left)--;
		if (++b->n == b->batch)
			rc = flush(b, r, path);
	}
	if (rc == 0 && got < 0)
		rc = -1;
	if (rc == 0)
		rc = flush(b, r, path); /* a batch never spans shards: errors name the right one */
	shard_close(rd);
	return rc;
}

int attn_shards(vlm_model *m, const char *dir, const attn_opts *o, attn_result *r)
{
	attn_opts defaults = {0};
	if (!o)
		o = &defaults;
	const vlm_config *c = vlm_get_config(m);
	memset(r, 0, sizeof *r);
	long total = 0;
	if (evaluate_check_shards(dir, c->image_size, &total) < 0)
		return -1;
	attn_batch b = {.m = m, .batch = o->batch > 0 ? o->batch : ATTN_BATCH};
	if (b.batch > vlm_max_batch(m))
		return nb_error("attention shares: batch %d exceeds the model's max_batch %d", b.batch,
				vlm_max_batch(m));
	char **paths = NULL;
	int np = shard_list(dir, &paths);
	if (np < 0)
		return -1;
	b.dopt.max_tokens = c->max_text - 1;
	b.d = decoder_create(m, b.batch, 0);
	if (!b.d) {
		shard_list_free(paths, np);
		return -1;
	}
	b.isz = (size_t)c->image_size * (size_t)c->image_size * 3;
	b.images = nb_xmalloc((size_t)b.batch * b.isz);
	b.keys = nb_xmalloc((size_t)b.batch * sizeof(uint64_t));
	b.cells = nb_xmalloc((size_t)b.batch * sizeof(*b.cells));
	b.tokens = nb_xmalloc((size_t)b.batch * (size_t)b.dopt.max_tokens * sizeof(uint16_t));
	b.lens = nb_xmalloc((size_t)b.batch * sizeof(int));
	long left = o->max_images > 0 ? o->max_images : -1;
	if (left > total)
		left = total;
	long want = left < 0 ? total : left;
	double t0 = nb_now(), last = t0;
	int rc = 0;
	for (int p = 0; p < np && rc == 0 && left != 0; p++) {
		rc = add_shard(&b, r, paths[p], c->image_size, &left);
		double now = nb_now();
		if (rc == 0 && o->progress && now - last >= 2) {
			last = now;
			fprintf(stderr, "%s: %ld of %ld images (shard %d of %d)  %.1f img/s\n", o->progress, r->images,
				want, p + 1, np, now > t0 ? (double)r->images / (now - t0) : 0.0);
		}
	}
	batch_free(&b);
	shard_list_free(paths, np);
	if (rc == 0)
		attn_finish(r);
	return rc;
}
