/* The study file (docs/study.md, jobs/study.conf): [study] and [corpus]
 * settings, the arms of [arms] (and [full] with --full; [quick-arms] with
 * --quick), one per line: "NAME = KIND key=value ...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_num.h"
#include "study/study.h"

static const char *const known_keys[] = {
	"study.*", "corpus.*", "arms.*", "full.*", "quick.*", "quick-corpus.*", "quick-arms.*",
	"run.*", "teacher.*", "filter.*", "student.*", NULL,
};

static const char *const study_keys[] = {
	"seeds", "parallel", "threads", "job", "steps", "lm_steps", "batch", "warmup", "lr",
	"pope", "attn_images", "semi_ranks", "dpo_steps", "dpo_batch", "dpo_lr", NULL,
};

static const char *const corpus_keys[] = {
	"labeled", "test", "hard_tests", "shard_size", "lm_captions", "seed", NULL,
};

const char *study_kind_name(arm_kind k)
{
	return k == ARM_SUPERVISED ? "supervised" : k == ARM_LM ? "lm" : k == ARM_SEMI ? "semi" : "dpo";
}

static int in_list(const char *k, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(k, *list))
			return 1;
	return 0;
}

/* Every key of a section must be one of `list`. */
static int check_section(const jobfile *j, const char *sec, const char *const *list)
{
	size_t n = strlen(sec);
	for (int i = 0; i < jobfile_count(j); i++) {
		const char *k = jobfile_key_at(j, i);
		if (!strncmp(k, sec, n) && k[n] == '.' && !in_list(k + n + 1, list))
			return nb_error("%s: unknown key '%s' (known: see docs/study.md)", jobfile_origin(j, k), k);
	}
	return 0;
}

/* Copies every "from.X" to "to.X" (the --quick fold). */
static int fold(jobfile *j, const char *from, const char *to)
{
	size_t n = strlen(from);
	int count = jobfile_count(j);
	for (int i = 0; i < count; i++) {
		const char *k = jobfile_key_at(j, i);
		if (strncmp(k, from, n) || k[n] != '.')
			continue;
		char key[256];
		snprintf(key, sizeof key, "%s.%s", to, k + n + 1);
		char origin[256];
		snprintf(origin, sizeof origin, "%s", jobfile_origin(j, k));
		if (jobfile_set(j, key, jobfile_value_at(j, i), origin) < 0)
			return -1;
	}
	return 0;
}

static int find_arm(const study_conf *c, const char *name)
{
	for (int i = 0; i < c->n_arms; i++)
		if (!strcmp(c->arms[i].name, name))
			return i;
	return -1;
}

/* An arm named by `key=NAME` must be defined on an earlier line (which
 * also rules out cycles) and, when kinds is not 0, be of one of them. */
static int ref_arm(const study_conf *c, const study_arm *a, const char *key, const char *name, unsigned kinds,
		   int *out)
{
	int i = find_arm(c, name);
	if (i < 0)
		return nb_error("%s: arm '%s': %s=%s names no arm defined above it", a->origin, a->name, key, name);
	if (kinds && !(kinds & (1u << c->arms[i].kind)))
		return nb_error("%s: arm '%s': %s=%s is a %s arm", a->origin, a->name, key, name,
				study_kind_name(c->arms[i].kind));
	*out = i;
	return 0;
}

static int parse_double(const study_arm *a, const char *k, const char *v, double lo, double hi, double *out)
{
	char *end;
	double x = strtod(v, &end);
	if (!*v || *end || !(x >= lo && x <= hi))
		return nb_error("%s: arm '%s': %s=%s is not a number in [%g, %g]", a->origin, a->name, k, v, lo, hi);
	*out = x;
	return 0;
}

