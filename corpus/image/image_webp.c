/* WebP decoding to 8-bit RGB with Debian's libwebp: lossy and lossless,
 * alpha composited on black as for PNG (c * a / 255 rounded). The pixel
 * limit is checked on the header (WebPGetFeatures) before any pixel is
 * decoded; a truncated or corrupt bitstream is IMG_DECODE_ERROR naming
 * libwebp's cause. Animated WebP is refused (only its frames would be
 * decodable, with libwebpdemux). */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>

#include "common/nb_error.h"
#include "corpus/image/image_webp.h"

int image_is_webp(const uint8_t *buf, size_t len)
{
	return len >= 12 && !memcmp(buf, "RIFF", 4) && !memcmp(buf + 8, "WEBP", 4);
}

static const char *webp_cause(VP8StatusCode st)
{
	switch (st) {
	case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
	case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
	case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
	case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
	case VP8_STATUS_SUSPENDED: return "decoding suspended";
	case VP8_STATUS_USER_ABORT: return "decoding aborted";
	case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
	default: return "unknown error";
	}
}

image_status image_decode_webp(const uint8_t *buf, size_t len, size_t max_pixels, nb_image *out, int *src_w,
			       int *src_h)
{
	WebPDecoderConfig cfg;
	if (!WebPInitDecoderConfig(&cfg)) {
		nb_error("cannot decode webp: libwebp version mismatch");
		return IMG_DECODE_ERROR;
	}
	VP8StatusCode st = WebPGetFeatures(buf, len, &cfg.input);
	if (st != VP8_STATUS_OK) {
		nb_error("cannot decode webp: %s in the header (%zu bytes)", webp_cause(st), len);
		return IMG_DECODE_ERROR;
	}
	int w = cfg.input.width, h = cfg.input.height;
	if (w <= 0 || h <= 0 || (size_t)w > max_pixels / (size_t)h) {
		nb_error("webp of %dx%d pixels exceeds the limit of %zu pixels", w, h, max_pixels);
		return IMG_TOO_LARGE;
	}
	if (cfg.input.has_animation) {
		nb_error("cannot decode webp: animated webp is not supported");
		return IMG_DECODE_ERROR;
	}
	int alpha = cfg.input.has_alpha;
	cfg.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
	st = WebPDecode(buf, len, &cfg);
	if (st != VP8_STATUS_OK) {
		WebPFreeDecBuffer(&cfg.output);
		nb_error("cannot decode webp: %s (%dx%d, %zu bytes)", webp_cause(st), w, h, len);
		return IMG_DECODE_ERROR;
	}
	const WebPRGBABuffer *b = &cfg.output.u.RGBA;
	uint8_t *rgb = nb_xmalloc((size_t)w * (size_t)h * 3);
	for (int y = 0; y < h; y++) {
		const uint8_t *src = b->rgba + (size_t)y * (size_t)b->stride;
		uint8_t *dst = rgb + (size_t)y * (size_t)w * 3;
		if (!alpha) {
			memcpy(dst, src, (size_t)w * 3);
			continue;
		}
		for (int x = 0; x < w; x++) {
			unsigned a = src[4 * x + 3];
			for (int c = 0; c < 3; c++)
				dst[3 * x + c] = (uint8_t)((src[4 * x + c] * a + 127) / 255);
		}
	}
	WebPFreeDecBuffer(&cfg.output);
	out->width = w;
	out->height = h;
	out->rgb = rgb;
	if (src_w)
		*src_w = w;
	if (src_h)
		*src_h = h;
	return IMG_OK;
}
