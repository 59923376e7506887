/* Scoring a model on shards with ground truth (labeler/evaluate.h). */
#include "labeler/evaluate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_time.h"
#include "model/decode.h"
#include "store/shard_store.h"

/* Lists dir's shards and checks each (see evaluate_check_shards). On
 * success *paths holds np >= 1 paths (shard_list_free). */
static int list_checked(const char *dir, int image_size, char ***paths, int *np, long *images)
{
	int n = shard_list(dir, paths);
	if (n < 0)
		return -1;
	if (n == 0) {
		shard_list_free(*paths, 0);
		return nb_error("no shards in '%s'", dir);
	}
	long total = 0;
	for (int p = 0; p < n; p++) {
		shard_reader *r = shard_open((*paths)[p]);
		int rc = 0;
		if (!r) {
			rc = -1;
		} else {
			const shard_meta *meta = shard_reader_meta(r);
			if (!meta->has_objects)
				rc = nb_error("shard '%s': no /objects ground truth to score against", (*paths)[p]);
			else if (image_size > 0 && (meta->height != image_size || meta->width != image_size))
				rc = nb_error("shard '%s': images are %dx%d but the model takes %dx%d", (*paths)[p],
					      meta->height, meta->width, image_size, image_size);
			total += (long)shard_count(r);
			shard_close(r);
		}
		if (rc < 0) {
			shard_list_free(*paths, n);
			*paths = NULL;
			return -1;
		}
	}
	*np = n;
	if (images)
		*images = total;
	return 0;
}

int evaluate_check_shards(const char *dir, int image_size, long *images)
{
	char **paths = NULL;
	int np = 0;
	if (list_checked(dir, image_size, &paths, &np, images) < 0)
		return -1;
	shard_list_free(paths, np);
	return 0;
}

typedef struct {
	const char *prefix;
	double every, t0, last;
	long total;
} progress;

static void progress_start(progress *p, const char *prefix, double every, long total)
{
	p->prefix = prefix;
	p->every = every > 0 ? every : 2;
	p->t0 = p->last = nb_now();
	p->total = total;
}

