/* nboost train: supervised training with NoiseBoost on caption shards, data
 * parallel over MPI ranks (trainer/train.h). This file owns the command
 * line, the signals and the training loop; the job-file keys are read by
 * trainer/train_job.h, the run directory (checkpoint, config.conf,
 * metrics.jsonl, progress line) is trainer/run_dir.h, and every rank
 * agrees on failures through pipeline/ranks.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "labeler/evaluate.h"
#include "model/checkpoint.h"
#include "pipeline/ranks.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "common/jobfile.h"
#include "trainer/train_job.h"
#include "trainer/train.h"
#include "trainer/run_dir.h"

/* The one piece of global mutable state: set by the signal handler, read
 * between steps. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = sig; }

typedef struct {
	const char *job_path, *labeled, *out, *steps;
	const char *objective, *pairs, *ref;  /* as train.objective, data.pairs, dpo.ref */
	int resume; /* 1: --resume, 2: --resume=auto (decided in cmd_train) */
	long stop_at;
	char steps_buf[24]; /* steps points here when --steps is given */
} cli_opts;

/* Parses argv into o, and the --section.key=value arguments into overrides
 * (their keys checked). Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_cli(int argc, char **argv, cli_opts *o, jobfile *overrides)
{
	long steps = -1;
	memset(o, 0, sizeof *o);
	o->out = "runs/train";
	o->stop_at = -1;
	const cli_option opts[] = {
		CLI_OPT_STRING("labeled", &o->labeled, "DIR",
			       "caption shards to train on (default: data.labeled of the job)"),
		CLI_OPT_STRING("objective", &o->objective, "sft|dpo",
			       "as --train.objective: sft (cross-entropy on caption shards,\n"
			       "the default) or dpo (preference pairs, --pairs and --ref)"),
		CLI_OPT_STRING("pairs", &o->pairs, "DIR",
			       "dpo: the pair shards of `nboost pairs` (data.pairs)"),
		CLI_OPT_STRING("ref", &o->ref, "CKPT",
			       "dpo: the frozen reference checkpoint, also the policy's start\n"
			       "(dpo.ref; dpo.beta, dpo.noise, dpo.sft_weight: docs/training.md)"),
		CLI_OPT_STRING("out", &o->out, "RUNDIR",
			       "run directory: checkpoint.h5, metrics.jsonl, config.conf\n(default: runs/train)"),
		CLI_OPT_FLAG_OR("resume", &o->resume, "auto",
				"continue from RUNDIR/checkpoint.h5 (bit-identical on the same\nrank count); "
				"=auto: resume when it exists, else start (for\nrequeued jobs)"),
		CLI_OPT_LONG("steps", &steps, 0, 100000000, "N",
			     "total steps, as --train.steps=N (default: train.steps, 4000)"),
		CLI_OPT_LONG("stop-at", &o->stop_at, 0, 100000000, "N",
			     "stop after step N: checkpoint and exit 0 (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "train",
		.synopsis = "usage: nboost train JOB --labeled DIR [options] [--section.key=value...]\n"
			    "       nboost train JOB --objective dpo --pairs DIR --ref CKPT [options]\n"
			    "       mpirun -np N nboost train JOB --labeled DIR ...   (data parallel)\n",
		.about = "Trains the captioner with AdamW and NoiseBoost on the caption shards in DIR.\n"
			 "The global batch (train.batch) is split across ranks; results do not depend on\n"
			 "the rank count beyond float rounding. SIGTERM, SIGINT or SIGUSR1 finish the\n"
			 "current step, write the checkpoint and exit 75 (resumable); --resume\n"
			 "continues. Under mpirun send SIGUSR1 (mpirun itself exits 1 on SIGTERM;\n"
			 "docs/training.md). With --objective dpo it runs preference training (DPO)\n"
			 "on pair shards from a reference checkpoint, NoiseBoost on the chosen branch.\n",
		.opts = opts,
		.footer = "threads: OMP_NUM_THREADS per rank when set; otherwise the ranks on a node split\n"
			  "its CPUs (their affinity masks) evenly, at least one thread each.\n",
		.positional = "JOB",
		.min_pos = 1,
		.max_pos = 1,
		.overrides = overrides,
		.check_keys = train_job_check_keys,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	o->job_path = argv[1];
	if (steps >= 0) {
		snprintf(o->steps_buf, sizeof o->steps_buf, "%ld", steps);
		o->steps = o->steps_buf;
	}
	return -1;
}

/* The job file with the command line applied (the overrides, freed here,
 * then --steps and --labeled), read into s. Every rank reads it; an error
 * ends the run on all of them, printed once. */
