/* Running a study: the corpus, then every (arm, seed) job as a forked
 * runner that executes nboost's own commands in order (train or run, eval,
 * attn) and writes the job's result.json last. See study.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_json.h"
#include "common/nb_prov.h"
#include "common/nb_time.h"
#include "study/study.h"

#define STUDY_EXIT_HELD 3     /* runner: another process holds the job */
#define STUDY_EXIT_STOPPED NB_EXIT_STOPPED /* stopped by a signal, resumable (docs/exit-codes.md) */

extern char **environ;

static volatile sig_atomic_t stop_sig; /* the study's stop request */
static volatile pid_t current_child;   /* in a runner: the command running now */

static void on_stop(int sig)
{
	stop_sig = sig;
	pid_t c = current_child;
	if (c > 0)
		kill(c, sig == SIGUSR1 ? SIGUSR1 : SIGTERM);
}

static void install_handlers(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
}

typedef struct {
	int arm, seed;
	char dir[4096];
	pid_t pid;      /* running here */
	int state;      /* 0 todo, 1 running here, 2 done, 3 failed, 4 held elsewhere (retry later) */
	double retry_at, started;
} job;

/* ---- child processes ---------------------------------------------------- */

/* The environment of a child: the launcher's per-rank variables removed
 * (a child nboost is its own MPI job, not a rank of ours: Open MPI's
 * singleton start reads PMIx, Open MPI and Slurm step variables), thread
 * counts set. Returns a NULL-terminated array; entries point into environ or
 * into `keep`. */
static char **child_env(int threads, char keep[3][64])
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = nb_xcalloc(n + 4, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = environ[i];
		int launcher = !strncmp(e, "PMIX_", 5) || !strncmp(e, "PMI_", 4) || !strncmp(e, "SLURM_", 6) ||
			       (!strncmp(e, "OMPI_", 5) && strncmp(e, "OMPI_ALLOW_RUN_AS_ROOT", 22) &&
				(strncmp(e, "OMPI_MCA_", 9) || !strncmp(e, "OMPI_MCA_ess", 12) ||
				 !strncmp(e, "OMPI_MCA_orte_", 14) || !strncmp(e, "OMPI_MCA_pmix", 13) ||
				 !strncmp(e, "OMPI_MCA_initial_wdir", 21) || !strncmp(e, "OMPI_MCA_shmem_RUNTIME", 22) ||
				 !strncmp(e, "OMPI_MCA_mpi_oversubscribe", 26)));
		if (!launcher && strncmp(e, "OMP_NUM_THREADS=", 16) && strncmp(e, "OPENBLAS_NUM_THREADS=", 21) &&
		    strncmp(e, "OMPI_MCA_rmaps_base_oversubscribe=", 34))
			env[k++] = environ[i];
	}
	snprintf(keep[0], 64, "OMP_NUM_THREADS=%d", threads);
	snprintf(keep[1], 64, "OPENBLAS_NUM_THREADS=%d", threads);
	snprintf(keep[2], 64, "OMPI_MCA_rmaps_base_oversubscribe=1");
	env[k++] = keep[0], env[k++] = keep[1], env[k++] = keep[2];
	env[k] = NULL;
	return env;
}

/* What one phase of a job cost. With a ledger (the job's costs.jsonl),
 * every command's cost is also appended there as it ends, so that the
 * attempts of a job stopped and resumed all count in its result. */
typedef struct {
	double wall, cpu;
	const char *ledger, *phase;
} phase_cost;

static void ledger_add(const phase_cost *p, const char *cmd, double wall, double cpu)
{
	if (!p->ledger)
		return;
	int fd = open(p->ledger, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return; /* the result then undercounts; the job itself is not at stake */
	char line[256];
	int n = snprintf(line, sizeof line, "{\"phase\":\"%s\",\"cmd\":\"%s\",\"wall_s\":%.1f,\"cpu_s\":%.1f}\n", p->phase,
			 cmd, wall, cpu);
	if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) != n) {
		/* as above */
	}
	close(fd);
}

/* Runs argv with stdout to out_path (NULL: the log) and stderr to the log
 * (appended). 0 when it exits 0; else nb_error with the status, the log
 * named. The cost is added to *cost. */
