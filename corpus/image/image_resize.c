/* Separable resizing: an exact box filter (area average, fractional pixel
 * coverage) when shrinking an axis, bilinear when enlarging it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"

int resize_mode_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "center_crop") == 0)
		return RESIZE_CENTER_CROP;
	if (strcmp(s, "pad") == 0)
		return RESIZE_PAD;
	return -1;
}

/* For each destination pixel along one axis: the first source index, how
 * many follow, and where its weights start in w[]. */
typedef struct {
	int *first, *count, *at;
	float *w;
} axis_map;

static void axis_free(axis_map *m)
{
	free(m->first);
	free(m->count);
	free(m->at);
	free(m->w);
}

/* Maps the source interval [off, off+len) (pixel units, may be fractional)
 * of an axis with n pixels onto dst pixels. */
static void axis_build(double off, double len, int n, int dst, axis_map *m)
{
	m->first = nb_xmalloc(sizeof(int) * (size_t)dst);
	m->count = nb_xmalloc(sizeof(int) * (size_t)dst);
	m->at = nb_xmalloc(sizeof(int) * (size_t)dst);
	double scale = len / dst;
	size_t cap = (size_t)dst * ((size_t)ceil(scale) + 2);
	m->w = nb_xmalloc(sizeof(float) * cap);
	size_t k = 0;
	for (int i = 0; i < dst; i++) {
		m->at[i] = (int)k;
		if (scale >= 1.0) {
			double a = off + i * scale, b = a + scale;
			int j0 = (int)floor(a), j1 = (int)ceil(b);
			if (j0 < 0)
				j0 = 0;
			if (j1 > n)
				j1 = n;
			m->first[i] = j0;
			double total = 0;
			int start = (int)k;
			for (int j = j0; j < j1; j++) {
				double lo = j > a ? j : a, hi = j + 1 < b ? j + 1 : b;
				double cov = hi - lo;
				m->w[k++] = (float)(cov > 0 ? cov : 0);
				total += cov > 0 ? cov : 0;
			}
			m->count[i] = (int)k - start;
			for (int q = start; q < (int)k && total > 0; q++)
				m->w[q] = (float)(m->w[q] / total);
		} else {
			double c = off + (i + 0.5) * scale - 0.5;
			int j0 = (int)floor(c);
			double f = c - j0;
			int a = j0 < 0 ? 0 : (j0 >= n ? n - 1 : j0);
			int b = j0 + 1 < 0 ? 0 : (j0 + 1 >= n ? n - 1 : j0 + 1);
			if (a == b) {
				m->first[i] = a;
				m->count[i] = 1;
				m->w[k++] = 1.0f;
			} else {
				m->first[i] = a;
				m->count[i] = 2;
				m->w[k++] = (float)(1 - f);
				m->w[k++] = (float)f;
			}
		}
	}
}

/* Resizes the source rectangle into a dw x dh box at (dx, dy) of an output
 * image out_w pixels wide. */
static void resize_region(const nb_image *in, double sx, double sw, double sy, double sh,
			  uint8_t *out, int out_w, int dx, int dy, int dw, int dh)
{
	axis_map mx, my;
	axis_build(sx, sw, in->width, dw, &mx);
	axis_build(sy, sh, in->height, dh, &my);
	int r0 = my.first[0];
	int r1 = my.first[dh - 1] + my.count[dh - 1];
	float *tmp = nb_xmalloc(sizeof(float) * (size_t)(r1 - r0) * (size_t)dw * 3);
	for (int r = r0; r < r1; r++) {
		const uint8_t *src = in->rgb + (size_t)r * (size_t)in->width * 3;
		float *t = tmp + (size_t)(r - r0) * (size_t)dw * 3;
		for (int i = 0; i < dw; i++) {
			float acc0 = 0, acc1 = 0, acc2 = 0;
			const float *w = mx.w + mx.at[i];
			const uint8_t *p = src + (size_t)mx.first[i] * 3;
			for (int q = 0; q < mx.count[i]; q++, p += 3) {
				acc0 += w[q] * p[0];
				acc1 += w[q] * p[1];
				acc2 += w[q] * p[2];
			}
			t[i * 3 + 0] = acc0;
			t[i * 3 + 1] = acc1;
			t[i * 3 + 2] = acc2;
		}
	}
	for (int y = 0; y < dh; y++) {
		uint8_t *dst = out + ((size_t)(dy + y) * (size_t)out_w + (size_t)dx) * 3;
		const float *w = my.w + my.at[y];
		for (int x = 0; x < dw * 3; x++) {
			float acc = 0;
			const float *t = tmp + (size_t)(my.first[y] - r0) * (size_t)dw * 3 + x;
			for (int q = 0; q < my.count[y]; q++, t += (size_t)dw * 3)
				acc += w[q] * *t;
			int v = (int)(acc + 0.5f);
			dst[x] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
		}
	}
	free(tmp);
	axis_free(&mx);
	axis_free(&my);
}

void image_resize(const nb_image *in, int out_w, int out_h, resize_mode mode, uint8_t *out)
{
	if (out_w <= 0 || out_h <= 0 || in->width <= 0 || in->height <= 0)
		NB_BUG("image_resize: bad sizes %dx%d -> %dx%d", in->width, in->height, out_w, out_h);
	double iw = in->width, ih = in->height;
	if (mode == RESIZE_PAD) {
		double s = fmin(out_w / iw, out_h / ih);
		int dw = (int)lround(iw * s), dh = (int)lround(ih * s);
		dw = dw < 1 ? 1 : (dw > out_w ? out_w : dw);
		dh = dh < 1 ? 1 : (dh > out_h ? out_h : dh);
		memset(out, 0, (size_t)out_w * (size_t)out_h * 3);
		resize_region(in, 0, iw, 0, ih, out, out_w, (out_w - dw) / 2, (out_h - dh) / 2, dw, dh);
		return;
	}
	/* Largest centred region with the output's aspect ratio. */
	double sw = iw, sh = ih;
	if (iw * out_h > ih * out_w)
		sw = ih * out_w / out_h;
	else
		sh = iw * out_h / out_w;
	resize_region(in, (iw - sw) / 2, sw, (ih - sh) / 2, sh, out, out_w, 0, 0, out_w, out_h);
}
