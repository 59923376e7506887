/* nboost export: writes the samples of caption shards (pseudo-labels of an
 * `nboost run`, human or synthetic labels) for PyTorch trainers, as JSON
 * lines or as LLaVA's conversation JSON with PNG images (docs/pipeline.md,
 * "Export").
 *
 * Every source is resolved to a list of shard files and every shard is
 * opened and checked (caption shard, this build's vocabulary, the count the
 * journal recorded) before anything is written, so a bad input fails fast
 * and leaves nothing behind. The output is written under a temporary name
 * and published last (fsync + rename): a reader sees the old file or the
 * complete new one. */
/* syncfs(2): one flush of all the PNGs before the LLaVA JSON that names
 * them is published, instead of one fsync per image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jobfile.h"
#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"
#include "common/vocab.h"
#include "corpus/image/image_io.h"
#include "pipeline/journal.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "store/shard_store.h"

#define PATH_LEN 4200
#define FLUSH_BYTES ((size_t)1 << 20) /* output is written in pieces of about this size */
#define LLAVA_PROMPT "<image>\nDescribe the image in detail."

typedef enum { FMT_JSONL, FMT_LLAVA, FMT_MANIFEST } export_format;

typedef struct {
	export_format format;
	const char *out;
	double min_score;
	long round;       /* -1: the last complete round of each run directory */
	int with_labeled;
} export_opts;

typedef struct {
	char *path;
	int64_t expect; /* samples the run journal recorded for it, -1 when not from a run */
} export_shard;

typedef struct {
	export_shard *v;
	size_t n, cap;
	int rundirs; /* SOURCEs that were run directories */
} shard_set;

/* id -> the shard it was first seen in, for the LLaVA duplicate check
 * (open addressing; slot value 0 means empty, else shard index + 1). */
typedef struct {
	uint64_t *key;
	size_t *val;
	size_t n, cap;
} id_map;

/* The output's temporary file, removed when export dies half way, so an
 * error never leaves a partial output behind (nor a stray temporary). */
static char out_tmp[PATH_LEN];

NB_PRINTF(1, 2) NB_NORETURN static void export_die(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (*out_tmp)
		unlink(out_tmp);
	nb_die("%s", msg);
}

static void add_shard(shard_set *s, const char *path, int64_t expect)
{
	NB_GROW(s->v, s->cap, s->n + 1, 16);
	s->v[s->n].path = nb_xstrdup(path);
	s->v[s->n].expect = expect;
	s->n++;
}

/* A directory of caption shards: all its committed shards. */
static void add_dir(shard_set *s, const char *dir, const char *why)
{
	char **paths;
	int n = shard_list(dir, &paths);
	if (n < 0)
		export_die("%s", nb_errmsg());
	if (n == 0)
		export_die("no shards in '%s'%s", dir, why);
	for (int i = 0; i < n; i++)
		add_shard(s, paths[i], -1);
	shard_list_free(paths, n);
}

/* A run directory: the pseudo shards the journal names for the round (its
 * commit order), never a file the journal does not know (an orphan of a
 * crash that the resumed run deletes), plus the labeled corpus when asked. */
static void add_rundir(shard_set *s, const char *dir, const export_opts *o)
{
	char path[PATH_LEN];
	snprintf(path, sizeof path, "%s/%s", dir, JOURNAL_FILE);
	journal *j = journal_read(path);
	if (!j)
		export_die("%s", nb_errmsg());
	int complete = journal_rounds_complete(j);
	int round = (int)o->round;
	if (o->round < 0) {
		if (complete == 0)
			export_die("run directory '%s': no round is complete yet", dir);
		round = complete - 1;
	} else if (round >= complete) {
		export_die("run directory '%s': round %d is not complete (%d round%s complete)", dir, round, complete,
			   complete == 1 ? "" : "s");
	}
	int n = journal_shard_count(j, round);
	for (int i = 0; i < n; i++) {
		int64_t samples;
		const char *name = journal_shard_at(j, round, i, NULL, &samples);
		snprintf(path, sizeof path, "%s/round-%d/pseudo/%s", dir, round, name);
		add_shard(s, path, samples);
	}
	journal_close(j);
	if (o->with_labeled) {
		snprintf(path, sizeof path, "%s/config.conf", dir);
		jobfile *cfg = jobfile_load(path);
		if (!cfg)
			export_die("%s", nb_errmsg());
		const char *labeled = jobfile_get(cfg, "corpus.labeled");
		if (!labeled || !*labeled)
			export_die("'%s' sets no corpus.labeled (needed by --with-labeled)", path);
		/* The path is as the run was given it: relative to where it ran. */
		add_dir(s, labeled, " (corpus.labeled of the run, for --with-labeled)");
		jobfile_free(cfg);
	}
	s->rundirs++;
}

