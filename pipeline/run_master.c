/* The master rank: prepares the run (checks, journal, units), then per
 * round hands units to teachers on request, records what the filters
 * finished, drives the students, prints progress and handles stops. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_prov.h"
#include "common/nb_time.h"
#include "common/vocab.h"
#include "model/checkpoint.h"
#include "pipeline/events.h"
#include "pipeline/journal.h"
#include "pipeline/run.h"
#include "pipeline/run_internal.h"
#include "pipeline/scheduler.h"
#include "trainer/run_dir.h"
#include "store/shard_store.h"

typedef struct {
	unit_msg *units;
	int64_t nunits;
	sched *s;                    /* units pending, assigned (since when), done; parked teachers */
	label_counts sum;
	int64_t images_now;          /* images finished in this session, for the rate */
	int idle;                    /* teachers done with the round (TAG_IDLE) */
	int64_t skipped;             /* units of other slices (run.slice), counted as done */
	int64_t measured;            /* done units whose label_counts are in sum */
	int counts_fd;               /* round-R/units.jsonl, appending */
	double t0;
} round_state;

typedef struct {
	run_ctx *c;
	journal *jr;
	events *ev;
	int stopping, students_busy;
	student_report last;         /* the students' latest progress */
	double last_print;
	char teacher[4200];
} master;

