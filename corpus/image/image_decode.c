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
#include "corpus/image/image_webp.h"

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

/* PNG with libpng's low-level reader, not its simplified API: in Debian's
 * libpng 1.6.39-2+deb12u4 (the CVE-2025-65018 fix, upstream 1.6.51) the
 * simplified API reads a 16-bit interlaced image to 8 bits through
 * png_image_read_direct_scaled, which copies its row buffer into every
 * output row after each png_read_row of each Adam7 pass, also the rows that
 * pass does not touch: rows are overwritten with stale ones. It also
 * composites 16-bit alpha in linear light, so an opaque pixel can come out
 * one code off. Here the transforms are explicit and exact: palette,
 * 1/2/4-bit gray and tRNS expanded, gray copied to RGB, 16-bit samples
 * scaled to 8 bits rounded (v / 257, png_set_scale_16), Adam7 undone by
 * libpng (png_set_interlace_handling), alpha composited on black in the
 * stored values (c * a / 255 rounded). Colour-space chunks (gAMA, iCCP,
 * cHRM, sRGB) are ignored: the samples are taken as sRGB, as PIL and
 * most decoders do. */
struct png_src {
	const uint8_t *buf;
	size_t len, pos;
};

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
	struct png_src *src = png_get_io_ptr(png);
	if (n > src->len - src->pos)
		png_error(png, "file ends before the image does (truncated)");
	memcpy(out, src->buf + src->pos, n);
	src->pos += n;
}

/* State that must survive libpng's longjmp lives here, not in locals. */
struct png_job {
	png_structp png;
	png_infop info;
	struct png_src src;
	uint8_t *px;               /* the image, 3 or 4 bytes a pixel */
	png_bytep *rows;
	char msg[256];
};

static void png_fail(png_structp png, png_const_charp msg)
{
	struct png_job *j = png_get_error_ptr(png);
	snprintf(j->msg, sizeof(j->msg), "%s", msg);
	png_longjmp(png, 1);
}

/* Warnings (a bad ancillary chunk, an sRGB profile libpng dislikes) leave
 * the pixels alone. */
static void png_warn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* RGBA rows, n pixels, to RGB on black in place. */
static void png_composite_black(uint8_t *px, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned a = px[i * 4 + 3];
		for (int c = 0; c < 3; c++)
			px[i * 3 + c] = (uint8_t)((px[i * 4 + c] * a + 127) / 255);
	}
}

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
	struct png_job *j = nb_xcalloc(1, sizeof(*j));
	volatile image_status st = IMG_DECODE_ERROR;
	j->src = (struct png_src){buf, len, 0};
	j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_fail, png_warn);
	j->info = j->png ? png_create_info_struct(j->png) : NULL;
	if (!j->info) {
		nb_error("cannot decode png: out of memory for libpng");
		goto done;
	}
	if (setjmp(png_jmpbuf(j->png))) {
		nb_error("cannot decode png: %s", j->msg);
		goto done;
	}
	png_set_read_fn(j->png, &j->src, png_read_mem);
	png_read_info(j->png, j->info);
	png_uint_32 w = png_get_image_width(j->png, j->info), h = png_get_image_height(j->png, j->info);
	if (w == 0 || h == 0 || (size_t)w > max_pixels / h) {
		nb_error("png of %ux%u pixels exceeds the limit of %zu pixels", w, h, max_pixels);
		st = IMG_TOO_LARGE;
		goto done;
	}
	png_set_expand(j->png);
	png_set_scale_16(j->png);
	png_set_gray_to_rgb(j->png);
	png_set_interlace_handling(j->png);
	png_read_update_info(j->png, j->info);
	int nc = png_get_channels(j->png, j->info);
	if ((nc != 3 && nc != 4) || png_get_bit_depth(j->png, j->info) != 8) {
		nb_error("cannot decode png: unexpected %d channels of %d bits after conversion", nc,
			 png_get_bit_depth(j->png, j->info));
		goto done;
	}
	size_t stride = (size_t)w * (size_t)nc;
	j->px = nb_xmalloc(stride * h);
	j->rows = nb_xmalloc(h * sizeof(png_bytep));
	for (png_uint_32 y = 0; y < h; y++)
		j->rows[y] = j->px + (size_t)y * stride;
	png_read_image(j->png, j->rows);
	png_read_end(j->png, NULL);
	if (nc == 4) {
		png_composite_black(j->px, (size_t)w * h);
		j->px = nb_xrealloc(j->px, (size_t)w * h * 3);
	}
	out->width = (int)w;
	out->height = (int)h;
	out->rgb = j->px;
	j->px = NULL;
	st = IMG_OK;
done:
	png_destroy_read_struct(j->png ? &j->png : NULL, j->info ? &j->info : NULL, NULL);
	free(j->rows);
	free(j->px);
	free(j);
	return st;
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
				int min_h, nb_image *out, int *src_w, int *src_h)
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
	if (src_w)
		*src_w = (int)w;
	if (src_h)
		*src_h = (int)h;
	st = IMG_OK;
done:
	jpeg_destroy_decompress(&j->cinfo);
	free(j->row);
	free(j->rgb);
	free(j);
	return st;
}

image_status image_decode_src(const uint8_t *buf, size_t len, size_t max_pixels, int min_w, int min_h,
			      nb_image *out, int *src_w, int *src_h)
{
	image_status st;
	if (is_png(buf, len))
		st = decode_png(buf, len, max_pixels, out);
	else if (is_jpeg(buf, len))
		return decode_jpeg(buf, len, max_pixels, min_w, min_h, out, src_w, src_h);
	else if (image_is_webp(buf, len))
		return image_decode_webp(buf, len, max_pixels, out, src_w, src_h);
	else {
		nb_error("not an image: no png, jpeg or webp signature in %zu bytes", len);
		return IMG_NOT_IMAGE;
	}
	if (st == IMG_OK && src_w)
		*src_w = out->width;
	if (st == IMG_OK && src_h)
		*src_h = out->height;
	return st;
}

image_status image_decode_hint(const uint8_t *buf, size_t len, size_t max_pixels, int min_w,
			       int min_h, nb_image *out)
{
	return image_decode_src(buf, len, max_pixels, min_w, min_h, out, NULL, NULL);
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
