/* Caption metrics (docs/metrics.md): CHAIR_i, CHAIR_s, object recall, tuple
 * precision/recall/F1 against the ground-truth cells, and BLEU-1..4 and
 * CIDEr-D with coco-caption's definitions against reference captions.
 *
 * Use: acc = metrics_new(); metrics_add*(acc, ...) once per image;
 * metrics_finish(acc, &res); metrics_free(acc). CIDEr-D weights n-grams by
 * their document frequency over the references of every image added, so the
 * accumulator keeps all token sequences until metrics_finish (about 100
 * bytes per image). finish may be called more than once (it scores what was
 * added so far). A ratio whose denominator is 0 is reported as 0.
 *
 * One accumulator per thread; different accumulators are independent. */
#ifndef NB_METRICS_H
#define NB_METRICS_H

#include <stdint.h>

#include "common/scene.h"

#define METRICS_POSITIONS 10      /* CHAIR_i by mention position: 1..9, then 10 and later */

typedef struct {
	long captions;               /* images added */
	long statements, malformed;  /* caption_parse totals */
	long mentions;               /* valid statements (object mentions) */
	long hallucinated;           /* mentions whose (color, shape) is absent from the image */
	long hallucinating_captions; /* captions with at least one hallucinated mention */
	long gt_objects;             /* non-empty ground-truth cells */
	long gt_recalled;            /* of those, the ones whose (color, shape) is mentioned */
	long cand_tuples, gt_tuples, tuple_matches;
	long cand_words, ref_words;  /* BLEU lengths: candidate, closest reference */
	long ngram_match[4], ngram_total[4]; /* BLEU clipped matches and candidate n-grams, n = 1..4 */
	double chair_i, chair_s, recall;
	double tuple_p, tuple_r, tuple_f1;
	double bleu[4];              /* BLEU-1..4; bleu[3] is BLEU-4 */
	double cider_d;
	/* CHAIR_i of the k-th valid statement of each caption (k = 0 first;
	 * the last bucket holds the 10th and later) */
	long pos_mentions[METRICS_POSITIONS], pos_hallucinated[METRICS_POSITIONS];
	double pos_chair_i[METRICS_POSITIONS];
} metrics_result;

typedef struct metrics_acc metrics_acc;

metrics_acc *metrics_new(void);
void metrics_free(metrics_acc *a);

/* Adds one image: the candidate caption as text, scored against the
 * ground-truth cells (common/scene.h), whose scene_caption is the reference. */
void metrics_add(metrics_acc *a, const char *caption, const uint8_t cells[SCENE_CELLS]);
/* The same with the candidate as token ids (words only, no bos/eos). */
void metrics_add_tokens(metrics_acc *a, const uint16_t *ids, int n, const uint8_t cells[SCENE_CELLS]);
/* General form: nrefs >= 1 reference token sequences (refs[r], ref_lens[r])
 * for BLEU and CIDEr-D; the cells still define the CHAIR and tuple metrics.
 * Token ids outside the vocabulary count as <unk>. All inputs are copied. */
void metrics_add_refs(metrics_acc *a, const uint16_t *ids, int n, const uint16_t *const *refs,
		      const int *ref_lens, int nrefs, const uint8_t cells[SCENE_CELLS]);

/* Computes every metric over what was added. */
void metrics_finish(metrics_acc *a, metrics_result *res);

#endif
