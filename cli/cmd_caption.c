/* nboost caption: greedy captions for PNG/JPEG files with a trained model.
 * Prints "path<TAB>caption" per image, in the order given. A file that
 * cannot be read or decoded gets an error line on stderr and the others go
 * on; the exit status is then 1. With --shards DIR it captions every image
 * of the committed image or caption shards in DIR instead, printing
 * "id<TAB>source<TAB>caption" (for example web shards from nboost ingest).
 * Paths, sources and captions are printed escaped (common/nb_escape.h), so
 * a TAB, a newline or a terminal escape in a source stays inside its field.
 * A failed write on stdout stops the command at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"
#include "common/nb_time.h"
#include "model/decode.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "corpus/image/image_io.h"
#include "pipeline/ranks.h"
#include "store/shard_store.h"

#define DEF_BATCH 16
#define DEF_MAX_PIXELS 40000000L

typedef struct {
	const char *model, *shards;
	long batch, max_pixels, max_tokens;
	int nfiles; /* image files, moved to argv[1..1 + nfiles) */
} caption_args;

/* Parses argv into a. Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, caption_args *a)
{
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("model", &a->model, "CKPT", "checkpoint (.h5) to load (required)"),
		CLI_OPT_STRING("shards", &a->shards, "DIR",
			       "caption every image in DIR's shards; prints id<TAB>source<TAB>caption"),
		CLI_OPT_LONG("batch", &a->batch, 1, 4096, "N", "images decoded together (default " CLI_STR(DEF_BATCH) ")"),
		CLI_OPT_LONG("max-pixels", &a->max_pixels, 1, 1L << 40, "N",
			     "refuse images larger than N pixels (default 40000000)"),
		CLI_OPT_LONG("max-tokens", &a->max_tokens, 1, 4095, "N",
			     "cap on words per caption (default: the model's max_text - 1)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "caption",
		.synopsis = "usage: nboost caption --model CKPT [options] IMAGE...\n"
			    "       nboost caption --model CKPT --shards DIR [options]\n",
		.about = "Captions PNG/JPEG images with a trained checkpoint (greedy, clean stream).\n"
			 "Each image is center-cropped and resized to the model's input size.\n"
			 "Prints one line per image: path<TAB>caption, escaped as in schemas/captions_tsv.md.\n"
			 "Under mpirun/srun the ranks split the images of --shards (rank 0 prints every\n"
			 "line, in order: the same output as one process); progress with an ETA on stderr.\n",
		.opts = opts,
		.positional = "IMAGE",
		.max_pos = -1,
	};
	int rc = cli_parse(&cmd, argc, argv, &a->nfiles);
	if (rc >= 0)
		return rc;
	if (a->shards && a->nfiles)
		return cli_usage_error(&cmd, "give either --shards or image files, not both");
	if (!a->shards && !a->nfiles)
		return cli_usage_error(&cmd, "missing IMAGE (or --shards DIR)");
	return -1;
}

/* A loaded model with the buffers for one batch of greedy, clean captions. */
typedef struct {
	vlm_model *m;
	decoder *d;
	decode_opts o;
	int size, batch;
	uint8_t *pix;     /* [batch, size, size, 3] */
	uint64_t *keys;   /* [batch] noise keys (unused by the clean stream) */
	uint16_t *tok;    /* [batch, max_tokens] */
	int *lens;        /* [batch] */
	char *text;       /* one decoded caption */
} captioner;

#define TEXT_BYTES(max_tokens) (16 * (size_t)(max_tokens) + 16)

/* Loads the checkpoint and sizes everything for batch images; max_tokens 0
 * (or one over the model's limit) means the model's own limit. Dies on a
 * bad checkpoint. */
static void captioner_open(captioner *c, const char *model, int batch, long max_tokens)
{
	memset(c, 0, sizeof *c);
	c->m = ckpt_load_model(model, batch);
	if (!c->m)
		nb_die("%s", nb_errmsg());
	const vlm_config *cfg = vlm_get_config(c->m);
	if (max_tokens == 0 || max_tokens > cfg->max_text - 1)
		max_tokens = cfg->max_text - 1;
	c->d = decoder_create(c->m, batch, 0);
	if (!c->d)
		nb_die("%s", nb_errmsg());
	c->o = (decode_opts){.K = 0, .sigma = 0.0f, .seed = 0, .max_tokens = (int)max_tokens};
	c->size = cfg->image_size;
	c->batch = batch;
	c->pix = nb_xmalloc((size_t)c->size * (size_t)c->size * 3 * (size_t)batch);
	c->keys = nb_xcalloc((size_t)batch, sizeof(uint64_t));
	c->tok = nb_xmalloc(sizeof(uint16_t) * (size_t)batch * (size_t)max_tokens);
	c->lens = nb_xmalloc(sizeof(int) * (size_t)batch);
	c->text = nb_xmalloc(TEXT_BYTES(max_tokens));
}

