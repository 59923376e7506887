#include "trainer/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_prov.h"
#include "common/nb_time.h"

static char *path_in(const char *dir, const char *name)
{
	nb_buf b = {0};
	nb_buf_addf(&b, "%s/%s", dir, name);
	return b.data;
}

void run_dir_init(run_dir *rd, const char *dir, int writer)
{
	memset(rd, 0, sizeof *rd);
	rd->dir = nb_xstrdup(dir);
	rd->checkpoint = path_in(dir, "checkpoint.h5");
	rd->config = path_in(dir, "config.conf");
	rd->metrics = path_in(dir, "metrics.jsonl");
	rd->writer = writer;
	rd->lock_fd = rd->log_fd = -1;
}

/* ---- one run per directory ---- */

/* The PID a lock holder wrote into the lock file, or 0 when there is none
 * (yet: the holder writes it right after locking). */
static long lock_holder(int fd)
{
	for (int tries = 0; tries < 20; tries++) {
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
		if (pid > 0)
			return pid;
		usleep(10000);
	}
	return 0;
}

int run_dir_lock(const char *dir)
{
	char *path = path_in(dir, ".lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		nb_error("cannot lock run directory '%s': cannot open '%s': %s", dir, path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			long pid = lock_holder(fd);
			char who[32] = "pid unknown";
			if (pid > 0)
				snprintf(who, sizeof who, "pid %ld", pid);
			nb_error("run directory '%s' is in use by another nboost (%s): wait for it to end, or use "
				 "another directory", dir, who);
		} else if (e != ENOLCK && e != EOPNOTSUPP) {
			nb_error("cannot lock run directory '%s': flock on '%s': %s", dir, path, strerror(e));
		} else {
			nb_warn("cannot lock '%s' (%s): nothing stops a second run in '%s'", path, strerror(e), dir);
			e = 0;
		}
		if (e) {
			close(fd);
			free(path);
			return -1;
		}
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		nb_error("cannot write '%s': %s", path, strerror(errno));
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	return fd;
}

/* ---- temporaries of interrupted writes ---- */

int run_dir_sweep_tmp(const char *dir) { return nb_sweep_tmp(dir); }

int run_dir_check(run_dir *rd, int resume)
{
	if (!rd->writer)
		return 0;
	if (nb_mkdir_p(rd->dir) < 0)
		return -1;
	if (rd->lock_fd < 0 && (rd->lock_fd = run_dir_lock(rd->dir)) < 0)
		return -1;
	int swept = run_dir_sweep_tmp(rd->dir);
	if (swept < 0)
		return -1;
	if (swept > 0)
		fprintf(stderr, "train: removed %d temporary file(s) left by interrupted writes in '%s'\n", swept,
			rd->dir);
	int has = access(rd->checkpoint, F_OK) == 0;
	if (!resume && has)
		return nb_error("run directory '%s' already holds a checkpoint: pass --resume to continue it, "
				"or choose another --out", rd->dir);
	if (resume && !has)
		return nb_error("cannot resume: no checkpoint '%s'", rd->checkpoint);
	return 0;
}

/* Keeps the lines of steps up to upto. An unterminated last line can only
 * be a write cut short by the crash that made the resume necessary: it is
 * dropped too, or the next line would be appended to it. */
static int trim_metrics(const char *path, long upto)
{
	size_t len;
	char *data = nb_read_file(path, &len);
	if (!data)
		return errno == ENOENT ? 0 : -1; /* nothing logged yet */
	nb_buf out = {0};
	nb_buf_add(&out, "", 0);
	for (char *line = data, *nl; (nl = memchr(line, '\n', len - (size_t)(line - data))); line = nl + 1) {
		*nl = '\0';
		const char *s = strstr(line, "\"step\":");
		long step = s ? strtol(s + 7, NULL, 10) : 0;
		if (step <= upto) {
			nb_buf_adds(&out, line);
			nb_buf_add(&out, "\n", 1);
		}
	}
	int rc = nb_write_file_atomic(path, out.data, out.len);
	free(out.data);
	free(data);
	return rc;
}