static void progress_tick(progress *p, long done, int shard, int nshards)
{
	double now = nb_now();
	if (!p->prefix || now - p->last < p->every)
		return;
	p->last = now;
	double rate = now > p->t0 ? (double)done / (now - p->t0) : 0;
	char eta[32];
	nb_fmt_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
	fprintf(stderr, "%s: %ld of %ld images (shard %d of %d)  %.1f img/s  ETA %s\n", p->prefix, done, p->total,
		shard, nshards, rate, eta);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The decoding state: a batch of images being filled. */
typedef struct {
	decoder *d;
	decode_opts dopt;
	int size, batch, n;
	uint8_t *images;
	uint64_t *keys;
	uint8_t (*cells)[SCENE_CELLS];
	uint16_t *tokens;
	int *lens;
	metrics_acc *acc;
	const evaluate_opts *o;
} batch_state;

static int flush(batch_state *b, const char *path)
{
	if (b->n == 0)
		return 0;
	if (decode_greedy(b->d, b->images, b->keys, b->n, &b->dopt, b->tokens, b->lens) < 0) {
		char why[1024];
		snprintf(why, sizeof why, "%s", nb_errmsg());
		return nb_error("cannot decode shard '%s': %s", path, why);
	}
	for (int i = 0; i < b->n; i++) {
		const uint16_t *t = b->tokens + (size_t)i * (size_t)b->dopt.max_tokens;
		metrics_add_tokens(b->acc, t, b->lens[i], b->cells[i]);
		if (b->o->on_caption && b->o->on_caption(b->o->ctx, b->keys[i], t, b->lens[i], b->cells[i]) < 0)
			return -1;
	}
	b->n = 0;
	return 0;
}

int evaluate_shards(vlm_model *m, const char *dir, const evaluate_opts *o, metrics_result *res)
{
	evaluate_opts defaults = {0};
	if (!o)
		o = &defaults;
	const vlm_config *cfg = vlm_get_config(m);
	char **paths = NULL;
	int np = 0;
	long total = 0;
	if (list_checked(dir, cfg->image_size, &paths, &np, &total) < 0)
		return -1;
	batch_state b = {0};
	b.o = o;
	b.batch = o->batch > 0 ? o->batch : EVALUATE_BATCH;
	b.size = cfg->image_size;
	b.dopt.K = 0;
	b.dopt.max_tokens = cfg->max_text - 1;
	b.d = decoder_create(m, b.batch, 0);
	if (!b.d) {
		shard_list_free(paths, np);
		return -1;
	}
	size_t isz = (size_t)b.size * (size_t)b.size * 3;
	b.images = nb_xmalloc((size_t)b.batch * isz);
	b.keys = nb_xmalloc((size_t)b.batch * sizeof(uint64_t));
	b.cells = nb_xmalloc((size_t)b.batch * sizeof(*b.cells));
	b.tokens = nb_xmalloc((size_t)b.batch * (size_t)b.dopt.max_tokens * sizeof(uint16_t));
	b.lens = nb_xmalloc((size_t)b.batch * sizeof(int));
	b.acc = metrics_new();
	uint64_t *ids = nb_xmalloc(((size_t)total + 1) * sizeof(uint64_t));
	long n = 0, lo = 0, hi = total, g = 0; /* g: the global index of the next sample */
	if (o->nparts > 1) {
		lo = (long)((long long)total * o->part / o->nparts);
		hi = (long)((long long)total * (o->part + 1) / o->nparts);
	}
	int rc = 0;
	progress pr;
	progress_start(&pr, o->progress, o->progress_every, hi - lo);
	for (int p = 0; p < np && rc == 0; p++) {
		shard_reader *r = shard_open(paths[p]);
		if (!r) {
			rc = -1;
			break;
		}
		const shard_meta *meta = shard_reader_meta(r);
		if (!meta->has_objects || meta->height != b.size || meta->width != b.size) {
			/* replaced since list_checked */
			rc = nb_error("shard '%s': changed while it was being scored", paths[p]);
			shard_close(r);
			break;
		}
		if (g + (long)shard_count(r) <= lo || g >= hi) { /* outside this share: not read */
			g += (long)shard_count(r);
			shard_close(r);
			continue;
		}
		shard_sample s;
		int got = 0;
		while (rc == 0 && g < hi && (got = shard_next(r, &s)) == 1) {
			if (g++ < lo)
				continue;
			if (n == total) {
				rc = nb_error("shard '%s': changed while it was being scored", paths[p]);
				break;
			}
			ids[n++] = s.id;
			memcpy(b.images + (size_t)b.n * isz, s.image, isz);
			b.keys[b.n] = s.id;
			memcpy(b.cells[b.n], s.objects, SCENE_CELLS);
			if (++b.n == b.batch) {
				rc = flush(&b, paths[p]);
				progress_tick(&pr, n, p + 1, np);
			}
		}
		if (rc == 0 && got < 0)
			rc = -1;
		if (rc == 0)
			rc = flush(&b, paths[p]); /* a batch never spans shards: errors name the right one */
		progress_tick(&pr, n, p + 1, np);
		shard_close(r);
	}
	if (rc == 0) {
		qsort(ids, (size_t)n, sizeof *ids, cmp_u64);
		for (long i = 1; i < n && rc == 0; i++)
			if (ids[i] == ids[i - 1])
				rc = nb_error("shards in '%s': image id %" PRIu64 " appears twice", dir, ids[i]);
	}
	if (rc == 0)
		metrics_finish(b.acc, res);
	metrics_free(b.acc);
	free(ids);
	free(b.images);
	free(b.keys);
	free(b.cells);
	free(b.tokens);
	free(b.lens);
	decoder_free(b.d);
	shard_list_free(paths, np);
	return rc;
}

static int cmp_truth(const void *a, const void *b)
{
	uint64_t x = ((const evaluate_truth *)a)->id, y = ((const evaluate_truth *)b)->id;
	return (x > y) - (x < y);
}

evaluate_truth *evaluate_find_truth(evaluate_truth *gt, long n, uint64_t id)
{
	evaluate_truth key = {.id = id};
	return n > 0 ? bsearch(&key, gt, (size_t)n, sizeof *gt, cmp_truth) : NULL;
}

int evaluate_read_truth(const char *dir, const char *progress_prefix, evaluate_truth **out, long *nout)
{
	char **paths = NULL;
	int np = 0;
	long total = 0;
	if (list_checked(dir, 0, &paths, &np, &total) < 0)
		return -1;
	evaluate_truth *gt = nb_xmalloc(((size_t)total + 1) * sizeof *gt);
	long n = 0;
	int rc = 0;
	progress pr;
	progress_start(&pr, progress_prefix, 0, total);
	for (int p = 0; p < np && rc == 0; p++) {
		shard_reader *r = shard_open(paths[p]);
		if (!r) {
			rc = -1;
			break;
		}
		if (!shard_reader_meta(r)->has_objects)
			rc = nb_error("shard '%s': changed while it was being read", paths[p]);
		shard_sample s;
		int got = 0;
		while (rc == 0 && (got = shard_next(r, &s)) == 1) {
			if (n == total) {
				rc = nb_error("shard '%s': changed while it was being read", paths[p]);
				break;
			}
			gt[n].id = s.id;
			memcpy(gt[n].cells, s.objects, SCENE_CELLS);
			n++;
			progress_tick(&pr, n, p + 1, np);
		}
		if (rc == 0 && got < 0)
			rc = -1;
		shard_close(r);
	}
	shard_list_free(paths, np);
	if (rc == 0) {
		qsort(gt, (size_t)n, sizeof *gt, cmp_truth);
		for (long i = 1; i < n && rc == 0; i++)
			if (gt[i].id == gt[i - 1].id)
				rc = nb_error("shards in '%s': image id %" PRIu64 " appears twice", dir, gt[i].id);
	}
	if (rc < 0) {
		free(gt);
		return -1;
	}
	*out = gt;
	*nout = n;
	return 0;
}
