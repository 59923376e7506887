/* The synthetic scene corpus (shared/scene-grammar.md, docs/scene-grammar.md).
 *
 * Three layers, one file each:
 *   synth_scene.c   samples a scene description from an RNG stream;
 *   synth_render.c  rasterises a description into an RGB image;
 *   synth.c         writes whole splits as image/caption shards (+ PNGs).
 *
 * Determinism: scene i of split s is drawn from its own stream
 * nb_rng_seed(seed, s, i), first the description (synth_scene_sample), then
 * the background noise (synth_render). Any scene can therefore be rebuilt on
 * its own, by any rank, in any order, with identical bytes.
 *
 * Geometry is in pixels of the output image: pixel (x, y) covers
 * [x, x+1) x [y, y+1), so its centre is (x + 0.5, y + 0.5); y grows down.
 * Nothing here keeps hidden state: every function is thread-safe on
 * distinct arguments. */
#ifndef NB_SYNTH_H
#define NB_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/nb_rng.h"
#include "common/scene.h"

/* Bumped whenever the same (seed, split, index) would render differently. */
#define SYNTH_GRAMMAR_VERSION 1
#define SYNTH_MIN_SIZE 16
#define SYNTH_MAX_SIZE 512

/* Shape proportions relative to the object radius r (documented choices). */
#define SYNTH_SMALL_RADIUS 0.20f   /* of the cell width */
#define SYNTH_LARGE_RADIUS 0.39f   /* of the cell width */
#define SYNTH_JITTER 0.10f         /* max centre offset per axis, of the cell width */
#define SYNTH_RING_INNER 0.50f     /* ring hole radius */
#define SYNTH_CROSS_HALF_WIDTH 0.35f /* half-thickness of a cross arm */
#define SYNTH_BRIGHT_MIN 0.80f
#define SYNTH_BRIGHT_MAX 1.05f
#define SYNTH_BG_MIN 30.0f
#define SYNTH_BG_MAX 90.0f
#define SYNTH_NOISE_STD 12.0f

/* The splits. The first three are the training corpus; the others are the
 * hard test splits of the hallucination study (docs/scene-grammar.md, "Hard
 * test splits"), written only when asked for (synth --hard-tests N). */
enum {
	SYNTH_LABELED = 0, SYNTH_UNLABELED = 1, SYNTH_TEST = 2,
	SYNTH_HARD_FIRST = 3,            /* test-counter-uniform */
	SYNTH_SPLITS = 18
};
extern const char *const synth_split_names[SYNTH_SPLITS]; /* "labeled", ... */

/* How the objects' (colour, shape) pairs are drawn. */
enum { SYNTH_PRIOR_THEME = 0, SYNTH_PRIOR_UNIFORM = 1, SYNTH_PRIOR_OFF_THEME = 2 };

/* What makes a split what it is. The training splits and `test` use the
 * grammar as it is: theme prior, 2..6 objects, no degradation. */
typedef struct {
	const char *name;
	int stream;          /* RNG split index of the scene descriptions: a
			      * shift split reuses `test`'s, so its scenes are
			      * test's scenes, degraded */
	int prior;           /* SYNTH_PRIOR_* */
	int min_obj, max_obj;
	float blur;          /* Gaussian blur sigma, pixels (0 = none) */
	float contrast;      /* object colour = bg + contrast * (colour - bg) (1 = grammar) */
	float noise;         /* background noise std (SYNTH_NOISE_STD = grammar) */
	float occlude;       /* gray bar thickness, in cell widths (0 = none) */
	int strength;        /* 0 for the grammar, 1..3 within a shift family */
} synth_split_def;
extern const synth_split_def synth_splits[SYNTH_SPLITS];
#define SYNTH_BAR_GRAY 128
#define SYNTH_MIN_VISIBLE 0.5f   /* an occluded object less visible than this leaves the ground truth */
#define SYNTH_BAR_TRIES 64       /* bars drawn before one leaves an object visible (then the most visible stays) */

typedef struct {
	uint8_t code;        /* scene_obj_code(size, color, shape) */
	int cell;            /* 0..8, reading order */
	float cx, cy;        /* centre, pixels */
	float radius;        /* half the extent, pixels */
	float brightness;    /* in [SYNTH_BRIGHT_MIN, SYNTH_BRIGHT_MAX] */
	uint8_t rgb[3];      /* nominal colour x brightness, rounded, clipped */
} synth_object;

