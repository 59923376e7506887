#include "trainer/batcher.h"

#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_rng.h"
#include "common/vocab.h"
#include "store/shard_store.h"

/* Keys of the two kinds of shuffle, so they never share a stream. */
#define KEY_EPOCH 0x65706f6368ull
#define KEY_MERGE 0x6d65726765ull

typedef struct {
	char *path;
	char *canon;                 /* realpath(path): the shard's identity */
	long step;
	size_t count;
} shard_rec;

struct batcher {
	int image_size, max_text, vocab;
	uint64_t seed;
	size_t image_bytes;

	/* samples */
	size_t n, cap;
	uint8_t *images;
	uint64_t *ids;
	uint64_t *tok_off;           /* [n+1] into tokens */
	uint16_t *tokens;
	size_t ntok, tok_cap;
	size_t ntruncated;
	int pairs;                   /* 1: pair shards, rejected captions below */
	uint64_t *rj_off;            /* [n+1] into rj_tokens (pairs only) */
	uint16_t *rj_tokens;
	size_t nrj, rj_cap;

	shard_rec *shards;
	int nshards, shards_cap;

	/* order state */
	uint64_t *order;
	size_t norder, cursor;
	uint64_t epoch, merges;

	/* batch buffers */
	int bcap, tcap;
	uint8_t *b_images;
	uint16_t *b_inputs, *b_targets;
	uint64_t *b_keys;
};

batcher *batcher_create(int image_size, int max_text, int vocab, uint64_t seed)
{
	batcher *b = nb_xcalloc(1, sizeof *b);
	b->image_size = image_size;
	b->max_text = max_text;
	b->vocab = vocab;
	b->seed = seed;
	b->image_bytes = (size_t)image_size * (size_t)image_size * 3;
	b->tok_off = nb_xcalloc(1, sizeof(uint64_t));
	b->rj_off = nb_xcalloc(1, sizeof(uint64_t));
	return b;
}

void batcher_free(batcher *b)
{
	if (!b)
		return;
	free(b->images);
	free(b->ids);
	free(b->tok_off);
	free(b->tokens);
	free(b->rj_off);
	free(b->rj_tokens);
	for (int i = 0; i < b->nshards; i++) {
		free(b->shards[i].path);
		free(b->shards[i].canon);
	}
	free(b->shards);
	free(b->order);
	free(b->b_images);
	free(b->b_inputs);
	free(b->b_targets);
	free(b->b_keys);
	free(b);
}

static void shuffle(uint64_t *a, size_t n, nb_rng *r)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)nb_rng_below(r, i);
		uint64_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ids sets the growth (NB_GROW); images and tok_off follow its capacity. */
static void reserve_samples(batcher *b, size_t want)
{
	if (want <= b->cap)
		return;
	size_t cap = b->cap;
	NB_GROW(b->ids, cap, want, 256);
	b->images = nb_xrealloc(b->images, cap * b->image_bytes);
	b->tok_off = nb_xrealloc(b->tok_off, (cap + 1) * sizeof(uint64_t));
	b->rj_off = nb_xrealloc(b->rj_off, (cap + 1) * sizeof(uint64_t));
	b->cap = cap;
}

static int check_meta(const batcher *b, const shard_meta *m, const char *path)
{
	if (b->pairs && m->kind != SHARD_PAIRS)
		return nb_error("cannot train on shard '%s': preference training needs a pair shard (nboost pairs), "
				"this is %s shard", path, m->kind == SHARD_IMAGES ? "an image" : "a caption");
	if (!b->pairs && m->kind != SHARD_CAPTIONS)
		return nb_error("cannot train on shard '%s': it is %s shard, not a caption shard%s", path,
				m->kind == SHARD_IMAGES ? "an image" : "a pair",
				m->kind == SHARD_PAIRS ? " (train on pairs with --objective dpo)" : "");
	if (m->height != b->image_size || m->width != b->image_size)
		return nb_error("cannot train on shard '%s': images are %dx%d but the model takes %dx%d", path,
				m->width, m->height, b->image_size, b->image_size);
	if (strcmp(m->vocab_digest, vocab_digest()) != 0)
		return nb_error("cannot train on shard '%s': vocabulary digest '%s' differs from this build's '%s'",
				path, m->vocab_digest, vocab_digest());
	return 0;
}

