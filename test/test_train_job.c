/* Training settings from job files (trainer/train_job.h): defaults, values,
 * range and unknown-key errors, pass-through of other sections, the
 * effective-config text as a fixed point, and the resume check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "trainer/train_job.h"
#include "test_util.h"

static int read_text(const char *text, train_job *s, jobfile **out)
{
	jobfile *j = jobfile_parse(text, "t.conf");
	if (!j)
		return -1;
	int rc = train_job_read(j, s);
	*out = j;
	return rc;
}

static void test_defaults_and_values(void)
{
	jobfile *j = NULL;
	train_job s;
	CHECK(read_text("", &s, &j) == 0);
	train_config d = train_config_default();
	CHECK(s.tc.steps == d.steps && s.tc.batch == d.batch && s.tc.lr == d.lr && s.tc.sigma == d.sigma);
	CHECK(s.tc.model.dec_dim == d.model.dec_dim && s.tc.seed == d.seed);
	CHECK(s.checkpoint_every == 500 && s.log_every == 10 && s.watch_every == 0 && s.labeled == NULL);
	jobfile_free(j);

	CHECK(read_text("[model]\nenc_dim = 32\nenc_heads = 2\ndec_dim = 48\ndec_heads = 3\n"
			"[train]\nsteps = 77\nbatch = 8\nlr = 2.5e-4\nseed = 9\nwatch_every = 5\n"
			"[noise]\nsigma = 0.125\n[data]\nlabeled = /x/labeled\n",
			&s, &j) == 0);
	CHECK(s.tc.model.enc_dim == 32 && s.tc.model.dec_dim == 48 && s.tc.model.dec_heads == 3);
	CHECK(s.tc.steps == 77 && s.tc.batch == 8 && s.tc.lr == 2.5e-4 && s.tc.seed == 9);
	CHECK(s.tc.sigma == 0.125f && s.watch_every == 5);
	CHECK(s.labeled && !strcmp(s.labeled, "/x/labeled"));
	jobfile_free(j);
}

static void test_errors(void)
{
	jobfile *j = NULL;
	train_job s;
	CHECK(read_text("[train]\nstesp = 10\n", &s, &j) == -1);
	CHECK(test_contains(nb_errmsg(), "train.stesp") && test_contains(nb_errmsg(), "t.conf"));
	jobfile_free(j);
	CHECK(read_text("[train]\nbatch = 0\n", &s, &j) == -1);
	CHECK(test_contains(nb_errmsg(), "train.batch"));
	jobfile_free(j);
	CHECK(read_text("[noise]\nsigma = -1\n", &s, &j) == -1);
	CHECK(test_contains(nb_errmsg(), "noise.sigma"));
	jobfile_free(j);
	CHECK(read_text("[train]\nlr = fast\n", &s, &j) == -1);
	CHECK(test_contains(nb_errmsg(), "train.lr") && test_contains(nb_errmsg(), "fast"));
	jobfile_free(j);
	/* heads must divide the width: the model's own check */
	CHECK(read_text("[model]\ndec_dim = 50\ndec_heads = 3\n", &s, &j) == -1);
	CHECK(strlen(nb_errmsg()) > 0);
	jobfile_free(j);
}

static void test_effective_config(void)
{
	jobfile *j = NULL;
	train_job s;
	CHECK(read_text("[run]\nteachers = 3\n[train]\nlr = 0.1\n[teacher]\nk = 4\n[run]\nfilters = 2\n"
			"[data]\nlabeled = L\nunlabeled = U\n",
			&s, &j) == 0);
	char *text = train_job_effective_config(j, &s);
	/* other commands' sections pass through, grouped */
	CHECK(test_contains(text, "[run]\nteachers = 3\nfilters = 2\n"));
	CHECK(test_contains(text, "[teacher]\nk = 4\n"));
	CHECK(test_contains(text, "unlabeled = U\n") && test_contains(text, "labeled = L\n"));
	CHECK(test_contains(text, "lr = 0.1\n") && test_contains(text, "sigma = 0.3\n"));
	/* the text reads back to the same settings and the same text */
	jobfile *j2 = jobfile_parse(text, "effective");
	train_job s2;
	CHECK(j2 && train_job_read(j2, &s2) == 0);
	if (j2) {
		CHECK(s2.tc.lr == s.tc.lr && s2.tc.sigma == s.tc.sigma && s2.tc.adam.beta2 == s.tc.adam.beta2);
		char *text2 = train_job_effective_config(j2, &s2);
		CHECK(!strcmp(text, text2));
		free(text2);
	}
	jobfile_free(j2);
	free(text);
	jobfile_free(j);
}

