/* Writing the synthetic corpus: splits -> fixed-size shards -> ranks.
 *
 * Shard k of a split holds scenes [k*S, (k+1)*S). The shards of all splits
 * are numbered globally (labeled first, then unlabeled, then test) and rank
 * r writes global shard g when g == r (mod nranks); every scene comes from
 * its own RNG stream, so the bytes do not depend on the rank count.
 *
 * Restart: shards are committed atomically, so a shard that exists under its
 * final name is complete. A rerun with the same parameters (checked against
 * out/corpus.json) skips such shards, after checking their count and first
 * id. With --png, a shard also counts as done only once its manifest part
 * (png/.parts/<split>-<k>.tsv, written after its PNGs) exists. */
/* syncfs(2): one flush of a shard's PNGs instead of one fsync per image */
#define _GNU_SOURCE
#include "corpus/synth/synth.h"

#include <dirent.h>
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
#include "common/nb_num.h"
#include "common/nb_time.h"
#include "common/vocab.h"
#include "corpus/image/image_io.h"
#include "store/shard_store.h"

#define PATH_MAX_LEN 4096
#define CAPTION_MAX 512   /* test-dense: 9 statements of up to 38 bytes */

static int path_join(char *buf, const char *a, const char *b)
{
	int n = snprintf(buf, PATH_MAX_LEN, "%s/%s", a, b);
	if (n < 0 || n >= PATH_MAX_LEN)
		return nb_error("path too long: '%s/%s'", a, b);
	return 0;
}

/* The PNGs are renamed into place unsynced; they must be durable before
 * the manifest part that declares them done. */
static int sync_filesystem(const char *dir)
{
	int fd = open(dir, O_RDONLY);
	if (fd < 0)
		return nb_error("cannot open directory '%s': %s", dir, strerror(errno));
	int rc = syncfs(fd);
	int e = errno;
	close(fd);
	return rc ? nb_error("cannot sync '%s': %s", dir, strerror(e)) : 0;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int synth_split_used(const synth_opts *o, int split)
{
	return split < SYNTH_HARD_FIRST || o->count[split] > 0;
}

uint64_t synth_nshards(const synth_opts *o, int split)
{
	return (o->count[split] + (uint64_t)o->shard_size - 1) / (uint64_t)o->shard_size;
}

static int shard_file(char *buf, const synth_opts *o, int split, uint64_t k)
{
	int n = snprintf(buf, PATH_MAX_LEN, "%s/%s/shard-%06" PRIu64 ".h5", o->out, synth_split_names[split], k);
	if (n < 0 || n >= PATH_MAX_LEN)
		return nb_error("path too long under '%s'", o->out);
	return 0;
}

static int part_file(char *buf, const synth_opts *o, int split, uint64_t k)
{
	int n = snprintf(buf, PATH_MAX_LEN, "%s/.parts/%s-%06" PRIu64 ".tsv", o->png, synth_split_names[split], k);
	if (n < 0 || n >= PATH_MAX_LEN)
		return nb_error("path too long under '%s'", o->png);
	return 0;
}

/* ---- corpus.json ---- */

static void corpus_json(const synth_opts *o, int complete, const uint64_t *bytes, nb_buf *b)
{
	nb_buf_addf(b,
		    "{\n  \"format\": \"nboost.synth-corpus\",\n  \"grammar_version\": %d,\n"
		    "  \"seed\": %" PRIu64 ",\n  \"size\": %d,\n  \"shard_size\": %d,\n"
		    "  \"labeled\": %" PRIu64 ",\n  \"unlabeled\": %" PRIu64 ",\n  \"test\": %" PRIu64 ",\n"
		    "  \"hard_tests\": %" PRIu64 ",\n  \"complete\": %s",
		    SYNTH_GRAMMAR_VERSION, o->seed, o->size, o->shard_size, o->count[0], o->count[1], o->count[2],
		    o->count[SYNTH_HARD_FIRST], complete ? "true" : "false");
	if (bytes) {
		nb_buf_adds(b, ",\n  \"bytes\": {");
		for (int s = 0, first = 1; s < SYNTH_SPLITS; s++)
			if (synth_split_used(o, s)) {
				nb_buf_addf(b, "%s\"%s\": %" PRIu64, first ? "" : ", ", synth_split_names[s], bytes[s]);
				first = 0;
			}
		nb_buf_adds(b, "}");
	}
	nb_buf_adds(b, "\n}\n");
}

/* The number after "key": in a corpus.json we wrote; -1 when absent. */
static int json_u64(const char *text, const char *key, uint64_t *out)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(text, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	/* The digits alone: the value is followed by the rest of the file. */
	char num[32];
	size_t n = strspn(p, "0123456789");
	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, p, n);
	num[n] = 0;
	return nb_parse_u64(num, 0, UINT64_MAX, key, out);
}

