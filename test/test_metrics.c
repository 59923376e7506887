/* Metrics against hand-computed values (the arithmetic is in the comments),
 * edge cases, and ground truth scored against itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/scene.h"
#include "labeler/caption_parse.h"
#include "labeler/metrics.h"
#include "common/vocab.h"
#include "test_util.h"

enum { RED = 0, GREEN = 1, BLUE = 2, YELLOW = 3, CYAN = 5, WHITE = 6 };
enum { CIRCLE = 0, SQUARE = 1, CROSS = 3, DIAMOND = 4, RING = 5 };

static metrics_result score1(const char *cand, const uint8_t cells[SCENE_CELLS])
{
	metrics_acc *a = metrics_new();
	metrics_result r;
	metrics_add(a, cand, cells);
	metrics_finish(a, &r);
	metrics_free(a);
	return r;
}

static void test_objects(void)
{
	metrics_acc *a = metrics_new();
	/* image 1: small red circle at cell 0, large blue square at cell 4 */
	uint8_t c1[SCENE_CELLS] = {0};
	c1[0] = scene_obj_code(0, RED, CIRCLE);
	c1[4] = scene_obj_code(1, BLUE, SQUARE);
	/* 4 statements, 1 malformed ("foo ."); mentions: red circle (present,
	 * exact tuple), blue square (present, wrong cell), green ring (absent). */
	metrics_add(a, "small red circle top left . large blue square top right . small green ring bottom left . foo .", c1);
	/* image 2: large yellow cross at cell 8; the same statement twice:
	 * 2 mentions, 0 absent, 1 tuple match (a ground-truth tuple matches once). */
	uint8_t c2[SCENE_CELLS] = {0};
	c2[8] = scene_obj_code(1, YELLOW, CROSS);
	metrics_add(a, "large yellow cross bottom right . large yellow cross bottom right .", c2);
	/* image 3: two objects, empty caption. */
	uint8_t c3[SCENE_CELLS] = {0};
	c3[3] = scene_obj_code(0, WHITE, DIAMOND);
	c3[5] = scene_obj_code(0, CYAN, RING);
	metrics_add(a, "", c3);

	metrics_result r;
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.captions == 3);
	CHECK(r.statements == 6 && r.malformed == 1);  /* 4 + 2 + 0 */
	CHECK(r.mentions == 5 && r.hallucinated == 1); /* 3 + 2 + 0 */
	CHECK_NEAR(r.chair_i, 0.2, 1e-12);             /* 1 / 5 */
	CHECK_NEAR(r.chair_s, 1.0 / 3, 1e-12);         /* image 1 only */
	CHECK(r.gt_objects == 5 && r.gt_recalled == 3);
	CHECK_NEAR(r.recall, 0.6, 1e-12);              /* (2 + 1 + 0) / (2 + 1 + 2) */
	CHECK(r.cand_tuples == 5 && r.gt_tuples == 5 && r.tuple_matches == 2);
	CHECK_NEAR(r.tuple_p, 0.4, 1e-12);             /* 2 / 5 */
	CHECK_NEAR(r.tuple_r, 0.4, 1e-12);             /* 2 / 5 */
	CHECK_NEAR(r.tuple_f1, 0.4, 1e-12);            /* 2PR/(P+R) with P = R */
	/* by position among valid statements: image 1 gives positions 0, 1, 2
	 * (the hallucinated ring is third), image 2 positions 0 and 1 */
	CHECK(r.pos_mentions[0] == 2 && r.pos_mentions[1] == 2 && r.pos_mentions[2] == 1 && r.pos_mentions[3] == 0);
	CHECK(r.pos_hallucinated[0] == 0 && r.pos_hallucinated[1] == 0 && r.pos_hallucinated[2] == 1);
	CHECK_NEAR(r.pos_chair_i[2], 1.0, 1e-12);
	CHECK_NEAR(r.pos_chair_i[0], 0.0, 1e-12);
	CHECK_NEAR(r.pos_chair_i[5], 0.0, 1e-12);      /* no mentions: 0 */
}

/* The last position bucket holds the 10th statement and every later one. */
static void test_positions_tail(void)
{
	uint8_t c[SCENE_CELLS] = {0};
	c[0] = scene_obj_code(0, RED, CIRCLE);
	char cap[1024] = "";
	for (int k = 0; k < 12; k++) /* 12 statements; the 11th and 12th name an absent object */
		strcat(cap, k < 10 ? "small red circle top left . " : "small blue ring top left . ");
	metrics_acc *a = metrics_new();
	metrics_add(a, cap, c);
	metrics_result r;
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.mentions == 12);
	CHECK(r.pos_mentions[METRICS_POSITIONS - 1] == 3 && r.pos_hallucinated[METRICS_POSITIONS - 1] == 2);
	CHECK(r.pos_mentions[8] == 1 && r.pos_hallucinated[8] == 0);
	CHECK_NEAR(r.pos_chair_i[METRICS_POSITIONS - 1], 2.0 / 3, 1e-12);
}

