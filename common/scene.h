/* The synthetic scene grammar (../shared/scene-grammar.md, docs/scene-grammar.md):
 * names, nominal colours and the compact ground-truth encoding shared by the
 * generator, the shard store and the metrics.
 *
 * Ground truth of one scene is 9 bytes, one per grid cell in reading order
 * (row-major: top-left, top-center, ..., bottom-right). A byte is 0 for an
 * empty cell, else scene_obj_code(size, color, shape) in 1..96. */
#ifndef NB_SCENE_H
#define NB_SCENE_H

#include <stdint.h>

enum { SCENE_SIZES = 2, SCENE_COLORS = 8, SCENE_SHAPES = 6, SCENE_ROWS = 3, SCENE_COLS = 3 };
enum { SCENE_CELLS = 9, SCENE_PAIRS = SCENE_COLORS * SCENE_SHAPES, SCENE_MAX_CODE = 96 };
enum { SCENE_MIN_OBJECTS = 2, SCENE_MAX_OBJECTS = 6, SCENE_THEMES = 4 };

extern const char *const scene_size_names[SCENE_SIZES];
extern const char *const scene_color_names[SCENE_COLORS];
extern const char *const scene_shape_names[SCENE_SHAPES];
extern const char *const scene_row_names[SCENE_ROWS];
extern const char *const scene_col_names[SCENE_COLS];
extern const uint8_t scene_color_rgb[SCENE_COLORS][3];
/* theme -> 4 (color, shape) pairs */
extern const uint8_t scene_theme_pairs[SCENE_THEMES][4][2];

static inline uint8_t scene_obj_code(int size, int color, int shape)
{
	return (uint8_t)(1 + size * SCENE_PAIRS + color * SCENE_SHAPES + shape);
}
static inline int scene_obj_size(uint8_t code) { return (code - 1) / SCENE_PAIRS; }
static inline int scene_obj_color(uint8_t code) { return ((code - 1) % SCENE_PAIRS) / SCENE_SHAPES; }
static inline int scene_obj_shape(uint8_t code) { return (code - 1) % SCENE_SHAPES; }
/* The object identity used by CHAIR: (color, shape), 0..47. */
static inline int scene_obj_pair(uint8_t code) { return ((code - 1) % SCENE_PAIRS); }

/* Index of `word` in `names[n]`, or -1. */
int scene_lookup(const char *const *names, int n, const char *word, int len);

/* Writes the ground-truth caption of `cells` into buf (NUL-terminated):
 * "small red circle top left . large blue square middle center ."
 * Returns the length, or -1 if bufsize is too small (max is under 256). */
int scene_caption(const uint8_t cells[SCENE_CELLS], char *buf, int bufsize);

#endif
