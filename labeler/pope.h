/* POPE-style object probing (docs/metrics.md, "POPE"): for each image, ask
 * the model, by its likelihood, whether objects are present: the image's own
 * objects against absent ones that the co-occurrence prior favours (pairs of
 * the themes its objects belong to). A model that follows the prior says
 * "yes" to those. No decoding: the answers come from teacher-forced next-
 * statement probabilities along the ground-truth caption.
 *
 * Plain functions: no ranks, no exit; errors are nb_error messages. */
#ifndef NB_POPE_H
#define NB_POPE_H

#include <stdint.h>

#include "common/scene.h"
#include "model/decode.h"
#include "model/vlm.h"

#define POPE_MAX_POSITIVES 3   /* present pairs probed per image */

typedef struct {
	uint8_t pair;              /* scene_obj_pair: colour * SCENE_SHAPES + shape */
	uint8_t present;           /* ground truth: 1 present, 0 absent */
} pope_probe;

/* The probes of one image: positives first (distinct present pairs in
 * reading order, at most POPE_MAX_POSITIVES), then as many absent pairs
 * favoured by the prior (fewer when there are not that many). Returns the
 * count (<= 2 * POPE_MAX_POSITIVES). */
int pope_probes(const uint8_t cells[SCENE_CELLS], pope_probe *out);

typedef struct {
	long images, probes, positives;
	long yes, true_yes, correct;
	double accuracy, precision, recall, f1, yes_ratio;
} pope_result;

/* Branches scored per image: boundaries x sizes x colours. */
#define POPE_MAX_BRANCHES ((SCENE_CELLS + 1) * SCENE_SIZES * SCENE_COLORS)

/* The model's answers for one image: yes[k] = 1 when, continuing the
 * ground-truth caption after some number of its statements (0..all), the
 * model's most likely next statement names probes[k]'s (colour, shape),
 * summed over sizes, and is likelier than stopping (docs/metrics.md).
 * d: a decoder of the model (cfg) made with max_images 1 and
 * K >= POPE_MAX_BRANCHES (model/decode.h, decode_branches: the caption is
 * computed once, each branch adds two tokens). 0 or nb_error. */
int pope_image(decoder *d, const vlm_config *cfg, const uint8_t *image, const uint8_t cells[SCENE_CELLS],
	       const pope_probe *probes, int nprobes, int *yes);

/* Every image of the shards in dir (with /objects, of m's image size).
 * progress: NULL, or a prefix for progress lines on stderr. 0 or nb_error. */
int pope_shards(vlm_model *m, const char *dir, const char *progress, pope_result *r);

#endif