static void test_object_edges(void)
{
	uint8_t none[SCENE_CELLS] = {0};
	/* No ground-truth objects: any mention is absent; recall's 0/0 is 0. */
	metrics_result r = score1("small red circle top left .", none);
	CHECK(r.mentions == 1 && r.hallucinated == 1 && r.gt_objects == 0);
	CHECK_NEAR(r.chair_i, 1.0, 1e-12);
	CHECK_NEAR(r.chair_s, 1.0, 1e-12);
	CHECK(r.recall == 0 && r.tuple_r == 0 && r.tuple_p == 0 && r.tuple_f1 == 0);

	/* All malformed: no mentions, so CHAIR is 0 and nothing is recalled. */
	uint8_t c[SCENE_CELLS] = {0};
	c[0] = scene_obj_code(0, RED, CIRCLE);
	r = score1("red small circle top left . small red blob top left . small red circle", c);
	CHECK(r.statements == 3 && r.malformed == 3 && r.mentions == 0);
	CHECK(r.chair_i == 0 && r.chair_s == 0 && r.recall == 0 && r.tuple_f1 == 0);

	/* The right object at the wrong size: recalled (CHAIR is on colour +
	 * shape) but no tuple match. */
	r = score1("large red circle top left .", c);
	CHECK(r.hallucinated == 0 && r.gt_recalled == 1 && r.tuple_matches == 0);

	/* An empty accumulator finishes with zeros. */
	metrics_acc *a = metrics_new();
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.captions == 0 && r.chair_i == 0 && r.cider_d == 0 && r.bleu[3] < 1e-6);
}

static void test_bleu(void)
{
	uint8_t c[SCENE_CELLS] = {0};
	c[0] = scene_obj_code(0, RED, CIRCLE); /* ref: "small red circle top left ." (6 tokens) */

	/* cand "small red circle top right ." (6 tokens):
	 *   1-grams: all but "right" match        5/6
	 *   2-grams: small red, red circle, circle top match; top right, right . not  3/5
	 *   3-grams: small red circle, red circle top        2/4
	 *   4-grams: small red circle top                    1/3
	 *   BLEU-4 = (5/6 * 3/5 * 2/4 * 1/3)^(1/4) = (1/12)^(1/4); equal lengths: BP = 1 */
	metrics_result r = score1("small red circle top right .", c);
	CHECK(r.ngram_match[0] == 5 && r.ngram_total[0] == 6);
	CHECK(r.ngram_match[1] == 3 && r.ngram_total[1] == 5);
	CHECK(r.ngram_match[2] == 2 && r.ngram_total[2] == 4);
	CHECK(r.ngram_match[3] == 1 && r.ngram_total[3] == 3);
	CHECK_NEAR(r.bleu[0], 5.0 / 6, 1e-9);
	CHECK_NEAR(r.bleu[1], sqrt(5.0 / 6 * 3 / 5), 1e-9);
	CHECK_NEAR(r.bleu[3], pow(1.0 / 12, 0.25), 1e-9);

	/* Brevity: cand "small red circle ." (4) vs 6 reference words:
	 *   1-grams 4/4, 2-grams 2/3 (circle . misses), 3-grams 1/2, 4-grams 0/1
	 *   BP = exp(1 - 6/4) = exp(-0.5)
	 *   BLEU-3 = (1 * 2/3 * 1/2)^(1/3) * exp(-0.5); BLEU-4 ~ 0 (0 matches) */
	r = score1("small red circle .", c);
	CHECK(r.cand_words == 4 && r.ref_words == 6);
	CHECK_NEAR(r.bleu[0], exp(-0.5), 1e-9);
	CHECK_NEAR(r.bleu[2], cbrt(1.0 / 3) * exp(-0.5), 1e-9);
	CHECK(r.bleu[3] < 1e-3);

	/* Clipping: "red" appears once in the reference, so 4 copies earn 1:
	 *   "red red red red ." 1-grams: red 1 + "." 1 = 2 of 5 */
	r = score1("red red red red .", c);
	CHECK(r.ngram_match[0] == 2 && r.ngram_total[0] == 5);

	/* Corpus level: counts are summed before the ratio. Image A as above
	 * (5/6, 3/5, 2/4, 1/3); image B the reference itself (6/6, 5/5, 4/4, 3/3):
	 *   BLEU-4 = (11/12 * 8/10 * 6/8 * 4/6)^(1/4) = (11/30)^(1/4) */
	metrics_acc *a = metrics_new();
	metrics_add(a, "small red circle top right .", c);
	/* finish may be called part-way: it scores what was added so far. */
	metrics_finish(a, &r);
	CHECK(r.captions == 1);
	CHECK_NEAR(r.bleu[3], pow(1.0 / 12, 0.25), 1e-9);
	metrics_add(a, "small red circle top left .", c);
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.captions == 2);
	CHECK_NEAR(r.bleu[3], pow(11.0 / 30, 0.25), 1e-9);

	/* Multiple references: the closest length counts, the shorter on a tie.
	 * cand 4 tokens; refs of 6 and 3 tokens -> 3; refs of 5 and 3 -> 3 (tie). */
	uint16_t cand[4], r6[6], r5[5], r3[3];
	caption_tokenize("small red circle .", cand, 4);
	caption_tokenize("small red circle top left .", r6, 6);
	caption_tokenize("small red circle top .", r5, 5);
	caption_tokenize("red circle .", r3, 3);
	const uint16_t *refs_a[2] = {r6, r3};
	int lens_a[2] = {6, 3};
	a = metrics_new();
	metrics_add_refs(a, cand, 4, refs_a, lens_a, 2, c);
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.ref_words == 3);
	/* Clipping takes the max count over references: 2-grams small red,
	 * red circle (r6), circle . (r3) all match: 3/3. */
	CHECK(r.ngram_match[1] == 3);
	const uint16_t *refs_b[2] = {r5, r3};
	int lens_b[2] = {5, 3};
	a = metrics_new();
	metrics_add_refs(a, cand, 4, refs_b, lens_b, 2, c);
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.ref_words == 3);
}

