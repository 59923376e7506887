#include "trainer/run_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
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
}

int run_dir_check(const run_dir *rd, int resume)
{
	if (!rd->writer)
		return 0;
	if (nb_mkdir_p(rd->dir) < 0)
		return -1;
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
	if (nb_write_file_atomic(rd->config, config_text, strlen(config_text)) < 0)
		return -1;
	if (resume && trim_metrics(rd->metrics, resume_step) < 0)
		return -1;
	rd->log = fopen(rd->metrics, resume ? "a" : "w");
	if (!rd->log)
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

void run_dir_log_step(run_dir *rd, const train_stats *st)
{
	if (!rd->writer)
		return;
	double t = nb_now(), elapsed = t - rd->t0;
	long done = st->step - rd->first_step;
	double sps = elapsed > 0 ? (double)done * st->samples / elapsed : 0.0;
	if (rd->log && (st->step % rd->log_every == 0 || st->step == rd->total)) {
		fprintf(rd->log,
			"{\"step\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"samples_per_s\": %.4g, "
			"\"elapsed_s\": %.3f}\n",
			st->step, st->loss, st->lr, st->grad_norm, sps, elapsed);
		fflush(rd->log);
	}
	if (t - rd->last_print >= 2.0 || st->step == rd->total || done == 1) {
		char eta[32];
		double per = done > 0 ? elapsed / (double)done : 0;
		nb_fmt_duration(eta, sizeof eta, per * (double)(rd->total - st->step));
		fprintf(stderr, "train: step %ld/%ld  loss %.4f  lr %.2e  |g| %.3f  %.1f samples/s  ETA %s\n",
			st->step, rd->total, st->loss, st->lr, st->grad_norm, sps, eta);
		rd->last_print = t;
	}
}

int run_dir_close(run_dir *rd)
{
	int rc = 0;
	if (rd->log && (ferror(rd->log) | fclose(rd->log)))
		rc = nb_error("cannot write '%s': %s", rd->metrics, strerror(errno));
	free(rd->dir);
	free(rd->checkpoint);
	free(rd->config);
	free(rd->metrics);
	memset(rd, 0, sizeof *rd);
	return rc;
}