int run_dir_open_files(run_dir *rd, const char *config_text, int resume, long resume_step)
{
	if (!rd->writer)
		return 0;
	if (nb_write_file_atomic(rd->config, config_text, strlen(config_text)) < 0 || nb_prov_write_dir(rd->dir) < 0)
		return -1;
	if (resume && trim_metrics(rd->metrics, resume_step) < 0)
		return -1;
	rd->log_fd = open(rd->metrics, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0644);
	if (rd->log_fd < 0)
		return nb_error("cannot open '%s': %s", rd->metrics, strerror(errno));
	return 0;
}

void run_dir_start(run_dir *rd, long first_step, long total, long log_every)
{
	rd->first_step = first_step;
	rd->total = total;
	rd->log_every = log_every;
	rd->t0 = rd->last_print = nb_now();
}

/* One whole line with write(): no stdio buffer that could write it again,
 * or a part of it, later. */
static int log_line(run_dir *rd, const char *line, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(rd->log_fd, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return nb_error("cannot write '%s': %s", rd->metrics, w < 0 ? strerror(errno) : "short write");
		off += (size_t)w;
	}
	return 0;
}

/* Wall-clock seconds since the epoch, to the microsecond. */
static double unix_time(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int run_dir_log_eval(run_dir *rd, long step, const char *fields)
{
	if (!rd->writer || rd->log_fd < 0)
		return 0;
	nb_buf b = {0};
	nb_buf_addf(&b, "{\"step\": %ld, \"time\": %.3f, \"elapsed_s\": %.3f, \"eval\": {%s}}\n", step, unix_time(),
		    nb_now() - rd->t0, fields);
	int rc = log_line(rd, b.data, b.len);
	free(b.data);
	return rc;
}

int run_dir_log_step(run_dir *rd, const train_stats *st)
{
	if (!rd->writer)
		return 0;
	double t = nb_now(), elapsed = t - rd->t0;
	long done = st->step - rd->first_step;
	double sps = elapsed > 0 ? (double)done * st->samples / elapsed : 0.0;
	if (rd->log_fd >= 0 && (st->step % rd->log_every == 0 || st->step == rd->total)) {
		char line[768], dpo[256] = "";
		if (st->dpo)
			snprintf(dpo, sizeof dpo,
				 ", \"dpo_loss\": %.9g, \"reward_margin\": %.9g, \"reward_accuracy\": %.9g, "
				 "\"sft_loss\": %.9g",
				 st->dpo_loss, st->reward_margin, st->reward_accuracy, st->sft_loss);
		int n = snprintf(line, sizeof line,
				 "{\"step\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g%s, \"samples_per_s\": "
				 "%.4g, \"time\": %.3f, \"elapsed_s\": %.3f}\n",
				 st->step, st->loss, st->lr, st->grad_norm, dpo, sps, unix_time(), elapsed);
		if (log_line(rd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
			return -1;
	}
	if (t - rd->last_print >= 2.0 || st->step == rd->total || done == 1) {
		char eta[32];
		double per = done > 0 ? elapsed / (double)done : 0;
		nb_fmt_duration(eta, sizeof eta, per * (double)(rd->total - st->step));
		char dpo[96] = "";
		if (st->dpo)
			snprintf(dpo, sizeof dpo, "  margin %.4f  acc %.3f", st->reward_margin, st->reward_accuracy);
		fprintf(stderr, "train: step %ld/%ld  loss %.4f%s  lr %.2e  |g| %.3f  %.1f samples/s  ETA %s\n",
			st->step, rd->total, st->loss, dpo, st->lr, st->grad_norm, sps, eta);
		rd->last_print = t;
	}
	return 0;
}

/* ---- kept step checkpoints ---- */

/* The step of a kept checkpoint's name "checkpoint-NNNNNNNN.h5", or -1. */
static long kept_step(const char *name)
{
	const char *p = name + 11;
	if (strncmp(name, "checkpoint-", 11) || strlen(p) != 11 || strcmp(p + 8, ".h5"))
		return -1;
	long v = 0;
	for (int i = 0; i < 8; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* A copy of src at dst through a temporary (for file systems that refuse
 * hard links). */
static int copy_file(const char *src, const char *dst)
{
	size_t len;
	char *data = nb_read_file(src, &len);
	if (!data)
		return nb_error("cannot keep checkpoint '%s': cannot read it: %s", src, strerror(errno));
	int rc = nb_write_file_atomic(dst, data, len);
	free(data);
	return rc;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* Removes all but the keep newest kept checkpoints of rd->dir. */
static int prune_kept(run_dir *rd, long keep)
{
	DIR *d = opendir(rd->dir);
	if (!d)
		return nb_error("cannot list run directory '%s': %s", rd->dir, strerror(errno));
	long *steps = NULL;
	int n = 0, cap = 0;
	for (struct dirent *e; (e = readdir(d));) {
		long s = kept_step(e->d_name);
		if (s < 0)
			continue;
		NB_GROW(steps, cap, n + 1, 16);
		steps[n++] = s;
	}
	closedir(d);
	qsort(steps, (size_t)n, sizeof *steps, cmp_long);
	int rc = 0;
	for (int i = 0; i + keep < n && rc == 0; i++) {
		char name[32];
		snprintf(name, sizeof name, "checkpoint-%08ld.h5", steps[i]);
		char *path = path_in(rd->dir, name);
		if (unlink(path) < 0 && errno != ENOENT)
			rc = nb_error("cannot remove old checkpoint '%s': %s", path, strerror(errno));
		free(path);
	}
	free(steps);
	return rc;
}

int run_dir_keep_checkpoint(run_dir *rd, long step, long keep)
{
	if (!rd->writer || keep <= 0)
		return 0;
	if (step < 0 || step > 99999999)
		return nb_error("cannot keep checkpoint of step %ld in '%s': the step needs more than 8 digits", step,
				rd->dir);
	char name[32];
	snprintf(name, sizeof name, "checkpoint-%08ld.h5", step);
	char *path = path_in(rd->dir, name);
	/* a resumed run redoes steps: an older file of this step goes */
	int rc = 0;
	if (unlink(path) < 0 && errno != ENOENT)
		rc = nb_error("cannot replace old checkpoint '%s': %s", path, strerror(errno));
	if (rc == 0 && link(rd->checkpoint, path) < 0) {
		if (errno == EPERM || errno == EMLINK || errno == ENOTSUP || errno == EXDEV)
			rc = copy_file(rd->checkpoint, path);
		else
			rc = nb_error("cannot keep checkpoint '%s' as '%s': %s", rd->checkpoint, path, strerror(errno));
	}
	free(path);
	return rc == 0 ? prune_kept(rd, keep) : rc;
}

int run_dir_finish(run_dir *rd)
{
	if (rd->log_fd < 0)
		return 0;
	/* EINVAL: a file that cannot be synced (a device), nothing to do */
	int rc = 0;
	if (fsync(rd->log_fd) < 0 && errno != EINVAL)
		rc = nb_error("cannot write '%s': fsync failed: %s", rd->metrics, strerror(errno));
	/* close() releases the descriptor even when it fails */
	if (close(rd->log_fd) < 0 && rc == 0)
		rc = nb_error("cannot write '%s': %s", rd->metrics, strerror(errno));
	rd->log_fd = -1;
	return rc;
}

int run_dir_close(run_dir *rd)
{
	int rc = run_dir_finish(rd);
	if (rd->lock_fd >= 0)
		close(rd->lock_fd);
	free(rd->dir);
	free(rd->checkpoint);
	free(rd->config);
	free(rd->metrics);
	memset(rd, 0, sizeof *rd);
	rd->lock_fd = rd->log_fd = -1;
	return rc;
}
