/* Image codecs and resizing for ingest, synth --png and `nboost caption`.
 * Decoding sniffs the format from the bytes (PNG signature, JPEG SOI, RIFF
 * WEBP), never
 * from a file name or Content-Type. Every decoded image is converted to 8-bit
 * RGB: grayscale, palette, 16-bit (v / 257 rounded), interlaced and alpha PNG
 * (composited on black: c * a / 255 rounded); grayscale and CMYK JPEG. A
 * damaged file (truncated, or any libjpeg warning about corrupt data) is
 * IMG_DECODE_ERROR, never a padded image.
 * The header is read first and images with more than max_pixels pixels are
 * refused before any pixel is decoded (decompression bombs). */
#ifndef NB_IMAGE_IO_H
#define NB_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int width, height;
	uint8_t *rgb;                /* width*height*3, owned: image_free() */
} nb_image;

/* Why a decode failed, in the ingest status vocabulary. */
typedef enum {
	IMG_OK = 0,
	IMG_NOT_IMAGE,               /* no PNG, JPEG or WebP signature: "not_image" */
	IMG_TOO_LARGE,               /* header says more than max_pixels: "too_large" */
	IMG_DECODE_ERROR,            /* corrupt or truncated data: "decode_error" */
} image_status;

const char *image_status_name(image_status st);

/* Decodes buf into out. On failure returns the status and leaves an
 * explanation in nb_errmsg(); out is untouched. */
image_status image_decode(const uint8_t *buf, size_t len, size_t max_pixels, nb_image *out);
/* As image_decode, for a caller that will shrink the image to at least
 * min_w x min_h: JPEGs are then decoded with libjpeg's DCT scaling by the
 * largest power of two (up to 8) that keeps both sides >= the minimum, which
 * is several times faster. The pixel limit applies to the full header size.
 * min_w/min_h <= 0 means full size. */
image_status image_decode_hint(const uint8_t *buf, size_t len, size_t max_pixels, int min_w,
			       int min_h, nb_image *out);
/* As image_decode_hint; also gives the image's own size (the header's,
 * before any DCT scaling) in *src_w, *src_h when they are not NULL. */
image_status image_decode_src(const uint8_t *buf, size_t len, size_t max_pixels, int min_w, int min_h,
			      nb_image *out, int *src_w, int *src_h);
/* Reads a whole file and decodes it; errors name the file. */
image_status image_load(const char *path, size_t max_pixels, nb_image *out);
void image_free(nb_image *img);

typedef enum { RESIZE_CENTER_CROP = 0, RESIZE_PAD = 1 } resize_mode;
/* Parses "center_crop" | "pad"; -1 if unknown. */
int resize_mode_parse(const char *s);
/* Resizes in to out_w x out_h RGB (caller's buffer). Downscaling averages
 * areas (exact box filter); upscaling is bilinear. center_crop takes the
 * largest centred square-aspect region; pad letterboxes on black. */
void image_resize(const nb_image *in, int out_w, int out_h, resize_mode mode, uint8_t *out);

/* Encodes RGB to a PNG file (atomically: temp + rename). 0 or nb_error. */
int image_write_png(const char *path, const uint8_t *rgb, int width, int height);

#endif
