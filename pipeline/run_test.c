/* corpus.test in `nboost run`: checked before the run starts, and each
 * round's student scored on it (labeler/evaluate.h) by the student leader
 * once the round's training is done: RUNDIR/round-R/test.json and one line
 * on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_time.h"
#include "labeler/evaluate.h"
#include "model/checkpoint.h"
#include "pipeline/run_internal.h"

int run_check_test_corpus(const run_ctx *c)
{
	const char *dir = c->job->test;
	if (!dir || !*dir || c->job->students == 0)
		return 0; /* nothing to score, or no student to score (labeling only) */
	long images = 0;
	if (evaluate_check_shards(dir, c->job->train.tc.model.image_size, &images) < 0) {
		char why[2048];
		snprintf(why, sizeof why, "%s", nb_errmsg());
		return nb_error("corpus.test: %s", why);
	}
	if (images == 0)
		return nb_error("corpus.test: the shards in '%s' hold no images", dir);
	return 0;
}

typedef struct {
	int (*stop)(void *);
	void *arg;
	double last;
	int stopped;
} poll_state;

/* Between batches: asks the caller whether to stop, a few times a second. */
static int poll_stop(void *ctx, uint64_t id, const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS])
{
	(void)id, (void)tokens, (void)n, (void)cells;
	poll_state *p = ctx;
	if (!p->stop || nb_now() - p->last < 0.2)
		return 0;
	p->last = nb_now();
	if (!p->stop(p->arg))
		return 0;
	p->stopped = 1;
	return nb_error("stopped");
}

int run_test_student(const run_ctx *c, int round, const char *ckpt, int (*stop)(void *), void *arg)
{
	vlm_model *m = ckpt_load_model(ckpt, EVALUATE_BATCH);
	if (!m)
		return -1;
	char prefix[64];
	snprintf(prefix, sizeof prefix, "run: round %d student on the test set", round);
	poll_state ps = {stop, arg, nb_now(), 0};
	evaluate_opts eo = {.batch = EVALUATE_BATCH, .progress = prefix, .progress_every = c->job->progress_every,
			    .on_caption = poll_stop, .ctx = &ps};
	metrics_result r;
	double t0 = nb_now();
	int rc = evaluate_shards(m, c->job->test, &eo, &r);
	vlm_free(m);
	if (rc < 0)
		return ps.stopped ? 1 : -1;
	nb_buf b = {0};
	nb_buf_addf(&b, "{\"round\": %d, \"captions\": %ld, \"chair_i\": %.9g, \"chair_s\": %.9g, \"recall\": %.9g, "
			"\"tuple_precision\": %.9g, \"tuple_recall\": %.9g, \"tuple_f1\": %.9g, \"bleu4\": %.9g, "
			"\"cider_d\": %.9g, \"statements\": %ld, \"malformed\": %ld, \"mentions\": %ld, "
			"\"hallucinated\": %ld, \"gt_objects\": %ld, \"wall_s\": %.3f}\n",
		    round, r.captions, r.chair_i, r.chair_s, r.recall, r.tuple_p, r.tuple_r, r.tuple_f1, r.bleu[3],
		    r.cider_d, r.statements, r.malformed, r.mentions, r.hallucinated, r.gt_objects, nb_now() - t0);
	char path[4200];
	run_round_dir(c, round, path, sizeof path);
	size_t k = strlen(path);
	snprintf(path + k, sizeof path - k, "/test.json");
	rc = nb_write_file_atomic(path, b.data, b.len);
	free(b.data);
	if (rc < 0)
		return -1;
	fprintf(stderr,
		"run: round %d student on the test set: CHAIR_i %.4f  CHAIR_s %.4f  recall %.4f  tuple F1 %.4f  "
		"BLEU-4 %.4f  CIDEr-D %.4f  (%ld images)\n",
		round, r.chair_i, r.chair_s, r.recall, r.tuple_f1, r.bleu[3], r.cider_d, r.captions);
	return 0;
}
