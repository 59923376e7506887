/* nboost train: supervised training with NoiseBoost on caption shards, data
 * parallel over MPI ranks (trainer/train.h). This file owns the command
 * line, the job file keys of [model], [train], [noise] and data.labeled,
 * signals, progress, metrics.jsonl and the run directory. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "model/checkpoint.h"
#include "pipeline/cli_mpi.h"
#include "pipeline/commands.h"
#include "pipeline/jobfile.h"
#include "trainer/train.h"

/* The one piece of global mutable state: set by the signal handler, read
 * between steps. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = sig; }

typedef struct {
	train_config tc;
	long checkpoint_every, log_every, watch_every;
	const char *labeled;
} job_settings;

/* Keys that must not change when a run is resumed: they define the model,
 * the data order or the optimisation path. train.steps may change (the
 * cosine then follows the new length); logging and watching may too. */
static const char *const frozen_keys[] = {
	"model.image_size", "model.patch", "model.enc_dim", "model.enc_layers", "model.enc_heads",
	"model.dec_dim", "model.dec_layers", "model.dec_heads", "model.mlp_ratio", "model.max_text",
	"train.batch", "train.lr", "train.weight_decay", "train.beta1", "train.beta2", "train.eps",
	"train.warmup", "train.clip", "train.seed", "noise.sigma", NULL,
};

static const char *const my_keys[] = {
	"model.image_size", "model.patch", "model.enc_dim", "model.enc_layers", "model.enc_heads",
	"model.dec_dim", "model.dec_layers", "model.dec_heads", "model.mlp_ratio", "model.max_text",
	"train.steps", "train.batch", "train.lr", "train.weight_decay", "train.beta1", "train.beta2", "train.eps",
	"train.warmup", "train.clip", "train.seed", "train.checkpoint_every", "train.log_every",
	"train.watch_every", "noise.sigma", "data.labeled", NULL,
};

/* Sections this command checks strictly; others belong to other commands
 * (nboost run: [run], [teacher], [filter], [student]...) and pass through. */
static int is_my_section(const char *key)
{
	return !strncmp(key, "model.", 6) || !strncmp(key, "train.", 6) || !strncmp(key, "noise.", 6);
}

static int check_keys(const jobfile *j)
{
	int n = jobfile_count(j), k = 0;
	const char **known = nb_xcalloc((size_t)n + sizeof my_keys / sizeof my_keys[0] + 1, sizeof(char *));
	for (int i = 0; my_keys[i]; i++)
		known[k++] = my_keys[i];
	for (int i = 0; i < n; i++)
		if (!is_my_section(jobfile_key_at(j, i)))
			known[k++] = jobfile_key_at(j, i);
	known[k] = NULL;
	int rc = jobfile_check_known(j, known);
	free(known);
	return rc;
}

