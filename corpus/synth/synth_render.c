/* The scene rasteriser. Each shape is an implicit function f(x, y) that is
 * negative inside. A pixel whose centre is more than EDGE_MARGIN away (in
 * units of f) from the boundary is wholly inside or outside; only the thin
 * band of edge pixels pays for 4x4 supersampling. EDGE_MARGIN bounds how
 * much any of the six functions can change across one pixel (the diamond's
 * |dx|+|dy| changes fastest: 0.75 over the subsample offsets). */
#include "corpus/synth/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"

#define EDGE_MARGIN 1.0f
#define SUPERSAMPLE 4

enum { CIRCLE, SQUARE, TRIANGLE, CROSS, DIAMOND, RING };

static inline float fmax2(float a, float b) { return a > b ? a : b; }
static inline float fmin2(float a, float b) { return a < b ? a : b; }

/* f < 0 inside; dx, dy relative to the centre, y down. */
static inline float shape_fn(int shape, float r, float dx, float dy)
{
	float ax = fabsf(dx), ay = fabsf(dy);
	switch (shape) {
	case CIRCLE:
		return sqrtf(dx * dx + dy * dy) - r;
	case SQUARE:
		return fmax2(ax, ay) - r;
	case TRIANGLE:
		/* apex (0, -r), base y = +r from -r to +r: half-width grows by 1/2 per pixel down */
		return fmax2(dy - r, ax - 0.5f * (dy + r));
	case CROSS: {
		float w = SYNTH_CROSS_HALF_WIDTH * r;
		return fmin2(fmax2(ax - r, ay - w), fmax2(ax - w, ay - r));
	}
	case DIAMOND:
		return ax + ay - r;
	case RING: {
		float d = sqrtf(dx * dx + dy * dy);
		return fmax2(d - r, SYNTH_RING_INNER * r - d);
	}
	default:
		NB_BUG("unknown shape %d", shape);
	}
}

int synth_inside(const synth_object *o, float x, float y)
{
	return shape_fn(scene_obj_shape(o->code), o->radius, x - o->cx, y - o->cy) <= 0.0f;
}

static inline uint8_t clip_round(float v)
{
	if (v <= 0.0f)
		return 0;
	if (v >= 255.0f)
		return 255;
	return (uint8_t)(v + 0.5f);
}

/* Gaussian noise by Marsaglia's polar method in single precision: two
 * normals per accepted pair of uniforms, no trigonometry. The background is
 * most of the rendering time, and this is several times faster than the
 * double-precision Box-Muller of nb_rng_normal. */
static void render_background(const synth_scene *sc, nb_rng *rng, uint8_t *rgb, float noise_std)
{
	size_t n = (size_t)sc->size * (size_t)sc->size * 3, i = 0;
	const float bg = sc->background;
	while (i < n) {
		uint64_t x = nb_rng_u64(rng);
		/* two 24-bit uniforms in [-1, 1), exact in float */
		float u = (float)(x & 0xFFFFFF) * 0x1p-23f - 1.0f;
		float v = (float)((x >> 40) & 0xFFFFFF) * 0x1p-23f - 1.0f;
		float s = u * u + v * v;
		if (s >= 1.0f || s == 0.0f)
			continue;
		float f = noise_std * sqrtf(-2.0f * logf(s) / s);
		rgb[i++] = clip_round(bg + u * f);
		if (i < n)
			rgb[i++] = clip_round(bg + v * f);
	}
}

static float coverage(int shape, float r, float dx, float dy)
{
	int in = 0;
	for (int sy = 0; sy < SUPERSAMPLE; sy++) {
		float oy = ((float)sy + 0.5f) / SUPERSAMPLE - 0.5f;
		for (int sx = 0; sx < SUPERSAMPLE; sx++) {
			float ox = ((float)sx + 0.5f) / SUPERSAMPLE - 0.5f;
			in += shape_fn(shape, r, dx + ox, dy + oy) <= 0.0f;
		}
	}
	return (float)in / (SUPERSAMPLE * SUPERSAMPLE);
}