NB_NORETURN static void master_die(const char *what)
{
	fprintf(stderr, "nboost: fatal: %s: %s\n", what, nb_errmsg());
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

static void build_units(master *m, round_state *rs, int round)
{
	const run_ctx *c = m->c;
	int64_t cap = 0;
	for (int i = 0; i < c->nunlabeled; i++) {
		shard_reader *r = shard_open(c->unlabeled[i]);
		if (!r)
			master_die("cannot read an unlabeled shard");
		int64_t n = (int64_t)shard_count(r);
		shard_close(r);
		for (int64_t s = 0; s < n; s += c->job->unit) {
			NB_GROW(rs->units, cap, rs->nunits + 1, 64);
			unit_msg u = {round, i, rs->nunits, s, n - s < c->job->unit ? n - s : c->job->unit};
			rs->units[rs->nunits++] = u;
		}
	}
	rs->s = sched_new(rs->nunits, c->job->stall_timeout);
	for (int64_t u = 0; u < rs->nunits; u++)
		if (u % c->job->nslices != c->job->slice) {
			/* another slice's (run.slice): done as far as this run goes */
			sched_done(rs->s, u);
			rs->skipped++;
		} else if (journal_unit_done(m->jr, round, u)) {
			sched_done(rs->s, u);
		}
	rs->t0 = nb_now();
}

static void send_nowork(int teacher, int round)
{
	int32_t r = round;
	MPI_Send(&r, 1, MPI_INT32_T, teacher, TAG_NOWORK, MPI_COMM_WORLD);
}

/* Hands unit u (sched_next's choice) to a teacher; says so when it had
 * stalled with another one. */
static void give_unit(round_state *rs, int64_t u, int teacher)
{
	double now = nb_now();
	if (sched_state(rs->s, u) == SCHED_ASSIGNED)
		fprintf(stderr, "run: unit %" PRId64 " stalled for %.0f s, handing it to another teacher\n", u,
			now - sched_since(rs->s, u));
	sched_assign(rs->s, u, now);
	MPI_Send(&rs->units[u], sizeof rs->units[u], MPI_BYTE, teacher, TAG_UNIT, MPI_COMM_WORLD);
}

static void on_request(master *m, round_state *rs, int teacher, int round)
{
	int32_t r;
	MPI_Recv(&r, 1, MPI_INT32_T, teacher, TAG_REQ, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (m->stopping || sched_finished(rs->s) || r != round) {
		send_nowork(teacher, round);
		return;
	}
	int64_t u = sched_next(rs->s, nb_now());
	if (u >= 0)
		give_unit(rs, u, teacher);
	else
		sched_park(rs->s, teacher);
}

/* Parked teachers get a unit when one is free, "no more work" when the
 * round is labeled or the run is stopping, else keep waiting. */
static void release_parked(master *m, round_state *rs, int round)
{
	int64_t u;
	for (int t; (t = sched_release(rs->s, nb_now(), m->stopping, &u)) >= 0;) {
		if (u < 0)
			send_nowork(t, round);
		else
			give_unit(rs, u, t);
	}
}

static void on_idle(round_state *rs, int teacher)
{
	int32_t r;
	MPI_Recv(&r, 1, MPI_INT32_T, teacher, TAG_IDLE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	rs->idle++;
}

static void add_counts(label_counts *a, const label_counts *b)
{
	const int64_t *s = (const int64_t *)(const void *)b;
	int64_t *d = (int64_t *)(void *)a;
	for (size_t i = 0; i < sizeof *a / sizeof(int64_t); i++)
		d[i] += s[i];
}

static void student_cmd_send(int cmd, int round, const char *path, const run_ctx *c)
{
	student_cmd s = {cmd, round, {0}};
	snprintf(s.path, sizeof s.path, "%s", path ? path : "");
	MPI_Send(&s, sizeof s, MPI_BYTE, c->first_student, TAG_STUDENT_CMD, MPI_COMM_WORLD);
}

/* The label_counts of each finished unit (the reasons and the truth
 * counters, which the journal does not keep): RUNDIR/round-R/units.jsonl,
 * one {"unit":U,"counts":"n n ..."} line per unit, written and fdatasync'ed
 * before the unit's journal record. So a resumed round's labels.json sums
 * every unit, not only those labeled since the restart. */
enum { NCOUNTS = sizeof(label_counts) / sizeof(int64_t) };

static void counts_path(const run_ctx *c, int round, char *out, size_t n)
{
	run_round_dir(c, round, out, n);
	size_t k = strlen(out);
	snprintf(out + k, n - k, "/units.jsonl");
}

static int parse_counts(const char *s, label_counts *c)
{
	int64_t *v = (int64_t *)(void *)c;
	for (int i = 0; i < NCOUNTS; i++) {
		char *end;
		v[i] = strtoll(s, &end, 10);
		if (end == s)
			return -1;
		s = end;
	}
	return *s ? -1 : 0;
}

/* Sums the counts of the round's done units into rs->sum (the journal's
 * totals of seen and accepted stand), cuts a torn last line off, and opens
 * the file for appending. */
static void counts_open(master *m, round_state *rs, int round)
{
	char path[4200];
	counts_path(m->c, round, path, sizeof path);
	size_t len = 0, keep = 0;
	char *data = nb_read_file(path, &len);
	if (!data && errno != ENOENT)
		master_die("cannot read the unit counts");
	label_counts *per = nb_xcalloc((size_t)rs->nunits + 1, sizeof *per);
	uint8_t *have = nb_xcalloc((size_t)rs->nunits + 1, 1);
	jsonl_obj o = {0};
	for (char *nl; data && (nl = memchr(data + keep, '\n', len - keep)); keep = (size_t)(nl + 1 - data)) {
		const jsonl_field *u, *cs;
		label_counts c; /* a line that does not parse (a torn one) is skipped */
		if (jsonl_parse(&o, data + keep, (size_t)(nl - data) - keep) == 0 && (u = jsonl_get(&o, "unit")) &&
		    u->type == JSONL_INT && u->i >= 0 && u->i < rs->nunits && (cs = jsonl_get(&o, "counts")) &&
		    cs->type == JSONL_STR && parse_counts(cs->s, &c) == 0) {
			per[u->i] = c;
			have[u->i] = 1;
		}
	}
	jsonl_obj_free(&o);
	for (int64_t u = 0; u < rs->nunits; u++)
		if (sched_state(rs->s, u) == SCHED_DONE && have[u]) {
			add_counts(&rs->sum, &per[u]);
			rs->measured++;
		}
	journal_round_totals(m->jr, round, &rs->sum.accepted, NULL, &rs->sum.seen);
	free(per), free(have), free(data);
	rs->counts_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	if (rs->counts_fd < 0 || (keep < len && ftruncate(rs->counts_fd, (off_t)keep) < 0)) {
		nb_error("cannot write '%s': %s", path, strerror(errno));
		master_die("cannot open the unit counts");
	}
}

static void counts_append(const master *m, const round_state *rs, int round, int64_t unit, const label_counts *c)
{
	const int64_t *v = (const int64_t *)(const void *)c;
	nb_buf nums = {0}, line = {0};
	for (int i = 0; i < NCOUNTS; i++)
		nb_buf_addf(&nums, "%s%" PRId64, i ? " " : "", v[i]);
	jsonl_begin(&line);
	jsonl_int(&line, "unit", unit);
	jsonl_str(&line, "counts", nums.data);
	jsonl_end(&line);
	if (write(rs->counts_fd, line.data, line.len) != (ssize_t)line.len || fdatasync(rs->counts_fd) < 0) {
		char path[4200];
		counts_path(m->c, round, path, sizeof path);
		nb_error("cannot write '%s': %s", path, strerror(errno));
		master_die("cannot record the unit counts");
	}
	free(nums.data), free(line.data);
}

/* A unit's shard as its filter commits it (staged) and as the students see
 * it (final): the master moves it from one to the other only once the
 * journal records it (publish_shard), so that no student ever trains on a
 * shard that a crash could make the journal forget (the resumed student
 * would then miss it: sweep_round deletes such orphans). */
static void staging_dir(const run_ctx *c, int round, char *out, size_t n)
{
	run_round_dir(c, round, out, n);
	size_t k = strlen(out);
	snprintf(out + k, n - k, "/staging"); /* as in run_filter.c */
}

static void unit_paths(const run_ctx *c, int round, int64_t unit, char *staged, char *final, size_t n)
{
	char dir[4096], name[64];
	run_unit_shard_name(unit, name, sizeof name);
	staging_dir(c, round, dir, sizeof dir);
	snprintf(staged, n, "%s/%s", dir, name);
	run_pseudo_dir(c, round, dir, sizeof dir);
	snprintf(final, n, "%s/%s", dir, name);
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void publish_shard(const master *m, int round, int64_t unit)
{
	char staged[4200], final[4200];
	unit_paths(m->c, round, unit, staged, final, sizeof staged);
	if (rename(staged, final) < 0) {
		nb_error("cannot move '%s' to '%s': %s", staged, final, strerror(errno));
		master_die("cannot publish a pseudo-label shard");
	}
	if (nb_fsync_parent(final) < 0)
		master_die("cannot publish a pseudo-label shard");
}

static void on_unit_done(master *m, round_state *rs, int round)
{
	done_msg d;
	MPI_Status st;
	MPI_Recv(&d, sizeof d, MPI_BYTE, MPI_ANY_SOURCE, TAG_UNIT_DONE, MPI_COMM_WORLD, &st);
	if (d.round != round || d.unit < 0 || d.unit >= rs->nunits)
		return;
	if (sched_state(rs->s, d.unit) == SCHED_DONE) {
		/* a duplicate of a unit handed out twice: its second copy */
		char staged[4200], final[4200];
		unit_paths(m->c, round, d.unit, staged, final, sizeof staged);
		if (d.shard[0])
			unlink(staged);
		return;
	}
	counts_append(m, rs, round, d.unit, &d.c);
	int64_t rejected = d.c.seen - d.c.accepted;
	if (journal_unit(m->jr, round, d.unit, d.shard, d.c.accepted, rejected, d.c.seen) < 0 ||
	    (d.shard[0] && journal_shard(m->jr, round, d.shard) < 0))
		master_die("cannot write the journal");
	if (d.shard[0])
		publish_shard(m, round, d.unit);
	events_unit(m->ev, round, d.unit, d.shard, d.c.accepted, rejected, d.c.seen,
		    nb_now() - sched_since(rs->s, d.unit));
	if (d.shard[0])
		events_shard(m->ev, round, d.shard, 1, d.c.accepted);
	sched_done(rs->s, d.unit);
	rs->images_now += d.c.seen;
	rs->measured++;
	add_counts(&rs->sum, &d.c);
	if (sched_finished(rs->s)) {
		release_parked(m, rs, round);
		if (m->students_busy)
			student_cmd_send(SCMD_LABELED, round, NULL, m->c);
	}
}

static void print_progress(master *m, const round_state *rs, int round, int force)
{
	double now = nb_now();
	if (!force && now - m->last_print < m->c->job->progress_every)
		return;
	m->last_print = now;
	double el = now - rs->t0, rate = el > 0 ? (double)rs->images_now / el : 0;
	int64_t left = 0;
	for (int64_t u = 0; u < rs->nunits; u++)
		if (sched_state(rs->s, u) != SCHED_DONE)
			left += rs->units[u].count;
	char eta[32];
	nb_fmt_duration(eta, sizeof eta, rate > 0 ? (double)left / rate : -1);
	double acc = rs->sum.seen ? 100.0 * (double)rs->sum.accepted / (double)rs->sum.seen : 0;
	fprintf(stderr, "run: round %d  units %" PRId64 "/%" PRId64 "  %.1f img/s  accepted %.1f%%  ETA %s", round,
		sched_ndone(rs->s) - rs->skipped, rs->nunits - rs->skipped, rate, acc, sched_finished(rs->s) ? "0s" : eta);
	if (m->last.kind)
		fprintf(stderr, "  | students step %" PRId64 "/%" PRId64 "  loss %.4f", m->last.step, m->last.total,
			m->last.loss);
	fputc('\n', stderr);
}

/* A path as the journal keeps it (schemas/journal.md): relative to RUNDIR
 * when it is inside it, so that a run directory can move or be named
 * another way on resume; otherwise absolute. */
static const char *journal_path(const run_ctx *c, const char *path, char *out, size_t n)
{
	size_t k = strlen(c->rundir);
	while (k > 1 && c->rundir[k - 1] == '/')
		k--;
	if (!strncmp(path, c->rundir, k) && path[k] == '/')
		snprintf(out, n, "%s", path + k + 1);
	else if (path[0] == '/' || !realpath(path, out))
		snprintf(out, n, "%s", path);
	return out;
}

/* Handles one student report; returns 1 when the students finished or
 * stopped the current phase. */
static int on_student_report(master *m)
{
	student_report r;
	MPI_Recv(&r, sizeof r, MPI_BYTE, m->c->first_student, TAG_STUDENT_REPORT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (r.kind == SREP_PROGRESS) {
		m->last = r;
		return 0;
	}
	if (r.kind == SREP_CHECKPOINT || r.kind == SREP_DONE || r.kind == SREP_STOPPED) {
		char rel[4200];
		if (journal_checkpoint(m->jr, r.round, r.step, journal_path(m->c, r.path, rel, sizeof rel)) < 0)
			master_die("cannot write the journal");
		events_checkpoint(m->ev, r.round, r.step, r.path);
	}
	if (r.kind == SREP_CHECKPOINT)
		return 0;
	m->last = r;
	m->students_busy = 0;
	return 1;
}

static void check_stop(master *m)
{
	if (!m->stopping && run_stop_signal) {
		m->stopping = 1;
		fprintf(stderr, "run: signal %d: stopping (in-flight units finish, students checkpoint)\n",
			(int)run_stop_signal);
		if (m->students_busy)
			student_cmd_send(SCMD_STOP, 0, NULL, m->c);
	}
}

/* FNV-1a 64 of the results-relevant configuration, as hex. */
static void config_digest(const char *text, char out[17])
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	snprintf(out, 17, "%016" PRIx64, h);
}

/* Every labeled shard is a caption shard of the model's image size and
 * vocabulary; every unlabeled shard has the model's image size. */
static int check_corpus(const run_ctx *c)
{
	int S = c->job->train.tc.model.image_size;
	char **paths = NULL;
	int n = c->job->students > 0 ? shard_list(c->job->labeled, &paths) : 0;
	if (n < 0)
		return -1;
	if (n == 0 && c->job->students > 0)
		return nb_error("the labeled corpus '%s' holds no shards (corpus.labeled)", c->job->labeled);
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		shard_reader *r = shard_open(paths[i]);
		if (!r) {
			rc = -1;
			break;
		}
		const shard_meta *m = shard_reader_meta(r);
		if (m->kind != SHARD_CAPTIONS)
			rc = nb_error("labeled shard '%s' holds no captions (an image shard)", paths[i]);
		else if (m->height != S || m->width != S)
			rc = nb_error("labeled shard '%s' holds %dx%d images but [model] image_size is %d", paths[i],
				      m->height, m->width, S);
		else if (strcmp(m->vocab_digest, vocab_digest()))
			rc = nb_error("labeled shard '%s' was written with vocabulary %s, this build uses %s", paths[i],
				      m->vocab_digest, vocab_digest());
		shard_close(r);
	}
	if (n > 0)
		shard_list_free(paths, n);
	for (int i = 0; i < c->nunlabeled && rc == 0; i++) {
		shard_reader *r = shard_open(c->unlabeled[i]);
		if (!r)
			return -1;
		const shard_meta *m = shard_reader_meta(r);
		if (m->height != S || m->width != S)
			rc = nb_error("unlabeled shard '%s' holds %dx%d images but [model] image_size is %d",
				      c->unlabeled[i], m->height, m->width, S);
		shard_close(r);
	}
	return rc;
}

int run_master_prepare(run_ctx *c)
{
	/* One run per directory, against `nboost train` too: the lock is held
	 * until the master exits (its descriptor is never closed). */
	if (nb_mkdir_p(c->rundir) < 0 || run_dir_lock(c->rundir) < 0 || check_corpus(c) < 0)
		return -1;
	if (*c->job->teacher_model) {
		ckpt_file *f = ckpt_open(c->job->teacher_model, NULL);
		if (!f) {
			char msg[1024];
			snprintf(msg, sizeof msg, "%s", nb_errmsg());
			return nb_error("teacher.model: %s", msg);
		}
		int S = ckpt_config(f)->image_size;
		ckpt_close(f);
		if (S != c->job->train.tc.model.image_size)
			return nb_error("teacher.model '%s' takes %dx%d images but [model] image_size is %d",
					c->job->teacher_model, S, S, c->job->train.tc.model.image_size);
	}
	char *frozen = run_job_frozen_text(c->jf, c->job), digest[17];
	config_digest(frozen, digest);
	free(frozen);
	c->jr = journal_open(c->rundir, digest);
	if (!c->jr)
		return -1;
	char *text = train_job_effective_config(c->jf, &c->job->train), path[4200];
	snprintf(path, sizeof path, "%s/config.conf", c->rundir);
	int rc = nb_write_file_atomic(path, text, strlen(text));
	free(text);
	return rc < 0 ? rc : nb_prov_write_dir(c->rundir);
}

/* Reads the round's teacher checkpoint once and sends it to every teacher. */
static void send_teacher(master *m, int round, const char *path)
{
	char digest[17];
	vlm_model *model = ckpt_load_model(path, 1);
	if (!model || ckpt_digest(path, digest) < 0)
		master_die("cannot load the teacher");
	const vlm_config *cfg = vlm_get_config(model);
	if (cfg->image_size != m->c->job->train.tc.model.image_size) {
		nb_error("teacher '%s' takes %dx%d images but [model] image_size is %d", path, cfg->image_size,
			 cfg->image_size, m->c->job->train.tc.model.image_size);
		master_die("teacher does not match the corpus");
	}
	char rel[4200];
	if (journal_teacher(m->jr, round, journal_path(m->c, path, rel, sizeof rel), digest) < 0)
		master_die("cannot write the journal");
	model_hdr h = {round, {cfg->image_size, cfg->patch, cfg->enc_dim, cfg->enc_layers, cfg->enc_heads,
			       cfg->dec_dim, cfg->dec_layers, cfg->dec_heads, cfg->mlp_ratio, cfg->vocab, cfg->max_text},
		       {0}};
	memcpy(h.digest, digest, sizeof h.digest);
	size_t n = vlm_nparams(model);
	const float *p = vlm_params(model);
	for (int t = 0; t < m->c->job->teachers; t++) {
		int rank = m->c->first_teacher + t;
		MPI_Send(&h, sizeof h, MPI_BYTE, rank, TAG_MODEL, MPI_COMM_WORLD);
		for (size_t off = 0; off < n;) {
			int k = n - off > (1u << 28) ? (1 << 28) : (int)(n - off);
			MPI_Send(p + off, k, MPI_FLOAT, rank, TAG_MODEL, MPI_COMM_WORLD);
			off += (size_t)k;
		}
	}
	vlm_free(model);
}

/* Waits for the students to finish (or stop) a phase with no labeling. */
static void wait_students(master *m)
{
	while (m->students_busy) {
		MPI_Status st;
		if (run_wait(m->c->first_student, TAG_STUDENT_REPORT, 0.5, &st))
			on_student_report(m);
		check_stop(m);
		if (m->last.kind == SREP_PROGRESS && nb_now() - m->last_print >= m->c->job->progress_every) {
			m->last_print = nb_now();
			fprintf(stderr, "run: training the round-0 teacher  step %" PRId64 "/%" PRId64 "  loss %.4f\n",
				m->last.step, m->last.total, m->last.loss);
		}
	}
}

/* The teacher of a round: recorded by the journal, given by teacher.model,
 * trained now from the labeled shards (round 0), or the previous student. */
static int round_teacher(master *m, int round, char *out, size_t n)
{
	const run_ctx *c = m->c;
	const char *known = journal_teacher_of(m->jr, round, NULL);
	if (known) {
		if (known[0] == '/')
			snprintf(out, n, "%s", known);
		else
			snprintf(out, n, "%s/%s", c->rundir, known);
		return 0;
	}
	if (round > 0) {
		snprintf(out, n, "%s/round-%d/student.h5", c->rundir, round - 1);
		return 0;
	}
	if (*c->job->teacher_model) {
		snprintf(out, n, "%s", c->job->teacher_model);
		return 0;
	}
	fprintf(stderr, "run: round 0: training a teacher on '%s' (teacher.model is empty)\n", c->job->labeled);
	m->students_busy = 1;
	student_cmd_send(SCMD_TRAIN_TEACHER, 0, NULL, c);
	wait_students(m);
	if (m->last.kind == SREP_STOPPED)
		return 1;
	snprintf(out, n, "%s", m->last.path);
	return 0;
}

/* Before a round starts or resumes. A shard of a journaled unit still in
 * staging/ was committed and journaled, and the crash came before
 * publish_shard moved it: move it now. A shard of an unfinished unit (in
 * staging/, or in pseudo/ from an older nboost) is an orphan of a crash
 * between its commit and its journal record: delete it, the unit is labeled
 * again, identically. */
static void sweep_round(master *m, int round, const round_state *rs)
{
	char dir[4096], staging[4200], staged[4200], final[4200], name[64];
	run_pseudo_dir(m->c, round, dir, sizeof dir);
	staging_dir(m->c, round, staging, sizeof staging);
	if (nb_mkdir_p(dir) < 0 || nb_mkdir_p(staging) < 0)
		master_die("cannot create the round directory");
	shard_sweep_tmp(dir);
	shard_sweep_tmp(staging);
	for (int64_t u = 0; u < rs->nunits; u++) {
		unit_paths(m->c, round, u, staged, final, sizeof staged);
		run_unit_shard_name(u, name, sizeof name);
		if (sched_state(rs->s, u) == SCHED_DONE) {
			if (!journal_shard_known(m->jr, round, name))
				continue; /* nothing accepted, no shard */
			if (file_exists(final)) {
				unlink(staged);
			} else if (file_exists(staged)) {
				publish_shard(m, round, u);
				fprintf(stderr, "run: published '%s' (journaled, not yet moved before a crash)\n", final);
			} else {
				nb_error("the journal records the pseudo-label shard '%s' of unit %" PRId64
					 ", but the file is gone", final, u);
				master_die("cannot resume");
			}
			continue;
		}
		if (unlink(staged) == 0)
			fprintf(stderr, "run: removed '%s' (written but not journaled before a crash)\n", staged);
		if (unlink(final) == 0)
			fprintf(stderr, "run: removed '%s' (written but not journaled before a crash)\n", final);
	}
}

static void write_round_summary(master *m, int round, const round_state *rs, double wall)
{
	const label_counts *s = &rs->sum;
	nb_buf b = {0};
	nb_buf_addf(&b, "{\"round\": %d, \"units\": %" PRId64 ", \"seen\": %" PRId64 ", \"accepted\": %" PRId64,
		    round, rs->nunits - rs->skipped, s->seen, s->accepted);
	for (int r = 1; r < CONS_NREASONS; r++)
		nb_buf_addf(&b, ", \"rejected_%s\": %" PRId64, consistency_reason_name((consistency_reason)r), s->rejected[r]);
	nb_buf_addf(&b, ", \"wall_s\": %.3f", wall);
	if (rs->measured < rs->nunits - rs->skipped) {
		/* units journaled by an nboost without round-R/units.jsonl */
		nb_buf_addf(&b, ", \"measured_units\": %" PRId64, rs->measured);
		nb_warn("round %d: the rejection reasons and ground-truth scores in labels.json cover %" PRId64
			" of %" PRId64 " units (round-%d/units.jsonl lacks the others)", round, rs->measured,
			rs->nunits, round);
	}
	const truth_counts *t[2] = {&s->raw, &s->acc};
	const char *name[2] = {"raw", "filtered"};
	for (int k = 0; k < 2; k++) {
		if (!t[k]->captions)
			continue;
		double ci = t[k]->mentions ? (double)t[k]->hallucinated / (double)t[k]->mentions : 0;
		double cs = (double)t[k]->halluc_captions / (double)t[k]->captions;
		double rec = t[k]->gt_objects ? (double)t[k]->gt_recalled / (double)t[k]->gt_objects : 0;
		double tp = t[k]->cand_tuples ? (double)t[k]->tuple_matches / (double)t[k]->cand_tuples : 0;
		double tr = t[k]->gt_tuples ? (double)t[k]->tuple_matches / (double)t[k]->gt_tuples : 0;
		double f1 = tp + tr > 0 ? 2 * tp * tr / (tp + tr) : 0;
		nb_buf_addf(&b, ", \"%s\": {\"captions\": %" PRId64 ", \"chair_i\": %.4f, \"chair_s\": %.4f, "
				"\"recall\": %.4f, \"tuple_f1\": %.4f}", name[k], t[k]->captions, ci, cs, rec, f1);
	}
	nb_buf_adds(&b, "}\n");
	char path[4200];
	snprintf(path, sizeof path, "%s/round-%d/labels.json", m->c->rundir, round);
	if (nb_write_file_atomic(path, b.data, b.len) < 0)
		master_die("cannot write the round summary");
	fprintf(stderr, "run: round %d labeled: %s", round, b.data);
	free(b.data);
}

static void free_round(round_state *rs)
{
	close(rs->counts_fd);
	free(rs->units);
	sched_free(rs->s);
}

/* One round: returns 1 when stopped. */
static int run_round(master *m, int round)
{
	round_state rs = {0};
	build_units(m, &rs, round);
	sweep_round(m, round, &rs);
	counts_open(m, &rs, round);
	if (round_teacher(m, round, m->teacher, sizeof m->teacher)) {
		free_round(&rs);
		return 1;
	}
	send_teacher(m, round, m->teacher);
	m->last.kind = 0;
	if (m->c->job->students > 0) {
		m->students_busy = 1;
		student_cmd_send(SCMD_ROUND, round, m->teacher, m->c);
		if (sched_finished(rs.s))
			student_cmd_send(SCMD_LABELED, round, NULL, m->c);
	}
	double t0 = nb_now();
	while (!sched_finished(rs.s) || m->students_busy || rs.idle < m->c->job->teachers) {
		MPI_Status st;
		if (run_wait(MPI_ANY_SOURCE, MPI_ANY_TAG, 0.25, &st)) {
			if (st.MPI_TAG == TAG_REQ)
				on_request(m, &rs, st.MPI_SOURCE, round);
			else if (st.MPI_TAG == TAG_UNIT_DONE)
				on_unit_done(m, &rs, round);
			else if (st.MPI_TAG == TAG_STUDENT_REPORT)
				on_student_report(m);
			else if (st.MPI_TAG == TAG_IDLE)
				on_idle(&rs, st.MPI_SOURCE);
			else
				NB_BUG("master: unexpected tag %d from rank %d", st.MPI_TAG, st.MPI_SOURCE);
		}
		check_stop(m);
		release_parked(m, &rs, round);
		print_progress(m, &rs, round, 0);
		if (m->stopping && sched_nassigned(rs.s) == 0 && !m->students_busy && rs.idle == m->c->job->teachers)
			break;
	}
	print_progress(m, &rs, round, 1);
	int stopped = m->stopping;
	if (!stopped) {
		write_round_summary(m, round, &rs, nb_now() - t0);
		events_round(m->ev, round, rs.nunits - rs.skipped, rs.sum.accepted, rs.sum.seen - rs.sum.accepted, rs.sum.seen,
			     nb_now() - t0);
		if (journal_round(m->jr, round) < 0)
			master_die("cannot write the journal");
		char staging[4200];
		staging_dir(m->c, round, staging, sizeof staging);
		shard_sweep_tmp(staging); /* a crashed writer's, if its pid was still taken at the start */
		rmdir(staging);           /* empty now; if not (a leftover), harmless */
	} else {
		/* Teachers still waiting for replies get "no more work". */
		release_parked(m, &rs, round);
	}
	free_round(&rs);
	return stopped;
}

/* Ends every worker's loop. The students have left theirs already when
 * they stopped on a signal. */
static void stop_workers(const run_ctx *c, int stopped)
{
	int32_t x = 0;
	for (int r = c->first_teacher; r < c->first_student; r++)
		MPI_Send(&x, 1, MPI_INT32_T, r, TAG_STOP, MPI_COMM_WORLD);
	if (!stopped && c->job->students > 0)
		student_cmd_send(SCMD_FINISH, 0, NULL, c);
}

int run_master(run_ctx *c)
{
	master m = {.c = c, .jr = c->jr};
	m.ev = events_open(c->rundir);
	if (!m.ev)
		master_die("cannot open the event log");
	int stopped = 0;
	for (int round = journal_rounds_complete(m.jr); round < c->job->rounds && !stopped; round++)
		stopped = run_round(&m, round);
	stop_workers(c, stopped);
	if (!stopped && !journal_run_done(m.jr) && journal_done(m.jr) < 0)
		master_die("cannot write the journal");
	if (stopped)
		fprintf(stderr, "run: stopped; rerun the same command to resume\n");
	else
		fprintf(stderr, c->job->students ? "run: done: %d round(s); the student is %s/round-%d/student.h5\n"
						  : "run: done: %d round(s) of labeling; the pseudo-labels are in "
						    "%s/round-%d/pseudo\n", c->job->rounds,
			c->rundir, c->job->rounds - 1);
	events_close(m.ev);
	journal_close(m.jr);
	return stopped ? RUN_STOPPED : RUN_DONE;
}