static void add_source(shard_set *s, const char *src, const export_opts *o)
{
	struct stat st;
	if (stat(src, &st) < 0)
		export_die("cannot read SOURCE '%s': %s", src, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		char jpath[PATH_LEN];
		snprintf(jpath, sizeof jpath, "%s/%s", src, JOURNAL_FILE);
		if (access(jpath, F_OK) == 0)
			add_rundir(s, src, o);
		else
			add_dir(s, src, " (and no " JOURNAL_FILE ": not a run directory)");
	} else if (S_ISREG(st.st_mode)) {
		add_shard(s, src, -1);
	} else {
		export_die("SOURCE '%s' is neither a directory nor a file", src);
	}
}

/* Opens every shard once before anything is written: caption shards of
 * this build's vocabulary (captions are decoded with it), with the counts
 * the journal recorded. Returns the total sample count. */
static uint64_t check_shards(const shard_set *s)
{
	uint64_t total = 0;
	for (size_t i = 0; i < s->n; i++) {
		const char *p = s->v[i].path;
		shard_reader *r = shard_open(p);
		if (!r)
			export_die("%s", nb_errmsg());
		const shard_meta *m = shard_reader_meta(r);
		if (m->kind != SHARD_CAPTIONS)
			export_die("'%s' is an image shard (%s): it has no captions to export", p, SHARD_SCHEMA_IMAGES);
		if (strcmp(m->vocab_digest, vocab_digest()))
			export_die("'%s': its tokens use vocabulary %s, but this build's is %s", p, m->vocab_digest,
				   vocab_digest());
		if (s->v[i].expect >= 0 && (uint64_t)s->v[i].expect != shard_count(r))
			export_die("'%s' holds %zu samples, but the run journal recorded %" PRId64, p, shard_count(r),
				   s->v[i].expect);
		total += shard_count(r);
		shard_close(r);
	}
	return total;
}

static size_t id_slot(const id_map *m, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	size_t i = (size_t)(h ^ h >> 29) & (m->cap - 1);
	while (m->val[i] && m->key[i] != id)
		i = (i + 1) & (m->cap - 1);
	return i;
}

/* Records id as seen in shard `shard`; returns the index + 1 of the shard
 * it was seen in before, or 0 when it is new. */
static size_t id_seen(id_map *m, uint64_t id, size_t shard)
{
	if (2 * (m->n + 1) > m->cap) {
		id_map g = {NULL, NULL, 0, m->cap ? 2 * m->cap : 1024};
		g.key = nb_xcalloc(g.cap, sizeof *g.key);
		g.val = nb_xcalloc(g.cap, sizeof *g.val);
		for (size_t i = 0; i < m->cap; i++)
			if (m->val[i]) {
				size_t k = id_slot(&g, m->key[i]);
				g.key[k] = m->key[i];
				g.val[k] = m->val[i];
			}
		g.n = m->n;
		free(m->key);
		free(m->val);
		*m = g;
	}
	size_t k = id_slot(m, id);
	if (m->val[k])
		return m->val[k];
	m->key[k] = id;
	m->val[k] = shard + 1;
	m->n++;
	return 0;
}

/* out_dir: FILE's folder ("." when none); img_name: the images folder's
 * name, FILE's name without its extension + "_images". */