/* Refuses to mix two corpora in one directory. */
static int check_corpus_json(const synth_opts *o, const char *path, const char *text)
{
	struct {
		const char *key;
		uint64_t want;
	} keys[] = {
		{"grammar_version", SYNTH_GRAMMAR_VERSION}, {"seed", o->seed}, {"size", (uint64_t)o->size},
		{"shard_size", (uint64_t)o->shard_size}, {"labeled", o->count[0]}, {"unlabeled", o->count[1]},
		{"test", o->count[2]}, {"hard_tests", o->count[SYNTH_HARD_FIRST]},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		uint64_t have;
		/* corpora written before the hard test splits have none */
		if (!strcmp(keys[i].key, "hard_tests") && json_u64(text, keys[i].key, &have))
			have = 0;
		else if (json_u64(text, keys[i].key, &have))
			return nb_error("cannot resume in '%s': '%s' has no valid \"%s\"; use --force to replace it",
					o->out, path, keys[i].key);
		if (have != keys[i].want)
			return nb_error("refusing to mix corpora in '%s': '%s' has %s %" PRIu64
					" but %" PRIu64 " was requested; use --force to replace it",
					o->out, path, keys[i].key, have, keys[i].want);
	}
	return 0;
}

/* Removes files in dir whose names start with prefix and end with suffix. */
static int remove_matching(const char *dir, const char *prefix, const char *suffix, int *removed)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return nb_error("cannot read directory '%s': %s", dir, strerror(errno));
	}
	struct dirent *e;
	size_t pl = strlen(prefix), sl = strlen(suffix);
	int rc = 0;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < pl + sl || strncmp(e->d_name, prefix, pl) || strcmp(e->d_name + n - sl, suffix))
			continue;
		char path[PATH_MAX_LEN];
		if (path_join(path, dir, e->d_name)) {
			rc = -1;
			break;
		}
		if (unlink(path) && errno != ENOENT) {
			rc = nb_error("cannot remove '%s': %s", path, strerror(errno));
			break;
		}
		if (removed)
			(*removed)++;
	}
	closedir(d);
	return rc;
}

/* Leftovers of killed PNG writers: ".<name>.tmp.<pid>". */
static int sweep_png_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : nb_error("cannot read directory '%s': %s", dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp."))
			continue;
		char path[PATH_MAX_LEN];
		if (path_join(path, dir, e->d_name) || (unlink(path) && errno != ENOENT)) {
			rc = nb_error("cannot remove '%s/%s': %s", dir, e->d_name, strerror(errno));
			break;
		}
	}
	closedir(d);
	return rc;
}

int synth_prepare(const synth_opts *o)
{
	char path[PATH_MAX_LEN];
	if (nb_mkdir_p(o->out))
		return -1;
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		if (!synth_split_used(o, s))
			continue;
		if (path_join(path, o->out, synth_split_names[s]) || nb_mkdir_p(path))
			return -1;
		if (shard_sweep_tmp(path) < 0)
			return -1;
	}
	if (o->png) {
		if (nb_mkdir_p(o->png))
			return -1;
		if (path_join(path, o->png, ".parts") || nb_mkdir_p(path) || sweep_png_tmp(path))
			return -1;
		if (sweep_png_tmp(o->png))
			return -1;
		for (int s = 0; s < SYNTH_SPLITS; s++)
			if (synth_split_used(o, s) &&
			    (path_join(path, o->png, synth_split_names[s]) || nb_mkdir_p(path) || sweep_png_tmp(path)))
				return -1;
	}

	char json_path[PATH_MAX_LEN];
	if (path_join(json_path, o->out, "corpus.json"))
		return -1;
	size_t len;
	char *text = nb_read_file(json_path, &len);
	if (!text && errno != ENOENT)
		return nb_error("cannot read '%s': %s", json_path, strerror(errno));

	int have_shards = 0;
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		char **paths = NULL;
		if (!synth_split_used(o, s))
			continue;
		if (path_join(path, o->out, synth_split_names[s]))
			return -1;
		int n = shard_list(path, &paths);
		if (n < 0) {
			free(text);
			return -1;
		}
		have_shards += n;
		shard_list_free(paths, n);
	}

	if (!o->force) {
		int rc = 0;
		if (text)
			rc = check_corpus_json(o, json_path, text);
		else if (have_shards)
			rc = nb_error("refusing to write into '%s': it holds shards but no corpus.json; "
				      "use --force to replace them", o->out);
		free(text);
		if (rc)
			return -1;
	} else {
		free(text);
		for (int s = 0; s < SYNTH_SPLITS; s++) /* every split: a missing one is fine */
			if (path_join(path, o->out, synth_split_names[s]) ||
			    remove_matching(path, "shard-", ".h5", NULL))
				return -1;
		if (o->png && (path_join(path, o->png, ".parts") || remove_matching(path, "", ".tsv", NULL)))
			return -1;
	}

	nb_buf b = {0};
	corpus_json(o, 0, NULL, &b);
	int rc = nb_write_file_atomic(json_path, b.data, b.len);
	free(b.data);
	return rc;
}

