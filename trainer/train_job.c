/* trainer/train_job.c: the job-file keys of training ([model], [train],
 * [noise], data.labeled) read into a train_config, the effective
 * configuration written back as job-file text (stored in checkpoints), and
 * the resume check on keys that must not change. Shared by `nboost train`
 * and the student ranks of `nboost run`. */
#include "trainer/train_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"

/* Keys that must not change when a run is resumed: they define the model,
 * the data order or the optimisation path. train.steps may change (the
 * cosine then follows the new length); logging and watching may too. */
static const char *const frozen_keys[] = {
	"model.image_size", "model.patch", "model.enc_dim", "model.enc_layers", "model.enc_heads",
	"model.dec_dim", "model.dec_layers", "model.dec_heads", "model.mlp_ratio", "model.max_text",
	"train.batch", "train.lr", "train.weight_decay", "train.beta1", "train.beta2", "train.eps",
	"train.warmup", "train.clip", "train.seed", "train.text_only", "noise.sigma", "noise.sigma_end",
	"train.objective", "dpo.beta", "dpo.noise", "dpo.sft_weight", "dpo.ref", NULL,
};

/* Every key a job file may hold: the keys read here, the [data] keys and
 * the sections reserved for nboost run (schemas/job_file.md), whose keys
 * that command checks. A key of any other section is an error, so a typo
 * in a section name (--nosie.sigma=0) is not silently ignored. */
static const char *const known_keys[] = {
	"model.image_size", "model.patch", "model.enc_dim", "model.enc_layers", "model.enc_heads",
	"model.dec_dim", "model.dec_layers", "model.dec_heads", "model.mlp_ratio", "model.max_text",
	"train.steps", "train.batch", "train.lr", "train.weight_decay", "train.beta1", "train.beta2", "train.eps",
	"train.warmup", "train.clip", "train.seed", "train.checkpoint_every", "train.log_every",
	"train.watch_every", "train.text_only", "train.init_decoder", "noise.sigma", "noise.sigma_end", "data.labeled", "data.unlabeled", "data.test",
	"train.keep_checkpoints", "train.eval_every",
	"train.objective", "dpo.beta", "dpo.noise", "dpo.sft_weight", "dpo.ref", "data.pairs",
	"corpus.*", "run.*", "teacher.*", "filter.*", "student.*", NULL,
};

/* The sections read here; the others are copied through as given. */
static int is_my_section(const char *key)
{
	return !strncmp(key, "model.", 6) || !strncmp(key, "train.", 6) || !strncmp(key, "noise.", 6) ||
	       !strncmp(key, "dpo.", 4);
}

int train_job_check_keys(const jobfile *j) { return jobfile_check_known(j, known_keys); }

