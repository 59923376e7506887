/* An in-memory JPEG encoder for test and benchmark inputs (the library
 * only decodes). Header-only so that tests and benchmarks need no extra
 * link step; they link libjpeg through nb_image. */
#ifndef NB_TEST_JPEG_ENCODE_H
#define NB_TEST_JPEG_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>

/* Encodes w x h pixels of comps bytes each, in colour space cs, at
 * quality (1..100). Returns the bytes (free with free()) and sets *len. */
static inline uint8_t *test_jpeg_encode(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE cs,
					int quality, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr err;
	c.err = jpeg_std_error(&err);
	jpeg_create_compress(&c);
	unsigned char *buf = NULL;
	unsigned long n = 0;
	jpeg_mem_dest(&c, &buf, &n);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = comps;
	c.in_color_space = cs;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * (size_t)comps);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*len = n;
	return buf;
}

#endif
