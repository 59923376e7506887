/* libFuzzer target: PNG/JPEG decoding (full and DCT-scaled) and resizing of
 * whatever decodes. Must never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "corpus/image/image_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nb_image im;
	/* A small pixel limit keeps each run fast; bombs are refused early. */
	if (image_decode(data, size, 1 << 20, &im) == IMG_OK) {
		uint8_t out[12 * 12 * 3];
		image_resize(&im, 12, 12, RESIZE_CENTER_CROP, out);
		image_resize(&im, 12, 7, RESIZE_PAD, out);
		image_free(&im);
	}
	if (image_decode_hint(data, size, 1 << 20, 5, 5, &im) == IMG_OK)
		image_free(&im);
	return 0;
}