static int get_model_int(const jobfile *j, const char *key, int def, long lo, long hi, int *out)
{
	long v;
	if (jobfile_int(j, key, def, lo, hi, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

/* train.objective and the [dpo] keys. */
static int read_dpo(const jobfile *j, train_job *s)
{
	train_config *c = &s->tc;
	const char *obj = jobfile_str(j, "train.objective", "sft");
	if (!strcmp(obj, "sft"))
		c->objective = TRAIN_SFT;
	else if (!strcmp(obj, "dpo"))
		c->objective = TRAIN_DPO;
	else
		return nb_error("train.objective = %s (%s): expected sft or dpo", obj, jobfile_origin(j, "train.objective"));
	const char *mode = jobfile_str(j, "dpo.noise", "chosen");
	c->dpo.noise = dpo_noise_parse(mode);
	if (c->dpo.noise < 0)
		return nb_error("dpo.noise = %s (%s): expected chosen, both or none", mode, jobfile_origin(j, "dpo.noise"));
	if (jobfile_double(j, "dpo.beta", c->dpo.beta, 1e-6, 1e6, &c->dpo.beta) < 0 ||
	    jobfile_double(j, "dpo.sft_weight", c->dpo.sft_weight, 0.0, 1e6, &c->dpo.sft_weight) < 0)
		return -1;
	if (c->objective == TRAIN_DPO && c->text_only)
		return nb_error("train.text_only and train.objective = dpo exclude each other (the reference sees the "
				"images)");
	if (c->objective == TRAIN_DPO && s->init_decoder)
		return nb_error("train.init_decoder and train.objective = dpo exclude each other (the policy starts "
				"from dpo.ref)");
	s->pairs = jobfile_str(j, "data.pairs", NULL);
	s->dpo_ref = jobfile_str(j, "dpo.ref", NULL);
	if (s->pairs && !*s->pairs)
		s->pairs = NULL;
	if (s->dpo_ref && !*s->dpo_ref)
		s->dpo_ref = NULL;
	return 0;
}

int train_job_read(const jobfile *j, train_job *s)
{
	if (train_job_check_keys(j) < 0)
		return -1;
	train_config *c = &s->tc;
	*c = train_config_default();
	vlm_config *m = &c->model;
	if (get_model_int(j, "model.image_size", m->image_size, 8, 4096, &m->image_size) < 0 ||
	    get_model_int(j, "model.patch", m->patch, 1, 256, &m->patch) < 0 ||
	    get_model_int(j, "model.enc_dim", m->enc_dim, 1, 8192, &m->enc_dim) < 0 ||
	    get_model_int(j, "model.enc_layers", m->enc_layers, 1, 16, &m->enc_layers) < 0 ||
	    get_model_int(j, "model.enc_heads", m->enc_heads, 1, 256, &m->enc_heads) < 0 ||
	    get_model_int(j, "model.dec_dim", m->dec_dim, 1, 8192, &m->dec_dim) < 0 ||
	    get_model_int(j, "model.dec_layers", m->dec_layers, 1, 16, &m->dec_layers) < 0 ||
	    get_model_int(j, "model.dec_heads", m->dec_heads, 1, 256, &m->dec_heads) < 0 ||
	    get_model_int(j, "model.mlp_ratio", m->mlp_ratio, 1, 16, &m->mlp_ratio) < 0 ||
	    get_model_int(j, "model.max_text", m->max_text, 2, 4096, &m->max_text) < 0)
		return -1;
	if (vlm_config_check(m) < 0)
		return -1;
	long batch, seed;
	double sigma, sigma_end;
	if (jobfile_int(j, "train.steps", c->steps, 0, 100000000, &c->steps) < 0 ||
	    jobfile_int(j, "train.batch", c->batch, 1, 1 << 20, &batch) < 0 ||
	    jobfile_double(j, "train.lr", c->lr, 0.0, 10.0, &c->lr) < 0 ||
	    jobfile_double(j, "train.weight_decay", c->adam.weight_decay, 0.0, 10.0, &c->adam.weight_decay) < 0 ||
	    jobfile_double(j, "train.beta1", c->adam.beta1, 0.0, 0.999999, &c->adam.beta1) < 0 ||
	    jobfile_double(j, "train.beta2", c->adam.beta2, 0.0, 0.99999999, &c->adam.beta2) < 0 ||
	    jobfile_double(j, "train.eps", c->adam.eps, 1e-30, 1.0, &c->adam.eps) < 0 ||
	    jobfile_int(j, "train.warmup", c->warmup, 0, 100000000, &c->warmup) < 0 ||
	    jobfile_double(j, "train.clip", c->clip, 0.0, 1e9, &c->clip) < 0 ||
	    jobfile_int(j, "train.seed", (long)c->seed, 0, 0x7fffffffffffffffL, &seed) < 0 ||
	    jobfile_int(j, "train.checkpoint_every", 500, 0, 100000000, &s->checkpoint_every) < 0 ||
	    jobfile_int(j, "train.log_every", 10, 1, 100000000, &s->log_every) < 0 ||
	    jobfile_int(j, "train.watch_every", 0, 0, 100000000, &s->watch_every) < 0 ||
	    jobfile_int(j, "train.keep_checkpoints", 0, 0, 100000000, &s->keep_checkpoints) < 0 ||
	    jobfile_int(j, "train.eval_every", 0, 0, 100000000, &s->eval_every) < 0 ||
	    jobfile_double(j, "noise.sigma", c->sigma, 0.0, 100.0, &sigma) < 0 ||
	    jobfile_double(j, "noise.sigma_end", -1.0, -1.0, 100.0, &sigma_end) < 0)
		return -1;
	if (sigma_end < 0.0 && sigma_end != -1.0)
		return nb_error("noise.sigma_end = %g (%s): give a level in [0, 100], or -1 (or nothing) for a "
				"constant sigma", sigma_end, jobfile_origin(j, "noise.sigma_end"));
	c->sigma_end = (float)sigma_end;
	if (jobfile_bool(j, "train.text_only", 0, &c->text_only) < 0)
		return -1;
	s->init_decoder = jobfile_str(j, "train.init_decoder", NULL);
	if (s->init_decoder && !*s->init_decoder)
		s->init_decoder = NULL;
	c->batch = (int)batch;
	c->seed = (uint64_t)seed;
	c->sigma = (float)sigma;
	s->labeled = jobfile_str(j, "data.labeled", NULL);
	s->test = jobfile_str(j, "data.test", NULL);
	if (s->test && !*s->test)
		s->test = NULL;
	return read_dpo(j, s);
}

/* Shortest decimal text that reads back as exactly x. */
static const char *exact(char *buf, size_t n, double x)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	return buf;
}

static const char *exactf(char *buf, size_t n, float x)
{
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, n, "%.*g", prec, (double)x);
		if (strtof(buf, NULL) == x)
			break;
	}
	return buf;
}