/* A committed shard with the expected count and first id is complete. */
static int shard_is_complete(const synth_opts *o, const char *path, int split, uint64_t first, uint64_t n)
{
	if (!file_exists(path))
		return 0;
	shard_reader *r = shard_open(path);
	if (!r) {
		nb_warn("rewriting '%s': %s", path, nb_errmsg());
		return 0;
	}
	const shard_meta *m = shard_reader_meta(r);
	shard_sample s;
	int ok = m->height == o->size && m->width == o->size && shard_count(r) == n &&
		 m->kind == (split == SYNTH_UNLABELED ? SHARD_IMAGES : SHARD_CAPTIONS) && m->has_objects &&
		 shard_get(r, 0, &s) == 0 && s.id == synth_id(split, first);
	shard_close(r);
	if (!ok)
		nb_warn("rewriting '%s': it does not hold the expected scenes", path);
	return ok;
}

typedef struct {
	const synth_opts *o;
	uint64_t share, done;   /* this rank's scenes, for progress */
	double t0, last;
} progress;

static void progress_tick(progress *p)
{
	p->done++;
	if (!p->o->progress || (p->done & 63))
		return;
	double t = nb_now();
	if (t - p->last < 2.0)
		return;
	p->last = t;
	fprintf(stderr, "synth: %" PRIu64 "/%" PRIu64 " scenes of rank 0's share (%.0f%%), %.0f scenes/s\n",
		p->done, p->share, 100.0 * (double)p->done / (double)(p->share ? p->share : 1),
		(double)p->done / (t - p->t0));
}

static int write_shard(const synth_opts *o, int split, uint64_t k, const char *path, progress *prog)
{
	uint64_t first = k * (uint64_t)o->shard_size;
	uint64_t end = first + (uint64_t)o->shard_size;
	if (end > o->count[split])
		end = o->count[split];

	shard_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.kind = split == SYNTH_UNLABELED ? SHARD_IMAGES : SHARD_CAPTIONS;
	meta.height = meta.width = o->size;
	meta.has_objects = 1;
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());

	shard_writer *w = shard_create(path, &meta);
	if (!w)
		return -1;
	size_t npix = (size_t)o->size * (size_t)o->size * 3;
	uint8_t *img = nb_xmalloc(npix);
	nb_buf manifest = {0};
	int rc = 0;
	for (uint64_t i = first; i < end && rc == 0; i++) {
		synth_scene sc;
		char caption[CAPTION_MAX], source[64];
		uint16_t tokens[SHARD_MAX_TOKENS];
		synth_make(o->seed, split, i, o->size, &sc, img);
		int clen = scene_caption(sc.cells, caption, sizeof caption);
		int ntok = vocab_encode(caption, tokens, SHARD_MAX_TOKENS);
		if (clen < 0 || ntok > SHARD_MAX_TOKENS)
			NB_BUG("caption of scene %" PRIu64 " does not fit", i);
		snprintf(source, sizeof source, "synth:%s/%" PRIu64, synth_split_names[split], i);

		shard_sample s;
		memset(&s, 0, sizeof s);
		s.id = synth_id(split, i);
		s.image = img;
		s.source = source;
		s.objects = sc.cells;
		if (meta.kind == SHARD_CAPTIONS) {
			s.tokens = tokens;
			s.ntokens = ntok;
			s.score = 1.0f;
		}
		rc = shard_append(w, &s);
		if (rc == 0 && o->png) {
			char rel[64], png_path[PATH_MAX_LEN];
			snprintf(rel, sizeof rel, "%s/%" PRIu64 ".png", synth_split_names[split], s.id);
			rc = path_join(png_path, o->png, rel);
			if (rc == 0)
				rc = image_write_png(png_path, img, o->size, o->size);
			if (rc)
				break;
			nb_buf_addf(&manifest, "%s\t%.*s\n", rel, clen, caption);
		}
		progress_tick(prog);
	}
	free(img);
	if (rc) {
		shard_abort(w);
		free(manifest.data);
		return -1;
	}
	if (shard_commit(w)) {
		free(manifest.data);
		return -1;
	}
	if (o->png) {
		char part[PATH_MAX_LEN];
		rc = part_file(part, o, split, k);
		if (rc == 0)
			rc = sync_filesystem(o->png);
		if (rc == 0)
			rc = nb_write_file_atomic(part, manifest.data ? manifest.data : "", manifest.len);
	}
	free(manifest.data);
	return rc;
}

