#include "h5zstd.h" /* same folder: the plugin target has no project include path */

#include <stdlib.h>

#include <zstd.h>

static size_t zstd_decompress_chunk(size_t nbytes, size_t *buf_size, void **buf)
{
	unsigned long long want = ZSTD_getFrameContentSize(*buf, nbytes);
	/* Writers always record the size; a frame without one (or garbage) is
	 * refused rather than guessed at, so a corrupt chunk cannot overflow. */
	if (want == ZSTD_CONTENTSIZE_ERROR || want == ZSTD_CONTENTSIZE_UNKNOWN || want > H5ZSTD_MAX_CHUNK)
		return 0;
	/* Every zstd block costs at least 4 bytes (an RLE block) and yields at
	 * most 128 KiB, so a header claiming more than that is corrupt: refuse
	 * it before allocating. */
	if (want / ((unsigned long long)128 << 10) > nbytes / 3 + 1)
		return 0;
	size_t cap = want ? (size_t)want : 1;
	void *out = malloc(cap);
	if (!out)
		return 0;
	size_t got = ZSTD_decompress(out, cap, *buf, nbytes);
	if (ZSTD_isError(got) || got != want) {
		free(out);
		return 0;
	}
	free(*buf);
	*buf = out;
	*buf_size = cap;
	return got;
}

/* One frame recording its content size and a checksum of its content
 * (verified by every zstd decoder, ours included). */
static size_t zstd_compress_chunk(int level, size_t nbytes, size_t *buf_size, void **buf)
{
	size_t cap = ZSTD_compressBound(nbytes);
	void *out = malloc(cap ? cap : 1);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t got = (size_t)-1; /* a zstd error code */
	if (out && cctx && !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) &&
	    !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)))
		got = ZSTD_compress2(cctx, out, cap, *buf, nbytes);
	ZSTD_freeCCtx(cctx);
	if (!out || ZSTD_isError(got)) {
		free(out);
		return 0;
	}
	free(*buf);
	*buf = out;
	*buf_size = cap;
	return got;
}

size_t h5zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
		     size_t nbytes, size_t *buf_size, void **buf)
{
	if (!buf || !*buf || !buf_size)
		return 0;
	if (flags & H5Z_FLAG_REVERSE)
		return zstd_decompress_chunk(nbytes, buf_size, buf);
	int level = H5ZSTD_DEFAULT_LEVEL;
	if (cd_nelmts >= 1 && cd_values) {
		/* cd_values are unsigned; negative (fast) levels arrive as their
		 * two's complement, as hdf5plugin writes them. */
		level = (int)cd_values[0];
		if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
			level = H5ZSTD_DEFAULT_LEVEL;
	}
	return zstd_compress_chunk(level, nbytes, buf_size, buf);
}

const H5Z_class2_t h5zstd_class = {
	H5Z_CLASS_T_VERS,
	(H5Z_filter_t)H5ZSTD_FILTER_ID,
	1, /* encoder present */
	1, /* decoder present */
	"zstd (nboost, HDF5Plugin-Zstandard compatible)",
	NULL, /* can_apply */
	NULL, /* set_local */
	h5zstd_filter,
};