static void captioner_close(captioner *c)
{
	free(c->text), free(c->pix), free(c->keys), free(c->tok), free(c->lens);
	decoder_free(c->d);
	vlm_free(c->m);
}

/* Slot k of the batch's pixels. */
static uint8_t *captioner_slot(captioner *c, int k)
{
	return c->pix + (size_t)k * (size_t)c->size * (size_t)c->size * 3;
}

/* Captions the first n slots. Dies on a decoding error. */
static void captioner_run(captioner *c, int n)
{
	if (decode_greedy(c->d, c->pix, c->keys, n, &c->o, c->tok, c->lens) < 0)
		nb_die("%s", nb_errmsg());
}

/* The caption of slot k after captioner_run, in c->text. */
static const char *captioner_text(captioner *c, int k)
{
	vocab_decode(c->tok + (size_t)k * (size_t)c->o.max_tokens, c->lens[k], c->text,
		     (int)TEXT_BYTES(c->o.max_tokens));
	return c->text;
}

/* Flushes the lines of a batch; a failed write ends the command (there is
 * no point captioning the rest into a full disk). */
static void flush_or_die(void)
{
	if (nb_stdout_flush() < 0)
		nb_die("%s", nb_errmsg());
}

/* Captions the first n slots and appends "id<TAB>source<TAB>caption" for
 * each to out; frees the sources. */
static void caption_shard_batch(captioner *c, int n, char **sources, nb_buf *out)
{
	captioner_run(c, n);
	for (int k = 0; k < n; k++) {
		nb_buf_addf(out, "%llu\t", (unsigned long long)c->keys[k]);
		nb_buf_add_escaped(out, sources[k], strlen(sources[k]));
		nb_buf_add(out, "\t", 1);
		const char *text = captioner_text(c, k);
		nb_buf_add_escaped(out, text, strlen(text));
		nb_buf_add(out, "\n", 1);
		free(sources[k]);
	}
}

/* Writes and empties out (rank 0: its lines as they are made). */
static void write_out(nb_buf *out)
{
	if (out->len && fwrite(out->data, 1, out->len, stdout) != out->len)
		nb_die("cannot write the captions to stdout");
	flush_or_die();
	out->len = 0;
}

static void sink_stdout(void *ctx, const void *bytes, size_t n)
{
	(void)ctx;
	if (fwrite(bytes, 1, n, stdout) != n)
		nb_die("cannot write the captions to stdout");
}

/* Progress on stderr (rank 0, at most every 2 s): its share's count, the
 * rate and the ETA, which is the whole job's since the shares are equal. */
typedef struct {
	double t0, last;
	long share, total;
	int size;
} progress;

static void progress_tick(progress *p, long done, int last)
{
	double now = nb_now();
	if (!last && now - p->last < 2.0)
		return;
	p->last = now;
	double rate = now > p->t0 ? (double)done / (now - p->t0) : 0;
	char eta[32];
	nb_fmt_duration(eta, sizeof eta, rate > 0 ? (double)(p->share - done) / rate : -1);
	fprintf(stderr, "caption: %ld of %ld images", done, p->share);
	if (p->size > 1)
		fprintf(stderr, " (rank 0's share; %ld over %d ranks)", p->total, p->size);
	fprintf(stderr, "  %.1f img/s  ETA %s\n", rate, eta);
}

/* The committed shards of dir with their sample counts; dies on a bad one. */
static int list_shards(const char *dir, char ***paths, long **counts, long *total)
{
	int nshards = shard_list(dir, paths);
	if (nshards < 0)
		nb_die("%s", nb_errmsg());
	if (nshards == 0)
		nb_die("no committed shards in '%s'", dir);
	*counts = nb_xcalloc((size_t)nshards, sizeof(long));
	*total = 0;
	for (int si = 0; si < nshards; si++) {
		shard_reader *r = shard_open((*paths)[si]);
		if (!r)
			nb_die("%s", nb_errmsg());
		(*counts)[si] = (long)shard_count(r);
		*total += (*counts)[si];
		shard_close(r);
	}
	return nshards;
}

/* Captions every sample of the committed shards in dir, in shard order.
 * Under MPI each rank captions a contiguous block of the samples (in
 * shard order) and rank 0 prints them all in order, the same bytes as one
 * process. Dies on a bad shard. */
