/* Scene sampling per the grammar. The order of draws from the RNG is part of
 * the corpus definition (SYNTH_GRAMMAR_VERSION): change it and every scene
 * changes. docs/scene-grammar.md lists the order. */
#include "corpus/synth/synth.h"

#include <math.h>

#include "common/nb_error.h"

#define GRAMMAR(name, stream) {name, stream, SYNTH_PRIOR_THEME, SCENE_MIN_OBJECTS, SCENE_MAX_OBJECTS, 0, 1, SYNTH_NOISE_STD, 0, 0}
#define SHIFT(name, blur, contrast, noise, occlude, k) \
	{name, SYNTH_TEST, SYNTH_PRIOR_THEME, SCENE_MIN_OBJECTS, SCENE_MAX_OBJECTS, blur, contrast, noise, occlude, k}

/* docs/scene-grammar.md, "Hard test splits", explains each strength. */
const synth_split_def synth_splits[SYNTH_SPLITS] = {
	GRAMMAR("labeled", SYNTH_LABELED),
	GRAMMAR("unlabeled", SYNTH_UNLABELED),
	GRAMMAR("test", SYNTH_TEST),
	{"test-counter-uniform", 3, SYNTH_PRIOR_UNIFORM, SCENE_MIN_OBJECTS, SCENE_MAX_OBJECTS, 0, 1, SYNTH_NOISE_STD, 0, 0},
	{"test-counter-offtheme", 4, SYNTH_PRIOR_OFF_THEME, SCENE_MIN_OBJECTS, SCENE_MAX_OBJECTS, 0, 1, SYNTH_NOISE_STD, 0, 0},
	SHIFT("test-shift-blur-1", 0.75f, 1, SYNTH_NOISE_STD, 0, 1),
	SHIFT("test-shift-blur-2", 1.5f, 1, SYNTH_NOISE_STD, 0, 2),
	SHIFT("test-shift-blur-3", 2.25f, 1, SYNTH_NOISE_STD, 0, 3),
	SHIFT("test-shift-contrast-1", 0, 0.5f, SYNTH_NOISE_STD, 0, 1),
	SHIFT("test-shift-contrast-2", 0, 0.3f, SYNTH_NOISE_STD, 0, 2),
	SHIFT("test-shift-contrast-3", 0, 0.15f, SYNTH_NOISE_STD, 0, 3),
	SHIFT("test-shift-noise-1", 0, 1, 24.0f, 0, 1),
	SHIFT("test-shift-noise-2", 0, 1, 40.0f, 0, 2),
	SHIFT("test-shift-noise-3", 0, 1, 56.0f, 0, 3),
	SHIFT("test-shift-occlude-1", 0, 1, SYNTH_NOISE_STD, 0.25f, 1),
	SHIFT("test-shift-occlude-2", 0, 1, SYNTH_NOISE_STD, 0.5f, 2),
	SHIFT("test-shift-occlude-3", 0, 1, SYNTH_NOISE_STD, 0.75f, 3),
	{"test-dense", 17, SYNTH_PRIOR_THEME, 7, 9, 0, 1, SYNTH_NOISE_STD, 0, 0},
};

const char *const synth_split_names[SYNTH_SPLITS] = {
	"labeled", "unlabeled", "test", "test-counter-uniform", "test-counter-offtheme",
	"test-shift-blur-1", "test-shift-blur-2", "test-shift-blur-3",
	"test-shift-contrast-1", "test-shift-contrast-2", "test-shift-contrast-3",
	"test-shift-noise-1", "test-shift-noise-2", "test-shift-noise-3",
	"test-shift-occlude-1", "test-shift-occlude-2", "test-shift-occlude-3", "test-dense",
};

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

/* One object's (colour, shape) under the split's prior. */
static void draw_pair(nb_rng *rng, int prior, int theme, int *color, int *shape)
{
	const uint8_t *tp = NULL;
	if (prior == SYNTH_PRIOR_THEME) {
		if (nb_rng_uniform(rng) < 0.75f)
			tp = scene_theme_pairs[theme][nb_rng_below(rng, 4)];
	} else if (prior == SYNTH_PRIOR_OFF_THEME) {
		/* one of the three other themes, then one of its pairs (the
		 * themes' 16 pairs are distinct) */
		int other = (theme + 1 + (int)nb_rng_below(rng, SCENE_THEMES - 1)) % SCENE_THEMES;
		tp = scene_theme_pairs[other][nb_rng_below(rng, 4)];
	}
	if (tp) {
		*color = tp[0];
		*shape = tp[1];
	} else {
		int pair = (int)nb_rng_below(rng, SCENE_PAIRS);
		*color = pair / SCENE_SHAPES;
		*shape = pair % SCENE_SHAPES;
	}
}

void synth_scene_sample(synth_scene *sc, nb_rng *rng, int size)
{
	synth_scene_sample_split(sc, rng, size, &synth_splits[SYNTH_LABELED]);
}