static jobfile *load_job(const cli_opts *o, jobfile *overrides, train_job *s)
{
	jobfile *j = jobfile_load(o->job_path);
	int ok = j != NULL;
	if (ok) {
		for (int i = 0; i < jobfile_count(overrides); i++)
			jobfile_set(j, jobfile_key_at(overrides, i), jobfile_value_at(overrides, i), "command line");
		ok = (!o->steps || jobfile_set(j, "train.steps", o->steps, "command line (--steps)") == 0) &&
		     (!o->labeled || jobfile_set(j, "data.labeled", o->labeled, "command line (--labeled)") == 0) &&
		     (!o->objective ||
		      jobfile_set(j, "train.objective", o->objective, "command line (--objective)") == 0) &&
		     (!o->pairs || jobfile_set(j, "data.pairs", o->pairs, "command line (--pairs)") == 0) &&
		     (!o->ref || jobfile_set(j, "dpo.ref", o->ref, "command line (--ref)") == 0) &&
		     train_job_read(j, s) == 0;
	}
	jobfile_free(overrides);
	ranks_agree(ok, "reading the job file");
	return j;
}

/* The shards trained on: data.pairs for DPO, data.labeled otherwise. */
static const char *train_data_dir(const train_job *s)
{
	return s->tc.objective == TRAIN_DPO ? s->pairs : s->labeled;
}

/* The trainer with its data: resumed from the run directory's checkpoint
 * (which brings its shards back) or with the shards of data.labeled. Dies
 * on every rank on failure. */
static trainer *start_trainer(const train_job *s, const run_dir *rd, int resume, const char *config_text)
{
	trainer *t = trainer_create(&s->tc, MPI_COMM_WORLD);
	ranks_agree(t != NULL, "creating the trainer");
	if (resume) {
		ckpt_file *f = ckpt_open(rd->checkpoint, &s->tc.model);
		int ok = f && train_job_check_resume(rd->checkpoint, ckpt_job_config(f), config_text) == 0;
		ckpt_close(f);
		ranks_agree(ok, "resuming");
		if (trainer_resume(t, rd->checkpoint) < 0)
			ranks_fail_all();
	}
	/* DPO: the frozen reference, which a fresh policy starts from */
	if (s->tc.objective == TRAIN_DPO && trainer_set_reference(t, s->dpo_ref, !resume) < 0)
		ranks_fail_all();
	/* train.init_decoder: a fresh run's decoder from another checkpoint
	 * (say, a text-only pretraining); a resumed run has its own. */
	if (!resume && s->init_decoder)
		ranks_agree(trainer_init_decoder(t, s->init_decoder) == 0, "initialising the decoder");
	/* A resumed run has its shards back from the checkpoint; new ones join
	 * at the next train.watch_every boundary, as they would have without
	 * the interruption. */
	if (!resume && trainer_watch(t, train_data_dir(s)) < 0)
		ranks_fail_all();
	if (batcher_nsamples(trainer_batcher(t)) == 0) {
		nb_error("no training samples: '%s' holds no committed %s shard with samples", train_data_dir(s),
			 s->tc.objective == TRAIN_DPO ? "pair" : "caption");
		ranks_fail_all();
	}
	return t;
}

/* All ranks must stop at the same step, for the same reason: they agree
 * on it (the largest wins). 0: go on, 1: --stop-at, 2: a signal. */
static int stop_now(long step, long stop_at)
{
	int mine = stop_requested != 0 ? 2 : stop_at >= 0 && step >= stop_at ? 1 : 0, any = 0;
	MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	return any;
}