static char *config_of(const char *job)
{
	jobfile *j = NULL;
	train_job s;
	if (read_text(job, &s, &j) < 0) {
		jobfile_free(j);
		return NULL;
	}
	char *t = train_job_effective_config(j, &s);
	jobfile_free(j);
	return t;
}

static void test_resume_check(void)
{
	char *base = config_of("[train]\nsteps = 100\n[noise]\nsigma = 0.3\n");
	char *longer = config_of("[train]\nsteps = 400\nlog_every = 1\n[noise]\nsigma = 0.3\n");
	char *other = config_of("[train]\nsteps = 100\nseed = 5\n[noise]\nsigma = 0\n");
	CHECK(base && longer && other);
	if (base && longer && other) {
		CHECK(train_job_check_resume("c.h5", base, base) == 0);
		CHECK(train_job_check_resume("c.h5", base, longer) == 0); /* steps and logging may change */
		CHECK(train_job_check_resume("c.h5", base, other) == -1);
		const char *m = nb_errmsg();
		CHECK(test_contains(m, "c.h5") && test_contains(m, "noise.sigma = 0.3 (checkpoint) vs 0 (now)"));
		CHECK(test_contains(m, "train.seed = 1 (checkpoint) vs 5 (now)"));
		CHECK(train_job_check_resume("c.h5", "[broken\n", base) == -1);
		CHECK(test_contains(nb_errmsg(), "does not parse"));
	}
	free(base);
	free(longer);
	free(other);
}

/* noise.sigma_end: a linear anneal from sigma to sigma_end over the run. */
static void test_noise_schedule(void)
{
	jobfile *j = NULL;
	train_job s;
	CHECK(read_text("[train]\nsteps = 11\n[noise]\nsigma = 0.5\nsigma_end = 0\n", &s, &j) == 0);
	CHECK(fabsf(train_sigma_at(&s.tc, 0) - 0.5f) < 1e-7f);
	CHECK(fabsf(train_sigma_at(&s.tc, 5) - 0.25f) < 1e-7f);
	CHECK(fabsf(train_sigma_at(&s.tc, 10) - 0.0f) < 1e-7f);
	CHECK(fabsf(train_sigma_at(&s.tc, 20) - 0.0f) < 1e-7f); /* past the end: the end level */
	char *text = train_job_effective_config(j, &s);
	CHECK(test_contains(text, "[noise]\nsigma = 0.5\nsigma_end = 0\n"));
	jobfile_free(j);
	/* constant: no sigma_end in the text, the level at every step */
	CHECK(read_text("[noise]\nsigma = 0.3\n", &s, &j) == 0);
	CHECK(train_sigma_at(&s.tc, 0) == 0.3f && train_sigma_at(&s.tc, 3999) == 0.3f);
	char *flat = train_job_effective_config(j, &s);
	CHECK(!test_contains(flat, "sigma_end"));
	jobfile_free(j);
	/* the schedule is frozen on resume, constant against constant is fine */
	CHECK(train_job_check_resume("c.h5", flat, flat) == 0);
	CHECK(train_job_check_resume("c.h5", text, flat) == -1);
	CHECK(test_contains(nb_errmsg(), "noise.sigma_end = 0 (checkpoint) vs unset (now)"));
	free(text);
	free(flat);
	CHECK(read_text("[noise]\nsigma_end = -0.5\n", &s, &j) == -1);
	CHECK(test_contains(nb_errmsg(), "noise.sigma_end"));
	jobfile_free(j);
}

int main(void)
{
	test_noise_schedule();
	test_defaults_and_values();
	test_errors();
	test_effective_config();
	test_resume_check();
	return test_summary("test_train_job");
}
