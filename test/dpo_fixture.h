/* A DPO test fixture shared by test_dpo.c and test_dpo_torch.c: the tiny
 * model of jobs/tiny.conf (read through trainer/train_job.h), a policy and a
 * reference with different weights, and a pair batch of NP pairs (2 * NP
 * rows: chosen rows, then the rejected rows of the same images). */
#ifndef NB_TEST_DPO_FIXTURE_H
#define NB_TEST_DPO_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "common/jobfile.h"
#include "common/nb_rng.h"
#include "common/vocab.h"
#include "trainer/train_job.h"

enum { NP = 3, ROWS = 2 * NP, FT = 7 };

typedef struct {
	vlm_config cfg;
	vlm_model *policy, *ref;
	uint8_t *images;             /* [ROWS, S, S, 3] */
	uint16_t in[ROWS * FT], tg[ROWS * FT];
	uint64_t keys[ROWS];
	vlm_batch b;
} dpo_fixture;

/* jobs/tiny.conf's model; exits 2 when the job file cannot be read. */
static vlm_config fixture_tiny_config(void)
{
	const char *src = getenv("NB_SRC");
	char path[4096];
	snprintf(path, sizeof path, "%s/jobs/tiny.conf", src && *src ? src : ".");
	jobfile *j = jobfile_load(path);
	train_job s;
	if (!j || train_job_read(j, &s) < 0) {
		fprintf(stderr, "cannot read %s: %s\n", path, nb_errmsg());
		exit(2);
	}
	jobfile_free(j);
	return s.tc.model;
}

static void perturb(vlm_model *m, nb_rng *r, float scale)
{
	for (size_t i = 0; i < vlm_nparams(m); i++)
		vlm_params(m)[i] += scale * nb_rng_normal(r);
}

/* lens: words + 1 (bos) of each row; the rest pad. */
static void fixture_init(dpo_fixture *f, uint64_t seed)
{
	f->cfg = fixture_tiny_config();
	f->policy = vlm_create(&f->cfg, ROWS);
	f->ref = vlm_create(&f->cfg, ROWS);
	if (!f->policy || !f->ref) {
		fprintf(stderr, "vlm_create: %s\n", nb_errmsg());
		exit(2);
	}
	nb_rng r;
	nb_rng_seed(&r, seed, 0, 0);
	vlm_init(f->policy, seed);
	vlm_init(f->ref, seed + 1);
	/* larger random weights than the init, so every path carries gradient */
	perturb(f->policy, &r, 0.2f);
	perturb(f->ref, &r, 0.2f);
	size_t img = (size_t)f->cfg.image_size * f->cfg.image_size * 3;
	f->images = malloc(img * ROWS);
	for (size_t i = 0; i < img * NP; i++)
		f->images[i] = (uint8_t)nb_rng_below(&r, 256);
	for (size_t i = 0; i < img * NP; i++)
		f->images[img * NP + i] = f->images[i];
	static const int lens[ROWS] = {7, 4, 6, 5, 7, 2};
	for (int b = 0; b < ROWS; b++) {
		for (int t = 0; t < FT; t++)
			f->in[b * FT + t] = t == 0 ? VOCAB_BOS : t < lens[b] ? (uint16_t)(4 + nb_rng_below(&r, 23)) : VOCAB_PAD;
		for (int t = 0; t < FT; t++)
			f->tg[b * FT + t] = t < lens[b] - 1 ? f->in[b * FT + t + 1] : t == lens[b] - 1 ? VOCAB_EOS : VOCAB_PAD;
		f->keys[b] = 1000 + (uint64_t)(b % NP) * 17;
	}
	f->b = (vlm_batch){ROWS, FT, f->images, f->in, f->tg, f->keys};
}

static void fixture_free(dpo_fixture *f)
{
	vlm_free(f->policy);
	vlm_free(f->ref);
	free(f->images);
}

/* Target tokens of the chosen rows. */
static long fixture_chosen_tokens(const dpo_fixture *f)
{
	long n = 0;
	for (int i = 0; i < NP * FT; i++)
		n += f->tg[i] != VOCAB_PAD;
	return n;
}

#endif
