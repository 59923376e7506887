#include "pipeline/run_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_num.h"

/* Keys of the run's own sections. [model], [train], [noise] and
 * data.labeled are checked by train_job_read. */
static const char *const run_keys[] = {
	"corpus.labeled",   "corpus.unlabeled", "corpus.test",       "run.teachers",
	"run.filters",      "run.students",     "run.rounds",        "run.unit",
	"run.in_flight",    "run.stall_timeout", "run.progress_every", "teacher.model",
	"teacher.K",        "teacher.sigma",    "teacher.batch",     "filter.vote",
	"filter.mode",      "filter.min_score", "student.start",     "student.init",
	"run.slice",        NULL,
};
static const char *const run_sections[] = {"corpus.", "run.", "teacher.", "filter.", "student.", NULL};

/* Keys that change neither the pseudo-labels nor the students. */
static const char *const unfrozen_keys[] = {
	"run.teachers", "run.filters", "run.students", "run.in_flight", "run.stall_timeout",
	"run.progress_every", "teacher.batch", "train.log_every", "train.checkpoint_every", NULL,
};

static int in_list(const char *k, const char *const *list)
{
	for (const char *const *q = list; *q; q++)
		if (!strcmp(*q, k))
			return 1;
	return 0;
}

static int has_prefix_in(const char *k, const char *const *prefixes)
{
	for (const char *const *p = prefixes; *p; p++)
		if (!strncmp(k, *p, strlen(*p)))
			return 1;
	return 0;
}

/* Unknown keys inside the run's sections; other sections are train_job's. */
static int check_run_keys(const jobfile *j)
{
	int n = jobfile_count(j), k = 0;
	const char **known = nb_xcalloc((size_t)n + sizeof run_keys / sizeof run_keys[0] + 1, sizeof(char *));
	for (const char *const *q = run_keys; *q; q++)
		known[k++] = *q;
	for (int i = 0; i < n; i++)
		if (!has_prefix_in(jobfile_key_at(j, i), run_sections))
			known[k++] = jobfile_key_at(j, i);
	known[k] = NULL;
	int rc = jobfile_check_known(j, known);
	free(known);
	return rc;
}

static int read_ints(const jobfile *j, run_job *r)
{
	long v[7];
	static const struct {
		const char *key;
		long def, lo, hi;
	} spec[] = {
		{"run.teachers", 1, 1, 100000}, {"run.filters", 1, 1, 100000}, {"run.students", 1, 0, 100000},
		{"run.rounds", 1, 1, 1000},     {"run.unit", 64, 1, 1 << 20},  {"run.in_flight", 2, 1, 64},
		{"teacher.K", 4, 0, 64},
	};
	for (int i = 0; i < 7; i++)
		if (jobfile_int(j, spec[i].key, spec[i].def, spec[i].lo, spec[i].hi, &v[i]) < 0)
			return -1;
	r->teachers = (int)v[0], r->filters = (int)v[1], r->students = (int)v[2];
	r->rounds = (int)v[3], r->unit = (int)v[4], r->in_flight = (int)v[5], r->K = (int)v[6];
	long batch, vote;
	if (jobfile_int(j, "teacher.batch", 16, 1, 4096, &batch) < 0 ||
	    jobfile_int(j, "filter.vote", r->K > 0 ? (r->K + 1) / 2 : 1, 1, r->K > 0 ? r->K : 1, &vote) < 0)
		return -1;
	r->batch = (int)batch;
	r->filter.vote = (int)vote;
	return 0;
}

/* run.slice = "I/N": this run labels the units u with u mod N = I (a job
 * array splits a corpus without a manifest step). */
