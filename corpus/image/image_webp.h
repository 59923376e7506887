/* WebP decoding (libwebp), behind image_decode (corpus/image/image_io.h).
 * Private to corpus/image/ and its fuzz target. */
#ifndef NB_IMAGE_WEBP_H
#define NB_IMAGE_WEBP_H

#include <stddef.h>
#include <stdint.h>

#include "corpus/image/image_io.h"

/* "RIFF" size "WEBP". */
int image_is_webp(const uint8_t *buf, size_t len);
/* Decodes a WebP into out (8-bit RGB, alpha composited on black); src_w,
 * src_h (may be NULL) get its size. On failure the status and nb_errmsg. */
image_status image_decode_webp(const uint8_t *buf, size_t len, size_t max_pixels, nb_image *out, int *src_w,
			       int *src_h);

#endif