static int get_model_int(const jobfile *j, const char *key, int def, long lo, long hi, int *out)
{
	long v;
	if (jobfile_int(j, key, def, lo, hi, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

static int read_settings(const jobfile *j, job_settings *s)
{
	if (check_keys(j) < 0)
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
	double sigma;
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
	    jobfile_double(j, "noise.sigma", c->sigma, 0.0, 100.0, &sigma) < 0)
		return -1;
	c->batch = (int)batch;
	c->seed = (uint64_t)seed;
	c->sigma = (float)sigma;
	s->labeled = jobfile_str(j, "data.labeled", NULL);
	return 0;
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
static char *effective_config(const jobfile *j, const job_settings *s)
{
	const train_config *c = &s->tc;
	const vlm_config *m = &c->model;
	size_t cap = 4096, at = 0;
	char *buf = nb_xmalloc(cap);
#define EMIT(...)                                                                   \
	do {                                                                        \
		for (;;) {                                                          \
			int k_ = snprintf(buf + at, cap - at, __VA_ARGS__);         \
			if (k_ >= 0 && (size_t)k_ < cap - at) {                     \
				at += (size_t)k_;                                   \
				break;                                              \
			}                                                           \
			cap *= 2;                                                   \
			buf = nb_xrealloc(buf, cap);                                \
		}                                                                   \
	} while (0)
	EMIT("# effective configuration written by nboost train\n[model]\n");
	EMIT("image_size = %d\npatch = %d\nenc_dim = %d\nenc_layers = %d\nenc_heads = %d\n", m->image_size,
	     m->patch, m->enc_dim, m->enc_layers, m->enc_heads);
	EMIT("dec_dim = %d\ndec_layers = %d\ndec_heads = %d\nmlp_ratio = %d\nmax_text = %d\n", m->dec_dim,
	     m->dec_layers, m->dec_heads, m->mlp_ratio, m->max_text);
	char n1[32], n2[32], n3[32];
	EMIT("\n[train]\nsteps = %ld\nbatch = %d\nlr = %s\nweight_decay = %s\n", c->steps, c->batch,
	     exact(n1, sizeof n1, c->lr), exact(n2, sizeof n2, c->adam.weight_decay));
	EMIT("beta1 = %s\nbeta2 = %s\neps = %s\n", exact(n1, sizeof n1, c->adam.beta1),
	     exact(n2, sizeof n2, c->adam.beta2), exact(n3, sizeof n3, c->adam.eps));
	EMIT("warmup = %ld\nclip = %s\nseed = %llu\n", c->warmup, exact(n1, sizeof n1, c->clip),
	     (unsigned long long)c->seed);
	EMIT("checkpoint_every = %ld\nlog_every = %ld\nwatch_every = %ld\n", s->checkpoint_every, s->log_every,
	     s->watch_every);
	EMIT("\n[noise]\nsigma = %s\n", exactf(n1, sizeof n1, c->sigma));
	EMIT("\n[data]\nlabeled = %s\n", s->labeled ? s->labeled : "");
	int n = jobfile_count(j);
	for (int i = 0; i < n; i++) {
		const char *k = jobfile_key_at(j, i);
		if (!strncmp(k, "data.", 5) && strcmp(k, "data.labeled"))
			EMIT("%s = %s\n", k + 5, jobfile_value_at(j, i));
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
		EMIT("\n[%.*s]\n", (int)sec - 1, k);
		for (int p = i; p < n; p++)
			if (!strncmp(jobfile_key_at(j, p), k, sec))
				EMIT("%s = %s\n", jobfile_key_at(j, p) + sec, jobfile_value_at(j, p));
	}
#undef EMIT
	return buf;
}

/* Lists the frozen keys whose values differ between the checkpoint's job
 * text and this run's. 0 or nb_error. */
static int compare_frozen(const char *ckpt_path, const char *then_text, const char *now_text)
{
	jobfile *a = jobfile_parse(then_text, ckpt_path), *b = jobfile_parse(now_text, "this job");
	if (!a || !b) {
		jobfile_free(a);
		jobfile_free(b);
		return nb_error("cannot resume from '%s': its stored job config does not parse", ckpt_path);
	}
	char list[2048] = "";
	size_t at = 0;
	for (int i = 0; frozen_keys[i]; i++) {
		const char *x = jobfile_get(a, frozen_keys[i]), *y = jobfile_get(b, frozen_keys[i]);
		if (x && y && !strcmp(x, y))
			continue;
		int k = snprintf(list + at, sizeof list - at, "%s%s = %s (checkpoint) vs %s (now)", at ? ", " : "",
				 frozen_keys[i], x ? x : "unset", y ? y : "unset");
		if (k > 0 && (size_t)k < sizeof list - at)
			at += (size_t)k;
	}
	jobfile_free(a);
	jobfile_free(b);
	if (at)
		return nb_error("cannot resume from '%s': the job differs from the checkpoint's: %s", ckpt_path, list);
	return 0;
}


static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return nb_error("cannot create run directory '%s': %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return nb_error("cannot create run directory '%s': %s", buf, strerror(errno));
	return 0;
}

/* On resume, metrics logged after the checkpoint belong to steps that will
 * be redone: drop them so the log reads like one uninterrupted run. */
static int trim_metrics(const char *path, long upto)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t cap = 1 << 16, at = 0;
	char *out = nb_xmalloc(cap), line[4096];
	while (fgets(line, sizeof line, f)) {
		const char *s = strstr(line, "\"step\":");
		long step = s ? strtol(s + 7, NULL, 10) : 0;
		if (step > upto)
			continue;
		size_t k = strlen(line);
		if (at + k + 1 > cap) {
			cap = 2 * (at + k + 1);
			out = nb_xrealloc(out, cap);
		}
		memcpy(out + at, line, k);
		at += k;
	}
	fclose(f);
	out[at] = '\0';
	int rc = nb_write_file_atomic(path, out, strlen(out));
	free(out);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t n, double s)
{
	if (!(s >= 0) || s > 1e8)
		snprintf(buf, n, "?");
	else if (s >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
	else if (s >= 60)
		snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(buf, n, "%.0fs", s);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nboost train JOB --labeled DIR [options] [--section.key=value...]\n"
		"       mpirun -np N nboost train JOB --labeled DIR ...   (data parallel)\n"
		"\n"
		"Trains the captioner with AdamW and NoiseBoost on the caption shards in DIR.\n"
		"The global batch (train.batch) is split across ranks; results do not depend on\n"
		"the rank count beyond float rounding. SIGTERM, SIGINT or SIGUSR1 finish the\n"
		"current step, write the checkpoint and exit 0; --resume continues.\n"
		"\n"
		"options:\n"
		"  --labeled DIR     caption shards to train on (default: data.labeled of the job)\n"
		"  --out RUNDIR      run directory: checkpoint.h5, metrics.jsonl, config.conf\n"
		"                    (default: runs/train)\n"
		"  --resume          continue from RUNDIR/checkpoint.h5 (bit-identical on the same\n"
		"                    rank count)\n"
		"  --steps N         total steps, as --train.steps=N (default: train.steps, 4000)\n"
		"  --stop-at N       stop after step N as if signalled: checkpoint and exit 0\n"
		"                    (default: off)\n"
		"  --section.key=V   override any job-file key (schemas/job_file.md)\n"
		"  -h, --help        this text\n");
}

typedef struct {
	const char *job_path, *labeled, *out, *steps;
	int resume;
	long stop_at;
} cli_opts;

/* 0 ok, 2 usage error, 1 help printed. */
static int parse_cli(int argc, char **argv, cli_opts *o)
{
	static const struct option longopts[] = {
		{"labeled", required_argument, NULL, 'l'}, {"out", required_argument, NULL, 'o'},
		{"resume", no_argument, NULL, 'r'},        {"steps", required_argument, NULL, 's'},
		{"stop-at", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	memset(o, 0, sizeof *o);
	o->out = "runs/train";
	o->stop_at = -1;
	optind = 1;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': o->labeled = optarg; break;
		case 'o': o->out = optarg; break;
		case 'r': o->resume = 1; break;
		case 's': o->steps = optarg; break;
		case 'S': {
			char *end;
			o->stop_at = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->stop_at < 0) {
				fprintf(stderr, "nboost train: --stop-at '%s' is not a step number\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': return 1;
		default:
			fprintf(stderr, "nboost train: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "nboost train: %s\n", optind >= argc ? "missing JOB file" : "more than one JOB file");
		return 2;
	}
	o->job_path = argv[optind];
	return 0;
}

typedef struct {
	int rank;
	FILE *metrics;
	double t0, last_print;
	long first_step, last_print_step;
} progress;

static void log_step(progress *p, const job_settings *s, const train_stats *st, long total)
{
	if (p->rank != 0)
		return;
	double t = now_s(), elapsed = t - p->t0;
	double sps = elapsed > 0 ? (double)(st->step - p->first_step) * st->samples / elapsed : 0.0;
	if (st->step % s->log_every == 0 || st->step == total) {
		fprintf(p->metrics,
			"{\"step\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"samples_per_s\": %.4g, "
			"\"elapsed_s\": %.3f}\n",
			st->step, st->loss, st->lr, st->grad_norm, sps, elapsed);
		fflush(p->metrics);
	}
	if (t - p->last_print >= 2.0 || st->step == total || st->step == p->first_step + 1) {
		char eta[32];
		double per = (double)(st->step - p->first_step) > 0 ? elapsed / (double)(st->step - p->first_step) : 0;
		fmt_duration(eta, sizeof eta, per * (double)(total - st->step));
		fprintf(stderr, "train: step %ld/%ld  loss %.4f  lr %.2e  |g| %.3f  %.1f samples/s  ETA %s\n",
			st->step, total, st->loss, st->lr, st->grad_norm, sps, eta);
		p->last_print = t;
		p->last_print_step = st->step;
	}
}

/* Called on every rank together, after a failure they agreed on. Rank 0
 * prints its message; another rank prints only a cause rank 0 did not see
 * itself, so an error every rank met (a bad shard) is printed once. */
NB_NORETURN static void fail_all(int rank)
{
	const char *msg = nb_errmsg();
	int local = *msg && !strstr(msg, "on another rank"), r0_local = local;
	MPI_Bcast(&r0_local, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (rank == 0)
		fprintf(stderr, "nboost: fatal: %s\n", *msg ? msg : "training failed");
	else if (local && !r0_local)
		fprintf(stderr, "nboost: fatal: rank %d: %s\n", rank, msg);
	cli_mpi_finish();
	exit(1);
}

/* For failures every rank meets identically (a bad job file): one message. */
NB_NORETURN static void fail_setup(int rank)
{
	if (rank == 0)
		fprintf(stderr, "nboost: fatal: %s\n", nb_errmsg());
	cli_mpi_finish();
	exit(1);
}

/* Collective: continues when ok on every rank, else fails on all. */
static void agree_or_fail(int ok, int rank, const char *what)
{
	int all = 0;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (all)
		return;
	if (ok)
		nb_error("%s failed on another rank", what);
	fail_all(rank);
}

int cmd_train(int argc, char **argv)
{
	/* Overrides first: they are the --section.key=value arguments. */
	jobfile *overrides = jobfile_new();
	if (jobfile_apply_overrides(overrides, &argc, argv) < 0) {
		fprintf(stderr, "nboost train: %s\n", nb_errmsg());
		usage(stderr);
		return 2;
	}
	cli_opts o;
	int prc = parse_cli(argc, argv, &o);
	if (prc) {
		usage(prc == 1 ? stdout : stderr);
		jobfile_free(overrides);
		return prc == 1 ? 0 : 2;
	}
	int rank = 0, size = 1;
	cli_mpi_start(&argc, &argv, &rank, &size);
	/* Early, so a signal while the shards load still ends in a checkpoint. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	jobfile *j = jobfile_load(o.job_path);
	if (!j)
		fail_setup(rank);
	for (int i = 0; i < jobfile_count(overrides); i++)
		jobfile_set(j, jobfile_key_at(overrides, i), jobfile_value_at(overrides, i), "command line");
	jobfile_free(overrides);
	if (o.steps && jobfile_set(j, "train.steps", o.steps, "command line (--steps)") < 0)
		fail_setup(rank);
	if (o.labeled && jobfile_set(j, "data.labeled", o.labeled, "command line (--labeled)") < 0)
		fail_setup(rank);
	job_settings s;
	if (read_settings(j, &s) < 0)
		fail_setup(rank);
	if (!s.labeled || !*s.labeled) {
		if (rank == 0)
			fprintf(stderr, "nboost train: no training data: pass --labeled DIR (or set data.labeled)\n");
		cli_mpi_finish();
		return 2;
	}
	char *config_text = effective_config(j, &s);

	char ckpt[4200], metrics_path[4200], config_path[4200];
	snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", o.out);
	snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", o.out);
	snprintf(config_path, sizeof config_path, "%s/config.conf", o.out);
	int ok = 1;
	if (rank == 0) {
		ok = mkdir_p(o.out) == 0;
		if (ok && !o.resume && access(ckpt, F_OK) == 0)
			ok = nb_error("run directory '%s' already holds a checkpoint: pass --resume to continue it, "
				      "or choose another --out", o.out) == 0;
		if (ok && o.resume && access(ckpt, F_OK) != 0)
			ok = nb_error("cannot resume: no checkpoint '%s'", ckpt) == 0;
	}
	agree_or_fail(ok, rank, "setting up the run directory");

	trainer *t = trainer_create(&s.tc, MPI_COMM_WORLD);
	if (!t)
		fail_setup(rank);
	if (o.resume) {
		ok = 1;
		ckpt_file *f = ckpt_open(ckpt, &s.tc.model);
		if (!f || compare_frozen(ckpt, ckpt_job_config(f), config_text) < 0)
			ok = 0;
		ckpt_close(f);
		agree_or_fail(ok, rank, "resuming");
		if (trainer_resume(t, ckpt) < 0)
			fail_all(rank);
	}
	batcher *data = trainer_batcher(t);
	/* A resumed run has its shards back from the checkpoint; new ones join
	 * at the next train.watch_every boundary, as they would have without
	 * the interruption. */
	int added = 0;
	if (!o.resume && (added = trainer_watch(t, s.labeled)) < 0)
		fail_all(rank);
	if (batcher_nsamples(data) == 0) {
		nb_error("no training samples: '%s' holds no committed caption shard with samples", s.labeled);
		fail_all(rank);
	}

	FILE *metrics = NULL;
	ok = 1;
	if (rank == 0) {
		ok = nb_write_file_atomic(config_path, config_text, strlen(config_text)) == 0;
		if (ok && o.resume)
			ok = trim_metrics(metrics_path, trainer_step_index(t)) == 0;
		if (ok) {
			metrics = fopen(metrics_path, o.resume ? "a" : "w");
			if (!metrics)
				ok = nb_error("cannot open '%s': %s", metrics_path, strerror(errno)) == 0;
		}
	}
	agree_or_fail(ok, rank, "opening the run files");

	long total = s.tc.steps;
	if (rank == 0)
		fprintf(stderr,
			"train: %zu samples in %d shard(s), %d rank(s), global batch %d, %zu parameters, "
			"step %ld/%ld%s\n",
			batcher_nsamples(data), batcher_nshards(data), size, s.tc.batch,
			vlm_nparams(trainer_model(t)), trainer_step_index(t), total, o.resume ? " (resumed)" : "");
	progress p = {.rank = rank, .metrics = metrics, .t0 = now_s(), .first_step = trainer_step_index(t)};
	p.last_print = p.t0;
	long saved_at = o.resume ? trainer_step_index(t) : -1;
	int stopped = 0;
	while (trainer_step_index(t) < total) {
		long step = trainer_step_index(t);
		/* All ranks must stop at the same step: agree on the flag. */
		int mine = stop_requested != 0 || (o.stop_at >= 0 && step >= o.stop_at), any = 0;
		MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
		if (any) {
			stopped = 1;
			break;
		}
		if (s.watch_every > 0 && step > 0 && step % s.watch_every == 0) {
			added = trainer_watch(t, s.labeled);
			if (added < 0)
				fail_all(rank);
			if (added > 0 && rank == 0)
				fprintf(stderr, "train: step %ld: added %d new shard(s), %zu samples in all\n", step, added,
					batcher_nsamples(data));
		}
		train_stats st;
		if (trainer_step(t, &st) < 0)
			fail_all(rank);
		log_step(&p, &s, &st, total);
		if (s.checkpoint_every > 0 && st.step % s.checkpoint_every == 0 && st.step < total) {
			if (trainer_save(t, ckpt, config_text) < 0)
				fail_all(rank);
			saved_at = st.step;
		}
	}
	if (saved_at != trainer_step_index(t) && trainer_save(t, ckpt, config_text) < 0)
		fail_all(rank);
	if (rank == 0) {
		if (stopped)
			fprintf(stderr, "train: stopped at step %ld/%ld%s; checkpoint '%s'; continue with --resume\n",
				trainer_step_index(t), total, stop_requested ? " on a signal" : "", ckpt);
		else
			fprintf(stderr, "train: done, %ld steps; checkpoint '%s'\n", total, ckpt);
		if (batcher_ntruncated(data))
			nb_warn("%zu caption(s) longer than %d words were truncated", batcher_ntruncated(data),
				s.tc.model.max_text - 1);
		fclose(metrics);
	}
	trainer_free(t);
	free(config_text);
	jobfile_free(j);
	cli_mpi_finish();
	return 0;
}
