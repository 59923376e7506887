/* Decode + resize cost per image, without the network: a 512x512 JPEG to
 * 48x48 with full-size decoding (baseline) and with libjpeg DCT scaling,
 * and a 48x48 JPEG. Median of REPS repetitions of ITERS images each.
 *
 *   build/bench/bench_ingest [ITERS [REPS]]      (defaults 200, 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus/image/image_io.h"
#include "bench/bench_util.h"
#include "test/jpeg_encode.h"

/* A smooth synthetic photo stand-in: gradients and discs compress and
 * decode like natural images, unlike noise. */
static uint8_t *make_jpeg(int size, size_t *len)
{
	uint8_t *px = malloc((size_t)size * size * 3);
	for (int y = 0; y < size; y++)
		for (int x = 0; x < size; x++) {
			uint8_t *p = px + ((size_t)y * size + x) * 3;
			int dx = x - size / 3, dy = y - size / 2;
			int in = dx * dx + dy * dy < size * size / 16;
			p[0] = (uint8_t)(in ? 230 : x * 255 / size);
			p[1] = (uint8_t)(in ? 40 : y * 255 / size);
			p[2] = (uint8_t)((x + y) * 127 / size);
		}
	uint8_t *jpg = test_jpeg_encode(px, size, size, 3, JCS_RGB, 90, len);
	free(px);
	return jpg;
}

/* Median images/s over reps for decode(+hint) + resize to 48x48. */
static double measure(const uint8_t *jpg, size_t len, int hint, int iters, int reps)
{
	double *r = malloc(sizeof(double) * (size_t)reps);
	uint8_t out[48 * 48 * 3];
	for (int k = 0; k < reps; k++) {
		double t0 = bench_now();
		for (int i = 0; i < iters; i++) {
			nb_image im;
			if (image_decode_hint(jpg, len, 100000000, hint, hint, &im) != IMG_OK) {
				fprintf(stderr, "bench_ingest: decode failed\n");
				exit(1);
			}
			image_resize(&im, 48, 48, RESIZE_CENTER_CROP, out);
			image_free(&im);
		}
		r[k] = iters / (bench_now() - t0);
	}
	bench_sort(r, reps);
	double med = r[reps / 2];
	free(r);
	return med;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 200;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	if (iters < 1 || reps < 1) {
		fprintf(stderr, "usage: bench_ingest [ITERS [REPS]]\n");
		return 2;
	}
	size_t l512, l48;
	uint8_t *j512 = make_jpeg(512, &l512), *j48 = make_jpeg(48, &l48);
	double full = measure(j512, l512, 0, iters, reps);
	double scaled = measure(j512, l512, 48, iters, reps);
	double small = measure(j48, l48, 48, iters * 5, reps);
	printf("512x512 jpeg -> 48, full decode:  %8.1f images/s (baseline)\n", full);
	printf("512x512 jpeg -> 48, DCT scaling:  %8.1f images/s (%.2fx baseline)\n", scaled, scaled / full);
	printf("48x48 jpeg -> 48:                 %8.1f images/s\n", small);
	printf("{\"bench\": \"ingest_decode\", \"iters\": %d, \"reps\": %d, \"jpeg512_full_ips\": %.1f, "
	       "\"jpeg512_dct_ips\": %.1f, \"dct_speedup\": %.2f, \"jpeg48_ips\": %.1f}\n",
	       iters, reps, full, scaled, scaled / full, small);
	free(j512);
	free(j48);
	return 0;
}