static void test_cider(void)
{
	/* Two images, refs R1 = "small red circle top left ." and
	 * R2 = "large blue square top left .". N = 2, so the idf weight of an
	 * n-gram is w = ln 2 - ln max(1, df): ln 2 for n-grams in one reference
	 * or none, 0 for n-grams in both (top, left, ., top left, left .,
	 * top left .).
	 * Image 2's candidate is R2: every order scores 1, x10 -> 10.
	 * Image 1's candidate C1 = "small red circle top right .":
	 *   n=1: C1 weighted {small, red, circle, right} = w each, matches
	 *        {small, red, circle}: 3w^2 / (2w * sqrt(3)w) = sqrt(3)/2
	 *   n=2: C1 {small red, red circle, circle top, top right, right .} = w,
	 *        R1 nonzero {small red, red circle, circle top}: 3 / (sqrt5 sqrt3)
	 *   n=3: C1 4 trigrams, all w; R1 {small red circle, red circle top,
	 *        circle top left} = w; matches 2: 2 / (2 sqrt3)
	 *   n=4: 3 and 3 4-grams, all w, 1 match: 1/3
	 *   equal lengths: no penalty. Image 1 = 10 * mean of the four. */
	uint8_t c1[SCENE_CELLS] = {0}, c2[SCENE_CELLS] = {0};
	c1[0] = scene_obj_code(0, RED, CIRCLE);
	c2[0] = scene_obj_code(1, BLUE, SQUARE);
	metrics_acc *a = metrics_new();
	metrics_add(a, "small red circle top right .", c1);
	metrics_add(a, "large blue square top left .", c2);
	metrics_result r;
	metrics_finish(a, &r);
	metrics_free(a);
	double img1 = 10 * (sqrt(3) / 2 + 3 / sqrt(15) + 1 / sqrt(3) + 1.0 / 3) / 4;
	CHECK_NEAR(r.cider_d, (img1 + 10) / 2, 1e-9);

	/* Length penalty: C1' = R1 twice (12 tokens, 11 bigrams vs R1's 5).
	 * Weighted (w = ln 2; top, left, . and their n-grams weigh 0):
	 *   n=1: C1' {small, red, circle} = 2w each; R1 = w each:
	 *        3 * min(2w, w) w / (sqrt(12) w * sqrt(3) w) = 1/2
	 *   n=2: C1' 3 shared bigrams at 2w + ". small" at w: norm^2 13w^2 -> 3/sqrt(39)
	 *   n=3: 3 shared at 2w + "left . small", ". small red" at w: 14w^2 -> 3/sqrt(42)
	 *   n=4: 3 shared at 2w + 3 crossing 4-grams at w: 15w^2 -> 3/sqrt(45)
	 *   penalty exp(-(11 - 5)^2 / (2 * 6^2)) = exp(-0.5) */
	metrics_acc *b = metrics_new();
	metrics_add(b, "small red circle top left . small red circle top left .", c1);
	metrics_add(b, "large blue square top left .", c2);
	metrics_finish(b, &r);
	metrics_free(b);
	img1 = 10 * exp(-0.5) * (0.5 + 3 / sqrt(39) + 3 / sqrt(42) + 3 / sqrt(45)) / 4;
	CHECK_NEAR(r.cider_d, (img1 + 10) / 2, 1e-9);

	/* Multiple references: image 1 given R1 twice. df counts images, not
	 * references, so the weights stay as in the first case; the score is the
	 * mean over the two (equal) references: the same value as there. Were df
	 * counted per reference, R1's own n-grams would reach df = 2 = N and weigh
	 * 0, and the value would change. */
	uint16_t cand[6], r1[6], r2[6];
	CHECK(caption_tokenize("small red circle top right .", cand, 6) == 6);
	CHECK(caption_tokenize("small red circle top left .", r1, 6) == 6);
	CHECK(caption_tokenize("large blue square top left .", r2, 6) == 6);
	const uint16_t *refs1[2] = {r1, r1}, *refs2[1] = {r2};
	int lens1[2] = {6, 6}, lens2[1] = {6};
	metrics_acc *m = metrics_new();
	metrics_add_refs(m, cand, 6, refs1, lens1, 2, c1);
	metrics_add_refs(m, r2, 6, refs2, lens2, 1, c2);
	metrics_finish(m, &r);
	metrics_free(m);
	img1 = 10 * (sqrt(3) / 2 + 3 / sqrt(15) + 1 / sqrt(3) + 1.0 / 3) / 4;
	CHECK_NEAR(r.cider_d, (img1 + 10) / 2, 1e-9);

	/* One image: log(1) = 0 makes every weight 0, so CIDEr-D is 0 (as in coco-caption). */
	r = score1("small red circle top left .", c1);
	CHECK(r.cider_d == 0);
}