static int arm_option(study_conf *c, study_arm *a, const char *k, const char *v)
{
	double x;
	if (!strcmp(k, "labels")) {
		if (parse_double(a, k, v, 1, 100, &x) < 0)
			return -1;
		a->labels = (int)x;
		if (a->labels != x)
			return nb_error("%s: arm '%s': labels=%s must be a whole percent", a->origin, a->name, v);
		return 0;
	}
	if (!strcmp(k, "sigma"))
		return parse_double(a, k, v, 0, 100, &a->sigma);
	if (!strcmp(k, "sigma_end"))
		return parse_double(a, k, v, 0, 100, &a->sigma_end);
	if (!strcmp(k, "steps")) {
		if (parse_double(a, k, v, 1, 1e8, &x) < 0)
			return -1;
		a->steps = (long)x;
		return 0;
	}
	if (!strcmp(k, "rounds")) {
		if (parse_double(a, k, v, 1, 100, &x) < 0)
			return -1;
		a->rounds = (int)x;
		return 0;
	}
	if (!strcmp(k, "filter")) {
		if (strcmp(v, "on") && strcmp(v, "off"))
			return nb_error("%s: arm '%s': filter=%s is not on or off", a->origin, a->name, v);
		a->filter = !strcmp(v, "on");
		return 0;
	}
	if (!strcmp(k, "init"))
		return ref_arm(c, a, k, v, 1u << ARM_LM | 1u << ARM_SUPERVISED, &a->init);
	if (!strcmp(k, "teacher"))
		return ref_arm(c, a, k, v, 1u << ARM_SUPERVISED | 1u << ARM_SEMI, &a->teacher);
	if (!strcmp(k, "vs"))
		return ref_arm(c, a, k, v, 0, &a->vs);
	if (!strcmp(k, "from"))
		return ref_arm(c, a, k, v, 1u << ARM_SUPERVISED | 1u << ARM_SEMI | 1u << ARM_DPO, &a->from);
	if (!strcmp(k, "noise")) {
		if (strcmp(v, "chosen") && strcmp(v, "both") && strcmp(v, "none"))
			return nb_error("%s: arm '%s': noise=%s is not chosen, both or none", a->origin, a->name, v);
		snprintf(a->dpo_noise, sizeof a->dpo_noise, "%s", v);
		return 0;
	}
	if (!strcmp(k, "beta"))
		return parse_double(a, k, v, 1e-6, 1e6, &a->beta);
	if (!strcmp(k, "sft"))
		return parse_double(a, k, v, 0, 1e6, &a->sft);
	if (!strcmp(k, "lr"))
		return parse_double(a, k, v, 1e-9, 10, &a->lr);
	return nb_error("%s: arm '%s': unknown option '%s' (labels, sigma, sigma_end, steps, init, teacher, "
			"filter, rounds, vs; dpo: from, noise, beta, sft, lr)",
			a->origin, a->name, k);
}

