/* Labeling throughput of one teacher rank of `nboost run`, in one process
 * (no MPI): the work of pipeline/run_teacher.c's label_unit on units of
 * run.unit = 64 images: read the unit's images from a shard (shard_get, the
 * copy into the message buffer), decode 1 clean + K noisy captions per
 * image in decode calls of teacher.batch = 16 images (model/decode.h), and
 * pack the filter's message (header, ids, lengths, tokens, images,
 * objects, sources). Each unit reads the next images of the corpus, so
 * reads are not served from the chunk cache of the previous K. Images/s at K = 0, 2, 4, 8, each K's ratio to K = 0
 * measured in the same run, and the decoder's share of the time.
 *
 *   bench_label [CKPT|-] [SHARD_DIR|-] [images] [reps]
 *
 * CKPT: the teacher checkpoint ("-": the reference configuration with random
 * weights; then captions run to whatever length the random model gives, and
 * decoding cost grows with caption length, so prefer a trained checkpoint).
 * SHARD_DIR: unlabeled shards of the model's image size ("-": a temporary
 * shard of random images). images (default 256, whole units of 64) are
 * labeled per K and rep; reps (default 3) are interleaved over K, and every
 * figure is the median over reps. Threads: OpenMP's (OMP_NUM_THREADS; all
 * cores by default), as a teacher rank alone on a node. Last line: JSON. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_rng.h"
#include "common/scene.h"
#include "model/blas.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "model/vlm.h"
#include "store/shard_store.h"
#include "bench/bench_util.h"

enum { UNIT = 64, BATCH = 16, NK = 4, KMAX = 8 };
static const int Ks[NK] = {0, 2, 4, 8};

typedef struct {
	shard_reader **rd;
	size_t *count;
	int n;
} corpus;

/* The i-th image of the corpus, in shard order, wrapping around. */
static void corpus_get(corpus *c, size_t i, shard_sample *s)
{
	size_t total = 0;
	for (int k = 0; k < c->n; k++)
		total += c->count[k];
	i %= total;
	int k = 0;
	while (i >= c->count[k])
		i -= c->count[k++];
	if (shard_get(c->rd[k], i, s) < 0)
		nb_die("%s", nb_errmsg());
}