/* train.eval_every: rank 0 decodes data.test with the current weights
 * (labeler/evaluate.h: clean, greedy) and logs CHAIR_i and tuple F1 to
 * metrics.jsonl. The hook lives here because trainer/ may not use
 * labeler/ (docs/design.md); the other ranks wait at the next step's
 * collective. Dies on every rank when the scoring fails. */
static void eval_held_out(trainer *t, const train_job *s, run_dir *rd, long step)
{
	int ok = 1;
	if (rd->writer) {
		metrics_result r;
		evaluate_opts eo = {.batch = EVALUATE_BATCH};
		ok = evaluate_shards(trainer_model(t), s->test, &eo, &r) == 0;
		if (ok) {
			char fields[512];
			snprintf(fields, sizeof fields,
				 "\"n\": %ld, \"chair_i\": %.9g, \"chair_s\": %.9g, \"recall\": %.9g, \"tuple_f1\": %.9g",
				 r.captions, r.chair_i, r.chair_s, r.recall, r.tuple_f1);
			ok = run_dir_log_eval(rd, step, fields) == 0;
			fprintf(stderr, "train: step %ld: held-out '%s': CHAIR_i %.4f  tuple F1 %.4f  (%ld images)\n", step,
				s->test, r.chair_i, r.tuple_f1, r.captions);
		}
	}
	ranks_agree(ok, "scoring data.test");
}

/* Writes the checkpoint, and keeps a copy of it under train.keep_checkpoints.
 * Dies on every rank on a failure. */
static void save(trainer *t, const train_job *s, run_dir *rd, const char *config_text)
{
	if (trainer_save(t, rd->checkpoint, config_text) < 0)
		ranks_fail_all();
	ranks_agree(run_dir_keep_checkpoint(rd, trainer_step_index(t), s->keep_checkpoints) == 0,
		    "keeping a step checkpoint");
}

/* Trains to train.steps or until a stop (a signal, --stop-at), watching
 * for new shards and checkpointing as the job says, and always at the end.
 * Returns stop_now's reason when it stopped early, else 0; dies on every
 * rank on a failure. */
static int train_loop(trainer *t, const train_job *s, const cli_opts *o, run_dir *rd, const char *config_text)
{
	long total = s->tc.steps, saved_at = o->resume ? trainer_step_index(t) : -1;
	int stopped = 0;
	run_dir_start(rd, trainer_step_index(t), total, s->log_every);
	while (trainer_step_index(t) < total) {
		long step = trainer_step_index(t);
		if ((stopped = stop_now(step, o->stop_at)) != 0)
			break;
		if (s->watch_every > 0 && step > 0 && step % s->watch_every == 0) {
			int added = trainer_watch(t, train_data_dir(s));
			if (added < 0)
				ranks_fail_all();
			if (added > 0 && rd->writer)
				fprintf(stderr, "train: step %ld: added %d new shard(s), %zu samples in all\n", step, added,
					batcher_nsamples(trainer_batcher(t)));
		}
		train_stats st;
		if (trainer_step(t, &st) < 0)
			ranks_fail_all();
		ranks_agree(run_dir_log_step(rd, &st) == 0, "logging metrics");
		if (s->checkpoint_every > 0 && st.step % s->checkpoint_every == 0 && st.step < total) {
			save(t, s, rd, config_text);
			saved_at = st.step;
		}
		if (s->eval_every > 0 && s->test && (st.step % s->eval_every == 0 || st.step == total))
			eval_held_out(t, s, rd, st.step);
	}
	if (saved_at != trainer_step_index(t))
		save(t, s, rd, config_text);
	return stopped;
}

static void print_start(trainer *t, const train_job *s, int resume, int size, int threads, int threads_auto)
{
	batcher *data = trainer_batcher(t);
	fprintf(stderr,
		"train: %zu samples in %d shard(s), %d rank(s) x %d thread(s)%s, global batch %d, "
		"%zu parameters, step %ld/%ld%s\n",
		batcher_nsamples(data), batcher_nshards(data), size, threads, threads_auto ? "" : " (OMP_NUM_THREADS)",
		s->tc.batch, vlm_nparams(trainer_model(t)), trainer_step_index(t), s->tc.steps,
		resume ? " (resumed)" : "");
}

