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
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "model/checkpoint.h"
#include "pipeline/ranks.h"
#include "cli/commands.h"
#include "common/jobfile.h"
#include "trainer/train_job.h"
#include "trainer/train.h"

/* The one piece of global mutable state: set by the signal handler, read
 * between steps. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = sig; }

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
		"  -h, --help        this text\n"
		"\n"
		"threads: OMP_NUM_THREADS per rank when set; otherwise the ranks on a node split\n"
		"its CPUs (their affinity masks) evenly, at least one thread each.\n");
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

static void log_step(progress *p, const train_job *s, const train_stats *st, long total)
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
	ranks_finish();
	exit(1);
}

/* For failures every rank meets identically (a bad job file): one message. */
NB_NORETURN static void fail_setup(int rank)
{
	if (rank == 0)
		fprintf(stderr, "nboost: fatal: %s\n", nb_errmsg());
	ranks_finish();
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
	ranks_start(&argc, &argv, &rank, &size);
	int threads_auto = 0, threads = ranks_threads(&threads_auto);
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
	train_job s;
	if (train_job_read(j, &s) < 0)
		fail_setup(rank);
	if (!s.labeled || !*s.labeled) {
		if (rank == 0)
			fprintf(stderr, "nboost train: no training data: pass --labeled DIR (or set data.labeled)\n");
		ranks_finish();
		return 2;
	}
	char *config_text = train_job_effective_config(j, &s);

	char ckpt[4200], metrics_path[4200], config_path[4200];
	snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", o.out);
	snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", o.out);
	snprintf(config_path, sizeof config_path, "%s/config.conf", o.out);
	int ok = 1;
	if (rank == 0) {
		ok = nb_mkdir_p(o.out) == 0;
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
		if (!f || train_job_check_resume(ckpt, ckpt_job_config(f), config_text) < 0)
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
			"train: %zu samples in %d shard(s), %d rank(s) x %d thread(s)%s, global batch %d, "
			"%zu parameters, step %ld/%ld%s\n",
			batcher_nsamples(data), batcher_nshards(data), size, threads,
			threads_auto ? "" : " (OMP_NUM_THREADS)", s.tc.batch,
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
	ranks_finish();
	return 0;
}
