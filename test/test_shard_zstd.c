/* The zstd filter function (store/h5zstd.c) on its own: round trip at
 * several levels, the frame format (one frame with its content size), and
 * corrupt input, which must fail (return 0) without touching the buffer or
 * reading or writing out of bounds (run under ASan/valgrind). */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "store/h5zstd.h"
#include "test/test_util.h"

static void *dup_bytes(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);
	memcpy(q, p, n);
	return q;
}

/* Compresses src with the filter; returns the malloc'd frame and its size. */
static void *compress(const uint8_t *src, size_t n, unsigned level, size_t *size)
{
	void *buf = dup_bytes(src, n);
	size_t cap = n;
	unsigned cd[1] = {level};
	*size = h5zstd_filter(0, 1, cd, n, &cap, &buf);
	return buf;
}

/* Runs the decompressing direction on a copy of frame[0..n); returns the
 * result size and leaves the output in *out (freed by the caller). */
static size_t decompress(const void *frame, size_t n, void **out)
{
	*out = dup_bytes(frame, n);
	size_t cap = n;
	return h5zstd_filter(H5Z_FLAG_REVERSE, 0, NULL, n, &cap, out);
}

int main(void)
{
	enum { N = 100000 };
	uint8_t *src = malloc(N);
	uint64_t s = 88172645463325252ULL;
	for (size_t i = 0; i < N; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		src[i] = (uint8_t)(i % 7 == 0 ? s : i / 100);
	}
	unsigned levels[] = {1, 3, 9, 19, 0, 1000};
	for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
		size_t zsize;
		void *frame = compress(src, N, levels[k], &zsize);
		CHECK_MSG(zsize > 0 && zsize < N, "level %u: %zu bytes", levels[k], zsize);
		CHECK(ZSTD_getFrameContentSize(frame, zsize) == N);
		CHECK(ZSTD_findFrameCompressedSize(frame, zsize) == zsize); /* exactly one frame */
		void *out;
		size_t got = decompress(frame, zsize, &out);
		CHECK(got == N && !memcmp(out, src, N));
		free(out);
		free(frame);
	}

	size_t zsize;
	uint8_t *frame = compress(src, N, 3, &zsize);
	void *out;
	/* truncated frames: every cut must fail */
	int truncated_ok = 1;
	for (size_t cut = 0; cut < zsize; cut += zsize / 37 + 1) {
		out = dup_bytes(frame, cut);
		size_t cap = cut;
		void *before = out;
		if (h5zstd_filter(H5Z_FLAG_REVERSE, 0, NULL, cut, &cap, &out) != 0 || out != before)
			truncated_ok = 0;
		free(out);
	}
	CHECK(truncated_ok);
	/* garbage */
	uint8_t junk[64];
	memset(junk, 0xAB, sizeof junk);
	CHECK(decompress(junk, sizeof junk, &out) == 0 && !memcmp(out, junk, sizeof junk));
	free(out);
	/* frames whose header claims another size: the frame content size
	 * field of a 100000-byte frame is 4 bytes (descriptor flag 2) */
	uint8_t *liar = dup_bytes(frame, zsize);
	uint8_t fhd = liar[4];
	CHECK((fhd >> 6) == 2 && (fhd & 3) == 0);
	size_t fcs_at = 5 + (((fhd >> 5) & 1) ? 0 : 1);
	uint32_t claims[] = {2 * N, N - 1, 0xFFFFFFFFu};
	for (size_t k = 0; k < 3; k++) {
		memcpy(liar, frame, zsize);
		for (int b = 0; b < 4; b++)
			liar[fcs_at + b] = (uint8_t)(claims[k] >> (8 * b));
		CHECK(ZSTD_getFrameContentSize(liar, zsize) == claims[k]);
		CHECK_MSG(decompress(liar, zsize, &out) == 0, "claim %u", claims[k]);
		free(out);
	}
	size_t hdr = fcs_at + 4;
	/* flipped payload bytes: must either fail or give N bytes, never more */
	int flips_ok = 1;
	for (size_t pos = hdr; pos < zsize; pos += zsize / 23 + 1) {
		memcpy(liar, frame, zsize);
		liar[pos] ^= 0x5A;
		size_t got = decompress(liar, zsize, &out);
		if (got != 0 && got != N)
			flips_ok = 0;
		free(out);
	}
	CHECK(flips_ok);
	/* a streamed frame without a content size is refused (unbounded output) */
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	size_t cap = ZSTD_compressBound(N);
	uint8_t *nosize = malloc(cap);
	size_t nz = ZSTD_compress2(cc, nosize, cap, src, N);
	CHECK(!ZSTD_isError(nz) && ZSTD_getFrameContentSize(nosize, nz) == ZSTD_CONTENTSIZE_UNKNOWN);
	CHECK(decompress(nosize, nz, &out) == 0);
	free(out);
	ZSTD_freeCCtx(cc);
	free(nosize);
	free(liar);
	free(frame);
	free(src);
	return test_summary("test_shard_zstd");
}
