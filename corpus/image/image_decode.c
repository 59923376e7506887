/* PNG and JPEG decoding to 8-bit RGB, with the pixel limit checked on the
 * header before any pixel data is touched. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jpeglib.h needs stdio.h and stddef types declared before it. */
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"

const char *image_status_name(image_status st)
{
	switch (st) {
	case IMG_OK: return "ok";
	case IMG_NOT_IMAGE: return "not_image";
	case IMG_TOO_LARGE: return "too_large";
	case IMG_DECODE_ERROR: return "decode_error";
	}
	return "decode_error";
}

static int is_png(const uint8_t *buf, size_t len)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	return len >= 8 && memcmp(buf, sig, 8) == 0;
}

static int is_jpeg(const uint8_t *buf, size_t len)
{
	return len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* libpng's simplified reader takes a 16-bit file without colour-space chunks
 * for linear light and gamma-encodes it (code 100 reads back as 167), while
 * browsers and PIL treat such files as sRGB like any other. For that case
 * the bytes are copied with an sRGB chunk inserted after IHDR; NULL when
 * the file needs no change (8-bit, or gAMA/sRGB/iCCP present). */
static uint8_t *png_assume_srgb(const uint8_t *buf, size_t len, size_t *out_len)
{
	/* length 1, "sRGB", rendering intent 0, CRC-32 of "sRGB\0" */
	static const uint8_t srgb[13] = {0, 0, 0, 1, 's', 'R', 'G', 'B', 0, 0xae, 0xce, 0x1c, 0xe9};
	if (len < 33 || memcmp(buf + 12, "IHDR", 4) != 0 || be32(buf + 8) != 13 || buf[24] != 16)
		return NULL;
	for (size_t pos = 8; pos + 8 <= len;) {
		uint32_t n = be32(buf + pos);
		const uint8_t *type = buf + pos + 4;
		if (!memcmp(type, "IDAT", 4))
			break;
		if (!memcmp(type, "gAMA", 4) || !memcmp(type, "sRGB", 4) || !memcmp(type, "iCCP", 4))
			return NULL;
		if (n > len - pos - 8 || len - pos - 8 - n < 4)
			break;
		pos += 12 + (size_t)n;
	}
	uint8_t *b = nb_xmalloc(len + sizeof(srgb));
	memcpy(b, buf, 33);
	memcpy(b + 33, srgb, sizeof(srgb));
	memcpy(b + 33 + sizeof(srgb), buf + 33, len - 33);
	*out_len = len + sizeof(srgb);
	return b;
}

/* The simplified libpng API does its own setjmp handling and frees its state
 * on every error path, and converts palette, gray, 16-bit and alpha for us. */
static image_status decode_png(const uint8_t *buf, size_t len, size_t max_pixels, nb_image *out)
{
	/* IHDR must be the first chunk; checking it here refuses a bomb even
	 * when the rest of the file is missing or garbage. */
	if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
		uint32_t w = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 | buf[19];
		uint32_t h = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 | buf[23];
		if (w && h && (size_t)w > max_pixels / h) {
			nb_error("png of %ux%u pixels exceeds the limit of %zu pixels", w, h, max_pixels);
			return IMG_TOO_LARGE;
		}
	}
	size_t fixed_len = 0;
	uint8_t *fixed = png_assume_srgb(buf, len, &fixed_len);
	png_image im;
	memset(&im, 0, sizeof(im));
	im.version = PNG_IMAGE_VERSION;
	/* libpng reads from this buffer until png_image_finish_read returns. */
	if (!png_image_begin_read_from_memory(&im, fixed ? fixed : buf, fixed ? fixed_len : len)) {
		nb_error("cannot decode png: %s", im.message);
		png_image_free(&im);
		free(fixed);
		return IMG_DECODE_ERROR;
	}
	if (im.width == 0 || im.height == 0 || (size_t)im.width > max_pixels / im.height) {
		nb_error("png of %ux%u pixels exceeds the limit of %zu pixels", im.width, im.height,
			 max_pixels);
		png_image_free(&im);
		free(fixed);
		return IMG_TOO_LARGE;
	}
	im.format = PNG_FORMAT_RGB;
	size_t n = (size_t)im.width * im.height * 3;
	uint8_t *rgb = nb_xmalloc(n);
	/* Transparent pixels are composited onto black, like pad's letterbox. */
	png_color black = {0, 0, 0};
	int done = png_image_finish_read(&im, &black, rgb, 0, NULL);
	free(fixed);
	if (!done) {
		nb_error("cannot decode png: %s", im.message);
		png_image_free(&im);
		free(rgb);
		return IMG_DECODE_ERROR;
	}
	out->width = (int)im.width;
	out->height = (int)im.height;
	out->rgb = rgb;
	return IMG_OK;
}