/* Appends the shard's samples after the current ones; on error the sample
 * count is rolled back, so a bad shard adds nothing. */
static int load_samples(batcher *b, const char *path, size_t *added, size_t *truncated)
{
	shard_reader *r = shard_open(path);
	if (!r)
		return -1;
	if (check_meta(b, shard_reader_meta(r), path) < 0) {
		shard_close(r);
		return -1;
	}
	size_t n0 = b->n, t0 = b->ntok, r0 = b->nrj, trunc = 0;
	int keep_max = b->max_text - 1;
	shard_sample s;
	int rc;
	while ((rc = shard_next(r, &s)) == 1) {
		for (int k = 0; k < s.ntokens + s.nrejected; k++)
			if ((k < s.ntokens ? s.tokens[k] : s.rejected[k - s.ntokens]) >= b->vocab) {
				nb_error("cannot train on shard '%s': sample id %llu has token %u, not below vocab %d",
					 path, (unsigned long long)s.id, s.tokens[k], b->vocab);
				rc = -1;
				break;
			}
		if (rc < 0)
			break;
		int nt = s.ntokens, nr = s.nrejected;
		if (nt > keep_max) {
			nt = keep_max;
			trunc++;
		}
		if (nr > keep_max) {
			nr = keep_max;
			trunc++;
		}
		reserve_samples(b, b->n + 1);
		NB_GROW(b->tokens, b->tok_cap, b->ntok + (size_t)nt, 4096);
		memcpy(b->images + b->n * b->image_bytes, s.image, b->image_bytes);
		b->ids[b->n] = s.id;
		if (nt > 0)
			memcpy(b->tokens + b->ntok, s.tokens, (size_t)nt * sizeof(uint16_t));
		b->ntok += (size_t)nt;
		if (b->pairs) {
			NB_GROW(b->rj_tokens, b->rj_cap, b->nrj + (size_t)nr, 4096);
			memcpy(b->rj_tokens + b->nrj, s.rejected, (size_t)nr * sizeof(uint16_t));
			b->nrj += (size_t)nr;
			b->rj_off[b->n + 1] = b->nrj;
		}
		b->n++;
		b->tok_off[b->n] = b->ntok;
	}
	shard_close(r);
	if (rc < 0) {
		b->n = n0;
		b->ntok = t0;
		b->nrj = r0;
		return -1;
	}
	*added = b->n - n0;
	*truncated = trunc;
	return 0;
}

/* New samples join what is left of the current epoch, shuffled together. */
static void merge_new(batcher *b, size_t first, size_t count)
{
	size_t left = b->norder - b->cursor;
	uint64_t *o = nb_xmalloc((left + count) * sizeof(uint64_t) + 1);
	if (left)
		memcpy(o, b->order + b->cursor, left * sizeof(uint64_t));
	for (size_t i = 0; i < count; i++)
		o[left + i] = first + i;
	nb_rng r;
	nb_rng_seed(&r, b->seed, KEY_MERGE, b->merges++);
	shuffle(o, left + count, &r);
	free(b->order);
	b->order = o;
	b->norder = left + count;
	b->cursor = 0;
}

/* The canonical path of a shard (symlinks, "." and ".." resolved), so that
 * one file reached through two paths is one shard; the path itself when it
 * cannot be resolved (it does not exist: loading it fails anyway).
 * Caller frees. */
static char *canonical(const char *path)
{
	char *c = realpath(path, NULL);
	return c ? c : nb_xstrdup(path);
}