static void render_object(const synth_object *o, int size, uint8_t *rgb, float contrast, float bg)
{
	uint8_t col[3];
	for (int ch = 0; ch < 3; ch++)
		col[ch] = contrast == 1.0f ? o->rgb[ch] : clip_round(bg + contrast * ((float)o->rgb[ch] - bg));
	int shape = scene_obj_shape(o->code);
	float r = o->radius;
	int x0 = (int)floorf(o->cx - r - 1.0f), x1 = (int)ceilf(o->cx + r + 1.0f);
	int y0 = (int)floorf(o->cy - r - 1.0f), y1 = (int)ceilf(o->cy + r + 1.0f);
	if (x0 < 0)
		x0 = 0;
	if (y0 < 0)
		y0 = 0;
	if (x1 > size)
		x1 = size;
	if (y1 > size)
		y1 = size;
	for (int y = y0; y < y1; y++) {
		float dy = (float)y + 0.5f - o->cy;
		for (int x = x0; x < x1; x++) {
			float dx = (float)x + 0.5f - o->cx;
			float f = shape_fn(shape, r, dx, dy);
			if (f > EDGE_MARGIN)
				continue;
			uint8_t *px = rgb + ((size_t)y * (size_t)size + (size_t)x) * 3;
			if (f < -EDGE_MARGIN) {
				px[0] = col[0];
				px[1] = col[1];
				px[2] = col[2];
				continue;
			}
			float a = coverage(shape, r, dx, dy);
			if (a <= 0.0f)
				continue;
			for (int ch = 0; ch < 3; ch++)
				px[ch] = clip_round((float)px[ch] + ((float)col[ch] - (float)px[ch]) * a);
		}
	}
}

/* Pixels whose centre is inside the bar become flat gray. */
static void render_bar(const synth_scene *sc, uint8_t *rgb)
{
	for (int y = 0; y < sc->size; y++) {
		float py = (float)y + 0.5f;
		if (py < sc->bar_y0 || py >= sc->bar_y1)
			continue;
		for (int x = 0; x < sc->size; x++) {
			float px = (float)x + 0.5f;
			if (px >= sc->bar_x0 && px < sc->bar_x1)
				memset(rgb + ((size_t)y * (size_t)sc->size + (size_t)x) * 3, SYNTH_BAR_GRAY, 3);
		}
	}
}

/* Separable Gaussian blur, kernel radius ceil(3 sigma), edges clamped. */
static void blur(uint8_t *rgb, int size, float sigma)
{
	int r = (int)ceilf(3.0f * sigma);
	float *k = nb_xmalloc((size_t)(2 * r + 1) * sizeof *k), sum = 0.0f;
	for (int i = -r; i <= r; i++)
		sum += k[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
	for (int i = 0; i <= 2 * r; i++)
		k[i] /= sum;
	size_t n = (size_t)size * (size_t)size * 3;
	float *tmp = nb_xmalloc(n * sizeof *tmp);
	for (int y = 0; y < size; y++)
		for (int x = 0; x < size; x++)
			for (int ch = 0; ch < 3; ch++) {
				float v = 0.0f;
				for (int i = -r; i <= r; i++) {
					int xx = x + i < 0 ? 0 : x + i >= size ? size - 1 : x + i;
					v += k[i + r] * (float)rgb[((size_t)y * (size_t)size + (size_t)xx) * 3 + (size_t)ch];
				}
				tmp[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)ch] = v;
			}
	for (int y = 0; y < size; y++)
		for (int x = 0; x < size; x++)
			for (int ch = 0; ch < 3; ch++) {
				float v = 0.0f;
				for (int i = -r; i <= r; i++) {
					int yy = y + i < 0 ? 0 : y + i >= size ? size - 1 : y + i;
					v += k[i + r] * tmp[((size_t)yy * (size_t)size + (size_t)x) * 3 + (size_t)ch];
				}
				rgb[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)ch] = clip_round(v);
			}
	free(tmp);
	free(k);
}

void synth_render(const synth_scene *sc, nb_rng *rng, uint8_t *rgb)
{
	synth_render_split(sc, rng, rgb, &synth_splits[SYNTH_LABELED]);
}

void synth_render_split(const synth_scene *sc, nb_rng *rng, uint8_t *rgb, const synth_split_def *def)
{
	render_background(sc, rng, rgb, def->noise);
	for (int i = 0; i < sc->nobj; i++)
		render_object(&sc->obj[i], sc->size, rgb, def->contrast, sc->background);
	if (sc->bar)
		render_bar(sc, rgb);
	if (def->blur > 0.0f)
		blur(rgb, sc->size, def->blur);
}
