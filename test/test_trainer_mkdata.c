/* Test data for the trainer: writes a caption shard of random scenes, with
 * their grammar captions and simple images (a gray background with one bright
 * square per object cell, so a model can learn something), through the shard
 * store API. Not a test itself; the train_*.sh scripts call it.
 *
 *   test_trainer_mkdata OUT.h5 N [--size S] [--seed X] [--first-id I] [--image-shard] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "store/shard_store.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_trainer_mkdata OUT.h5 N [--size S] [--seed X] [--first-id I] "
				"[--image-shard]\n");
		return 2;
	}
	const char *out = argv[1];
	long n = atol(argv[2]);
	int size = 16, images_only = 0;
	unsigned long long seed = 1, first = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--first-id") && i + 1 < argc)
			first = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--image-shard"))
			images_only = 1;
		else {
			fprintf(stderr, "test_trainer_mkdata: bad argument '%s'\n", argv[i]);
			return 2;
		}
	}
	shard_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.kind = images_only ? SHARD_IMAGES : SHARD_CAPTIONS;
	meta.height = meta.width = size;
	meta.has_objects = 1;
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());
	shard_writer *w = shard_create(out, &meta);
	if (!w)
		nb_die("%s", nb_errmsg());
	uint8_t *img = malloc((size_t)size * size * 3);
	for (long k = 0; k < n; k++) {
		nb_rng r;
		nb_rng_seed(&r, seed, 77, (uint64_t)k);
		uint8_t cells[SCENE_CELLS] = {0};
		int nobj = 2 + (int)nb_rng_below(&r, 3);
		for (int o = 0; o < nobj; o++) {
			int c = (int)nb_rng_below(&r, SCENE_CELLS);
			cells[c] = scene_obj_code((int)nb_rng_below(&r, 2), (int)nb_rng_below(&r, SCENE_COLORS),
						  (int)nb_rng_below(&r, SCENE_SHAPES));
		}
		for (int p = 0; p < size * size * 3; p++)
			img[p] = (uint8_t)(40 + nb_rng_below(&r, 20));
		int cw = size / 3;
		for (int c = 0; c < SCENE_CELLS; c++) {
			if (!cells[c])
				continue;
			const uint8_t *rgb = scene_color_rgb[scene_obj_color(cells[c])];
			int half = scene_obj_size(cells[c]) ? cw / 2 : cw / 4;
			int cx = (c % 3) * cw + cw / 2, cy = (c / 3) * cw + cw / 2;
			for (int y = cy - half; y < cy + half; y++)
				for (int x = cx - half; x < cx + half; x++)
					if (x >= 0 && y >= 0 && x < size && y < size)
						memcpy(img + ((size_t)y * size + x) * 3, rgb, 3);
		}
		char text[512];
		scene_caption(cells, text, sizeof text);
		uint16_t tok[SHARD_MAX_TOKENS];
		int nt = vocab_encode(text, tok, SHARD_MAX_TOKENS);
		shard_sample s = {.id = first + (uint64_t)k, .image = img, .source = "", .tokens = tok,
				  .ntokens = nt > SHARD_MAX_TOKENS ? SHARD_MAX_TOKENS : nt, .score = 1.0f,
				  .objects = cells};
		if (shard_append(w, &s) < 0)
			nb_die("%s", nb_errmsg());
	}
	free(img);
	if (shard_commit(w) < 0)
		nb_die("%s", nb_errmsg());
	return 0;
}