static int parse_arm(study_conf *c, study_arm *a, const char *name, const char *spec, const char *origin)
{
	*a = (study_arm){.name = nb_xstrdup(name), .spec = nb_xstrdup(spec), .origin = origin, .labels = 100,
			 .sigma_end = -1, .init = -1, .teacher = -1, .filter = 1, .rounds = 1, .vs = -1, .from = -1,
			 .dpo_noise = "chosen", .beta = 0.1};
	char *text = nb_xstrdup(spec), *save = NULL;
	char *kind = strtok_r(text, " \t", &save);
	int rc = 0;
	if (!kind)
		rc = nb_error("%s: arm '%s' has no kind (supervised, lm, semi or dpo)", origin, name);
	else if (!strcmp(kind, "supervised"))
		a->kind = ARM_SUPERVISED;
	else if (!strcmp(kind, "lm"))
		a->kind = ARM_LM;
	else if (!strcmp(kind, "semi"))
		a->kind = ARM_SEMI;
	else if (!strcmp(kind, "dpo"))
		a->kind = ARM_DPO, a->sigma = 0.3;
	else
		rc = nb_error("%s: arm '%s': unknown kind '%s' (supervised, lm, semi or dpo)", origin, name, kind);
	for (char *t; !rc && (t = strtok_r(NULL, " \t", &save));) {
		char *eq = strchr(t, '=');
		if (!eq || eq == t || !eq[1]) {
			rc = nb_error("%s: arm '%s': '%s' is not key=value", origin, name, t);
			break;
		}
		*eq = 0;
		rc = arm_option(c, a, t, eq + 1);
	}
	free(text);
	if (rc)
		return -1;
	if (a->kind == ARM_SEMI && a->teacher < 0)
		return nb_error("%s: arm '%s': a semi arm needs teacher=ARM", origin, name);
	if (a->kind == ARM_SEMI && a->labels == 100)
		return nb_error("%s: arm '%s': a semi arm needs labels below 100 (the rest is its unlabeled pool)",
				origin, name);
	if (a->kind != ARM_SEMI && (a->teacher >= 0 || a->rounds != 1))
		return nb_error("%s: arm '%s': teacher= and rounds= are for semi arms", origin, name);
	if ((a->kind == ARM_DPO) != (a->from >= 0))
		return nb_error("%s: arm '%s': %s", origin, name,
				a->kind == ARM_DPO ? "a dpo arm needs from=ARM (its reference and start)"
						   : "from= is for dpo arms");
	if (a->kind == ARM_DPO) /* its pairs come from the start arm's labeled images */
		a->labels = c->arms[a->from].labels;
	if (a->kind == ARM_LM && (a->init >= 0 || a->sigma != 0))
		return nb_error("%s: arm '%s': an lm arm trains on text alone (no sigma, no init)", origin, name);
	return 0;
}

static int load_arms(study_conf *c, const char *sec)
{
	size_t n = strlen(sec);
	for (int i = 0; i < jobfile_count(c->j); i++) {
		const char *k = jobfile_key_at(c->j, i);
		if (strncmp(k, sec, n) || k[n] != '.')
			continue;
		if (find_arm(c, k + n + 1) >= 0)
			return nb_error("%s: arm '%s' is defined twice", jobfile_origin(c->j, k), k + n + 1);
		c->arms = nb_xrealloc(c->arms, (size_t)(c->n_arms + 1) * sizeof *c->arms);
		study_arm *a = &c->arms[c->n_arms];
		c->n_arms++;
		if (parse_arm(c, a, k + n + 1, jobfile_value_at(c->j, i), jobfile_origin(c->j, k)) < 0)
			return -1;
	}
	return 0;
}

static int load_settings(study_conf *c)
{
	const jobfile *j = c->j;
	long seeds, par, thr, ranks;
	if (jobfile_int(j, "study.seeds", 3, 1, 100, &seeds) < 0 || jobfile_int(j, "study.parallel", 2, 1, 1024, &par) < 0 ||
	    jobfile_int(j, "study.threads", 1, 1, 1024, &thr) < 0 ||
	    jobfile_int(j, "study.steps", 1000, 1, 100000000, &c->steps) < 0 ||
	    jobfile_int(j, "study.lm_steps", c->steps, 1, 100000000, &c->lm_steps) < 0 ||
	    jobfile_int(j, "study.batch", 32, 1, 1 << 20, &c->batch) < 0 ||
	    jobfile_int(j, "study.warmup", c->steps / 20, 0, 100000000, &c->warmup) < 0 ||
	    jobfile_double(j, "study.lr", 1e-3, 1e-9, 10, &c->lr) < 0 ||
	    jobfile_int(j, "study.attn_images", 200, 0, 1000000000L, &c->attn_images) < 0 ||
	    jobfile_int(j, "study.semi_ranks", 4, 3, 1024, &ranks) < 0 ||
	    jobfile_int(j, "study.dpo_steps", 150, 1, 100000000, &c->dpo_steps) < 0 ||
	    jobfile_int(j, "study.dpo_batch", 16, 1, 1 << 20, &c->dpo_batch) < 0 ||
	    jobfile_double(j, "study.dpo_lr", 5e-5, 1e-9, 10, &c->dpo_lr) < 0 ||
	    jobfile_int(j, "corpus.labeled", 2000, 1, 100000000, &c->labeled) < 0 ||
	    jobfile_int(j, "corpus.test", 500, 1, 100000000, &c->test) < 0 ||
	    jobfile_int(j, "corpus.hard_tests", 200, 0, 100000000, &c->hard_tests) < 0 ||
	    jobfile_int(j, "corpus.shard_size", 100, 1, 100000000, &c->shard_size) < 0 ||
	    jobfile_int(j, "corpus.lm_captions", 0, 0, 100000000, &c->lm_captions) < 0 ||
	    jobfile_int(j, "corpus.seed", 1, 0, 0x7fffffffL, &c->corpus_seed) < 0)
		return -1;
	int pope_flag;
	if (jobfile_bool(j, "study.pope", 1, &pope_flag) < 0)
		return -1;
	c->seeds = (int)seeds, c->parallel = (int)par, c->threads = (int)thr, c->semi_ranks = (int)ranks;
	c->pope = pope_flag;
	c->job = jobfile_str(j, "study.job", "jobs/demo.conf");
	jobfile *job = jobfile_load(c->job);
	if (!job)
		return nb_error("%s: study.job: %s", jobfile_origin(j, "study.job") ? jobfile_origin(j, "study.job") : c->path,
				nb_errmsg());
	int rc = jobfile_int(job, "model.image_size", 48, 16, 512, &c->image_size);
	jobfile_free(job);
	return rc;
}

