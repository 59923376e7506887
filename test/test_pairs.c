/* labeler/pairs.h: which captions have absent statements, the theme guess,
 * the on-policy rule, the synthetic kinds (each rejected caption states
 * an absent object and differs from the ground truth only as its kind
 * says), and keyed determinism. */
#include <string.h>

#include "common/nb_error.h"
#include "labeler/caption_parse.h"
#include "labeler/pairs.h"
#include "test/test_util.h"

static int tokens(const char *text, uint16_t *ids) { return caption_tokenize(text, ids, PAIR_MAX_TOKENS); }

/* A scene of theme 0: red circle, blue square; and a green ring. */
static void scene(uint8_t cells[SCENE_CELLS])
{
	memset(cells, 0, SCENE_CELLS);
	int red = scene_lookup(scene_color_names, SCENE_COLORS, "red", 3);
	int blue = scene_lookup(scene_color_names, SCENE_COLORS, "blue", 4);
	int green = scene_lookup(scene_color_names, SCENE_COLORS, "green", 5);
	int circle = scene_lookup(scene_shape_names, SCENE_SHAPES, "circle", 6);
	int square = scene_lookup(scene_shape_names, SCENE_SHAPES, "square", 6);
	int ring = scene_lookup(scene_shape_names, SCENE_SHAPES, "ring", 4);
	cells[0] = scene_obj_code(0, red, circle);
	cells[4] = scene_obj_code(1, blue, square);
	cells[8] = scene_obj_code(0, green, ring);
}

/* The (color, shape) objects a caption states that cells lack. */
static int absent_of(const uint8_t cells[SCENE_CELLS], const uint16_t *ids, int n)
{
	int k = -1;
	pairs_has_absent(cells, ids, n, &k);
	return k;
}

static void test_absent_and_theme(void)
{
	uint8_t cells[SCENE_CELLS];
	scene(cells);
	CHECK(pairs_theme(cells) == 0);
	uint16_t ids[PAIR_MAX_TOKENS];
	int n = tokens("small red circle top left . large blue square middle center .", ids);
	CHECK(!pairs_has_absent(cells, ids, n, NULL));
	/* a wrong place or size is not an absent object (CHAIR_i's definition) */
	n = tokens("large red circle bottom right .", ids);
	CHECK(!pairs_has_absent(cells, ids, n, NULL));
	n = tokens("small red circle top left . small green triangle top right . small cyan ring top center .", ids);
	CHECK(pairs_has_absent(cells, ids, n, NULL) && absent_of(cells, ids, n) == 2);
	/* malformed statements are skipped, not counted */
	n = tokens("small red banana top left . green .", ids);
	CHECK(!pairs_has_absent(cells, ids, n, NULL));
}

static void test_on_policy(void)
{
	uint8_t cells[SCENE_CELLS];
	scene(cells);
	uint16_t ids[PAIR_MAX_TOKENS], gt[PAIR_MAX_TOKENS];
	char text[256];
	scene_caption(cells, text, sizeof text);
	int ngt = tokens(text, gt);
	int n = tokens("small red circle top left . small green triangle top right .", ids);
	pair p;
	CHECK(pairs_make(cells, ids, n, 7, 1, PAIRS_ON_POLICY, &p) == 1);
	CHECK(p.kind == PAIR_ON_POLICY && p.nrejected == n && !memcmp(p.rejected, ids, sizeof(uint16_t) * (size_t)n));
	CHECK(p.nchosen == ngt && !memcmp(p.chosen, gt, sizeof(uint16_t) * (size_t)ngt));
	/* a perfect caption: no pair, or a synthetic one when asked */
	CHECK(pairs_make(cells, gt, ngt, 7, 1, PAIRS_ON_POLICY, &p) == 0);
	CHECK(pairs_make(cells, gt, ngt, 7, 1, PAIRS_FILL, &p) == 1 && p.kind != PAIR_ON_POLICY);
	/* an empty scene makes no pair */
	uint8_t none[SCENE_CELLS] = {0};
	CHECK(pairs_make(none, NULL, 0, 7, 1, PAIRS_SYNTHETIC, &p) == 0);
	CHECK(pairs_make(cells, ids, PAIR_MAX_TOKENS + 1, 7, 1, PAIRS_ON_POLICY, &p) < 0);
	CHECK(test_contains(nb_errmsg(), "65 tokens"));
}