/* A reference given twice changes nothing: document frequency counts an
 * image once however many of its references hold an n-gram, CIDEr-D
 * averages over references, and BLEU clips to the max over references. */
static void test_duplicate_refs(void)
{
	const char *caps[3] = {"small red circle top right .", "large blue square top left .",
			       "small green ring bottom center . small red circle top left ."};
	const char *refs[3] = {"small red circle top left .", "large blue square top left .",
			       "small green ring bottom center ."};
	uint8_t cells[SCENE_CELLS] = {0};
	metrics_acc *one = metrics_new(), *two = metrics_new();
	for (int i = 0; i < 3; i++) {
		uint16_t c[32], r[32];
		int nc = caption_tokenize(caps[i], c, 32), nr = caption_tokenize(refs[i], r, 32);
		const uint16_t *r1[1] = {r}, *r2[2] = {r, r};
		int l1[1] = {nr}, l2[2] = {nr, nr};
		metrics_add_refs(one, c, nc, r1, l1, 1, cells);
		metrics_add_refs(two, c, nc, r2, l2, 2, cells);
	}
	metrics_result a, b;
	metrics_finish(one, &a);
	metrics_finish(two, &b);
	metrics_free(one);
	metrics_free(two);
	CHECK(a.cider_d > 1 && a.cider_d < 10);
	CHECK_NEAR(b.cider_d, a.cider_d, 1e-12);
	CHECK_NEAR(b.bleu[3], a.bleu[3], 1e-12);
	CHECK(a.bleu[3] > 0.1 && a.bleu[3] < 1);
}

/* Ground truth scored against itself is perfect. */
static void test_self(void)
{
	metrics_acc *a = metrics_new();
	uint64_t s = 99;
	for (int i = 0; i < 300; i++) {
		uint8_t cells[SCENE_CELLS] = {0};
		int placed = 0;
		while (placed < 2) {
			placed = 0;
			for (int c = 0; c < SCENE_CELLS; c++) {
				s = s * 6364136223846793005ULL + 1442695040888963407ULL;
				int v = (int)((s >> 33) % 300);
				cells[c] = v < SCENE_MAX_CODE ? (uint8_t)(v + 1) : 0;
				if (placed == SCENE_MAX_OBJECTS)
					cells[c] = 0;
				placed += cells[c] != 0;
			}
		}
		char buf[256];
		CHECK(scene_caption(cells, buf, sizeof buf) > 0);
		metrics_add(a, buf, cells);
	}
	metrics_result r;
	metrics_finish(a, &r);
	metrics_free(a);
	CHECK(r.captions == 300 && r.malformed == 0);
	CHECK(r.chair_i == 0 && r.chair_s == 0);
	CHECK_NEAR(r.recall, 1, 1e-12);
	CHECK_NEAR(r.tuple_f1, 1, 1e-12);
	CHECK_NEAR(r.bleu[3], 1, 1e-9);
	CHECK_NEAR(r.cider_d, 10, 1e-9);
}

int main(void)
{
	test_objects();
	test_positions_tail();
	test_object_edges();
	test_bleu();
	test_cider();
	test_duplicate_refs();
	test_self();
	return test_summary("test_metrics");
}