static void caption_shards(captioner *c, const char *dir, int rank, int size)
{
	char **paths = NULL;
	long *counts = NULL, total = 0, lo, hi;
	int nshards = list_shards(dir, &paths, &counts, &total);
	ranks_block(total, rank, size, &lo, &hi);
	char **sources = nb_xcalloc((size_t)c->batch, sizeof(char *));
	nb_buf out = {0};
	nb_buf_add(&out, "", 0);
	int n = 0;
	long done = 0, first = 0; /* first: the global index of the shard's first sample */
	progress pr = {.t0 = nb_now(), .share = hi - lo, .total = total, .size = size};
	pr.last = pr.t0;
	for (int si = 0; si < nshards; first += counts[si], si++) {
		if (first + counts[si] <= lo || first >= hi)
			continue;
		shard_reader *r = shard_open(paths[si]);
		if (!r)
			nb_die("%s", nb_errmsg());
		const shard_meta *meta = shard_reader_meta(r);
		shard_sample smp;
		int st = 1;
		for (long g = first; g < hi && (st = shard_next(r, &smp)) == 1; g++) {
			if (g < lo)
				continue;
			nb_image img = {meta->width, meta->height, (uint8_t *)smp.image};
			if (meta->width == c->size && meta->height == c->size)
				memcpy(captioner_slot(c, n), smp.image, (size_t)c->size * (size_t)c->size * 3);
			else
				image_resize(&img, c->size, c->size, RESIZE_CENTER_CROP, captioner_slot(c, n));
			c->keys[n] = smp.id;
			sources[n] = nb_xstrdup(smp.source ? smp.source : "");
			if (++n == c->batch) {
				caption_shard_batch(c, n, sources, &out);
				done += n;
				n = 0;
				if (rank == 0) {
					write_out(&out);
					progress_tick(&pr, done, 0);
				}
			}
		}
		if (st < 0)
			nb_die("%s", nb_errmsg());
		shard_close(r);
	}
	if (n) {
		caption_shard_batch(c, n, sources, &out);
		done += n;
	}
	if (rank == 0) {
		write_out(&out);
		progress_tick(&pr, done, 1);
	}
	ranks_gather_in_order(rank ? out.data : NULL, rank ? out.len : 0, sink_stdout, NULL);
	if (rank == 0) {
		flush_or_die();
		fprintf(stderr, "nboost caption: %ld images from %d shard(s) in '%s'%s\n", total, nshards, dir,
			size > 1 ? " (split over the ranks)" : "");
	}
	free(out.data);
	free(sources);
	free(counts);
	shard_list_free(paths, nshards);
}

/* Captions the image files in order, printing "path<TAB>caption" for each.
 * A file that cannot be loaded gets an error line and is skipped. Returns
 * the number of such files. */
static int caption_files(captioner *c, char **files, int nfiles, long max_pixels)
{
	const char **names = nb_xcalloc((size_t)c->batch, sizeof(char *));
	int failed = 0;
	for (int i = 0; i < nfiles;) {
		int n = 0;
		for (; i < nfiles && n < c->batch; i++) {
			nb_image img;
			if (image_load(files[i], (size_t)max_pixels, &img) != IMG_OK) {
				fprintf(stderr, "nboost: error: %s\n", nb_errmsg());
				failed++;
				continue;
			}
			image_resize(&img, c->size, c->size, RESIZE_CENTER_CROP, captioner_slot(c, n));
			image_free(&img);
			names[n++] = files[i];
		}
		if (!n)
			continue;
		captioner_run(c, n);
		for (int k = 0; k < n; k++) {
			nb_fput_escaped(stdout, names[k]);
			putchar('\t');
			nb_fput_escaped(stdout, captioner_text(c, k));
			putchar('\n');
		}
		flush_or_die();
	}
	free(names);
	return failed;
}

int cmd_caption(int argc, char **argv)
{
	caption_args a = {.batch = DEF_BATCH, .max_pixels = DEF_MAX_PIXELS};
	int rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	const char *model = a.model, *shards = a.shards;
	long batch = a.batch, max_pixels = a.max_pixels, max_tokens = a.max_tokens;
	if (nb_check_input(model, "checkpoint") < 0)
		nb_die("%s", nb_errmsg());
	int rank = 0, size = 1;
	ranks_start(&argc, &argv, &rank, &size);
	captioner cap;
	captioner_open(&cap, model, (int)batch, max_tokens);
	int failed = 0;
	if (shards)
		caption_shards(&cap, shards, rank, size);
	else if (rank == 0) /* image files: on rank 0 alone */
		failed = caption_files(&cap, argv + 1, a.nfiles, max_pixels);
	captioner_close(&cap);
	if (failed)
		fprintf(stderr, "nboost caption: %d of %d images failed\n", failed, a.nfiles);
	ranks_finish();
	return failed ? 1 : 0;
}
