/* Scoring a model on shards with ground truth: every image of a directory
 * of shards with /objects (caption or image shards) is decoded greedily,
 * clean (model/decode.h, K = 0), and its caption scored against the image's
 * cells with labeler/metrics.h. `nboost eval --model` and the students of
 * `nboost run` (corpus.test) use it; the ground-truth reader serves
 * `nboost eval --captions` and `--write-gt`.
 *
 * Plain functions: no ranks, no exit. Errors are nb_error messages naming
 * the directory or the shard and the cause. */
#ifndef NB_EVALUATE_H
#define NB_EVALUATE_H

#include <stdint.h>

#include "common/scene.h"
#include "labeler/metrics.h"
#include "model/vlm.h"

#define EVALUATE_BATCH 64            /* the default images per decode call */

/* Called once per image, in shard order then sample order, after its batch
 * is decoded: the caption as token ids (words only, no bos/eos) and the
 * image's ground-truth cells. Returns 0 to go on, or -1 (after nb_error)
 * to end the evaluation, which then returns -1 with that message. */
typedef int (*evaluate_caption_fn)(void *ctx, uint64_t id, const uint16_t *tokens, int n,
				   const uint8_t cells[SCENE_CELLS]);

typedef struct {
	int batch;                   /* images decoded together; <= 0: EVALUATE_BATCH */
	const char *progress;        /* NULL: quiet; else progress lines "<progress>: ..." on stderr */
	double progress_every;       /* seconds between them; <= 0: 2 */
	evaluate_caption_fn on_caption; /* NULL: none */
	void *ctx;
	/* A share of the work (the MPI split of `nboost eval --model`): with
	 * nparts > 1 only the images [part*N/nparts, (part+1)*N/nparts) of the
	 * N in shard order are decoded, and *res and the duplicate-id check
	 * cover those alone; the caller merges the shares (on_caption). */
	int part, nparts;
} evaluate_opts;

/* Checks the shards of dir for scoring: at least one, each readable, with
 * /objects, and (image_size > 0) of image_size x image_size images. Sets
 * *images (when non-NULL) to their total count. 0 or nb_error:
 *   "no shards in 'DIR'", "shard 'P': no /objects ground truth to score
 *   against", "shard 'P': images are HxW but the model takes SxS", or the
 *   store's message for a missing directory or a bad file. */
int evaluate_check_shards(const char *dir, int image_size, long *images);

/* Decodes every image of the shards in dir with m (images of m's size) and
 * scores the captions: *res as metrics_finish gives it. Progress lines,
 * with the rate and an ETA, go to stderr when o->progress is set. Errors,
 * besides evaluate_check_shards': a shard that cannot be read or decoded
 * ("cannot decode shard 'P': ..."), an image id that appears twice
 * ("shards in 'DIR': image id I appears twice"), or on_caption's. o may be
 * NULL (the defaults). 0 or nb_error. */
int evaluate_shards(vlm_model *m, const char *dir, const evaluate_opts *o, metrics_result *res);

/* The ground truth of one image. */
typedef struct {
	uint64_t id;
	uint8_t cells[SCENE_CELLS];
} evaluate_truth;

/* Reads the ground truth of every shard in dir, sorted by id, into *out
 * (malloc'ed; caller frees) and *n. progress as in evaluate_opts. 0 or
 * nb_error (evaluate_check_shards' causes, a bad shard, an id that appears
 * twice). */
int evaluate_read_truth(const char *dir, const char *progress, evaluate_truth **out, long *n);

/* The entry of id in a sorted truth array, or NULL. */
evaluate_truth *evaluate_find_truth(evaluate_truth *gt, long n, uint64_t id);

#endif