void synth_scene_sample_split(synth_scene *sc, nb_rng *rng, int size, const synth_split_def *def)
{
	if (size < SYNTH_MIN_SIZE || size > SYNTH_MAX_SIZE)
		NB_BUG("synth_scene_sample: size %d out of range", size);
	if (def->min_obj < 1 || def->max_obj > SCENE_CELLS || def->min_obj > def->max_obj)
		NB_BUG("synth_scene_sample: split '%s' has %d..%d objects", def->name, def->min_obj, def->max_obj);
	const float cellw = (float)size / SCENE_COLS;

	sc->size = size;
	sc->bar = 0;
	sc->theme = (int)nb_rng_below(rng, SCENE_THEMES);
	sc->nobj = def->min_obj + (int)nb_rng_below(rng, (uint64_t)(def->max_obj - def->min_obj + 1));
	for (int c = 0; c < SCENE_CELLS; c++)
		sc->cells[c] = 0;

	int cells[SCENE_CELLS];
	pick_cells(rng, sc->nobj, cells);

	for (int i = 0; i < sc->nobj; i++) {
		synth_object *o = &sc->obj[i];
		int color, shape;
		draw_pair(rng, def->prior, sc->theme, &color, &shape);
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

/* Share of object o's pixels (centres) that the bar leaves visible. */
static float visible_share(const synth_scene *sc, const synth_object *o)
{
	int x0 = (int)floorf(o->cx - o->radius), x1 = (int)ceilf(o->cx + o->radius);
	int y0 = (int)floorf(o->cy - o->radius), y1 = (int)ceilf(o->cy + o->radius);
	int in = 0, seen = 0;
	for (int y = y0 < 0 ? 0 : y0; y < y1 && y < sc->size; y++)
		for (int x = x0 < 0 ? 0 : x0; x < x1 && x < sc->size; x++) {
			float px = (float)x + 0.5f, py = (float)y + 0.5f;
			if (!synth_inside(o, px, py))
				continue;
			in++;
			seen += !(px >= sc->bar_x0 && px < sc->bar_x1 && py >= sc->bar_y0 && py < sc->bar_y1);
		}
	return in ? (float)seen / (float)in : 0.0f;
}

/* Draws the bar; 1 when it leaves at least one object visible. */
static int place_bar(synth_scene *sc, nb_rng *rng, float t)
{
	const float size = (float)sc->size;
	int vertical = (int)nb_rng_below(rng, 2);
	float at = (size - t) * nb_rng_uniform(rng);
	sc->bar = 1;
	sc->bar_x0 = vertical ? at : 0.0f;
	sc->bar_x1 = vertical ? at + t : size;
	sc->bar_y0 = vertical ? 0.0f : at;
	sc->bar_y1 = vertical ? size : at + t;
	for (int i = 0; i < sc->nobj; i++)
		if (visible_share(sc, &sc->obj[i]) >= SYNTH_MIN_VISIBLE)
			return 1;
	return 0;
}

void synth_occlude(synth_scene *sc, nb_rng *rng, const synth_split_def *def)
{
	if (def->occlude <= 0.0f)
		return;
	const float t = def->occlude * (float)sc->size / SCENE_COLS;
	/* A bar that hides every object would leave a caption with no
	 * statement, which no shard may hold: draw it again from the bar's
	 * stream (deterministic), up to SYNTH_BAR_TRIES times, then keep the
	 * most visible object. */
	int tries = 1;
	while (!place_bar(sc, rng, t) && tries < SYNTH_BAR_TRIES)
		tries++;
	/* Hidden objects are still drawn (under the bar); only the ground
	 * truth forgets them. */
	int best = 0, kept = 0;
	float best_share = -1.0f;
	for (int i = 0; i < sc->nobj; i++) {
		float share = visible_share(sc, &sc->obj[i]);
		if (share > best_share)
			best_share = share, best = i;
		if (share < SYNTH_MIN_VISIBLE)
			sc->cells[sc->obj[i].cell] = 0;
		else
			kept++;
	}
	if (!kept)
		sc->cells[sc->obj[best].cell] = sc->obj[best].code;
}

void synth_make(uint64_t seed, int split, uint64_t index, int size, synth_scene *sc, uint8_t *rgb)
{
	if (split < 0 || split >= SYNTH_SPLITS)
		NB_BUG("synth_make: split %d", split);
	const synth_split_def *def = &synth_splits[split];
	nb_rng rng;
	nb_rng_seed(&rng, seed, (uint64_t)def->stream, index);
	synth_scene_sample_split(sc, &rng, size, def);
	if (def->occlude > 0.0f) {
		/* the bar has a stream of its own: the scene stays test's scene */
		nb_rng bar;
		nb_rng_seed(&bar, seed, (uint64_t)split, index);
		synth_occlude(sc, &bar, def);
	}
	if (rgb)
		synth_render_split(sc, &rng, rgb, def);
}