struct jpeg_err {
	struct jpeg_error_mgr mgr;
	jmp_buf jmp;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail(j_common_ptr c)
{
	struct jpeg_err *e = (struct jpeg_err *)c->err;
	c->err->format_message(c, e->msg);
	longjmp(e->jmp, 1);
}

/* libjpeg only warns (level -1) about damaged data and carries on: a stream
 * that ends early is padded with grey ("Premature end of JPEG file"), one
 * cut and closed with an EOI marker, or whose header claims more pixels
 * than its scan holds, leaves grey too ("Corrupt JPEG data: premature end
 * of data segment"), and bad Huffman codes, lost restart markers and bytes
 * between markers are "Corrupt JPEG data" too. Any of them is a failed
 * decode, raised at once so that a huge grey image is not decoded first.
 * The one harmless warning, an unknown JFIF revision, is ignored, as are
 * trace messages (level >= 0). */
static void jpeg_message(j_common_ptr c, int level)
{
	if (level < 0 && c->err->msg_code != JWRN_JFIF_MAJOR)
		jpeg_fail(c);
}

/* State that must survive the longjmp lives here, not in locals. */
struct jpeg_job {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_err err;
	uint8_t *row;
	uint8_t *rgb;
};

static int jpeg_scale_denom(int w, int h, int min_w, int min_h)
{
	int d = 1;
	if (min_w <= 0 || min_h <= 0)
		return 1;
	/* Largest power-of-two reduction that still leaves at least the target
	 * size, so the following box filter only ever downsamples. */
	while (d < 8 && (w / (d * 2)) >= min_w && (h / (d * 2)) >= min_h)
		d *= 2;
	return d;
}

static image_status decode_jpeg(const uint8_t *buf, size_t len, size_t max_pixels, int min_w,
				int min_h, nb_image *out)
{
	struct jpeg_job *j = nb_xcalloc(1, sizeof(*j));
	volatile image_status st = IMG_DECODE_ERROR;
	j->cinfo.err = jpeg_std_error(&j->err.mgr);
	j->err.mgr.error_exit = jpeg_fail;
	j->err.mgr.emit_message = jpeg_message;
	if (setjmp(j->err.jmp)) {
		nb_error("cannot decode jpeg: %s", j->err.msg);
		goto done;
	}
	jpeg_create_decompress(&j->cinfo);
	jpeg_mem_src(&j->cinfo, buf, (unsigned long)len);
	jpeg_read_header(&j->cinfo, TRUE);
	unsigned w = j->cinfo.image_width, h = j->cinfo.image_height;
	if (w == 0 || h == 0 || (size_t)w > max_pixels / h) {
		nb_error("jpeg of %ux%u pixels exceeds the limit of %zu pixels", w, h, max_pixels);
		st = IMG_TOO_LARGE;
		goto done;
	}
	int cmyk = j->cinfo.jpeg_color_space == JCS_CMYK || j->cinfo.jpeg_color_space == JCS_YCCK;
	j->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	j->cinfo.scale_num = 1;
	j->cinfo.scale_denom = (unsigned)jpeg_scale_denom((int)w, (int)h, min_w, min_h);
	jpeg_start_decompress(&j->cinfo);
	int ow = (int)j->cinfo.output_width, oh = (int)j->cinfo.output_height;
	int nc = j->cinfo.output_components;
	if ((cmyk && nc != 4) || (!cmyk && nc != 3)) {
		nb_error("cannot decode jpeg: unexpected %d output components", nc);
		goto done;
	}
	j->row = nb_xmalloc((size_t)ow * (size_t)nc);
	j->rgb = nb_xmalloc((size_t)ow * (size_t)oh * 3);
	/* Adobe writes CMYK inverted (0 = full ink) and marks it with its APP14
	 * marker; plain CMYK is stored the other way round. */
	int inverted = j->cinfo.saw_Adobe_marker;
	while (j->cinfo.output_scanline < (unsigned)oh) {
		uint8_t *dst = j->rgb + (size_t)j->cinfo.output_scanline * (size_t)ow * 3;
		JSAMPROW rows[1] = {cmyk ? j->row : dst};
		jpeg_read_scanlines(&j->cinfo, rows, 1);
		if (!cmyk)
			continue;
		for (int x = 0; x < ow; x++) {
			const uint8_t *p = j->row + (size_t)x * 4;
			unsigned c = p[0], m = p[1], y = p[2], k = p[3];
			if (!inverted) {
				c = 255 - c;
				m = 255 - m;
				y = 255 - y;
				k = 255 - k;
			}
			dst[x * 3 + 0] = (uint8_t)((c * k + 127) / 255);
			dst[x * 3 + 1] = (uint8_t)((m * k + 127) / 255);
			dst[x * 3 + 2] = (uint8_t)((y * k + 127) / 255);
		}
	}
	jpeg_finish_decompress(&j->cinfo);
	out->width = ow;
	out->height = oh;
	out->rgb = j->rgb;
	j->rgb = NULL;
	st = IMG_OK;
done:
	jpeg_destroy_decompress(&j->cinfo);
	free(j->row);
	free(j->rgb);
	free(j);
	return st;
}

image_status image_decode_hint(const uint8_t *buf, size_t len, size_t max_pixels, int min_w,
			       int min_h, nb_image *out)
{
	if (is_png(buf, len))
		return decode_png(buf, len, max_pixels, out);
	if (is_jpeg(buf, len))
		return decode_jpeg(buf, len, max_pixels, min_w, min_h, out);
	nb_error("not an image: no png or jpeg signature in %zu bytes", len);
	return IMG_NOT_IMAGE;
}

image_status image_decode(const uint8_t *buf, size_t len, size_t max_pixels, nb_image *out)
{
	return image_decode_hint(buf, len, max_pixels, 0, 0, out);
}

void image_free(nb_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	img->rgb = NULL;
	img->width = img->height = 0;
}