int synth_write_rank(const synth_opts *o, int rank, int nranks, synth_stats *st)
{
	memset(st, 0, sizeof *st);
	progress prog = {o, 0, 0, nb_now(), nb_now()};
	uint64_t g = 0;
	for (int s = 0; s < SYNTH_SPLITS; s++)
		for (uint64_t k = 0; k < synth_nshards(o, s); k++, g++)
			if (g % (uint64_t)nranks == (uint64_t)rank) {
				uint64_t first = k * (uint64_t)o->shard_size, n = o->count[s] - first;
				prog.share += n < (uint64_t)o->shard_size ? n : (uint64_t)o->shard_size;
			}

	g = 0;
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		for (uint64_t k = 0; k < synth_nshards(o, s); k++, g++) {
			if (g % (uint64_t)nranks != (uint64_t)rank)
				continue;
			char path[PATH_MAX_LEN], part[PATH_MAX_LEN];
			uint64_t first = k * (uint64_t)o->shard_size, n = o->count[s] - first;
			if (n > (uint64_t)o->shard_size)
				n = (uint64_t)o->shard_size;
			if (shard_file(path, o, s, k) || (o->png && part_file(part, o, s, k)))
				return -1;
			if (!o->force && shard_is_complete(o, path, s, first, n) && (!o->png || file_exists(part))) {
				st->skipped[s] += n;
				st->shards_skipped[s]++;
				prog.done += n;
				continue;
			}
			if (write_shard(o, s, k, path, &prog)) {
				/* nb_error must not read the buffer it writes */
				char why[1024];
				snprintf(why, sizeof why, "%s", nb_errmsg());
				return nb_error("cannot write shard '%s': %s", path, why);
			}
			st->rendered[s] += n;
			st->shards[s]++;
		}
	}
	return 0;
}

int synth_finish(const synth_opts *o, uint64_t bytes[SYNTH_SPLITS])
{
	char path[PATH_MAX_LEN];
	for (int s = 0; s < SYNTH_SPLITS; s++) {
		bytes[s] = 0;
		for (uint64_t k = 0; k < synth_nshards(o, s); k++) {
			struct stat st;
			if (shard_file(path, o, s, k))
				return -1;
			if (stat(path, &st))
				return nb_error("shard '%s' is missing after all ranks finished: %s", path,
						strerror(errno));
			bytes[s] += (uint64_t)st.st_size;
		}
	}
	if (o->png) {
		nb_buf all = {0};
		for (int s = 0; s < SYNTH_SPLITS; s++)
			for (uint64_t k = 0; k < synth_nshards(o, s); k++) {
				size_t len;
				if (part_file(path, o, s, k)) {
					free(all.data);
					return -1;
				}
				char *text = nb_read_file(path, &len);
				if (!text) {
					int e = errno;
					free(all.data);
					return nb_error("cannot read manifest part '%s': %s", path, strerror(e));
				}
				nb_buf_add(&all, text, len);
				free(text);
			}
		int rc = path_join(path, o->png, "manifest.tsv");
		if (rc == 0)
			rc = nb_write_file_atomic(path, all.data ? all.data : "", all.len);
		free(all.data);
		if (rc)
			return -1;
	}
	nb_buf b = {0};
	corpus_json(o, 1, bytes, &b);
	int rc = path_join(path, o->out, "corpus.json");
	if (rc == 0)
		rc = nb_write_file_atomic(path, b.data, b.len);
	free(b.data);
	return rc;
}
