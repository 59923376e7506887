/* `nboost caption`: one "path<TAB>caption" line per good image, in order,
 * equal to decode_greedy's clean caption of the center-cropped image; an
 * error line naming a bad file, the others still captioned, exit 1; --help
 * exits 0, bad options exit 2. Needs the nboost binary ($NBOOST). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "model/decode.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "corpus/image/image_io.h"
#include "test/test_util.h"

/* Runs cmd, captures stdout into out; returns the exit status. */
static int run(const char *cmd, char *out, size_t n)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t got = fread(out, 1, n - 1, p);
	out[got] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
	const char *nboost = getenv("NBOOST");
	if (!nboost || !*nboost) {
		printf("test_model_caption: SKIP: NBOOST is not set (run through ctest)\n");
		return 77;
	}
	char *dir = test_tmpdir("caption");
	vlm_config cfg = {
		.image_size = 16, .patch = 8, .enc_dim = 16, .enc_layers = 1, .enc_heads = 2,
		.dec_dim = 32, .dec_layers = 1, .dec_heads = 2, .mlp_ratio = 2, .vocab = VOCAB_SIZE, .max_text = 9,
	};
	vlm_model *m = vlm_create(&cfg, 2);
	vlm_init(m, 9);
	nb_rng r;
	nb_rng_seed(&r, 4, 0, 0);
	for (size_t j = 0; j < vlm_nparams(m); j++)
		vlm_params(m)[j] += 0.5f * nb_rng_normal(&r);
	char ckpt[1024], a[1024], b[1024], bad[1024], cmd[16384], out[8192];
	snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
	ckpt_save_info info = {0};
	CHECK_MSG(ckpt_save(ckpt, m, &info) == 0, "%s", nb_errmsg());
	/* a 16x16 image (as the model sees it) and a 32x24 one that is center-cropped */
	uint8_t img_a[16 * 16 * 3], img_b[24 * 32 * 3], crop_b[16 * 16 * 3];
	for (size_t i = 0; i < sizeof img_a; i++)
		img_a[i] = (uint8_t)nb_rng_below(&r, 256);
	for (size_t i = 0; i < sizeof img_b; i++)
		img_b[i] = (uint8_t)nb_rng_below(&r, 256);
	snprintf(a, sizeof a, "%s/a.png", dir);
	snprintf(b, sizeof b, "%s/b.png", dir);
	snprintf(bad, sizeof bad, "%s/bad.png", dir);
	CHECK(image_write_png(a, img_a, 16, 16) == 0);
	CHECK(image_write_png(b, img_b, 32, 24) == 0);
	FILE *f = fopen(bad, "w");
	fputs("not an image", f);
	fclose(f);
	nb_image nb = {32, 24, img_b};
	image_resize(&nb, 16, 16, RESIZE_CENTER_CROP, crop_b);

	/* expected captions, decoded in-process */
	uint8_t both[2 * 16 * 16 * 3];
	memcpy(both, img_a, sizeof img_a);
	memcpy(both + sizeof img_a, crop_b, sizeof crop_b);
	decoder *d = decoder_create(m, 2, 0);
	decode_opts o = {0, 0.0f, 0, cfg.max_text - 1};
	uint16_t tok[2 * 8];
	int lens[2];
	CHECK(decode_greedy(d, both, NULL, 2, &o, tok, lens) == 0);
	char ca[256], cb[256], expect[8192];
	vocab_decode(tok, lens[0], ca, sizeof ca);
	vocab_decode(tok + 8, lens[1], cb, sizeof cb);
	snprintf(expect, sizeof expect, "%s\t%s\n%s\t%s\n", a, ca, b, cb);

	snprintf(cmd, sizeof cmd, "%s caption --model %s --batch 1 %s %s %s 2>%s/err.txt", nboost, ckpt, a, bad, b, dir);
	int rc = run(cmd, out, sizeof out);
	CHECK_MSG(rc == 1, "exit %d", rc);
	CHECK_MSG(!strcmp(out, expect), "got:\n%s\nexpected:\n%s", out, expect);
	snprintf(cmd, sizeof cmd, "cat %s/err.txt", dir);
	run(cmd, out, sizeof out);
	CHECK_MSG(test_contains(out, "bad.png") && test_contains(out, "1 of 3 images failed"), "stderr: %s", out);

	snprintf(cmd, sizeof cmd, "%s caption --model %s %s %s 2>/dev/null", nboost, ckpt, a, b);
	CHECK(run(cmd, out, sizeof out) == 0);
	CHECK(!strcmp(out, expect)); /* batch size does not change the captions */

	snprintf(cmd, sizeof cmd, "%s caption --help", nboost);
	CHECK(run(cmd, out, sizeof out) == 0);
	CHECK(test_contains(out, "--batch N") && test_contains(out, "default 16"));
	snprintf(cmd, sizeof cmd, "%s caption --batch 0 --model %s %s 2>&1", nboost, ckpt, a);
	CHECK(run(cmd, out, sizeof out) == 2);
	CHECK(test_contains(out, "--batch: 0 is out of range [1, 4096]"));
	snprintf(cmd, sizeof cmd, "%s caption %s 2>&1", nboost, a);
	CHECK(run(cmd, out, sizeof out) == 2);
	CHECK(test_contains(out, "missing --model CKPT"));
	snprintf(cmd, sizeof cmd, "%s caption --model %s/missing.h5 %s 2>&1", nboost, dir, a);
	CHECK(run(cmd, out, sizeof out) == 1);
	CHECK(test_contains(out, "missing.h5"));

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
	free(dir);
	decoder_free(d);
	vlm_free(m);
	return test_summary("test_model_caption");
}