int batcher_has_shard(const batcher *b, const char *path)
{
	char *c = canonical(path);
	int found = 0;
	for (int i = 0; i < b->nshards && !found; i++)
		found = strcmp(b->shards[i].canon, c) == 0;
	free(c);
	return found;
}

int batcher_add_shard(batcher *b, const char *path, long step)
{
	if (batcher_has_shard(b, path))
		return nb_error("cannot add shard '%s': it was already added", path);
	size_t first = b->n, added = 0, trunc = 0;
	if (load_samples(b, path, &added, &trunc) < 0)
		return -1;
	NB_GROW(b->shards, b->shards_cap, b->nshards + 1, 16);
	shard_rec *s = &b->shards[b->nshards++];
	s->path = nb_xstrdup(path);
	s->canon = canonical(path);
	s->step = step;
	s->count = added;
	b->ntruncated += trunc;
	if (added)
		merge_new(b, first, added);
	return 0;
}

int batcher_watch(batcher *b, const char *dir, long step)
{
	char **paths = NULL;
	int n = shard_list(dir, &paths);
	if (n < 0)
		return -1;
	int added = 0, rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		if (batcher_has_shard(b, paths[i]))
			continue;
		if (batcher_add_shard(b, paths[i], step) < 0)
			rc = -1;
		else
			added++;
	}
	shard_list_free(paths, n);
	return rc < 0 ? -1 : added;
}

size_t batcher_nsamples(const batcher *b) { return b->n; }
int batcher_nshards(const batcher *b) { return b->nshards; }
const char *batcher_shard_path(const batcher *b, int i) { return b->shards[i].path; }
long batcher_shard_step(const batcher *b, int i) { return b->shards[i].step; }
size_t batcher_shard_count(const batcher *b, int i) { return b->shards[i].count; }
size_t batcher_ntruncated(const batcher *b) { return b->ntruncated; }
uint64_t batcher_sample_id(const batcher *b, size_t index) { return b->ids[index]; }

static void new_epoch(batcher *b)
{
	b->epoch++;
	free(b->order);
	b->order = nb_xmalloc(b->n * sizeof(uint64_t) + 1);
	for (size_t i = 0; i < b->n; i++)
		b->order[i] = i;
	nb_rng r;
	nb_rng_seed(&r, b->seed, KEY_EPOCH, b->epoch);
	shuffle(b->order, b->n, &r);
	b->norder = b->n;
	b->cursor = 0;
}

int batcher_next(batcher *b, int n, uint64_t *idx)
{
	if (b->n == 0)
		return nb_error("no training samples: no shard with samples was added");
	for (int i = 0; i < n; i++) {
		if (b->cursor >= b->norder)
			new_epoch(b);
		idx[i] = b->order[b->cursor++];
	}
	return 0;
}

static size_t sample_len(const batcher *b, uint64_t i) { return (size_t)(b->tok_off[i + 1] - b->tok_off[i]); }

static void reserve_batch(batcher *b, int n, int T);
static void fill_row(batcher *b, int i, int T, const uint16_t *tok, size_t len, uint64_t sample);

void batcher_make(batcher *b, const uint64_t *idx, int n, vlm_batch *out)
{
	int T = 1;
	for (int i = 0; i < n; i++) {
		int len = (int)sample_len(b, idx[i]) + 1;
		if (len > T)
			T = len;
	}
	reserve_batch(b, n, T);
	for (int i = 0; i < n; i++)
		fill_row(b, i, T, b->tokens + b->tok_off[idx[i]], sample_len(b, idx[i]), idx[i]);
	out->B = n;
	out->T = T;
	out->images = b->b_images;
	out->inputs = b->b_inputs;
	out->targets = b->b_targets;
	out->keys = b->b_keys;
}

void batcher_get_state(const batcher *b, batcher_state *s)
{
	s->order = b->order;
	s->norder = b->norder;
	s->cursor = b->cursor;
	s->epoch = b->epoch;
	s->merges = b->merges;
}

