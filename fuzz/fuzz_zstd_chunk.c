/* Fuzz target: the zstd filter's decode path, which reads chunk bytes straight
 * from shard files. Any input must give either a bounded, correct-length
 * output or a clean failure (0), never a crash or an overflow. A successful
 * decode is also re-encoded and decoded again to check the round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/h5zstd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	void *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	size_t buf_size = size;
	size_t n = h5zstd_filter(H5Z_FLAG_REVERSE, 0, NULL, size, &buf_size, &buf);
	if (n > 0) {
		if (n > buf_size)
			abort();
		/* Round trip what came out. */
		void *copy = malloc(n);
		if (!copy) {
			free(buf);
			return 0;
		}
		memcpy(copy, buf, n);
		unsigned level = 1;
		size_t bs = buf_size;
		size_t c = h5zstd_filter(0, 1, &level, n, &bs, &buf);
		if (c == 0)
			abort();
		size_t d = h5zstd_filter(H5Z_FLAG_REVERSE, 1, &level, c, &bs, &buf);
		if (d != n || memcmp(buf, copy, n) != 0)
			abort();
		free(copy);
	}
	free(buf);
	return 0;
}
