#include "common/scene.h"

#include <string.h>

const char *const scene_size_names[SCENE_SIZES] = {"small", "large"};
const char *const scene_color_names[SCENE_COLORS] = {"red", "green", "blue", "yellow",
						     "magenta", "cyan", "white", "orange"};
const char *const scene_shape_names[SCENE_SHAPES] = {"circle", "square", "triangle",
						     "cross", "diamond", "ring"};
const char *const scene_row_names[SCENE_ROWS] = {"top", "middle", "bottom"};
const char *const scene_col_names[SCENE_COLS] = {"left", "center", "right"};

const uint8_t scene_color_rgb[SCENE_COLORS][3] = {
	{220, 40, 40}, {40, 180, 60}, {50, 80, 230}, {230, 220, 40},
	{200, 50, 200}, {40, 210, 210}, {240, 240, 240}, {240, 140, 30},
};

enum { RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN, WHITE, ORANGE };
enum { CIRCLE, SQUARE, TRIANGLE, CROSS, DIAMOND, RING };

const uint8_t scene_theme_pairs[SCENE_THEMES][4][2] = {
	{{RED, CIRCLE}, {BLUE, SQUARE}, {GREEN, TRIANGLE}, {YELLOW, CROSS}},
	{{MAGENTA, DIAMOND}, {CYAN, RING}, {WHITE, CIRCLE}, {ORANGE, SQUARE}},
	{{BLUE, TRIANGLE}, {YELLOW, RING}, {RED, DIAMOND}, {CYAN, CROSS}},
	{{GREEN, CIRCLE}, {ORANGE, DIAMOND}, {WHITE, CROSS}, {MAGENTA, SQUARE}},
};

int scene_lookup(const char *const *names, int n, const char *word, int len)
{
	for (int i = 0; i < n; i++)
		if ((int)strlen(names[i]) == len && memcmp(names[i], word, (size_t)len) == 0)
			return i;
	return -1;
}

static int append(char *buf, int bufsize, int at, const char *s)
{
	int n = (int)strlen(s);
	if (at < 0 || at + n + 1 > bufsize)
		return -1;
	memcpy(buf + at, s, (size_t)n + 1);
	return at + n;
}

int scene_caption(const uint8_t cells[SCENE_CELLS], char *buf, int bufsize)
{
	int at = 0;
	if (bufsize < 1)
		return -1;
	buf[0] = '\0';
	for (int c = 0; c < SCENE_CELLS; c++) {
		uint8_t code = cells[c];
		if (!code || code > SCENE_MAX_CODE)
			continue;
		if (at > 0)
			at = append(buf, bufsize, at, " ");
		at = append(buf, bufsize, at, scene_size_names[scene_obj_size(code)]);
		at = append(buf, bufsize, at, " ");
		at = append(buf, bufsize, at, scene_color_names[scene_obj_color(code)]);
		at = append(buf, bufsize, at, " ");
		at = append(buf, bufsize, at, scene_shape_names[scene_obj_shape(code)]);
		at = append(buf, bufsize, at, " ");
		at = append(buf, bufsize, at, scene_row_names[c / SCENE_COLS]);
		at = append(buf, bufsize, at, " ");
		at = append(buf, bufsize, at, scene_col_names[c % SCENE_COLS]);
		at = append(buf, bufsize, at, " .");
	}
	return at;
}
