#include "pipeline/events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "pipeline/journal.h"

struct events {
	char *path;
	int fd;
	nb_buf line;
};

events *events_open_path(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		nb_error("cannot open event log '%s': %s", path, strerror(errno));
		return NULL;
	}
	events *e = nb_xcalloc(1, sizeof *e);
	e->path = nb_xstrdup(path);
	e->fd = fd;
	return e;
}

events *events_open(const char *rundir)
{
	char path[4200];
	if (snprintf(path, sizeof path, "%s/%s", rundir, EVENTS_FILE) >= (int)sizeof path) {
		nb_error("cannot open the event log of '%.64s...': path too long", rundir);
		return NULL;
	}
	return events_open_path(path);
}

int events_close(events *e)
{
	if (!e)
		return 0;
	int rc = 0;
	if (close(e->fd) < 0)
		rc = nb_error("cannot close event log '%s': %s", e->path, strerror(errno));
	free(e->path);
	free(e->line.data);
	free(e);
	return rc;
}

double events_wallclock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nb_buf *events_begin(events *e, const char *ev)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->line.len = 0;
	/* Seconds and milliseconds printed as integers: no rounding up to the
	 * next second, and no float formatting of a 13-digit number. */
	nb_buf_addf(&e->line, "{\"t\":%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	jsonl_str(&e->line, "ev", ev);
	return &e->line;
}

int events_emit(events *e)
{
	jsonl_end(&e->line);
	size_t off = 0;
	while (off < e->line.len) {
		ssize_t w = write(e->fd, e->line.data + off, e->line.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return nb_error("cannot write event log '%s': %s", e->path, w < 0 ? strerror(errno) : "no progress");
		off += (size_t)w;
	}
	return 0;
}

int events_unit(events *e, int round, int64_t unit, const char *shard, int64_t accepted, int64_t rejected,
		int64_t seen, double wall_s)
{
	nb_buf *b = events_begin(e, "unit");
	jsonl_int(b, "round", round);
	jsonl_int(b, "unit", unit);
	jsonl_str(b, "shard", shard);
	jsonl_int(b, "accepted", accepted);
	jsonl_int(b, "rejected", rejected);
	jsonl_int(b, "seen", seen);
	if (wall_s >= 0)
		jsonl_num(b, "wall_s", wall_s, 3);
	return events_emit(e);
}

int events_shard(events *e, int round, const char *shard, int64_t units, int64_t samples)
{
	nb_buf *b = events_begin(e, "shard");
	jsonl_int(b, "round", round);
	jsonl_str(b, "shard", shard);
	jsonl_int(b, "units", units);
	jsonl_int(b, "samples", samples);
	return events_emit(e);
}

int events_checkpoint(events *e, int round, int64_t step, const char *path)
{
	nb_buf *b = events_begin(e, "checkpoint");
	jsonl_int(b, "round", round);
	jsonl_int(b, "step", step);
	jsonl_str(b, "path", path);
	return events_emit(e);
}

int events_round(events *e, int round, int64_t units, int64_t accepted, int64_t rejected, int64_t seen,
		 double wall_s)
{
	nb_buf *b = events_begin(e, "round");
	jsonl_int(b, "round", round);
	jsonl_int(b, "units", units);
	jsonl_int(b, "accepted", accepted);
	jsonl_int(b, "rejected", rejected);
	jsonl_int(b, "seen", seen);
	if (wall_s >= 0)
		jsonl_num(b, "wall_s", wall_s, 3);
	return events_emit(e);
}