static int run_cmd(char *const argv[], const char *log, const char *out_path, int threads, phase_cost *cost)
{
	int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lfd < 0)
		return nb_error("cannot open log '%s': %s", log, strerror(errno));
	int ofd = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : lfd;
	if (ofd < 0) {
		close(lfd);
		return nb_error("cannot create '%s': %s", out_path, strerror(errno));
	}
	{
		nb_buf line = {0};
		nb_buf_adds(&line, "\n$");
		for (int i = 0; argv[i]; i++)
			nb_buf_addf(&line, " %s", argv[i]);
		nb_buf_adds(&line, "\n");
		if (write(lfd, line.data, line.len) < 0) {
			/* the log is for people; a failed write shows in the command's own errors */
		}
		free(line.data);
	}
	char keep[3][64];
	char **env = child_env(threads, keep);
	double t0 = nb_now();
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa = {0};
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL), sigaction(SIGINT, &sa, NULL), sigaction(SIGUSR1, &sa, NULL);
		if (dup2(ofd, 1) < 0 || dup2(lfd, 2) < 0)
			_exit(127);
		execvpe(argv[0], argv, env);
		dprintf(2, "nboost experiment: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(env);
	if (ofd != lfd)
		close(ofd);
	close(lfd);
	if (pid < 0)
		return nb_error("fork: %s", strerror(errno));
	current_child = pid;
	if (stop_sig)
		kill(pid, SIGTERM);
	int status;
	struct rusage ru;
	pid_t w;
	while ((w = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
		;
	current_child = 0;
	double wall = nb_now() - t0, cpu = 0;
	if (w == pid)
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
		      ru.ru_stime.tv_usec * 1e-6;
	cost->wall += wall, cost->cpu += cpu;
	const char *base = strrchr(argv[0], '/');
	ledger_add(cost, !strcmp(base ? base + 1 : argv[0], "mpirun") ? "run" : argv[1] ? argv[1] : "?", wall, cpu);
	if (stop_sig)
		return nb_error("stopped by signal %d", (int)stop_sig);
	if (w != pid)
		return nb_error("waiting for '%s': %s", argv[0], strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return nb_error("'%s %s' exited with %d: see %s", argv[0], argv[1] ? argv[1] : "", WEXITSTATUS(status),
				log);
	return nb_error("'%s %s' was killed by signal %d: see %s", argv[0], argv[1] ? argv[1] : "", WTERMSIG(status),
			log);
}

/* A growable argv. */
typedef struct {
	char **v;
	int n, cap;
} args;

static void arg(args *a, const char *fmt, ...) NB_PRINTF(2, 3);
static void arg(args *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		nb_die("out of memory");
	va_end(ap);
	NB_GROW(a->v, a->cap, (size_t)a->n + 2, 16);
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void args_free(args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	*a = (args){0};
}

/* Wall-clock time (seconds since 1970): file times and the report's
 * start times. Durations use nb_now (monotonic). */
static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- the corpus ---------------------------------------------------------- */

/* Symbolic links to shards [from, to) of the sorted labeled pool. */
static int link_shards(char **names, int from, int to, const char *pool, const char *dir)
{
	if (nb_mkdir_p(dir) < 0)
		return -1;
	for (int i = from; i < to; i++) {
		char target[4200], link[4200];
		snprintf(target, sizeof target, "%s/%s", pool, names[i]);
		snprintf(link, sizeof link, "%s/%s", dir, names[i]);
		if (symlink(target, link) < 0 && errno != EEXIST)
			return nb_error("cannot link '%s': %s", link, strerror(errno));
	}
	return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* OUT/subsets/labeled-P and rest-P for every labels fraction in use. */
static int make_subsets(const study_conf *c, const char *out)
{
	char pool[4200];
	snprintf(pool, sizeof pool, "%s/data/labeled", out);
	char *real = realpath(pool, NULL);
	if (!real)
		return nb_error("'%s': %s (the corpus is missing)", pool, strerror(errno));
	DIR *d = opendir(real);
	char **names = NULL;
	int n = 0, rc = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "shard-", 6) && strstr(e->d_name, ".h5") &&
		    !strcmp(strstr(e->d_name, ".h5"), ".h5")) {
			names = nb_xrealloc(names, (size_t)(n + 1) * sizeof *names);
			names[n++] = nb_xstrdup(e->d_name);
		}
	if (d)
		closedir(d);
	qsort(names, (size_t)n, sizeof *names, cmp_str);
	long want = (c->labeled + c->shard_size - 1) / c->shard_size;
	if (n != want)
		rc = nb_error("'%s' holds %d shards, %ld expected: render it again", real, n, want);
	for (int i = 0; !rc && i < c->n_arms; i++) {
		const study_arm *a = &c->arms[i];
		if (a->kind == ARM_LM)
			continue;
		int k = (int)(c->labeled * a->labels / 100 / c->shard_size);
		char dir[4200];
		snprintf(dir, sizeof dir, "%s/subsets/labeled-%d", out, a->labels);
		rc = link_shards(names, 0, k, real, dir);
		snprintf(dir, sizeof dir, "%s/subsets/rest-%d", out, a->labels);
		if (!rc && k < n)
			rc = link_shards(names, k, n, real, dir);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(real);
	return rc;
}

/* Renders the corpus once (the first process to take OUT/.corpus.lock;
 * the others wait for it), then the subsets. synth itself refuses a
 * corpus rendered with other options. */
static int prepare_corpus(const study_conf *c, const study_run_opts *o)
{
	char lock[4200], log[4200];
	snprintf(lock, sizeof lock, "%s/.corpus.lock", o->out);
	snprintf(log, sizeof log, "%s/corpus.log", o->out);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return nb_error("cannot open '%s': %s", lock, strerror(errno));
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR || stop_sig) {
			close(fd);
			return nb_error("cannot lock '%s': %s", lock, strerror(errno));
		}
	phase_cost cost = {0};
	args a = {0};
	arg(&a, "%s", o->nboost), arg(&a, "synth"), arg(&a, "--out"), arg(&a, "%s/data", o->out);
	arg(&a, "--labeled"), arg(&a, "%ld", c->labeled), arg(&a, "--unlabeled"), arg(&a, "0");
	arg(&a, "--test"), arg(&a, "%ld", c->test), arg(&a, "--hard-tests"), arg(&a, "%ld", c->hard_tests);
	arg(&a, "--seed"), arg(&a, "%ld", c->corpus_seed), arg(&a, "--shard-size"), arg(&a, "%ld", c->shard_size);
	arg(&a, "--size"), arg(&a, "%ld", c->image_size);
	fprintf(stderr, "experiment: corpus: %ld labeled, %ld test, %ld per hard split (%s/data)\n", c->labeled, c->test,
		c->hard_tests, o->out);
	int rc = run_cmd(a.v, log, NULL, c->threads * c->parallel, &cost);
	args_free(&a);
	if (!rc && c->lm_captions) {
		/* The language-model text: other scenes (another seed) than the
		 * images of the study. */
		arg(&a, "%s", o->nboost), arg(&a, "synth"), arg(&a, "--out"), arg(&a, "%s/data-lm", o->out);
		arg(&a, "--labeled"), arg(&a, "%ld", c->lm_captions), arg(&a, "--unlabeled"), arg(&a, "0");
		arg(&a, "--test"), arg(&a, "0"), arg(&a, "--seed"), arg(&a, "%ld", c->corpus_seed + 1000);
		arg(&a, "--size"), arg(&a, "%ld", c->image_size), arg(&a, "--shard-size"), arg(&a, "%ld", c->shard_size * 10);
		fprintf(stderr, "experiment: language-model text: %ld captions (%s/data-lm)\n", c->lm_captions, o->out);
		rc = run_cmd(a.v, log, NULL, c->threads * c->parallel, &cost);
		args_free(&a);
	}
	if (!rc)
		rc = make_subsets(c, o->out);
	/* The rendering's cost, for the report: the first time only (a rerun
	 * finds the corpus complete and costs nothing). */
	char costf[4200];
	snprintf(costf, sizeof costf, "%s/corpus-cost.json", o->out);
	if (!rc && !exists(costf)) {
		nb_buf b = {0};
		nb_buf_addf(&b, "{\"wall_s\":%.1f,\"cpu_s\":%.1f}\n", cost.wall, cost.cpu);
		rc = nb_write_file_atomic(costf, b.data, b.len);
		free(b.data);
	}
	close(fd);
	return rc;
}

/* ---- one job ------------------------------------------------------------- */

static void job_path(char *buf, size_t n, const job *jb, const char *name)
{
	snprintf(buf, n, "%s/%s", jb->dir, name);
}

/* The checkpoint an arm's job ends with. */
static void arm_model(char *buf, size_t n, const study_conf *c, const char *out, int arm, int seed)
{
	const study_arm *a = &c->arms[arm];
	if (a->kind == ARM_SEMI)
		snprintf(buf, n, "%s/arms/%s/seed-%d/run/round-%d/student.h5", out, a->name, seed, a->rounds - 1);
	else
		snprintf(buf, n, "%s/arms/%s/seed-%d/train/checkpoint.h5", out, a->name, seed);
}

static long arm_steps(const study_conf *c, const study_arm *arm)
{
	return arm->steps ? arm->steps : arm->kind == ARM_LM ? c->lm_steps : arm->kind == ARM_DPO ? c->dpo_steps : c->steps;
}

static double arm_lr(const study_conf *c, const study_arm *arm)
{
	return arm->lr > 0 ? arm->lr : arm->kind == ARM_DPO ? c->dpo_lr : c->lr;
}

static void common_train_args(args *a, const study_conf *c, const study_arm *arm, int seed)
{
	long steps = arm_steps(c, arm);
	long warmup = c->warmup < steps / 2 ? c->warmup : steps / 10;
	arg(a, "--train.seed=%d", seed), arg(a, "--train.steps=%ld", steps);
	arg(a, "--train.batch=%ld", arm->kind == ARM_DPO ? c->dpo_batch : c->batch);
	arg(a, "--train.warmup=%ld", warmup), arg(a, "--train.lr=%.9g", arm_lr(c, arm));
	arg(a, "--train.checkpoint_every=%ld", steps / 4 > 25 ? steps / 4 : 25);
	arg(a, "--train.log_every=%ld", steps / 20 > 1 ? steps / 20 : 1);
	arg(a, "--noise.sigma=%.9g", arm->sigma);
	if (arm->sigma_end >= 0)
		arg(a, "--noise.sigma_end=%.9g", arm->sigma_end);
}

/* Runs a.v, frees a, and on success writes the empty marker `done` that
 * lets a rerun skip this step. */
static int run_then_mark(args *a, const char *done, const char *log, int threads, phase_cost *cost)
{
	int rc = run_cmd(a->v, log, NULL, threads, cost);
	args_free(a);
	if (!rc && nb_write_file_atomic(done, "", 0) < 0)
		rc = -1;
	return rc;
}

static int phase_train(const study_conf *c, const study_run_opts *o, const job *jb, const char *log, phase_cost *cost)
{
	const study_arm *arm = &c->arms[jb->arm];
	char rundir[4200], done[4200], ckpt[4200];
	job_path(rundir, sizeof rundir, jb, "train");
	job_path(done, sizeof done, jb, "train.done");
	if (exists(done))
		return 0;
	job_path(ckpt, sizeof ckpt, jb, "train/checkpoint.h5");
	args a = {0};
	arg(&a, "%s", o->nboost), arg(&a, "train"), arg(&a, "%s", c->job), arg(&a, "--out"), arg(&a, "%s", rundir);
	if (arm->kind == ARM_LM)
		arg(&a, "--labeled"), arg(&a, "%s/data-lm/labeled", o->out), arg(&a, "--train.text_only=true");
	else
		arg(&a, "--labeled"), arg(&a, "%s/subsets/labeled-%d", o->out, arm->labels);
	common_train_args(&a, c, arm, jb->seed);
	if (arm->init >= 0) {
		char init[4200];
		arm_model(init, sizeof init, c, o->out, arm->init, jb->seed);
		arg(&a, "--train.init_decoder=%s", init);
	}
	if (exists(ckpt))
		arg(&a, "--resume");
	return run_then_mark(&a, done, log, c->threads, cost);
}

static int phase_semi(const study_conf *c, const study_run_opts *o, const job *jb, const char *log, phase_cost *cost)
{
	const study_arm *arm = &c->arms[jb->arm];
	char rundir[4200], done[4200], teacher[4200];
	job_path(rundir, sizeof rundir, jb, "run");
	job_path(done, sizeof done, jb, "run.done");
	if (exists(done))
		return 0;
	arm_model(teacher, sizeof teacher, c, o->out, arm->teacher, jb->seed);
	args a = {0};
	arg(&a, "mpirun"), arg(&a, "-np"), arg(&a, "%d", c->semi_ranks);
	arg(&a, "%s", o->nboost), arg(&a, "run"), arg(&a, "%s", c->job), arg(&a, "--out"), arg(&a, "%s", rundir);
	arg(&a, "--corpus.labeled=%s/subsets/labeled-%d", o->out, arm->labels);
	arg(&a, "--corpus.unlabeled=%s/subsets/rest-%d", o->out, arm->labels);
	arg(&a, "--teacher.model=%s", teacher);
	arg(&a, "--run.rounds=%d", arm->rounds);
	/* The study file's [run], [teacher], [filter], [student] keys, then
	 * the arm's own: no filter is K = 0 (every clean caption kept). */
	for (int i = 0; i < jobfile_count(c->j); i++) {
		const char *k = jobfile_key_at(c->j, i);
		if (!strncmp(k, "run.", 4) || !strncmp(k, "teacher.", 8) || !strncmp(k, "filter.", 7) ||
		    !strncmp(k, "student.", 8))
			arg(&a, "--%s=%s", k, jobfile_value_at(c->j, i));
	}
	if (!arm->filter)
		arg(&a, "--teacher.K=0"), arg(&a, "--filter.vote=1");
	common_train_args(&a, c, arm, jb->seed);
	return run_then_mark(&a, done, log, c->threads, cost);
}

/* Preference pairs from the start arm's checkpoint on its labeled images
 * (on-policy, synthetic where its caption is perfect), then DPO against it
 * as the frozen reference (docs/training.md, "Preference training"). */
static int phase_dpo(const study_conf *c, const study_run_opts *o, const job *jb, const char *log, phase_cost *cost)
{
	const study_arm *arm = &c->arms[jb->arm];
	char pairs[4200], pdone[4200], rundir[4200], done[4200], ckpt[4200], ref[4200];
	job_path(pairs, sizeof pairs, jb, "pairs");
	job_path(pdone, sizeof pdone, jb, "pairs.done");
	job_path(rundir, sizeof rundir, jb, "train");
	job_path(done, sizeof done, jb, "train.done");
	job_path(ckpt, sizeof ckpt, jb, "train/checkpoint.h5");
	arm_model(ref, sizeof ref, c, o->out, arm->from, jb->seed);
	if (exists(done))
		return 0;
	int rc = 0;
	if (!exists(pdone)) {
		char cmd[8600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", pairs); /* a half-written set from a stop */
		if (exists(pairs) && system(cmd) != 0)
			return nb_error("cannot remove '%s'", pairs);
		args a = {0};
		arg(&a, "%s", o->nboost), arg(&a, "pairs"), arg(&a, "--model"), arg(&a, "%s", ref);
		arg(&a, "--shards"), arg(&a, "%s/subsets/labeled-%d", o->out, arm->labels), arg(&a, "--out");
		arg(&a, "%s", pairs), arg(&a, "--seed"), arg(&a, "%d", jb->seed), arg(&a, "--synthetic-when-perfect");
		rc = run_then_mark(&a, pdone, log, c->threads, cost);
	}
	if (rc)
		return rc;
	args a = {0};
	arg(&a, "%s", o->nboost), arg(&a, "train"), arg(&a, "%s", c->job), arg(&a, "--out"), arg(&a, "%s", rundir);
	arg(&a, "--objective"), arg(&a, "dpo"), arg(&a, "--pairs"), arg(&a, "%s", pairs), arg(&a, "--ref");
	arg(&a, "%s", ref), arg(&a, "--dpo.noise=%s", arm->dpo_noise), arg(&a, "--dpo.beta=%.9g", arm->beta);
	arg(&a, "--dpo.sft_weight=%.9g", arm->sft);
	common_train_args(&a, c, arm, jb->seed);
	if (exists(ckpt))
		arg(&a, "--resume");
	return run_then_mark(&a, done, log, c->threads, cost);
}

/* Appends the JSON lines of `path` that start with '{' as "split": {...}
 * members (eval) or the last one as it is (attn). */
static int collect_eval(nb_buf *r, const char *path)
{
	size_t len;
	char *text = nb_read_input(path, "eval output", &len);
	if (!text)
		return -1;
	int n = 0, rc = 0;
	nb_buf_adds(r, "{");
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		size_t ll = next ? (size_t)(next - line) : strlen(line);
		if (next)
			next++;
		if (ll == 0 || line[0] != '{')
			continue;
		nb_json *v = nb_json_parse(line, ll, path);
		if (!v) {
			rc = -1;
			break;
		}
		const char *split = nb_json_getstr(v, "split", NULL);
		if (!split) {
			nb_json_free(v);
			rc = nb_error("%s: an eval line without \"split\"", path);
			break;
		}
		if (n++)
			nb_buf_adds(r, ",");
		nb_json_put_str(r, split);
		nb_buf_adds(r, ":");
		nb_buf_add(r, line, ll);
		nb_json_free(v);
	}
	nb_buf_adds(r, "}");
	free(text);
	if (!rc && !n)
		rc = nb_error("%s: eval printed no result", path);
	return rc;
}

static int append_file_json(nb_buf *r, const char *path, int last_line)
{
	size_t len;
	char *text = nb_read_input(path, "result", &len);
	if (!text)
		return -1;
	char *start = text;
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = 0;
	if (last_line && strrchr(text, '\n'))
		start = strrchr(text, '\n') + 1;
	nb_json *v = nb_json_parse(start, strlen(start), path);
	if (v)
		nb_buf_adds(r, start);
	nb_json_free(v);
	free(text);
	return v ? 0 : -1;
}

static void put_cost(nb_buf *r, const char *name, const phase_cost *p)
{
	nb_buf_addf(r, "\"%s\":{\"wall_s\":%.1f,\"cpu_s\":%.1f}", name, p->wall, p->cpu);
}

/* Sums the job's ledger by phase into cost[] (every attempt, including
 * those a stop cut short); a line that does not parse (a write cut by a
 * crash) is left out. Returns the total wall time. */
static double sum_ledger(const job *jb, phase_cost cost[3])
{
	static const char *const phases[3] = {"train", "eval", "attn"};
	char path[4200];
	job_path(path, sizeof path, jb, "costs.jsonl");
	size_t len;
	char *text = nb_read_file(path, &len);
	if (!text)
		return cost[0].wall + cost[1].wall + cost[2].wall;
	for (int k = 0; k < 3; k++)
		cost[k].wall = cost[k].cpu = 0;
	double total = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		size_t ll = next ? (size_t)(next++ - line) : strlen(line);
		nb_json *v = nb_json_parse(line, ll, path);
		for (int k = 0; v && k < 3; k++)
			if (!strcmp(nb_json_getstr(v, "phase", ""), phases[k])) {
				cost[k].wall += nb_json_getnum(v, "wall_s", 0);
				cost[k].cpu += nb_json_getnum(v, "cpu_s", 0);
				total += nb_json_getnum(v, "wall_s", 0);
			}
		nb_json_free(v);
	}
	free(text);
	return total;
}

static int write_result(const study_conf *c, const job *jb, phase_cost cost[3], double started_wall)
{
	const study_arm *arm = &c->arms[jb->arm];
	char path[4200];
	nb_buf r = {0};
	nb_buf_adds(&r, "{\"format\":\"nboost.study-result\",\"version\":1,\"arm\":");
	nb_json_put_str(&r, arm->name);
	nb_buf_addf(&r, ",\"seed\":%d,\"kind\":\"%s\",\"spec\":", jb->seed, study_kind_name(arm->kind));
	nb_json_put_str(&r, arm->spec);
	nb_buf_addf(&r, ",\"config\":{\"labels\":%d,\"sigma\":%.9g,\"sigma_end\":%.9g,\"steps\":%ld,\"batch\":%ld,"
			"\"lr\":%.9g,\"filter\":%s,\"rounds\":%d,",
		    arm->labels, arm->sigma, arm->sigma_end, arm_steps(c, arm),
		    arm->kind == ARM_DPO ? c->dpo_batch : c->batch, arm_lr(c, arm), arm->filter ? "true" : "false",
		    arm->rounds);
	if (arm->kind == ARM_DPO)
		nb_buf_addf(&r, "\"dpo_noise\":\"%s\",\"dpo_beta\":%.9g,\"dpo_sft_weight\":%.9g,", arm->dpo_noise,
			    arm->beta, arm->sft);
	nb_buf_adds(&r, "\"job\":");
	nb_json_put_str(&r, c->job);
	nb_buf_adds(&r, "},\"commit\":");
	nb_json_put_str(&r, nb_commit()); /* the build's commit (common/nb_prov.h) */
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	nb_buf_adds(&r, ",\"host\":");
	nb_json_put_str(&r, host);
	double wall = sum_ledger(jb, cost);
	nb_buf_addf(&r, ",\"started_unix\":%.0f,\"wall_s\":%.1f,\"cost\":{", started_wall, wall);
	put_cost(&r, "train", &cost[0]), nb_buf_adds(&r, ","), put_cost(&r, "eval", &cost[1]), nb_buf_adds(&r, ",");
	put_cost(&r, "attn", &cost[2]);
	nb_buf_adds(&r, "}");
	int rc = 0;
	if (arm->kind != ARM_LM) {
		nb_buf_adds(&r, ",\"eval\":");
		job_path(path, sizeof path, jb, "eval.out");
		rc = collect_eval(&r, path);
	}
	job_path(path, sizeof path, jb, "attn.out");
	if (!rc && arm->kind != ARM_LM && c->attn_images) {
		nb_buf_adds(&r, ",\"attn\":");
		rc = append_file_json(&r, path, 1);
	}
	if (!rc && arm->kind == ARM_SEMI) {
		nb_buf_adds(&r, ",\"labels\":[");
		for (int round = 0; !rc && round < arm->rounds; round++) {
			snprintf(path, sizeof path, "%s/run/round-%d/labels.json", jb->dir, round);
			if (round)
				nb_buf_adds(&r, ",");
			rc = append_file_json(&r, path, 0);
		}
		nb_buf_adds(&r, "]");
	}
	nb_buf_adds(&r, "}\n");
	job_path(path, sizeof path, jb, "result.json");
	if (!rc)
		rc = nb_write_file_atomic(path, r.data, r.len);
	free(r.data);
	return rc;
}

static int run_job(const study_conf *c, const study_run_opts *o, const job *jb)
{
	const study_arm *arm = &c->arms[jb->arm];
	char log[4200], model[4200], path[4200];
	job_path(log, sizeof log, jb, "job.log");
	arm_model(model, sizeof model, c, o->out, jb->arm, jb->seed);
	char ledger[4200], first[4200];
	job_path(ledger, sizeof ledger, jb, "costs.jsonl");
	job_path(first, sizeof first, jb, "started");
	phase_cost cost[3] = {{.ledger = ledger, .phase = "train"}, {.ledger = ledger, .phase = "eval"},
			      {.ledger = ledger, .phase = "attn"}};
	/* the job's first start, kept across attempts */
	double started_wall = wall_now();
	size_t flen;
	char *ftext = nb_read_file(first, &flen);
	if (ftext && atof(ftext) > 0)
		started_wall = atof(ftext);
	else {
		char b[64];
		int bn = snprintf(b, sizeof b, "%.0f\n", started_wall);
		nb_write_file_atomic(first, b, (size_t)bn);
	}
	free(ftext);
	int rc = arm->kind == ARM_SEMI  ? phase_semi(c, o, jb, log, &cost[0])
		 : arm->kind == ARM_DPO ? phase_dpo(c, o, jb, log, &cost[0])
					: phase_train(c, o, jb, log, &cost[0]);
	if (!rc && arm->kind != ARM_LM) {
		args a = {0};
		arg(&a, "%s", o->nboost), arg(&a, "eval"), arg(&a, "--model"), arg(&a, "%s", model);
		arg(&a, "--corpus"), arg(&a, "%s/data", o->out), arg(&a, "--json");
		if (c->pope)
			arg(&a, "--pope");
		job_path(path, sizeof path, jb, "eval.out");
		rc = run_cmd(a.v, log, path, c->threads, &cost[1]);
		args_free(&a);
	}
	if (!rc && arm->kind != ARM_LM && c->attn_images) {
		args a = {0};
		arg(&a, "%s", o->nboost), arg(&a, "attn"), arg(&a, "--model"), arg(&a, "%s", model);
		arg(&a, "--shards"), arg(&a, "%s/data/test", o->out), arg(&a, "--json");
		arg(&a, "--max-images"), arg(&a, "%ld", c->attn_images);
		job_path(path, sizeof path, jb, "attn.out");
		rc = run_cmd(a.v, log, path, c->threads, &cost[2]);
		args_free(&a);
	}
	if (!rc)
		rc = write_result(c, jb, cost, started_wall);
	return rc;
}

/* The forked runner: holds the job's lock, runs it, records a failure. */
static int runner(const study_conf *c, const study_run_opts *o, const job *jb)
{
	char lock[4200], failed[4200];
	job_path(lock, sizeof lock, jb, ".lock");
	job_path(failed, sizeof failed, jb, "failed");
	if (nb_mkdir_p(jb->dir) < 0)
		return fprintf(stderr, "experiment: %s\n", nb_errmsg()), 1;
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return fd < 0 ? (fprintf(stderr, "experiment: cannot open '%s': %s\n", lock, strerror(errno)), 1)
			      : STUDY_EXIT_HELD;
	char resf[4200];
	job_path(resf, sizeof resf, jb, "result.json");
	if (exists(resf))
		return 0; /* finished by another process meanwhile */
	remove(failed);
	if (run_job(c, o, jb) == 0)
		return 0;
	if (stop_sig)
		return STUDY_EXIT_STOPPED;
	nb_buf m = {0};
	nb_buf_addf(&m, "%s\n", nb_errmsg());
	nb_write_file_atomic(failed, m.data, m.len);
	free(m.data);
	fprintf(stderr, "experiment: %s seed %d failed: %s\n", c->arms[jb->arm].name, jb->seed, nb_errmsg());
	return 1;
}

/* ---- the scheduler ------------------------------------------------------- */

static int job_done(const job *jb)
{
	char p[4200];
	job_path(p, sizeof p, jb, "result.json");
	return exists(p);
}

/* A job that failed in another process of this study (its "failed" file
 * is newer than our start) counts as failed here too. A process alone
 * retries every failed job: a rerun is how a failure is retried. */
static int failed_elsewhere(const job *jb, const study_run_opts *o, double since)
{
	char p[4200];
	struct stat st;
	if (o->nranks < 2)
		return 0;
	job_path(p, sizeof p, jb, "failed");
	return stat(p, &st) == 0 && (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9 > since;
}

static int deps_of(const study_conf *c, int arm, int deps[3])
{
	int n = 0;
	if (c->arms[arm].from >= 0)
		deps[n++] = c->arms[arm].from;
	if (c->arms[arm].init >= 0)
		deps[n++] = c->arms[arm].init;
	if (c->arms[arm].teacher >= 0)
		deps[n++] = c->arms[arm].teacher;
	return n;
}

/* A finished job whose checkpoint is gone (its result.json was copied
 * from another machine: scripts/publish-study) cannot start the jobs
 * that depend on it: its result is set aside (result.json.lost-checkpoint)
 * and it runs again, which gives the same model (keyed seeds, the same
 * data order). 1 when that happened. */
static int dependency_lost(const study_conf *c, const study_run_opts *o, const job *dj)
{
	char model[4200], res[4200], aside[4300];
	arm_model(model, sizeof model, c, o->out, dj->arm, dj->seed);
	if (exists(model))
		return 0;
	job_path(res, sizeof res, dj, "result.json");
	snprintf(aside, sizeof aside, "%s.lost-checkpoint", res);
	if (rename(res, aside) < 0 && errno != ENOENT)
		return 0; /* left as it is: the dependant then fails, naming the missing checkpoint */
	fprintf(stderr, "experiment: %s seed %d is done but its checkpoint '%s' is missing; running it again for the "
			"jobs that start from it\n",
		c->arms[dj->arm].name, dj->seed, model);
	return 1;
}

static void print_progress(const job *jobs, int n, double t0)
{
	int done = 0, failed = 0, running = 0;
	for (int i = 0; i < n; i++)
		done += jobs[i].state == 2, failed += jobs[i].state == 3, running += jobs[i].state == 1;
	char el[32];
	nb_fmt_duration(el, sizeof el, nb_now() - t0);
	fprintf(stderr, "experiment: %d of %d jobs done, %d running, %d failed, %s elapsed\n", done, n, running, failed,
		el);
}

int study_run(const study_conf *c, const study_run_opts *o)
{
	if (strlen(o->out) > 3000)
		return nb_error("the study directory's path is %zu characters long; at most 3000", strlen(o->out));
	int n = c->n_arms * c->seeds;
	job *jobs = nb_xcalloc((size_t)n, sizeof *jobs);
	/* Seed-major order: every arm's first seed before any second seed, so a
	 * study cut short still has one seed of every arm. */
	for (int s = 0, k = 0; s < c->seeds; s++)
		for (int a = 0; a < c->n_arms; a++, k++) {
			jobs[k].arm = a, jobs[k].seed = s + 1;
			snprintf(jobs[k].dir, sizeof jobs[k].dir, "%s/arms/%s/seed-%d", o->out, c->arms[a].name, s + 1);
		}
	if (o->dry_run) {
		for (int k = 0; k < n; k++)
			printf("%-24s seed %d  %s%s\n", c->arms[jobs[k].arm].name, jobs[k].seed, c->arms[jobs[k].arm].spec,
			       job_done(&jobs[k]) ? "   (done)" : "");
		free(jobs);
		return 0;
	}
	if (nb_mkdir_p(o->out) < 0) {
		free(jobs);
		return -1;
	}
	install_handlers();
	double t0 = nb_now(), wall0 = wall_now();
	if (prepare_corpus(c, o) < 0) {
		free(jobs);
		return stop_sig ? STUDY_EXIT_STOPPED : -1;
	}
	int running = 0, forwarded = 0;
	double last_report = 0;
	for (;;) {
		int pending = 0;
		for (int k = 0; k < n; k++) {
			job *jb = &jobs[k];
			if (jb->state == 1 || jb->state == 2 || jb->state == 3)
				continue;
			if (job_done(jb)) {
				jb->state = 2;
				continue;
			}
			if (failed_elsewhere(jb, o, wall0)) {
				jb->state = 3;
				continue;
			}
			pending++;
			if (stop_sig || running >= c->parallel || (jb->state == 4 && nb_now() < jb->retry_at))
				continue;
			/* Its dependencies: the same seed of the arms it starts from. */
			int deps[3], nd = deps_of(c, jb->arm, deps), ready = 1;
			for (int d = 0; d < nd; d++) {
				job *dj = &jobs[(jb->seed - 1) * c->n_arms + deps[d]];
				if (dj->state == 2 && dependency_lost(c, o, dj)) {
					dj->state = 0;
					pending++;
				}
				if (dj->state == 3) {
					fprintf(stderr, "experiment: %s seed %d skipped: it needs %s, which failed\n",
						c->arms[jb->arm].name, jb->seed, c->arms[deps[d]].name);
					jb->state = 3;
				}
				ready &= dj->state == 2;
			}
			if (jb->state == 3 || !ready)
				continue;
			fflush(NULL);
			pid_t pid = fork();
			if (pid < 0) {
				free(jobs);
				return nb_error("fork: %s", strerror(errno));
			}
			if (pid == 0)
				_exit(runner(c, o, jb));
			jb->pid = pid, jb->state = 1, jb->started = nb_now();
			running++;
			fprintf(stderr, "experiment: start %s seed %d (%s)\n", c->arms[jb->arm].name, jb->seed,
				c->arms[jb->arm].spec);
		}
		if (!running && (!pending || stop_sig))
			break;
		int status;
		pid_t w = running ? waitpid(-1, &status, WNOHANG) : 0;
		if (w > 0) {
			for (int k = 0; k < n; k++) {
				job *jb = &jobs[k];
				if (jb->state != 1 || jb->pid != w)
					continue;
				running--;
				int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				char el[32];
				nb_fmt_duration(el, sizeof el, nb_now() - jb->started);
				if (code == 0 && job_done(jb)) {
					jb->state = 2;
					fprintf(stderr, "experiment: done %s seed %d in %s\n", c->arms[jb->arm].name, jb->seed,
						el);
				} else if (code == STUDY_EXIT_HELD || code == 0) {
					jb->state = 4, jb->retry_at = nb_now() + 10;
				} else if (code == STUDY_EXIT_STOPPED || stop_sig) {
					jb->state = 0;
				} else {
					jb->state = 3;
				}
			}
			continue;
		}
		if (nb_now() - last_report > 60) {
			print_progress(jobs, n, t0);
			last_report = nb_now();
		}
		if (stop_sig && running && !forwarded) {
			/* Once: each runner passes it on to the command it runs. */
			for (int k = 0; k < n; k++)
				if (jobs[k].state == 1)
					kill(jobs[k].pid, stop_sig == SIGUSR1 ? SIGUSR1 : SIGTERM);
			forwarded = 1;
		}
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	print_progress(jobs, n, t0);
	int failed = 0, done = 0;
	for (int k = 0; k < n; k++)
		failed += jobs[k].state == 3, done += jobs[k].state == 2;
	free(jobs);
	if (stop_sig)
		return STUDY_EXIT_STOPPED;
	return failed ? 1 : done == n ? 0 : 1;
}