static void llava_names(const char *out, char *out_dir, char *img_name)
{
	const char *slash = strrchr(out, '/');
	const char *base = slash ? slash + 1 : out;
	if (slash)
		snprintf(out_dir, PATH_LEN, "%.*s", slash == out ? 1 : (int)(slash - out), out);
	else
		snprintf(out_dir, PATH_LEN, ".");
	const char *dot = strrchr(base, '.');
	int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
	snprintf(img_name, PATH_LEN, "%.*s_images", stem, base);
}

static void flush_out(FILE *f, nb_buf *b)
{
	if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
		export_die("cannot write '%s': %s", out_tmp, strerror(errno));
	b->len = 0;
}

/* The PNGs are renamed into place unsynced (corpus/image/image_io.h); they
 * must be durable before the JSON that names them is. */
static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY);
	if (fd < 0)
		export_die("cannot open directory '%s': %s", dir, strerror(errno));
	if (syncfs(fd) < 0)
		export_die("cannot sync '%s': %s", dir, strerror(errno));
	close(fd);
}

static void jsonl_record(nb_buf *b, const shard_meta *m, const shard_sample *smp, const char *caption,
			 const char *shard)
{
	jsonl_begin(b);
	/* Ids are uint64 (jsonl_int takes int64); a number needs no escaping. */
	nb_buf_addf(b, "\"id\":%" PRIu64, smp->id);
	jsonl_str(b, "source", smp->source);
	jsonl_str(b, "caption", caption);
	jsonl_num(b, "score", smp->score, 6);
	jsonl_str(b, "origin", m->origin);
	jsonl_int(b, "round", m->round);
	jsonl_str(b, "teacher_digest", m->teacher_digest);
	jsonl_num(b, "sigma", m->sigma, 6);
	jsonl_int(b, "K", m->K);
	jsonl_int(b, "vote", m->vote);
	jsonl_str(b, "shard", shard);
	jsonl_end(b);
}

/* One element of the LLaVA array, on its own line; the strings go through
 * the jsonl writer's escaping, the nesting is added around it. */
static void llava_record(nb_buf *b, uint64_t id, const char *image, const char *caption, int first)
{
	char idtext[24];
	snprintf(idtext, sizeof idtext, "%" PRIu64, id);
	nb_buf_adds(b, first ? "\n" : ",\n");
	jsonl_begin(b);
	jsonl_str(b, "id", idtext);
	jsonl_str(b, "image", image);
	nb_buf_adds(b, ",\"conversations\":[");
	jsonl_begin(b);
	jsonl_str(b, "from", "human");
	jsonl_str(b, "value", LLAVA_PROMPT);
	nb_buf_adds(b, "},");
	jsonl_begin(b);
	jsonl_str(b, "from", "gpt");
	jsonl_str(b, "value", caption);
	nb_buf_adds(b, "}]}");
}

/* --format manifest: the shards themselves, one "path<TAB>samples<TAB>
 * origin<TAB>round" line each after a header (fields escaped as
 * common/nb_escape.h says), e.g. to merge the slices of a
 * labeling job array (jobs/label-array.sbatch) without copying labels. */
static int write_manifest(const export_opts *o, const shard_set *set, uint64_t total)
{
	nb_buf b = {0};
	nb_buf_adds(&b, "shard\tsamples\torigin\tround\n");
	for (size_t i = 0; i < set->n; i++) {
		shard_reader *r = shard_open(set->v[i].path);
		if (!r)
			export_die("%s", nb_errmsg());
		const shard_meta *m = shard_reader_meta(r);
		/* Paths and origins escaped (schemas/captions_tsv.md): a TAB or a
		 * newline in a file name stays inside its field. */
		nb_buf_add_escaped(&b, set->v[i].path, strlen(set->v[i].path));
		nb_buf_addf(&b, "\t%zu\t", shard_count(r));
		nb_buf_add_escaped(&b, m->origin, strlen(m->origin));
		nb_buf_addf(&b, "\t%d\n", m->round);
		shard_close(r);
	}
	if (nb_write_file_atomic(o->out, b.data, b.len) < 0)
		export_die("%s", nb_errmsg());
	fprintf(stderr, "nboost export: a manifest of %zu shard%s (%" PRIu64 " samples) to %s\n", set->n,
		set->n == 1 ? "" : "s", total, o->out);
	free(b.data);
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i].path);
	free(set->v);
	return 0;
}