/* The effective configuration as a job file: every key of this command with
 * the value in force (defaults included), then the other sections' keys as
 * given. Numbers are printed in their shortest exact form, so texts compare
 * equal exactly when the values do. Caller frees. */
char *train_job_effective_config(const jobfile *j, const train_job *s)
{
	const train_config *c = &s->tc;
	const vlm_config *m = &c->model;
	nb_buf out = {0};
	nb_buf_addf(&out, "# effective configuration written by nboost\n[model]\n");
	nb_buf_addf(&out, "image_size = %d\npatch = %d\nenc_dim = %d\nenc_layers = %d\nenc_heads = %d\n",
		    m->image_size, m->patch, m->enc_dim, m->enc_layers, m->enc_heads);
	nb_buf_addf(&out, "dec_dim = %d\ndec_layers = %d\ndec_heads = %d\nmlp_ratio = %d\nmax_text = %d\n",
		    m->dec_dim, m->dec_layers, m->dec_heads, m->mlp_ratio, m->max_text);
	char n1[32], n2[32], n3[32];
	nb_buf_addf(&out, "\n[train]\nsteps = %ld\nbatch = %d\nlr = %s\nweight_decay = %s\n", c->steps, c->batch,
		    exact(n1, sizeof n1, c->lr), exact(n2, sizeof n2, c->adam.weight_decay));
	nb_buf_addf(&out, "beta1 = %s\nbeta2 = %s\neps = %s\n", exact(n1, sizeof n1, c->adam.beta1),
		    exact(n2, sizeof n2, c->adam.beta2), exact(n3, sizeof n3, c->adam.eps));
	nb_buf_addf(&out, "warmup = %ld\nclip = %s\nseed = %llu\n", c->warmup, exact(n1, sizeof n1, c->clip),
		    (unsigned long long)c->seed);
	nb_buf_addf(&out, "checkpoint_every = %ld\nlog_every = %ld\nwatch_every = %ld\n", s->checkpoint_every,
		    s->log_every, s->watch_every);
	/* written only when set, so that other runs' texts stay as they were */
	if (c->text_only)
		nb_buf_addf(&out, "text_only = true\n");
	if (s->init_decoder)
		nb_buf_addf(&out, "init_decoder = %s\n", s->init_decoder);
	if (s->keep_checkpoints)
		nb_buf_addf(&out, "keep_checkpoints = %ld\n", s->keep_checkpoints);
	if (s->eval_every)
		nb_buf_addf(&out, "eval_every = %ld\n", s->eval_every);
	if (c->objective == TRAIN_DPO)
		nb_buf_addf(&out, "objective = dpo\n");
	nb_buf_addf(&out, "\n[noise]\nsigma = %s\n", exactf(n1, sizeof n1, c->sigma));
	if (c->sigma_end >= 0.0f) /* written only when set: constant-noise texts stay as before */
		nb_buf_addf(&out, "sigma_end = %s\n", exactf(n1, sizeof n1, c->sigma_end));
	/* written only for DPO, so that supervised runs' texts stay as they were */
	if (c->objective == TRAIN_DPO) {
		nb_buf_addf(&out, "\n[dpo]\nbeta = %s\nnoise = %s\nsft_weight = %s\nref = %s\n",
			    exact(n1, sizeof n1, c->dpo.beta), dpo_noise_name(c->dpo.noise),
			    exact(n2, sizeof n2, c->dpo.sft_weight), s->dpo_ref ? s->dpo_ref : "");
	}
	nb_buf_addf(&out, "\n[data]\nlabeled = %s\n", s->labeled ? s->labeled : "");
	if (s->pairs)
		nb_buf_addf(&out, "pairs = %s\n", s->pairs);
	int n = jobfile_count(j);
	for (int i = 0; i < n; i++) {
		const char *k = jobfile_key_at(j, i);
		if (!strncmp(k, "data.", 5) && strcmp(k, "data.labeled") && strcmp(k, "data.pairs"))
			nb_buf_addf(&out, "%s = %s\n", k + 5, jobfile_value_at(j, i));
	}
	/* other commands' sections, grouped, in first-seen order */
	for (int i = 0; i < n; i++) {
		const char *k = jobfile_key_at(j, i);
		if (is_my_section(k) || !strncmp(k, "data.", 5))
			continue;
		size_t sec = (size_t)(strchr(k, '.') - k) + 1; /* "run." */
		int seen = 0;
		for (int p = 0; p < i && !seen; p++)
			seen = !strncmp(jobfile_key_at(j, p), k, sec);
		if (seen)
			continue;
		nb_buf_addf(&out, "\n[%.*s]\n", (int)sec - 1, k);
		for (int p = i; p < n; p++)
			if (!strncmp(jobfile_key_at(j, p), k, sec))
				nb_buf_addf(&out, "%s = %s\n", jobfile_key_at(j, p) + sec, jobfile_value_at(j, p));
	}
	return out.data;
}

/* Lists the frozen keys whose values differ between the checkpoint's job
 * text and this run's. 0 or nb_error. */
int train_job_check_resume(const char *ckpt_path, const char *then_text, const char *now_text)
{
	jobfile *a = jobfile_parse(then_text, ckpt_path), *b = jobfile_parse(now_text, "this job");
	if (!a || !b) {
		jobfile_free(a);
		jobfile_free(b);
		return nb_error("cannot resume from '%s': its stored job config does not parse", ckpt_path);
	}
	nb_buf list = {0};
	for (int i = 0; frozen_keys[i]; i++) {
		const char *x = jobfile_get(a, frozen_keys[i]), *y = jobfile_get(b, frozen_keys[i]);
		if ((!x && !y) || (x && y && !strcmp(x, y)))
			continue;
		nb_buf_addf(&list, "%s%s = %s (checkpoint) vs %s (now)", list.len ? ", " : "", frozen_keys[i],
			    x ? x : "unset", y ? y : "unset");
	}
	jobfile_free(a);
	jobfile_free(b);
	int rc = 0;
	if (list.len)
		rc = nb_error("cannot resume from '%s': the job differs from the checkpoint's: %s", ckpt_path,
			      list.data);
	free(list.data);
	return rc;
}