/* Each arm's labeled share must be whole shards of the labeled pool. */
static int check_fractions(const study_conf *c)
{
	for (int i = 0; i < c->n_arms; i++) {
		const study_arm *a = &c->arms[i];
		long n = c->labeled * a->labels;
		if (a->kind == ARM_LM)
			continue;
		if (n % 100 || (n / 100) % c->shard_size || n / 100 == 0)
			return nb_error("%s: arm '%s': labels=%d%% of corpus.labeled = %ld is not a whole number of "
					"shards of corpus.shard_size = %ld",
					a->origin, a->name, a->labels, c->labeled, c->shard_size);
	}
	for (int i = 0; i < c->n_arms; i++)
		if (c->arms[i].kind == ARM_LM && !c->lm_captions)
			return nb_error("%s: arm '%s' needs corpus.lm_captions > 0", c->arms[i].origin, c->arms[i].name);
	return 0;
}

study_conf *study_load(const char *path, int quick, int full, const jobfile *overrides)
{
	study_conf *c = nb_xcalloc(1, sizeof *c);
	c->path = path, c->quick = quick, c->full = full;
	c->j = jobfile_load(path);
	int rc = c->j ? 0 : -1;
	for (int i = 0; !rc && overrides && i < jobfile_count(overrides); i++)
		rc = jobfile_set(c->j, jobfile_key_at(overrides, i), jobfile_value_at(overrides, i), "command line");
	if (!rc)
		rc = jobfile_check_known(c->j, known_keys);
	if (!rc)
		rc = check_section(c->j, "study", study_keys) || check_section(c->j, "quick", study_keys) ||
		     check_section(c->j, "corpus", corpus_keys) || check_section(c->j, "quick-corpus", corpus_keys)
			     ? -1
			     : 0;
	if (!rc && quick)
		rc = fold(c->j, "quick", "study") || fold(c->j, "quick-corpus", "corpus") ? -1 : 0;
	if (!rc)
		rc = load_settings(c);
	if (!rc)
		rc = load_arms(c, quick ? "quick-arms" : "arms");
	if (!rc && full && !quick)
		rc = load_arms(c, "full");
	if (!rc && !c->n_arms)
		rc = nb_error("study file '%s' has no arms (section [%s])", path, quick ? "quick-arms" : "arms");
	if (!rc)
		rc = check_fractions(c);
	if (rc) {
		study_free(c);
		return NULL;
	}
	return c;
}

void study_free(study_conf *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_arms; i++)
		free(c->arms[i].name), free(c->arms[i].spec);
	free(c->arms);
	jobfile_free(c->j);
	free(c);
}