/* Parses a caption into cells (last statement per cell wins). */
static void cells_of(const uint16_t *ids, int n, uint8_t cells[SCENE_CELLS])
{
	caption_tuple t[PAIR_MAX_TOKENS];
	caption_stats st;
	caption_parse_tokens(ids, n, t, PAIR_MAX_TOKENS, &st);
	memset(cells, 0, SCENE_CELLS);
	for (int i = 0; i < st.ntuples && i < PAIR_MAX_TOKENS; i++)
		cells[t[i].cell] = caption_tuple_code(&t[i]);
}

static int same_pair(const pair *a, const pair *b)
{
	return a->kind == b->kind && a->nchosen == b->nchosen && a->nrejected == b->nrejected &&
	       !memcmp(a->chosen, b->chosen, sizeof(uint16_t) * (size_t)a->nchosen) &&
	       !memcmp(a->rejected, b->rejected, sizeof(uint16_t) * (size_t)a->nrejected);
}

static void test_synthetic(void)
{
	uint8_t cells[SCENE_CELLS];
	scene(cells);
	int seen[PAIR_KINDS] = {0};
	for (uint64_t id = 0; id < 400; id++) {
		pair p, q;
		CHECK(pairs_synthetic(cells, id, 5, &p) == 1);
		CHECK(pairs_synthetic(cells, id, 5, &q) == 1 && same_pair(&p, &q)); /* keyed */
		seen[p.kind]++;
		uint8_t rc[SCENE_CELLS];
		cells_of(p.rejected, p.nrejected, rc);
		int changed = 0, moved = 0, absent = absent_of(cells, p.rejected, p.nrejected);
		for (int c = 0; c < SCENE_CELLS; c++) {
			changed += rc[c] != cells[c] && rc[c] && cells[c];
			moved += (rc[c] != 0) != (cells[c] != 0);
		}
		if (p.kind == PAIR_SYNTH_COLOR || p.kind == PAIR_SYNTH_SHAPE) {
			/* one object, same place and size, one attribute changed */
			CHECK_MSG(changed == 1 && moved == 0 && absent == 1, "id %llu kind %d", (unsigned long long)id,
				  p.kind);
			for (int c = 0; c < SCENE_CELLS; c++)
				if (rc[c] != cells[c]) {
					int same_color = scene_obj_color(rc[c]) == scene_obj_color(cells[c]);
					int same_shape = scene_obj_shape(rc[c]) == scene_obj_shape(cells[c]);
					CHECK(scene_obj_size(rc[c]) == scene_obj_size(cells[c]));
					CHECK(p.kind == PAIR_SYNTH_COLOR ? !same_color && same_shape : same_color && !same_shape);
				}
		} else {
			/* 1 or 2 objects replaced by absent theme-0 objects: green
			 * triangle or yellow cross */
			CHECK(p.kind == PAIR_SYNTH_PRIOR && (absent == 1 || absent == 2));
			int themed = 0;
			for (int c = 0; c < SCENE_CELLS; c++)
				if (rc[c] && rc[c] != cells[c]) {
					const char *co = scene_color_names[scene_obj_color(rc[c])];
					const char *sh = scene_shape_names[scene_obj_shape(rc[c])];
					themed += (!strcmp(co, "green") && !strcmp(sh, "triangle")) ||
						  (!strcmp(co, "yellow") && !strcmp(sh, "cross"));
				}
			CHECK(themed == absent);
		}
	}
	CHECK(seen[PAIR_SYNTH_PRIOR] > 120 && seen[PAIR_SYNTH_COLOR] > 50 && seen[PAIR_SYNTH_SHAPE] > 50);
	CHECK(seen[PAIR_ON_POLICY] == 0);
	/* another seed, other pairs */
	int differ = 0;
	for (uint64_t id = 0; id < 50; id++) {
		pair p, q;
		pairs_synthetic(cells, id, 5, &p);
		pairs_synthetic(cells, id, 6, &q);
		differ += !same_pair(&p, &q);
	}
	CHECK(differ > 10);
}

int main(void)
{
	test_absent_and_theme();
	test_on_policy();
	test_synthetic();
	return test_summary("test_pairs");
}