static void print_end(trainer *t, const train_job *s, const run_dir *rd, int stopped)
{
	batcher *data = trainer_batcher(t);
	if (stopped)
		fprintf(stderr, "train: stopped at step %ld/%ld%s; checkpoint '%s'; continue with --resume\n",
			trainer_step_index(t), s->tc.steps, stopped == 2 ? " on a signal" : "", rd->checkpoint);
	else
		fprintf(stderr, "train: done, %ld steps; checkpoint '%s'\n", s->tc.steps, rd->checkpoint);
	if (batcher_ntruncated(data))
		nb_warn("%zu caption(s) longer than %d words were truncated", batcher_ntruncated(data),
			s->tc.model.max_text - 1);
}

/* --resume=auto: resume when RUNDIR/checkpoint.h5 exists (rank 0 looks,
 * every rank follows), else start afresh. */
static int resume_auto(const run_dir *rd)
{
	int have = rd->writer && access(rd->checkpoint, F_OK) == 0;
	MPI_Bcast(&have, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (rd->writer)
		fprintf(stderr, "train: --resume=auto: %s\n",
			have ? "a checkpoint exists, resuming" : "no checkpoint yet, starting");
	return have;
}

int cmd_train(int argc, char **argv)
{
	jobfile *overrides = jobfile_new();
	cli_opts o;
	int rc = parse_cli(argc, argv, &o, overrides);
	if (rc >= 0) {
		jobfile_free(overrides);
		return rc;
	}
	int rank = 0, size = 1;
	ranks_start(&argc, &argv, &rank, &size);
	int threads_auto = 0, threads = ranks_threads(&threads_auto);
	/* Early, so a signal while the shards load still ends in a checkpoint. */
	cli_catch_stop_signals(on_signal);
	train_job s;
	jobfile *j = load_job(&o, overrides, &s);
	const char *missing = NULL;
	if (s.tc.objective == TRAIN_DPO && !s.pairs)
		missing = "objective dpo needs pair shards: pass --pairs DIR (or set data.pairs)";
	else if (s.tc.objective == TRAIN_DPO && !s.dpo_ref)
		missing = "objective dpo needs a reference checkpoint: pass --ref CKPT (or set dpo.ref)";
	else if (s.tc.objective != TRAIN_DPO && (!s.labeled || !*s.labeled))
		missing = "no training data: pass --labeled DIR (or set data.labeled)";
	if (missing) {
		if (rank == 0)
			fprintf(stderr, "nboost train: %s\n", missing);
		ranks_finish();
		return 2;
	}
	if (s.eval_every > 0 && !s.test) {
		if (rank == 0)
			fprintf(stderr, "nboost train: train.eval_every = %ld needs held-out shards: set data.test "
					"(--data.test=DIR)\n", s.eval_every);
		ranks_finish();
		return NB_EXIT_USAGE;
	}
	if (s.test)
		ranks_agree(rank != 0 || evaluate_check_shards(s.test, s.tc.model.image_size, NULL) == 0,
			    "checking data.test");
	char *config_text = train_job_effective_config(j, &s);
	run_dir rd;
	run_dir_init(&rd, o.out, rank == 0);
	if (o.resume == 2)
		o.resume = resume_auto(&rd);
	ranks_agree(run_dir_check(&rd, o.resume) == 0, "setting up the run directory");
	trainer *t = start_trainer(&s, &rd, o.resume, config_text);
	ranks_agree(run_dir_open_files(&rd, config_text, o.resume, trainer_step_index(t)) == 0,
		    "opening the run files");
	if (rank == 0)
		print_start(t, &s, o.resume, size, threads, threads_auto);
	int stopped = train_loop(t, &s, &o, &rd, config_text);
	ranks_agree(run_dir_finish(&rd) == 0, "closing the run files");
	if (rank == 0)
		print_end(t, &s, &rd, stopped);
	run_dir_close(&rd);
	trainer_free(t);
	free(config_text);
	jobfile_free(j);
	ranks_finish();
	return stopped == 2 ? NB_EXIT_STOPPED : NB_EXIT_OK;
}
