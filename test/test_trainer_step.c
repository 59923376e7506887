/* The training step on one rank: learning happens, runs are deterministic,
 * noise changes the loss, the LR follows the schedule, and save + resume
 * continues bit-identically; resume refuses another seed or model. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "model/checkpoint.h"
#include "common/vocab.h"
#include "store/shard_store.h"
#include "test/test_util.h"
#include "trainer/lr_schedule.h"
#include "trainer/train.h"

static char dir[4096], shard[4200];

/* 12 samples: the caption names the image's brightness class, so there is
 * something to learn from the image. */
static int write_data(void)
{
	snprintf(shard, sizeof shard, "%s/data/s0.h5", dir);
	shard_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.kind = SHARD_CAPTIONS;
	meta.height = meta.width = 16;
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());
	shard_writer *w = shard_create(shard, &meta);
	if (!w)
		return -1;
	uint8_t img[16 * 16 * 3];
	for (int k = 0; k < 12; k++) {
		int cls = k % 3;
		memset(img, 40 + 80 * cls, sizeof img);
		uint16_t tok[4] = {(uint16_t)(VOCAB_SIZE0 + (cls & 1)), (uint16_t)(VOCAB_COLOR0 + cls),
				   (uint16_t)(VOCAB_SHAPE0 + cls), VOCAB_DOT};
		shard_sample s = {.id = 1000 + (uint64_t)k, .image = img, .source = "", .tokens = tok, .ntokens = 4,
				  .score = 1.0f};
		if (shard_append(w, &s) < 0)
			return -1;
	}
	return shard_commit(w);
}

static train_config tiny(void)
{
	train_config c = train_config_default();
	vlm_config *m = &c.model;
	m->image_size = 16;
	m->enc_dim = m->dec_dim = 16;
	m->enc_layers = m->dec_layers = 1;
	m->enc_heads = m->dec_heads = 2;
	m->mlp_ratio = 2;
	m->max_text = 8;
	c.steps = 40;
	c.batch = 6;
	c.lr = 1e-2;
	c.warmup = 4;
	c.seed = 3;
	c.sigma = 0.3f;
	return c;
}

static trainer *start(const train_config *c)
{
	trainer *t = trainer_create(c, MPI_COMM_WORLD);
	if (!t || trainer_add_shard(t, shard) < 0) {
		fprintf(stderr, "cannot start trainer: %s\n", nb_errmsg());
		exit(1);
	}
	return t;
}

static void run(trainer *t, int n, double *loss)
{
	for (int i = 0; i < n; i++) {
		train_stats st;
		int rc = trainer_step(t, &st);
		CHECK_MSG(rc == 0, "%s", nb_errmsg());
		loss[i] = st.loss;
	}
}

static void test_learns_and_is_deterministic(void)
{
	train_config c = tiny();
	trainer *a = start(&c), *b = start(&c);
	double la[40], lb[40];
	run(a, 40, la);
	run(b, 40, lb);
	CHECK(memcmp(la, lb, sizeof la) == 0);
	size_t n = vlm_nparams(trainer_model(a));
	CHECK(memcmp(vlm_params(trainer_model(a)), vlm_params(trainer_model(b)), n * sizeof(float)) == 0);
	/* ln(27) = 3.3 at the start; the captions are learnable from the image */
	CHECK_MSG(la[0] > 2.5 && la[0] < 4.5, "first loss %g", la[0]);
	CHECK_MSG(la[39] < 0.5 * la[0], "loss %g -> %g", la[0], la[39]);
	CHECK(trainer_step_index(a) == 40);
	trainer_free(a);
	trainer_free(b);
}