static int read_slice(const jobfile *j, run_job *r)
{
	const char *v = jobfile_str(j, "run.slice", "0/1");
	const char *slash = strchr(v, '/');
	char num[32];
	long i, n;
	if (!slash || (size_t)(slash - v) >= sizeof num)
		return nb_error("%s: run.slice = '%s' is not I/N (for example 3/8)", jobfile_origin(j, "run.slice"), v);
	snprintf(num, sizeof num, "%.*s", (int)(slash - v), v);
	if (nb_parse_long(slash + 1, 1, 1L << 30, "run.slice N", &n) < 0 ||
	    nb_parse_long(num, 0, n - 1, "run.slice I", &i) < 0)
		return nb_error("%s: run.slice = '%s': %s", jobfile_origin(j, "run.slice"), v, nb_errmsg());
	r->slice = (int)i, r->nslices = (int)n;
	return 0;
}

static int read_choice(const jobfile *j, const char *key, const char *def, const char *a, const char *b,
		       int *out)
{
	const char *v = jobfile_str(j, key, def);
	if (!strcmp(v, a))
		*out = 0;
	else if (!strcmp(v, b))
		*out = 1;
	else
		return nb_error("%s: %s = '%s' must be '%s' or '%s'", jobfile_origin(j, key), key, v, a, b);
	return 0;
}

int run_job_read(const jobfile *j, run_job *r)
{
	memset(r, 0, sizeof *r);
	if (check_run_keys(j) < 0 || train_job_read(j, &r->train) < 0 || read_ints(j, r) < 0)
		return -1;
	/* Students train on caption shards, teachers caption: neither reads
	 * pairs, so a DPO job would run as cross-entropy without saying so. */
	if (r->train.tc.objective == TRAIN_DPO)
		return nb_error("%s: train.objective = dpo: nboost run trains its students with cross-entropy on "
				"labeled and pseudo-labeled captions; preference training is 'nboost pairs' then "
				"'nboost train' (docs/training.md)", jobfile_origin(j, "train.objective"));
	if (r->train.tc.text_only)
		return nb_error("%s: train.text_only = 1: nboost run's students caption images; text-only "
				"decoder pretraining is 'nboost train' (docs/training.md)", jobfile_origin(j, "train.text_only"));
	r->labeled = jobfile_str(j, "corpus.labeled", r->train.labeled ? r->train.labeled : "");
	r->unlabeled = jobfile_str(j, "corpus.unlabeled", "");
	r->test = jobfile_str(j, "corpus.test", "");
	r->teacher_model = jobfile_str(j, "teacher.model", "");
	int vote = r->filter.vote;
	consistency_opts_default(&r->filter);
	r->filter.vote = vote;
	int mode, start, init;
	if (jobfile_double(j, "teacher.sigma", 0.3, 0, 10, &r->sigma) < 0 ||
	    jobfile_double(j, "filter.min_score", 0, 0, 1, &r->filter.min_score) < 0 ||
	    jobfile_double(j, "run.stall_timeout", 600, 1, 1e7, &r->stall_timeout) < 0 ||
	    jobfile_double(j, "run.progress_every", 5, 0.1, 1e6, &r->progress_every) < 0 ||
	    read_choice(j, "filter.mode", "whole", "whole", "subset", &mode) < 0 ||
	    read_choice(j, "student.start", "streaming", "streaming", "after_labeling", &start) < 0 ||
	    read_choice(j, "student.init", "scratch", "scratch", "teacher", &init) < 0)
		return -1;
	r->filter.mode = mode ? CONS_SUBSET : CONS_WHOLE;
	r->start = start ? STUDENT_AFTER_LABELING : STUDENT_STREAMING;
	r->init = init ? STUDENT_FROM_TEACHER : STUDENT_SCRATCH;
	if (read_slice(j, r) < 0)
		return -1;
	if (r->students == 0 && (!*r->teacher_model || r->rounds != 1))
		return nb_error("%s: run.students = 0 (labeling only) needs teacher.model and run.rounds = 1",
				jobfile_origin(j, "run.students") ? jobfile_origin(j, "run.students") : "job file");
	if (!*r->labeled && r->students > 0)
		return nb_error("job file: corpus.labeled is not set (a directory of caption shards)");
	if (!*r->unlabeled)
		return nb_error("job file: corpus.unlabeled is not set (a directory of image or caption shards)");
	return 0;
}

