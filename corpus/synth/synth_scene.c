/* Scene sampling per the grammar. The order of draws from the RNG is part of
 * the corpus definition (SYNTH_GRAMMAR_VERSION): change it and every scene
 * changes. docs/scene-grammar.md lists the order. */
#include "corpus/synth/synth.h"

#include <math.h>

#include "common/nb_error.h"

const char *const synth_split_names[SYNTH_SPLITS] = {"labeled", "unlabeled", "test"};

static uint8_t scale_channel(uint8_t nominal, float brightness)
{
	float v = (float)nominal * brightness + 0.5f;
	return v >= 255.0f ? 255 : (uint8_t)v;
}

/* Picks k distinct cells uniformly (partial Fisher-Yates) and returns them
 * in reading order, so captions and objects share one order. */
static void pick_cells(nb_rng *rng, int k, int *out)
{
	int perm[SCENE_CELLS];
	for (int i = 0; i < SCENE_CELLS; i++)
		perm[i] = i;
	for (int i = 0; i < k; i++) {
		int j = i + (int)nb_rng_below(rng, (uint64_t)(SCENE_CELLS - i));
		int t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	int used[SCENE_CELLS] = {0};
	for (int i = 0; i < k; i++)
		used[perm[i]] = 1;
	int n = 0;
	for (int c = 0; c < SCENE_CELLS; c++)
		if (used[c])
			out[n++] = c;
}

void synth_scene_sample(synth_scene *sc, nb_rng *rng, int size)
{
	if (size < SYNTH_MIN_SIZE || size > SYNTH_MAX_SIZE)
		NB_BUG("synth_scene_sample: size %d out of range", size);
	const float cellw = (float)size / SCENE_COLS;

	sc->size = size;
	sc->theme = (int)nb_rng_below(rng, SCENE_THEMES);
	sc->nobj = SCENE_MIN_OBJECTS + (int)nb_rng_below(rng, SCENE_MAX_OBJECTS - SCENE_MIN_OBJECTS + 1);
	for (int c = 0; c < SCENE_CELLS; c++)
		sc->cells[c] = 0;

	int cells[SCENE_MAX_OBJECTS];
	pick_cells(rng, sc->nobj, cells);

	for (int i = 0; i < sc->nobj; i++) {
		synth_object *o = &sc->obj[i];
		int color, shape;
		if (nb_rng_uniform(rng) < 0.75f) {
			const uint8_t *pair = scene_theme_pairs[sc->theme][nb_rng_below(rng, 4)];
			color = pair[0];
			shape = pair[1];
		} else {
			int pair = (int)nb_rng_below(rng, SCENE_PAIRS);
			color = pair / SCENE_SHAPES;
			shape = pair % SCENE_SHAPES;
		}
		int sz = (int)nb_rng_below(rng, SCENE_SIZES);
		float jx = (2.0f * nb_rng_uniform(rng) - 1.0f) * SYNTH_JITTER * cellw;
		float jy = (2.0f * nb_rng_uniform(rng) - 1.0f) * SYNTH_JITTER * cellw;
		float b = SYNTH_BRIGHT_MIN + (SYNTH_BRIGHT_MAX - SYNTH_BRIGHT_MIN) * nb_rng_uniform(rng);

		o->cell = cells[i];
		o->code = scene_obj_code(sz, color, shape);
		o->cx = ((float)(o->cell % SCENE_COLS) + 0.5f) * cellw + jx;
		o->cy = ((float)(o->cell / SCENE_COLS) + 0.5f) * cellw + jy;
		o->radius = (sz ? SYNTH_LARGE_RADIUS : SYNTH_SMALL_RADIUS) * cellw;
		o->brightness = b;
		for (int ch = 0; ch < 3; ch++)
			o->rgb[ch] = scale_channel(scene_color_rgb[color][ch], b);
		sc->cells[o->cell] = o->code;
	}
	sc->background = SYNTH_BG_MIN + (SYNTH_BG_MAX - SYNTH_BG_MIN) * nb_rng_uniform(rng);
}

void synth_make(uint64_t seed, int split, uint64_t index, int size, synth_scene *sc, uint8_t *rgb)
{
	nb_rng rng;
	nb_rng_seed(&rng, seed, (uint64_t)split, index);
	synth_scene_sample(sc, &rng, size);
	if (rgb)
		synth_render(sc, &rng, rgb);
}