static void test_noise_and_schedule(void)
{
	train_config c = tiny(), q = tiny();
	q.sigma = 0.0f;
	trainer *a = start(&c), *b = start(&q);
	train_stats sa, sb;
	CHECK(trainer_step(a, &sa) == 0 && trainer_step(b, &sb) == 0);
	CHECK(sa.loss != sb.loss);
	CHECK(sa.step == 1 && sa.samples == 6 && sa.tokens == 6 * 5);
	lr_schedule s = {.base = c.lr, .warmup = c.warmup, .total = c.steps};
	CHECK_NEAR(sa.lr, lr_schedule_at(&s, 0), 1e-15);
	CHECK(trainer_step(a, &sa) == 0);
	CHECK_NEAR(sa.lr, lr_schedule_at(&s, 1), 1e-15);
	CHECK(sa.grad_norm > 0.0);
	trainer_free(a);
	trainer_free(b);
}

static void test_resume(void)
{
	train_config c = tiny();
	c.steps = 10;
	char ck[4300];
	snprintf(ck, sizeof ck, "%s/ck.h5", dir);
	trainer *straight = start(&c);
	double l1[10], l2[10];
	run(straight, 10, l1);

	trainer *first = start(&c);
	run(first, 5, l2);
	CHECK_MSG(trainer_save(first, ck, "[train]\nsteps = 10\n") == 0, "%s", nb_errmsg());
	trainer_free(first);

	trainer *second = trainer_create(&c, MPI_COMM_WORLD);
	CHECK_MSG(trainer_resume(second, ck) == 0, "%s", nb_errmsg());
	CHECK(trainer_step_index(second) == 5);
	CHECK(batcher_nshards(trainer_batcher(second)) == 1);
	run(second, 5, l2 + 5);
	CHECK(memcmp(l1, l2, sizeof l1) == 0);
	size_t n = vlm_nparams(trainer_model(straight));
	CHECK(memcmp(vlm_params(trainer_model(straight)), vlm_params(trainer_model(second)), n * sizeof(float)) == 0);
	char d1[17], d2[17];
	ckpt_params_digest(trainer_model(straight), d1);
	ckpt_params_digest(trainer_model(second), d2);
	CHECK(strcmp(d1, d2) == 0);
	trainer_free(straight);
	trainer_free(second);

	/* another seed, another model, or a trainer already started: refused */
	train_config s = c;
	s.seed = 4;
	trainer *t = trainer_create(&s, MPI_COMM_WORLD);
	CHECK(trainer_resume(t, ck) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "seed 3") && test_contains(nb_errmsg(), "seed 4"), "%s", nb_errmsg());
	trainer_free(t);
	train_config m = c;
	m.model.dec_layers = 2;
	t = trainer_create(&m, MPI_COMM_WORLD);
	CHECK(trainer_resume(t, ck) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "dec_layers 1 (checkpoint) vs 2 (requested)"), "%s", nb_errmsg());
	trainer_free(t);
	t = start(&c);
	CHECK(trainer_resume(t, ck) < 0 && test_contains(nb_errmsg(), "already started"));
	trainer_free(t);
}

static void test_watch(void)
{
	train_config c = tiny();
	trainer *t = trainer_create(&c, MPI_COMM_WORLD);
	char d[4300];
	snprintf(d, sizeof d, "%s/data", dir);
	CHECK(trainer_watch(t, d) == 1);
	CHECK(trainer_watch(t, d) == 0);
	CHECK(batcher_nsamples(trainer_batcher(t)) == 12);
	trainer_free(t);
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	char *d = test_tmpdir("trainer-step");
	snprintf(dir, sizeof dir, "%s", d);
	free(d);
	char data[4300];
	snprintf(data, sizeof data, "%s/data", dir);
	if (system((snprintf(data, sizeof data, "mkdir -p '%s/data'", dir), data)) != 0 || write_data() < 0) {
		fprintf(stderr, "cannot write test data: %s\n", nb_errmsg());
		return 1;
	}
	test_learns_and_is_deterministic();
	test_noise_and_schedule();
	test_resume();
	test_watch();
	MPI_Finalize();
	return test_summary("test_trainer_step");
}