/* What export_run's sample loop carries from shard to shard. */
typedef struct {
	const export_opts *o;
	const shard_set *set;
	FILE *f;
	const char *out_dir, *img_name;
	nb_buf b;                    /* output not yet flushed */
	id_map ids;                  /* llava: ids seen, for the duplicate check */
	uint64_t written, low, empty;
} export_state;

/* Writes the i-th shard's samples (those with a caption and the score). */
static void write_shard_samples(export_state *st, size_t i)
{
	const char *p = st->set->v[i].path;
	shard_reader *r = shard_open(p);
	if (!r)
		export_die("%s", nb_errmsg());
	const shard_meta *m = shard_reader_meta(r);
	shard_sample smp;
	int rc;
	while ((rc = shard_next(r, &smp)) == 1) {
		char caption[SHARD_MAX_TOKENS * 16];
		vocab_decode(smp.tokens, smp.ntokens, caption, sizeof caption);
		if (!*caption) {
			if (!st->empty++)
				nb_warn("skipping an empty caption: id %" PRIu64 " in '%s' (a data error; "
					"further ones are only counted)", smp.id, p);
			continue;
		}
		/* NaN fails the comparison: no score is no evidence. */
		if (!(smp.score >= st->o->min_score)) {
			st->low++;
			continue;
		}
		if (st->o->format == FMT_JSONL) {
			jsonl_record(&st->b, m, &smp, caption, p);
		} else {
			size_t prev = id_seen(&st->ids, smp.id, i);
			if (prev)
				export_die("id %" PRIu64 " is in '%s' and in '%s': its image name would be "
					   "taken twice", smp.id, st->set->v[prev - 1].path, p);
			char png[PATH_LEN * 3], rel[PATH_LEN + 32];
			snprintf(rel, sizeof rel, "%s/%" PRIu64 ".png", st->img_name, smp.id);
			snprintf(png, sizeof png, "%s/%s", st->out_dir, rel);
			if (image_write_png(png, smp.image, m->width, m->height) < 0)
				export_die("%s", nb_errmsg());
			llava_record(&st->b, smp.id, rel, caption, st->written == 0);
		}
		st->written++;
		if (st->b.len >= FLUSH_BYTES)
			flush_out(st->f, &st->b);
	}
	if (rc < 0)
		export_die("%s", nb_errmsg());
	shard_close(r);
}

static int export_run(const export_opts *o, int nsrc, char **src, const cli_command *cmd)
{
	shard_set set = {0};
	for (int i = 0; i < nsrc; i++)
		add_source(&set, src[i], o);
	if (!set.rundirs && (o->round >= 0 || o->with_labeled))
		return cli_usage_error(cmd, "%s applies to run directories only, and no SOURCE is one",
				       o->round >= 0 ? "--round" : "--with-labeled");
	uint64_t total = check_shards(&set);
	if (o->format == FMT_MANIFEST)
		return write_manifest(o, &set, total);

	char out_dir[PATH_LEN], img_name[PATH_LEN], img_dir[PATH_LEN * 2 + 2];
	llava_names(o->out, out_dir, img_name);
	snprintf(img_dir, sizeof img_dir, "%s/%s", out_dir, img_name);
	if (nb_mkdir_p(out_dir) < 0 || (o->format == FMT_LLAVA && nb_mkdir_p(img_dir) < 0))
		export_die("%s", nb_errmsg());
	if (nb_tmp_name(out_tmp, sizeof out_tmp, o->out) < 0) {
		*out_tmp = '\0';
		export_die("%s", nb_errmsg());
	}
	FILE *f = fopen(out_tmp, "wb");
	if (!f) {
		int e = errno;
		*out_tmp = '\0';
		export_die("cannot write '%s': %s", o->out, strerror(e));
	}

	export_state st = {.o = o, .set = &set, .f = f, .out_dir = out_dir, .img_name = img_name};
	if (o->format == FMT_LLAVA)
		nb_buf_adds(&st.b, "[");
	for (size_t i = 0; i < set.n; i++)
		write_shard_samples(&st, i);
	nb_buf b = st.b;
	id_map ids = st.ids;
	uint64_t written = st.written, low = st.low, empty = st.empty;
	if (!written) {
		fclose(f);
		export_die("no samples to export (%" PRIu64 " in %zu shard%s; %" PRIu64 " below --min-score, %" PRIu64
			   " empty)", total, set.n, set.n == 1 ? "" : "s", low, empty);
	}
	if (o->format == FMT_LLAVA) {
		nb_buf_adds(&b, "\n]\n");
		sync_dir(img_dir);
	}
	flush_out(f, &b);
	if (fclose(f)) {
		int e = errno;
		export_die("cannot write '%s': %s", out_tmp, strerror(e));
	}
	char tmp[PATH_LEN];
	snprintf(tmp, sizeof tmp, "%s", out_tmp);
	*out_tmp = '\0'; /* nb_publish removes it on failure */
	if (nb_publish(tmp, o->out, 1) < 0)
		nb_die("%s", nb_errmsg());
	fprintf(stderr, "nboost export: %" PRIu64 " samples from %zu shard%s to %s", written, set.n,
		set.n == 1 ? "" : "s", o->out);
	if (o->format == FMT_LLAVA)
		fprintf(stderr, " (+ %" PRIu64 " PNGs in %s)", written, img_dir);
	fprintf(stderr, "; skipped %" PRIu64 " (%" PRIu64 " below --min-score, %" PRIu64 " empty)\n",
		low + empty, low, empty);
	for (size_t i = 0; i < set.n; i++)
		free(set.v[i].path);
	free(set.v);
	free(ids.key);
	free(ids.val);
	free(b.data);
	return 0;
}

