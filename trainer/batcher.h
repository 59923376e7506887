/* Training batches from caption shards, held in memory.
 *
 * The batcher loads every sample of each shard it is given (image, caption
 * tokens, id) and serves global batches of sample indices in a seeded,
 * shuffled order. Shards may be added between steps (pseudo-label shards
 * streamed to students, or a watched directory): the samples of the current
 * epoch not yet served and the new samples are shuffled together, so new data
 * is used from the next batch on without replaying the old.
 *
 * Determinism: the order depends only on the seed and on the sequence of
 * shards added between which batches. The whole order state (the current
 * permutation, the cursor into it, epoch and merge counters) and the list of
 * shards (path, step added, sample count) can be read out for a checkpoint
 * and restored, so a resumed run draws exactly the batches an uninterrupted
 * one would.
 *
 * Every rank runs its own identical batcher: all ranks compute the same
 * global index list and each takes its contiguous slice.
 *
 * Memory: about image_size^2 * 3 bytes plus the tokens per sample.
 * Not thread-safe (HDF5 reads; one thread per process). */
#ifndef NB_BATCHER_H
#define NB_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "model/vlm.h"

typedef struct batcher batcher;

/* Samples must have image_size x image_size images and tokens below vocab;
 * captions longer than max_text-1 words are truncated (counted, see
 * batcher_ntruncated). seed keys every shuffle. */
batcher *batcher_create(int image_size, int max_text, int vocab, uint64_t seed);
void batcher_free(batcher *b);

/* Loads a committed caption shard; `step` is the training step before which
 * it is added (recorded for checkpoints and logs). A shard already added is
 * an error; shards are identified by their canonical path (realpath), so a
 * file reached through a symlink and through its real path is one shard.
 * The path as given is what batcher_shard_path returns. On error nothing is
 * added. 0 or nb_error naming the shard. */
int batcher_add_shard(batcher *b, const char *path, long step);
/* Whether the file at path (canonical path compared) was added. */
int batcher_has_shard(const batcher *b, const char *path);
/* Adds the committed shards in dir (shard_list order) not added yet. Returns
 * how many were added, or -1 + nb_errmsg. */
int batcher_watch(batcher *b, const char *dir, long step);

size_t batcher_nsamples(const batcher *b);
int batcher_nshards(const batcher *b);
const char *batcher_shard_path(const batcher *b, int i);
long batcher_shard_step(const batcher *b, int i);
size_t batcher_shard_count(const batcher *b, int i);
size_t batcher_ntruncated(const batcher *b);
uint64_t batcher_sample_id(const batcher *b, size_t index);

/* Writes the next n sample indices of the global order into idx (crossing
 * epochs as needed). -1 + nb_errmsg when there are no samples. */
int batcher_next(batcher *b, int n, uint64_t *idx);

/* Builds a model batch from n sample indices: inputs [bos, w1..wk, pad...],
 * targets [w1..wk, eos, pad...], T = 1 + the longest (truncated) caption,
 * keys = sample ids. The arrays are owned by the batcher and valid until the
 * next batcher_make call. n = 0 gives B = 0. */
void batcher_make(batcher *b, const uint64_t *idx, int n, vlm_batch *out);

/* Preference pairs (schemas/pair_shard.md). A batcher switched to pairs
 * before its first shard takes pair shards only (and a plain one caption
 * shards only); each sample then also holds its rejected caption (truncated
 * like the chosen one). 0, or nb_error once shards were added. */
int batcher_set_pairs(batcher *b);
int batcher_is_pairs(const batcher *b);
/* The pair batch of n samples: 2n rows, rows [0, n) the chosen captions and
 * rows [n, 2n) the rejected ones of the same samples in the same order, each
 * row with its image and key (the sample id); T = 1 + the longest caption of
 * either kind. Owned by the batcher, valid until the next make call. */
void batcher_make_pairs(batcher *b, const uint64_t *idx, int n, vlm_batch *out);

/* Order state, for checkpoints. order[norder] is the current permutation,
 * cursor the next position, epoch and merges count reshuffles. */
typedef struct {
	const uint64_t *order;
	size_t norder, cursor;
	uint64_t epoch, merges;
} batcher_state;
void batcher_get_state(const batcher *b, batcher_state *s);
/* Replaces the order state (after the same shards were re-added). Checks
 * that the indices are in range. 0 or nb_error. */
int batcher_set_state(batcher *b, const batcher_state *s);

#endif
