/* Decoding (PNG/JPEG variants, limits, corrupt data) and resizing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"
#include "jpeg_encode.h"
#include "test_util.h"

/* ---- encoders for test inputs ---- */

static uint8_t *png_encode(const void *px, int w, int h, png_uint_32 format, size_t *len)
{
	png_image im;
	memset(&im, 0, sizeof(im));
	im.version = PNG_IMAGE_VERSION;
	im.width = (png_uint_32)w;
	im.height = (png_uint_32)h;
	im.format = format;
	png_alloc_size_t n = 0;
	if (!png_image_write_to_memory(&im, NULL, &n, 0, px, 0, NULL))
		return NULL;
	uint8_t *buf = malloc(n);
	if (!png_image_write_to_memory(&im, buf, &n, 0, px, 0, NULL)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Drops gAMA/sRGB/iCCP/cHRM chunks in place, as many encoders never write
 * them; returns the new length. */
static size_t png_strip_colour_chunks(uint8_t *b, size_t len)
{
	size_t pos = 8;
	while (pos + 12 <= len) {
		size_t n = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 | (size_t)b[pos + 2] << 8 | b[pos + 3];
		const char *t = (const char *)b + pos + 4;
		if (pos + 12 + n > len)
			break;
		if (!memcmp(t, "gAMA", 4) || !memcmp(t, "sRGB", 4) || !memcmp(t, "iCCP", 4) || !memcmp(t, "cHRM", 4)) {
			memmove(b + pos, b + pos + 12 + n, len - pos - 12 - n);
			len -= 12 + n;
		} else {
			pos += 12 + n;
		}
	}
	return len;
}

static int maxdiff(const uint8_t *a, const uint8_t *b, size_t n)
{
	int m = 0;
	for (size_t i = 0; i < n; i++) {
		int d = abs((int)a[i] - (int)b[i]);
		if (d > m)
			m = d;
	}
	return m;
}

static void test_png_variants(void)
{
	enum { W = 13, H = 7 };
	uint8_t rgb[W * H * 3], rgba[W * H * 4], gray[W * H];
	uint16_t rgb16[W * H * 3];
	for (int i = 0; i < W * H; i++) {
		for (int c = 0; c < 3; c++) {
			rgb[i * 3 + c] = (uint8_t)(i * 7 + c * 50);
			rgb16[i * 3 + c] = (uint16_t)(rgb[i * 3 + c] * 257);
			rgba[i * 4 + c] = rgb[i * 3 + c];
		}
		rgba[i * 4 + 3] = (i % 2) ? 255 : 0;
		gray[i] = (uint8_t)(i * 3);
	}
	size_t len;
	nb_image im;

	uint8_t *b = png_encode(rgb, W, H, PNG_FORMAT_RGB, &len);
	CHECK(image_decode(b, len, 1000, &im) == IMG_OK);
	CHECK(im.width == W && im.height == H && maxdiff(im.rgb, rgb, sizeof(rgb)) == 0);
	image_free(&im);
	/* the pixel limit is checked on the header */
	CHECK(image_decode(b, len, W * H - 1, &im) == IMG_TOO_LARGE);
	CHECK(test_contains(nb_errmsg(), "13x7"));
	/* truncated */
	CHECK(image_decode(b, len / 2, 1000, &im) == IMG_DECODE_ERROR);
	free(b);

	b = png_encode(gray, W, H, PNG_FORMAT_GRAY, &len);
	CHECK(image_decode(b, len, 1000, &im) == IMG_OK);
	int ok = 1;
	for (int i = 0; i < W * H && im.rgb; i++)
		ok &= im.rgb[i * 3] == gray[i] && im.rgb[i * 3 + 1] == gray[i] && im.rgb[i * 3 + 2] == gray[i];
	CHECK(ok);
	image_free(&im);
	free(b);

	b = png_encode(rgba, W, H, PNG_FORMAT_RGBA, &len);
	CHECK(image_decode(b, len, 1000, &im) == IMG_OK);
	ok = 1;
	for (int i = 0; i < W * H && im.rgb; i++)
		for (int c = 0; c < 3; c++)
			ok &= im.rgb[i * 3 + c] == ((i % 2) ? rgb[i * 3 + c] : 0);
	CHECK_MSG(ok, "alpha is composited onto black");
	image_free(&im);
	free(b);

	b = png_encode(rgb16, W, H, PNG_FORMAT_RGB | PNG_FORMAT_FLAG_LINEAR, &len);
	CHECK(b != NULL);
	if (b) {
		CHECK(image_decode(b, len, 1000, &im) == IMG_OK);
		/* libpng's writer marks linear 16-bit data with gAMA 1.0; colour-space
		 * chunks are ignored (as PIL does), so v * 257 comes back as v */
		CHECK(im.width == W && im.height == H);
		CHECK_MSG(im.rgb && maxdiff(im.rgb, rgb, sizeof(rgb)) == 0, "16-bit png with gAMA: max diff %d",
			  im.rgb ? maxdiff(im.rgb, rgb, sizeof(rgb)) : -1);
		image_free(&im);
		/* the same without colour-space chunks */
		len = png_strip_colour_chunks(b, len);
		CHECK(image_decode(b, len, 1000, &im) == IMG_OK);
		CHECK_MSG(im.rgb && maxdiff(im.rgb, rgb, sizeof(rgb)) == 0, "16-bit png without gAMA: max diff %d",
			  im.rgb ? maxdiff(im.rgb, rgb, sizeof(rgb)) : -1);
		image_free(&im);
		/* the same with the last byte missing: an error, no leak */
		CHECK(image_decode(b, len - 20, 1000, &im) == IMG_DECODE_ERROR);
		free(b);
	}

	b = png_encode(rgb, W, H, PNG_FORMAT_RGB | PNG_FORMAT_FLAG_COLORMAP, &len);
	free(b);

	/* 20000x20000 header with no pixel data: refused before decoding */
	static const uint8_t bomb[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
				       0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20, 8, 2, 0, 0, 0, 0x6c, 0x12, 0xd1, 0x6e};
	CHECK_MSG(image_decode(bomb, sizeof(bomb), 40000000, &im) == IMG_TOO_LARGE, "%s", nb_errmsg());
	CHECK(test_contains(nb_errmsg(), "20000x20000"));
}

static void test_jpeg_variants(void)
{
	enum { W = 64, H = 48 };
	static uint8_t rgb[W * H * 3], gray[W * H], cmyk[W * H * 4];
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			int i = y * W + x;
			/* left half red, right half blue: flat areas survive JPEG */
			rgb[i * 3 + 0] = x < W / 2 ? 220 : 10;
			rgb[i * 3 + 1] = 20;
			rgb[i * 3 + 2] = x < W / 2 ? 10 : 230;
			gray[i] = (uint8_t)(x < W / 2 ? 40 : 200);
			/* Adobe-style (inverted) CMYK: stored value = 255 - ink.
			 * left: pure red (no cyan, full magenta+yellow); right: white */
			cmyk[i * 4 + 0] = 255;
			cmyk[i * 4 + 1] = x < W / 2 ? 0 : 255;
			cmyk[i * 4 + 2] = x < W / 2 ? 0 : 255;
			cmyk[i * 4 + 3] = 255;
		}
	size_t len;
	nb_image im;
	uint8_t *b = test_jpeg_encode(rgb, W, H, 3, JCS_RGB, 95, &len);
	CHECK(image_decode(b, len, 100000, &im) == IMG_OK);
	CHECK(im.width == W && im.height == H);
	if (im.rgb) {
		const uint8_t *p = im.rgb + (10 * W + 8) * 3, *q = im.rgb + (10 * W + 56) * 3;
		CHECK(abs(p[0] - 220) < 8 && abs(p[2] - 10) < 8 && abs(q[2] - 230) < 8);
	}
	image_free(&im);
	CHECK(image_decode(b, len, W * H - 1, &im) == IMG_TOO_LARGE);
	/* truncated mid-scan: refused, not padded with grey */
	CHECK(image_decode(b, len * 2 / 3, 100000, &im) == IMG_DECODE_ERROR);
	CHECK(test_contains(nb_errmsg(), "jpeg"));
	/* corrupt: precision byte of SOF0 set to 3 */
	uint8_t *bad = malloc(len);
	memcpy(bad, b, len);
	for (size_t i = 0; i + 4 < len; i++)
		if (bad[i] == 0xff && bad[i + 1] == 0xc0) {
			bad[i + 4] = 3;
			break;
		}
	CHECK(image_decode(bad, len, 100000, &im) == IMG_DECODE_ERROR);
	free(bad);
	/* DCT scaling: shrinks by the largest power of two that keeps >= hint */
	CHECK(image_decode_hint(b, len, 100000, 12, 12, &im) == IMG_OK);
	CHECK_MSG(im.width == 16 && im.height == 12, "scaled to %dx%d", im.width, im.height);
	image_free(&im);
	CHECK(image_decode_hint(b, len, 100000, 20, 20, &im) == IMG_OK);
	CHECK_MSG(im.width == 32 && im.height == 24, "scaled to %dx%d", im.width, im.height);
	image_free(&im);
	free(b);

	b = test_jpeg_encode(gray, W, H, 1, JCS_GRAYSCALE, 95, &len);
	CHECK(image_decode(b, len, 100000, &im) == IMG_OK);
	if (im.rgb) {
		const uint8_t *p = im.rgb + (10 * W + 8) * 3;
		CHECK(abs(p[0] - 40) < 4 && p[0] == p[1] && p[1] == p[2]);
	}
	image_free(&im);
	free(b);

	/* libjpeg writes an Adobe marker for CMYK, whose data is inverted */
	b = test_jpeg_encode(cmyk, W, H, 4, JCS_CMYK, 95, &len);
	CHECK(image_decode(b, len, 100000, &im) == IMG_OK);
	if (im.rgb) {
		const uint8_t *p = im.rgb + (10 * W + 8) * 3, *q = im.rgb + (10 * W + 56) * 3;
		CHECK_MSG(p[0] > 240 && p[1] < 15 && p[2] < 15, "left %d %d %d, expected red", p[0], p[1], p[2]);
		CHECK_MSG(q[0] > 240 && q[1] > 240 && q[2] > 240, "right %d %d %d, expected white", q[0], q[1], q[2]);
	}
	image_free(&im);
	free(b);

	static const uint8_t html[] = "<html><body>hi</body></html>";
	CHECK(image_decode(html, sizeof(html), 100, &im) == IMG_NOT_IMAGE);
	CHECK(image_decode(html, 0, 100, &im) == IMG_NOT_IMAGE);
	CHECK(!strcmp(image_status_name(IMG_TOO_LARGE), "too_large"));
	CHECK(!strcmp(image_status_name(IMG_DECODE_ERROR), "decode_error"));
	CHECK(!strcmp(image_status_name(IMG_NOT_IMAGE), "not_image"));
	CHECK(image_load("/nonexistent/x.png", 100, &im) == IMG_DECODE_ERROR);
	CHECK(test_contains(nb_errmsg(), "/nonexistent/x.png"));
}

/* A JPEG cut short anywhere in its scan data, with or without an EOI marker
 * put back after the cut (what a truncating proxy or a "repair" tool
 * leaves), is refused: libjpeg pads the rest with grey and only warns. So
 * is a header claiming 6000x6000 pixels over a few bytes of scan data. The
 * whole file still decodes, full size and DCT-scaled. */
static void test_jpeg_truncated(void)
{
	enum { W = 64, H = 48 };
	static uint8_t rgb[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = (uint8_t)(i * 13 ^ (i >> 5));
	size_t len;
	nb_image im;
	uint8_t *b = test_jpeg_encode(rgb, W, H, 3, JCS_RGB, 90, &len);
	CHECK(image_decode(b, len, 100000, &im) == IMG_OK);
	image_free(&im);
	CHECK(image_decode_hint(b, len, 100000, 8, 6, &im) == IMG_OK);
	image_free(&im);
	size_t sos = 0;
	for (size_t i = 0; i + 1 < len; i++)
		if (b[i] == 0xff && b[i + 1] == 0xda) {
			sos = i;
			break;
		}
	CHECK(sos > 0);
	uint8_t *cut = malloc(len + 2);
	static const int percent[] = {2, 10, 35, 60, 90, 99};
	for (size_t k = 0; k < sizeof(percent) / sizeof(percent[0]); k++) {
		/* at least the SOS segment survives: the cut is in the scan data */
		size_t n = sos + 20 + (len - sos - 24) * (size_t)percent[k] / 100;
		memcpy(cut, b, n);
		for (int eoi = 0; eoi < 2; eoi++) {
			size_t m = n;
			if (eoi) {
				cut[m++] = 0xff;
				cut[m++] = 0xd9;
			}
			for (int scaled = 0; scaled < 2; scaled++) {
				image_status st = image_decode_hint(cut, m, 100000, scaled ? 8 : 0, scaled ? 6 : 0, &im);
				CHECK_MSG(st == IMG_DECODE_ERROR, "jpeg cut at %zu of %zu bytes%s%s: %s", n, len,
					  eoi ? " + EOI" : "", scaled ? " (scaled)" : "", image_status_name(st));
				CHECK_MSG(test_contains(nb_errmsg(), "jpeg"), "message: %s", nb_errmsg());
				if (st == IMG_OK)
					image_free(&im);
			}
		}
	}
	free(cut);
	free(b);

	/* a 16x16 image whose SOF0 claims 6000x6000 (36 M pixels, under the
	 * 40 M limit): a few hundred bytes cannot hold it */
	static uint8_t small[16 * 16 * 3];
	memset(small, 90, sizeof(small));
	b = test_jpeg_encode(small, 16, 16, 3, JCS_RGB, 90, &len);
	for (size_t i = 0; i + 8 < len; i++)
		if (b[i] == 0xff && b[i + 1] == 0xc0) {
			b[i + 5] = 6000 >> 8;
			b[i + 6] = 6000 & 0xff;
			b[i + 7] = 6000 >> 8;
			b[i + 8] = 6000 & 0xff;
			break;
		}
	image_status st = image_decode(b, len, 40000000, &im);
	CHECK_MSG(st == IMG_DECODE_ERROR, "6000x6000 header over %zu bytes: %s", len, image_status_name(st));
	CHECK_MSG(test_contains(nb_errmsg(), "jpeg"), "message: %s", nb_errmsg());
	if (st == IMG_OK)
		image_free(&im);
	free(b);
}

/* image_load refuses what is not a regular file before reading it: opening
 * a FIFO for reading used to block until a writer came, i.e. forever. The
 * alarm turns such a regression into a failure instead of a hang. */
static void test_load_not_regular(void)
{
	char *dir = test_tmpdir("image_load_fifo");
	char path[4096];
	snprintf(path, sizeof(path), "%s/fifo.png", dir);
	CHECK(mkfifo(path, 0600) == 0);
	nb_image im;
	alarm(20);
	image_status st = image_load(path, 1000, &im);
	alarm(0);
	CHECK_MSG(st == IMG_DECODE_ERROR, "fifo: %s", image_status_name(st));
	CHECK_MSG(test_contains(nb_errmsg(), path) && test_contains(nb_errmsg(), "not a regular file"), "message: %s",
		  nb_errmsg());
	unlink(path);
	CHECK(image_load(dir, 1000, &im) == IMG_DECODE_ERROR);
	CHECK_MSG(test_contains(nb_errmsg(), "not a regular file"), "directory: %s", nb_errmsg());
	rmdir(dir);
	free(dir);
}

static void test_resize(void)
{
	/* 4x4 -> 2x2: exact 2x2 block means */
	uint8_t px[4 * 4 * 3];
	for (int i = 0; i < 16; i++)
		for (int c = 0; c < 3; c++)
			px[i * 3 + c] = (uint8_t)(i * 10 + c);
	nb_image in = {4, 4, px};
	uint8_t out[6 * 6 * 3];
	image_resize(&in, 2, 2, RESIZE_CENTER_CROP, out);
	/* top-left block: pixels 0,1,4,5 -> (0+10+40+50)/4 = 25 */
	CHECK(out[0] == 25 && out[1] == 26);
	CHECK(out[3 * 3] == (uint8_t)((100 + 110 + 140 + 150) / 4));
	/* identity at the same size */
	image_resize(&in, 4, 4, RESIZE_CENTER_CROP, out);
	CHECK(memcmp(out, px, sizeof(px)) == 0);
	/* 3 -> 2 along an axis: fractional coverage, weights 2/3 and 1/3 */
	uint8_t row[3 * 1 * 3] = {0, 0, 0, 90, 90, 90, 180, 180, 180};
	nb_image r3 = {3, 1, row};
	uint8_t o2[2 * 3];
	image_resize(&r3, 2, 1, RESIZE_PAD, o2);
	CHECK_MSG(o2[0] == 30 && o2[3] == 150, "%d %d", o2[0], o2[3]);
	/* center_crop of a 6x2 wide image to 2x2 keeps the middle 2x2 */
	uint8_t wide[6 * 2 * 3];
	for (int y = 0; y < 2; y++)
		for (int x = 0; x < 6; x++)
			for (int c = 0; c < 3; c++)
				wide[(y * 6 + x) * 3 + c] = (uint8_t)(x * 40);
	nb_image wi = {6, 2, wide};
	image_resize(&wi, 2, 2, RESIZE_CENTER_CROP, out);
	CHECK(out[0] == 80 && out[3] == 120 && out[6] == 80);
	/* pad letterboxes: 6x2 into 6x6 -> rows 0,1 and 4,5 black, 2,3 image */
	image_resize(&wi, 6, 6, RESIZE_PAD, out);
	CHECK(out[0] == 0 && out[(1 * 6 + 5) * 3] == 0 && out[(5 * 6 + 5) * 3] == 0);
	CHECK(out[(2 * 6 + 5) * 3] == 200 && out[(3 * 6 + 1) * 3] == 40);
	/* upscaling a constant image stays constant */
	uint8_t flat[2 * 2 * 3];
	memset(flat, 77, sizeof(flat));
	nb_image fi = {2, 2, flat};
	image_resize(&fi, 5, 5, RESIZE_CENTER_CROP, out);
	int ok = 1;
	for (int i = 0; i < 5 * 5 * 3; i++)
		ok &= out[i] == 77;
	CHECK(ok);
	CHECK(resize_mode_parse("pad") == RESIZE_PAD && resize_mode_parse("center_crop") == RESIZE_CENTER_CROP);
	CHECK(resize_mode_parse("stretch") == -1 && resize_mode_parse(NULL) == -1);
}

int main(void)
{
	test_png_variants();
	test_jpeg_variants();
	test_jpeg_truncated();
	test_load_not_regular();
	test_resize();
	return test_summary("test_image_codec");
}