typedef struct {
	int size;                       /* image is size x size */
	int theme;                      /* 0..SCENE_THEMES-1 */
	int nobj;                       /* SCENE_MIN_OBJECTS..SCENE_MAX_OBJECTS (test-dense: 7..9) */
	synth_object obj[SCENE_CELLS];  /* sorted by cell (reading order) */
	uint8_t cells[SCENE_CELLS];     /* ground truth, common/scene.h encoding */
	float background;               /* gray level in [SYNTH_BG_MIN, SYNTH_BG_MAX] */
	int bar;                        /* an occluding bar [bar_x0, bar_x1) x [bar_y0, bar_y1) */
	float bar_x0, bar_y0, bar_x1, bar_y1;
} synth_scene;

/* Draws a scene description for a size x size image (size in
 * SYNTH_MIN_SIZE..SYNTH_MAX_SIZE, else NB_BUG). Consumes rng. */
void synth_scene_sample(synth_scene *sc, nb_rng *rng, int size);
/* The same under split def's prior and object count. */
void synth_scene_sample_split(synth_scene *sc, nb_rng *rng, int size, const synth_split_def *def);

/* Places def's occluding bar with draws from rng and removes from the
 * ground truth (sc->cells) every object less than SYNTH_MIN_VISIBLE
 * visible; sc->obj keeps them, since they are drawn (under the bar). */
void synth_occlude(synth_scene *sc, nb_rng *rng, const synth_split_def *def);

/* Renders sc into rgb (size*size*3 bytes, caller's buffer), drawing the
 * background noise from rng. Objects are drawn with anti-aliased edges. */
void synth_render(const synth_scene *sc, nb_rng *rng, uint8_t *rgb);
/* The same under split def's viewing conditions: noise, contrast, the bar
 * (sc->bar), then blur. The RNG draws are those of synth_render. */
void synth_render_split(const synth_scene *sc, nb_rng *rng, uint8_t *rgb, const synth_split_def *def);

/* The stream of scene `index` of `split`, then sample + render. rgb may be
 * NULL to get the description only (the RNG is then left unused for noise). */
void synth_make(uint64_t seed, int split, uint64_t index, int size, synth_scene *sc, uint8_t *rgb);

/* Coverage of object o at point (x, y) in pixels: 1 inside, 0 outside (the
 * exact shape, no anti-aliasing). Exposed for tests. */
int synth_inside(const synth_object *o, float x, float y);

/* The id of scene `index` of `split`: unique across splits. */
static inline uint64_t synth_id(int split, uint64_t index)
{
	return ((uint64_t)split << 40) | index;
}

/* ---- corpus writing (synth.c) ---- */

typedef struct {
	const char *out;                /* output directory */
	const char *png;                /* PNG directory, or NULL */
	uint64_t count[SYNTH_SPLITS];   /* scenes per split (the hard test splits all
					 * get the same count, 0 by default) */
	uint64_t seed;
	int size;                       /* pixels */
	int shard_size;                 /* scenes per shard */
	int force;                      /* rewrite shards that already exist */
	int progress;                   /* print progress to stderr (rank 0) */
} synth_opts;

/* What one rank did, for the summary. */
typedef struct {
	uint64_t rendered[SYNTH_SPLITS];   /* scenes rendered and written */
	uint64_t skipped[SYNTH_SPLITS];    /* scenes in shards found complete */
	int shards[SYNTH_SPLITS];          /* shards written */
	int shards_skipped[SYNTH_SPLITS];
} synth_stats;

/* Whether split s has a directory: the three training splits always, the
 * hard test splits when asked for. */
int synth_split_used(const synth_opts *o, int split);

/* Shards in split s of opts. */
uint64_t synth_nshards(const synth_opts *o, int split);

/* Directory set-up, done by one rank before the others write: creates out,
 * the split directories and the PNG directories, removes temporaries left by
 * killed writers, and checks (or writes) out/corpus.json so that a rerun with
 * different parameters cannot mix two corpora (unless o->force). 0 or
 * nb_error. */
int synth_prepare(const synth_opts *o);

/* Writes shard k of every split for every k == rank (mod nranks), skipping
 * complete shards unless o->force. Each shard is rendered, written and
 * committed atomically; with o->png, its PNGs and its manifest part follow.
 * 0 or nb_error (the message names the shard). */
int synth_write_rank(const synth_opts *o, int rank, int nranks, synth_stats *st);

/* After every rank finished: concatenates the manifest parts into
 * png/manifest.tsv (atomically) and rewrites out/corpus.json marked
 * complete. bytes[s] receives the total shard bytes of split s. 0 or
 * nb_error. */
int synth_finish(const synth_opts *o, uint64_t bytes[SYNTH_SPLITS]);

#endif