int batcher_set_state(batcher *b, const batcher_state *s)
{
	if (s->cursor > s->norder)
		return nb_error("bad data-order state: cursor %zu beyond order length %zu", s->cursor, s->norder);
	for (size_t i = 0; i < s->norder; i++)
		if (s->order[i] >= b->n)
			return nb_error("bad data-order state: sample index %llu at %zu but only %zu samples loaded",
					(unsigned long long)s->order[i], i, b->n);
	uint64_t *o = nb_xmalloc(s->norder * sizeof(uint64_t) + 1);
	if (s->norder)
		memcpy(o, s->order, s->norder * sizeof(uint64_t));
	free(b->order);
	b->order = o;
	b->norder = s->norder;
	b->cursor = s->cursor;
	b->epoch = s->epoch;
	b->merges = s->merges;
	return 0;
}

int batcher_set_pairs(batcher *b)
{
	if (b->nshards)
		return nb_error("batcher: switch to pairs before the first shard is added");
	b->pairs = 1;
	return 0;
}

int batcher_is_pairs(const batcher *b) { return b->pairs; }

/* Room for n rows of T positions in the batch buffers. */
static void reserve_batch(batcher *b, int n, int T)
{
	if (n <= b->bcap && T <= b->tcap)
		return;
	b->bcap = n > b->bcap ? n : b->bcap;
	b->tcap = T > b->tcap ? T : b->tcap;
	size_t cells = (size_t)b->bcap * (size_t)b->tcap;
	b->b_images = nb_xrealloc(b->b_images, (size_t)b->bcap * b->image_bytes + 1);
	b->b_inputs = nb_xrealloc(b->b_inputs, cells * sizeof(uint16_t) + 1);
	b->b_targets = nb_xrealloc(b->b_targets, cells * sizeof(uint16_t) + 1);
	b->b_keys = nb_xrealloc(b->b_keys, (size_t)b->bcap * sizeof(uint64_t) + 1);
}

/* Row i of a batch of width T: [bos, tok...] and [tok..., eos], padded. */
static void fill_row(batcher *b, int i, int T, const uint16_t *tok, size_t len, uint64_t sample)
{
	uint16_t *in = b->b_inputs + (size_t)i * T, *tg = b->b_targets + (size_t)i * T;
	in[0] = VOCAB_BOS;
	for (size_t k = 0; k < len; k++) {
		in[k + 1] = tok[k];
		tg[k] = tok[k];
	}
	tg[len] = VOCAB_EOS;
	for (int k = (int)len + 1; k < T; k++)
		in[k] = tg[k] = VOCAB_PAD;
	memcpy(b->b_images + (size_t)i * b->image_bytes, b->images + sample * b->image_bytes, b->image_bytes);
	b->b_keys[i] = b->ids[sample];
}

void batcher_make_pairs(batcher *b, const uint64_t *idx, int n, vlm_batch *out)
{
	if (!b->pairs)
		NB_BUG("batcher_make_pairs on a batcher of captions");
	int T = 1;
	for (int i = 0; i < n; i++) {
		int lc = (int)sample_len(b, idx[i]) + 1, lr = (int)(b->rj_off[idx[i] + 1] - b->rj_off[idx[i]]) + 1;
		T = lc > T ? lc : T;
		T = lr > T ? lr : T;
	}
	reserve_batch(b, 2 * n, T);
	for (int i = 0; i < n; i++) {
		uint64_t s = idx[i];
		fill_row(b, i, T, b->tokens + b->tok_off[s], sample_len(b, s), s);
		fill_row(b, n + i, T, b->rj_tokens + b->rj_off[s], (size_t)(b->rj_off[s + 1] - b->rj_off[s]), s);
	}
	out->B = 2 * n;
	out->T = T;
	out->images = b->b_images;
	out->inputs = b->b_inputs;
	out->targets = b->b_targets;
	out->keys = b->b_keys;
}

