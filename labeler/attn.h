/* Attention shares (docs/metrics.md, "Attention shares"): where the
 * decoder's caption positions look, per layer. NoiseBoost's premise is that
 * a captioner hallucinates when it leans on its language prior (the caption
 * read so far, or one "anchor" token) instead of the image; these numbers
 * measure that lean, over all caption positions and separately over the
 * positions that predict correct and hallucinated statements.
 *
 * For a caption query row (text position t of [bos, w1..wn], decoder
 * position nv + t) and one head, with A the row's softmax over keys 0..nv+t:
 *   visual = sum of A over the nv visual keys,
 *   text   = sum of A over the text keys nv..nv+t (bos and the words read
 *            so far, the query's own input token included; visual + text = 1),
 *   max    = the largest A of the row, whichever key (the anchor).
 * Each row's shares are averaged over heads, then over every counted row of
 * every image (an image weighs by its caption length).
 *
 * Groups: text position t predicts word t+1 (t = n predicts eos). The
 * positions predicting the six tokens of a valid statement (5 words and its
 * ".") belong to that statement: "correct" when its (color, shape) is among
 * the image's objects, "hallucinated" when not (CHAIR_i's definition).
 * Malformed statements and eos count in "all" only.
 *
 * Plain functions: no ranks, no exit; errors are nb_error messages. */
#ifndef NB_ATTN_H
#define NB_ATTN_H

#include <stdint.h>

#include "common/scene.h"
#include "model/vlm.h"

enum { ATTN_ALL, ATTN_CORRECT, ATTN_HALLUCINATED, ATTN_GROUPS };
#define ATTN_OTHER (-1)       /* attn_groups: a position in "all" only */
#define ATTN_MAX_LAYERS 16    /* VLM_MAX_LAYERS */
#define ATTN_BATCH 64         /* the default images per decode call */

typedef struct {
	double visual, text, max; /* sums while adding; means after attn_finish */
} attn_share;

typedef struct {
	int layers, heads, nv;    /* set by the first attn_add */
	long images;
	long positions[ATTN_GROUPS];  /* query positions counted per group */
	long statements[ATTN_GROUPS]; /* valid statements: all, correct, hallucinated */
	long malformed;               /* statements that did not parse */
	attn_share share[ATTN_GROUPS][ATTN_MAX_LAYERS];
} attn_result;

/* The group of each text position 0..n of the caption tokens[0..n) (words
 * only, no bos/eos) over the ground truth cells: ATTN_CORRECT,
 * ATTN_HALLUCINATED or ATTN_OTHER, into group[0..n]. Adds the statement
 * counts to r when r is non-NULL. */
void attn_groups(const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS], int8_t *group,
		 attn_result *r);

/* Adds one image: att[l] points to its attention in layer l, [heads, Lb, Lb]
 * (vlm_attention's block of this sample), Lb >= nv + n + 1 the row stride;
 * tokens[0..n) its caption, as teacher-forced after bos; cells its ground
 * truth. Every layer's rows nv..nv+n are counted. 0, or nb_error when the
 * shape disagrees with earlier images or the caption does not fit Lb. */
int attn_add(attn_result *r, const float *const *att, int layers, int heads, int nv, int Lb,
	     const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS]);

/* Teacher-forces bos + tokens of n images through m in one forward pass
 * (n <= the model's max_batch) and adds each with attn_add. images [n, S,
 * S, 3]; tokens of image i at tokens + i * stride, lens[i] <= max_text - 1
 * words. 0 or nb_error. */
int attn_add_batch(attn_result *r, vlm_model *m, const uint8_t *images, const uint16_t *tokens, int stride,
		   const int *lens, const uint8_t (*cells)[SCENE_CELLS], int n);

/* Divides the sums into means (a group with no position gets 0). Call once. */
void attn_finish(attn_result *r);

typedef struct {
	int batch;                /* images per decode and forward; <= 0: ATTN_BATCH */
	long max_images;          /* stop after this many (shard order); <= 0: all */
	const char *progress;     /* NULL: quiet; else progress lines on stderr */
} attn_opts;

/* Every image of the shards in dir (with /objects, of m's image size; the
 * checks of labeler/evaluate.h's evaluate_check_shards): decoded greedily and
 * clean (model/decode.h), then teacher-forced for its attention. The model
 * must have max_batch >= o->batch. *r gets the means. 0 or nb_error. */
int attn_shards(vlm_model *m, const char *dir, const attn_opts *o, attn_result *r);

#endif