/* A temporary shard of n random images of size S. */
static char *random_shard(int S, int n)
{
	const char *tmp = getenv("TMPDIR");
	char *dir = nb_xmalloc(4096);
	snprintf(dir, 4096, "%s/nb-bench-label.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		nb_die("cannot create a temporary directory");
	char path[4200];
	snprintf(path, sizeof path, "%s/shard-000000.h5", dir);
	shard_meta meta = {.kind = SHARD_IMAGES, .height = S, .width = S};
	shard_writer *w = shard_create(path, &meta);
	if (!w)
		nb_die("%s", nb_errmsg());
	uint8_t *img = nb_xmalloc((size_t)S * S * 3);
	nb_rng r;
	nb_rng_seed(&r, 3, 0, 0);
	for (int i = 0; i < n; i++) {
		for (size_t k = 0; k < (size_t)S * S * 3; k++)
			img[k] = (uint8_t)nb_rng_below(&r, 256);
		shard_sample s = {.id = (uint64_t)i + 1, .image = img, .source = "random"};
		if (shard_append(w, &s) < 0)
			nb_die("%s", nb_errmsg());
	}
	if (shard_commit(w) < 0)
		nb_die("%s", nb_errmsg());
	free(img);
	return dir;
}

typedef struct {
	double read, decode, pack; /* seconds */
	long words, clean_words, captions, images;
} timing;

/* label_unit's work for images [first, first + n): read, decode, pack. */
static void label_unit(corpus *c, decoder *d, int K, int S, int maxtok, size_t first, size_t n, nb_buf *msg,
		       timing *t)
{
	size_t K1 = (size_t)K + 1, img = (size_t)S * S * 3;
	double t0 = bench_now();
	uint64_t *ids = nb_xmalloc(n * sizeof *ids);
	int32_t *lens = nb_xmalloc(n * K1 * sizeof *lens);
	uint16_t *toks = nb_xcalloc(n * K1 * (size_t)maxtok, sizeof *toks);
	uint8_t *images = nb_xmalloc(n * img), *objects = nb_xcalloc(n, SCENE_CELLS);
	nb_buf src = {0};
	int has_obj = 1;
	for (size_t i = 0; i < n; i++) {
		shard_sample s;
		corpus_get(c, first + i, &s);
		ids[i] = s.id;
		memcpy(images + i * img, s.image, img);
		if (s.objects)
			memcpy(objects + i * SCENE_CELLS, s.objects, SCENE_CELLS);
		else
			has_obj = 0;
		nb_buf_add(&src, s.source ? s.source : "", strlen(s.source ? s.source : "") + 1);
	}
	double t1 = bench_now();
	decode_opts o = {K, 0.3f, 12345, maxtok};
	int blens[BATCH * (KMAX + 1)];
	for (size_t i = 0; i < n; i += BATCH) {
		int b = (int)(n - i < BATCH ? n - i : BATCH);
		if (decode_greedy(d, images + i * img, ids + i, b, &o, toks + i * K1 * (size_t)maxtok, blens) < 0)
			nb_die("%s", nb_errmsg());
		for (int k = 0; k < b * (int)K1; k++) {
			lens[i * K1 + (size_t)k] = blens[k];
			t->words += blens[k];
			t->clean_words += k % (int)K1 == 0 ? blens[k] : 0;
		}
		t->captions += b * (int)K1;
	}
	double t2 = bench_now();
	msg->len = 0;
	char hdr[128] = {0}; /* caps_hdr's size, near enough */
	nb_buf_add(msg, hdr, sizeof hdr);
	nb_buf_add(msg, ids, n * sizeof *ids);
	nb_buf_add(msg, lens, n * K1 * sizeof *lens);
	nb_buf_add(msg, toks, n * K1 * (size_t)maxtok * sizeof *toks);
	nb_buf_add(msg, images, n * img);
	if (has_obj)
		nb_buf_add(msg, objects, n * SCENE_CELLS);
	nb_buf_add(msg, src.data, src.len);
	free(src.data), free(ids), free(lens), free(toks), free(images), free(objects);
	double t3 = bench_now();
	t->read += t1 - t0, t->decode += t2 - t1, t->pack += t3 - t2;
	t->images += (long)n;
}

int main(int argc, char **argv)
{
	blas_runtime_init(argc, argv);
	const char *ckpt = argc > 1 ? argv[1] : "-", *dir = argc > 2 ? argv[2] : "-";
	int images = argc > 3 ? atoi(argv[3]) : 256, reps = argc > 4 ? atoi(argv[4]) : 3;
	if (images < 1 || reps < 1 || reps > 50) {
		fprintf(stderr, "usage: bench_label [CKPT|-] [SHARD_DIR|-] [images] [reps 1..50]\n");
		return 2;
	}
	int trained = strcmp(ckpt, "-") != 0;
	vlm_model *m;
	if (trained) {
		m = ckpt_load_model(ckpt, BATCH * (KMAX + 1));
		if (!m)
			nb_die("%s", nb_errmsg());
	} else {
		vlm_config cfg = vlm_config_default();
		m = vlm_create(&cfg, BATCH * (KMAX + 1));
		if (!m)
			nb_die("%s", nb_errmsg());
		vlm_init(m, 1);
	}
	const vlm_config *cfg = vlm_get_config(m);
	int S = cfg->image_size, maxtok = cfg->max_text - 1;
	char *tmpdir = NULL;
	if (!strcmp(dir, "-"))
		dir = tmpdir = random_shard(S, images < 512 ? images : 512);
	char **paths = NULL;
	int np = shard_list(dir, &paths);
	if (np <= 0)
		nb_die("no shards in '%s'%s%s", dir, np < 0 ? ": " : "", np < 0 ? nb_errmsg() : "");
	corpus c = {nb_xcalloc((size_t)np, sizeof(shard_reader *)), nb_xcalloc((size_t)np, sizeof(size_t)), np};
	for (int i = 0; i < np; i++) {
		if (!(c.rd[i] = shard_open(paths[i])))
			nb_die("%s", nb_errmsg());
		const shard_meta *meta = shard_reader_meta(c.rd[i]);
		if (meta->height != S || meta->width != S)
			nb_die("'%s' holds %dx%d images, the model takes %dx%d", paths[i], meta->height, meta->width, S, S);
		c.count[i] = shard_count(c.rd[i]);
	}
	decoder *dec[NK];
	for (int k = 0; k < NK; k++)
		if (!(dec[k] = decoder_create(m, BATCH, Ks[k])))
			nb_die("%s", nb_errmsg());
	nb_buf msg = {0};
	printf("model: %s; images: %s; %d images per K and rep, units of %d, decode calls of %d, %d threads\n",
	       trained ? ckpt : "reference configuration, random weights", tmpdir ? "random (temporary shard)" : dir,
	       images, UNIT, BATCH, omp_get_max_threads());
	{ /* warm-up: one unit at K = 4 */
		timing w = {0};
		label_unit(&c, dec[2], Ks[2], S, maxtok, 0, UNIT < images ? UNIT : (size_t)images, &msg, &w);
	}
	double rate[NK][50], share[NK][50], readms[NK][50], packms[NK][50];
	timing tot[NK] = {{0}};
	size_t next = UNIT; /* every unit reads images not read just before (wrapping around the corpus) */
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NK; k++) {
			timing t = {0};
			double t0 = bench_now();
			for (size_t first = 0; first < (size_t)images; first += UNIT) {
				size_t n = (size_t)images - first < UNIT ? (size_t)images - first : UNIT;
				label_unit(&c, dec[k], Ks[k], S, maxtok, next, n, &msg, &t);
				next += n;
			}
			double wall = bench_now() - t0;
			rate[k][r] = (double)t.images / wall;
			share[k][r] = t.decode / (t.read + t.decode + t.pack);
			readms[k][r] = 1e3 * t.read / (double)t.images;
			packms[k][r] = 1e3 * t.pack / (double)t.images;
			tot[k].words += t.words, tot[k].clean_words += t.clean_words;
			tot[k].captions += t.captions, tot[k].images += t.images;
			printf("rep %d K=%d: %.1f images/s, decode %.1f%% (read %.3f ms/image, pack %.3f ms/image), "
			       "%.1f words/caption\n",
			       r + 1, Ks[k], rate[k][r], 100 * share[k][r], readms[k][r], packms[k][r],
			       (double)t.words / (double)t.captions);
			fflush(stdout);
		}
	double med[NK], sh[NK], rd[NK], pk[NK];
	for (int k = 0; k < NK; k++) {
		med[k] = bench_median(rate[k], reps);
		sh[k] = bench_median(share[k], reps);
		rd[k] = bench_median(readms[k], reps);
		pk[k] = bench_median(packms[k], reps);
	}
	for (int k = 0; k < NK; k++)
		printf("K=%d: %.1f images/s (%.2fx of K=0), decoder %.1f%% of the time, read %.3f + pack %.3f ms/image, "
		       "clean caption %.1f words, all streams %.1f words\n",
		       Ks[k], med[k], med[k] / med[0], 100 * sh[k], rd[k], pk[k],
		       (double)tot[k].clean_words / (double)tot[k].images, (double)tot[k].words / (double)tot[k].captions);
	printf("{\"bench\":\"label\",\"model\":\"%s\",\"images\":%d,\"reps\":%d,\"threads\":%d,\"unit\":%d,\"batch\":%d",
	       trained ? "checkpoint" : "random", images, reps, omp_get_max_threads(), UNIT, BATCH);
	for (int k = 0; k < NK; k++)
		printf(",\"K%d\":{\"images_per_s\":%.2f,\"ratio_to_K0\":%.3f,\"decode_share\":%.4f,\"read_ms_per_image\":%.4f,"
		       "\"pack_ms_per_image\":%.4f,\"clean_words\":%.2f,\"words_per_caption\":%.2f}",
		       Ks[k], med[k], med[k] / med[0], sh[k], rd[k], pk[k],
		       (double)tot[k].clean_words / (double)tot[k].images, (double)tot[k].words / (double)tot[k].captions);
	printf("}\n");
	for (int k = 0; k < NK; k++)
		decoder_free(dec[k]);
	for (int i = 0; i < np; i++)
		shard_close(c.rd[i]);
	shard_list_free(paths, np);
	free(c.rd), free(c.count), free(msg.data);
	if (tmpdir) {
		char path[4200];
		snprintf(path, sizeof path, "%s/shard-000000.h5", tmpdir);
		unlink(path);
		rmdir(tmpdir);
		free(tmpdir);
	}
	vlm_free(m);
	return 0;
}
