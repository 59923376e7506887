/* Preference pairs for DPO (schemas/pair_shard.md, docs/training.md,
 * "Preference training (DPO)"): per image, a chosen caption (the ground
 * truth of its cells) and a rejected one that states something absent from
 * the image. Plain functions on caller memory, no ranks; cli/cmd_pairs.c
 * runs the model and the shards.
 *
 * A statement is absent from the image when its object, (color, shape), is
 * in no cell (CHAIR_i's definition, docs/metrics.md).
 *
 *   on-policy:       the rejected caption is the model's own clean greedy
 *                    caption when it has an absent statement;
 *   synthetic-prior: the ground truth with one or two statements replaced by
 *                    an absent object of the scene's theme (the theme whose
 *                    objects the image holds most, common/scene.h) in a free
 *                    cell: what a decoder leaning on the corpus prior says;
 *   synthetic-color / synthetic-shape: one statement's color (shape) swapped
 *                    for one that makes its object absent.
 *
 * Randomness: keyed by (seed, image id) only, so a pair does not depend on
 * the rank or the order the images come in. Thread-safe. */
#ifndef NB_PAIRS_H
#define NB_PAIRS_H

#include <stdint.h>

#include "common/scene.h"
#include "store/shard_store.h"

/* What to do with an image (cmd_pairs' flags). */
typedef enum {
	PAIRS_ON_POLICY = 0,         /* model caption; no pair when it is perfect */
	PAIRS_FILL = 1,              /* model caption; a synthetic pair when it is perfect */
	PAIRS_SYNTHETIC = 2,         /* synthetic pairs only (no model) */
} pairs_mode;

enum { PAIR_MAX_TOKENS = SHARD_MAX_TOKENS };

typedef struct {
	uint16_t chosen[PAIR_MAX_TOKENS], rejected[PAIR_MAX_TOKENS];
	int nchosen, nrejected;
	int kind;                    /* pair_kind (store/shard_store.h) */
} pair;

/* 1 when some statement of the caption ids[0..n) is absent from cells; the
 * count of such statements goes to *absent when not NULL. */
int pairs_has_absent(const uint8_t cells[SCENE_CELLS], const uint16_t *ids, int n, int *absent);

/* The theme whose objects the image holds most (ties: the lowest index). */
int pairs_theme(const uint8_t cells[SCENE_CELLS]);

/* The pair of one image. model/nmodel: its clean caption (words only;
 * ignored in PAIRS_SYNTHETIC). Returns 1 with *out filled, 0 when the mode
 * makes no pair (a perfect caption under PAIRS_ON_POLICY, or an image with
 * no object), -1 + nb_error (a caption over PAIR_MAX_TOKENS). */
int pairs_make(const uint8_t cells[SCENE_CELLS], const uint16_t *model, int nmodel, uint64_t id, uint64_t seed,
	       pairs_mode mode, pair *out);

/* The synthetic pair alone (kind chosen from (seed, id)); 0 when the image
 * has no object to alter. */
int pairs_synthetic(const uint8_t cells[SCENE_CELLS], uint64_t id, uint64_t seed, pair *out);

#endif