int run_job_check_split(const run_job *r, int world)
{
	int need = 1 + r->teachers + r->filters + r->students;
	if (need == world)
		return 0;
	if (r->students == 0) {
		if (world < 3)
			return nb_error("nboost run (labeling only) needs at least 3 ranks (1 master, 1 teacher, "
					"1 filter), the world has %d", world);
		int f = 1 + (world - 3) / 8;
		return nb_error("run.teachers=%d + run.filters=%d + 1 master = %d ranks (labeling only), but the world "
				"has %d; for %d ranks try --run.teachers=%d --run.filters=%d", r->teachers, r->filters,
				need, world, world, world - 1 - f, f);
	}
	if (world < 4)
		return nb_error("nboost run needs at least 4 ranks (1 master, 1 teacher, 1 filter, 1 student), "
				"the world has %d; run it under mpirun -np 4 or more", world);
	/* Suggest a split for this world: one filter per 4 teachers, students
	 * get a third of the workers, teachers the rest. */
	int workers = world - 1, f = 1 + (workers - 3) / 8, s = (workers - f) / 3;
	if (s < 1)
		s = 1;
	int t = workers - f - s;
	return nb_error("run.teachers=%d + run.filters=%d + run.students=%d + 1 master = %d ranks, but the "
			"world has %d; for %d ranks try --run.teachers=%d --run.filters=%d --run.students=%d",
			r->teachers, r->filters, r->students, need, world, world, t, f, s);
}

/* The [model], [train], [noise] lines of train_job's effective text,
 * without the unfrozen keys. */
static void add_training_keys(nb_buf *b, const jobfile *j, const run_job *r)
{
	char *full = train_job_effective_config(j, &r->train);
	char section[128] = "";
	for (char *line = full, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (line[0] == '[') {
			snprintf(section, sizeof section, "%.*s", (int)strcspn(line + 1, "]"), line + 1);
			continue;
		}
		size_t klen = strcspn(line, " =");
		if (!klen || line[0] == '#')
			continue;
		if (strcmp(section, "model") && strcmp(section, "train") && strcmp(section, "noise"))
			continue;
		char key[256];
		snprintf(key, sizeof key, "%s.%.*s", section, (int)klen, line);
		if (!in_list(key, unfrozen_keys))
			nb_buf_addf(b, "%s = %s\n", key, line + klen + strspn(line + klen, " ="));
	}
	free(full);
}

char *run_job_frozen_text(const jobfile *j, const run_job *r)
{
	nb_buf b = {0};
	add_training_keys(&b, j, r);
	/* corpus.test is not here: it is only scored, it changes no result. */
	nb_buf_addf(&b, "corpus.labeled = %s\ncorpus.unlabeled = %s\n", r->labeled, r->unlabeled);
	nb_buf_addf(&b, "run.rounds = %d\nrun.unit = %d\nrun.slice = %d/%d\n", r->rounds, r->unit, r->slice,
		    r->nslices);
	nb_buf_addf(&b, "teacher.model = %s\nteacher.K = %d\nteacher.sigma = %.17g\n", r->teacher_model, r->K,
		    r->sigma);
	nb_buf_addf(&b, "filter.vote = %d\nfilter.mode = %s\nfilter.min_score = %.17g\n", r->filter.vote,
		    consistency_mode_name(r->filter.mode), r->filter.min_score);
	nb_buf_addf(&b, "student.start = %s\nstudent.init = %s\n",
		    r->start == STUDENT_STREAMING ? "streaming" : "after_labeling",
		    r->init == STUDENT_SCRATCH ? "scratch" : "teacher");
	return b.data;
}