int cmd_export(int argc, char **argv)
{
	export_opts o = {FMT_JSONL, NULL, 0.0, -1, 0};
	const char *format = NULL;
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("format", &format, "FMT", "llava, jsonl or manifest (the shards, one TSV line each)\n(required)"),
		CLI_OPT_REQUIRED("out", &o.out, "FILE",
				 "output file (required); llava also writes its images into\n"
				 "FILE's folder, as <FILE's name without extension>_images/<id>.png"),
		CLI_OPT_DOUBLE("min-score", &o.min_score, 0.0, 1.0, "S",
			       "skip samples whose score is below S (default 0)"),
		CLI_OPT_LONG("round", &o.round, 0, JOURNAL_MAX_ROUND, "R",
			     "run directories: export round R, which must be complete\n"
			     "(default: the last complete round)"),
		CLI_OPT_FLAG("with-labeled", 0, &o.with_labeled,
			     "run directories: also export the run's labeled corpus\n"
			     "(corpus.labeled of RUNDIR/config.conf) (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "export",
		.synopsis = "usage: nboost export SOURCE... --format llava|jsonl|manifest --out FILE [--min-score S]\n"
			    "                     [--round R] [--with-labeled]\n",
		.about = "Writes the samples of caption shards for PyTorch trainers. A SOURCE is a run\n"
			 "directory of `nboost run` (the pseudo-labels of its last complete round), a\n"
			 "directory of caption shards, or one caption shard; several are concatenated.\n"
			 "jsonl: one JSON object per sample (id, source, caption, score, origin, round,\n"
			 "teacher_digest, sigma, K, vote, shard). llava: a JSON array of LLaVA\n"
			 "conversations, with each image as a PNG. The output appears complete or not at\n"
			 "all (temporary file, fsync, rename); empty captions are skipped and counted.\n",
		.opts = opts,
		.positional = "SOURCE",
		.min_pos = 1,
		.max_pos = -1,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (!strcmp(format, "jsonl"))
		o.format = FMT_JSONL;
	else if (!strcmp(format, "llava"))
		o.format = FMT_LLAVA;
	else if (!strcmp(format, "manifest"))
		o.format = FMT_MANIFEST;
	else
		return cli_usage_error(&cmd, "--format: '%s' is not llava, jsonl or manifest", format);
	/* Before any work: --out must be a regular file or nothing. */
	if (nb_check_output(o.out) < 0)
		nb_die("%s", nb_errmsg());
	return export_run(&o, npos, argv + 1, &cmd);
}
