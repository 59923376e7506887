/* nboost eval: scores captions against the ground truth (/objects) of a
 * directory of shards, with the metrics of labeler/metrics.h
 * (docs/metrics.md). The captions come from a TSV file ("id<TAB>caption"
 * per line, labeler/captions_tsv.h) or from a checkpoint that decodes every
 * image greedily.
 * --write-gt writes the ground-truth captions as such a TSV. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/scene.h"
#include "model/decode.h"
#include "labeler/captions_tsv.h"
#include "labeler/metrics.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "store/shard_store.h"

#define DEF_BATCH 64

typedef struct {
	uint64_t id;
	uint8_t cells[SCENE_CELLS];
	long caption;                /* index into the captions TSV rows, -1 if none */
} gt_entry;

static int cmp_gt(const void *a, const void *b)
{
	uint64_t x = ((const gt_entry *)a)->id, y = ((const gt_entry *)b)->id;
	return (x > y) - (x < y);
}

static gt_entry *find_gt(gt_entry *gt, long n, uint64_t id)
{
	gt_entry key = {.id = id};
	return bsearch(&key, gt, (size_t)n, sizeof(gt_entry), cmp_gt);
}

typedef struct {
	const char *shards, *captions, *model, *out_captions, *write_gt;
	long batch;
	int json, allow_missing;
} eval_opts;

/* Model mode state, fed one sample at a time. */
typedef struct {
	vlm_model *m;
	decoder *d;
	decode_opts o;
	int size, batch, n;
	uint8_t *images;
	uint64_t *keys;
	uint8_t (*cells)[SCENE_CELLS];
	uint16_t *tokens;
	int *lens;
	metrics_acc *acc;
	nb_buf out;
	int want_out;
} model_run;

static int model_flush(model_run *mr)
{
	if (mr->n == 0)
		return 0;
	if (decode_greedy(mr->d, mr->images, mr->keys, mr->n, &mr->o, mr->tokens, mr->lens) < 0)
		return -1;
	for (int i = 0; i < mr->n; i++) {
		const uint16_t *t = mr->tokens + (size_t)i * (size_t)mr->o.max_tokens;
		metrics_add_tokens(mr->acc, t, mr->lens[i], mr->cells[i]);
		if (mr->want_out) {
			char line[64], text[1024];
			int l = snprintf(line, sizeof line, "%" PRIu64 "\t", mr->keys[i]);
			nb_buf_add(&mr->out, line, (size_t)l);
			int tl = vocab_decode(t, mr->lens[i], text, (int)sizeof text);
			nb_buf_add(&mr->out, text, (size_t)tl);
			nb_buf_add(&mr->out, "\n", 1);
		}
	}
	mr->n = 0;
	return 0;
}

/* Reads every shard's ground truth (and, in model mode, decodes its images). */
static long load_shards(const eval_opts *o, gt_entry **out, model_run *mr)
{
	char **paths;
	int np = shard_list(o->shards, &paths);
	if (np < 0)
		nb_die("%s", nb_errmsg());
	if (np == 0)
		nb_die("no shards in '%s'", o->shards);
	long n = 0, cap = 0;
	gt_entry *gt = NULL;
	time_t last = time(NULL);
	for (int p = 0; p < np; p++) {
		shard_reader *r = shard_open(paths[p]);
		if (!r)
			nb_die("%s", nb_errmsg());
		const shard_meta *meta = shard_reader_meta(r);
		if (!meta->has_objects)
			nb_die("shard '%s': no /objects ground truth to score against", paths[p]);
		if (mr && (meta->height != mr->size || meta->width != mr->size))
			nb_die("shard '%s': images are %dx%d but the model takes %dx%d", paths[p], meta->height,
			       meta->width, mr->size, mr->size);
		shard_sample s;
		int rc;
		while ((rc = shard_next(r, &s)) == 1) {
			if (n == cap) {
				cap = cap * 2 + 1024;
				gt = nb_xrealloc(gt, (size_t)cap * sizeof(gt_entry));
			}
			gt[n].id = s.id;
			memcpy(gt[n].cells, s.objects, SCENE_CELLS);
			gt[n].caption = -1;
			n++;
			if (mr) {
				size_t isz = (size_t)mr->size * (size_t)mr->size * 3;
				memcpy(mr->images + (size_t)mr->n * isz, s.image, isz);
				mr->keys[mr->n] = s.id;
				memcpy(mr->cells[mr->n], s.objects, SCENE_CELLS);
				if (++mr->n == mr->batch && model_flush(mr) < 0)
					nb_die("cannot decode shard '%s': %s", paths[p], nb_errmsg());
			}
			if (time(NULL) - last >= 2) {
				last = time(NULL);
				fprintf(stderr, "eval: %ld images read (shard %d of %d)\n", n, p + 1, np);
			}
		}
		if (rc < 0)
			nb_die("%s", nb_errmsg());
		shard_close(r);
	}
	if (mr && model_flush(mr) < 0)
		nb_die("cannot decode: %s", nb_errmsg());
	shard_list_free(paths, np);
	qsort(gt, (size_t)n, sizeof(gt_entry), cmp_gt);
	for (long i = 1; i < n; i++)
		if (gt[i].id == gt[i - 1].id)
			nb_die("shards in '%s': image id %" PRIu64 " appears twice", o->shards, gt[i].id);
	*out = gt;
	return n;
}

static void print_scores(const metrics_result *r, long missing, int json)
{
	printf("n (images scored)    %ld\n", r->captions);
	printf("missing captions     %ld\n", missing);
	printf("CHAIR_i              %.4f  (%ld of %ld mentions)\n", r->chair_i, r->hallucinated, r->mentions);
	printf("CHAIR_s              %.4f  (%ld of %ld captions)\n", r->chair_s, r->hallucinating_captions,
	       r->captions);
	printf("object recall        %.4f  (%ld of %ld objects)\n", r->recall, r->gt_recalled, r->gt_objects);
	printf("tuple precision      %.4f\n", r->tuple_p);
	printf("tuple recall         %.4f\n", r->tuple_r);
	printf("tuple F1             %.4f\n", r->tuple_f1);
	printf("BLEU-4               %.4f\n", r->bleu[3]);
	printf("CIDEr-D              %.4f\n", r->cider_d);
	printf("malformed statements %ld of %ld\n", r->malformed, r->statements);
	if (json)
		printf("{\"n\":%ld,\"missing\":%ld,\"chair_i\":%.9g,\"chair_s\":%.9g,\"recall\":%.9g,"
		       "\"tuple_precision\":%.9g,\"tuple_recall\":%.9g,\"tuple_f1\":%.9g,\"bleu1\":%.9g,\"bleu2\":%.9g,"
		       "\"bleu3\":%.9g,\"bleu4\":%.9g,\"cider_d\":%.9g,\"statements\":%ld,\"malformed\":%ld,"
		       "\"mentions\":%ld,\"hallucinated\":%ld,\"gt_objects\":%ld}\n",
		       r->captions, missing, r->chair_i, r->chair_s, r->recall, r->tuple_p, r->tuple_r, r->tuple_f1,
		       r->bleu[0], r->bleu[1], r->bleu[2], r->bleu[3], r->cider_d, r->statements, r->malformed,
		       r->mentions, r->hallucinated, r->gt_objects);
}

static void write_gt(const char *path, const gt_entry *gt, long n)
{
	nb_buf b = {0};
	nb_buf_add(&b, "", 0);
	for (long i = 0; i < n; i++) {
		char line[64], cap[512];
		int l = snprintf(line, sizeof line, "%" PRIu64 "\t", gt[i].id);
		int cl = scene_caption(gt[i].cells, cap, (int)sizeof cap);
		if (cl < 0)
			nb_die("image %" PRIu64 ": ground truth has too many objects for a caption", gt[i].id);
		nb_buf_add(&b, line, (size_t)l);
		nb_buf_add(&b, cap, (size_t)cl);
		nb_buf_add(&b, "\n", 1);
	}
	if (nb_write_file_atomic(path, b.data, b.len) < 0)
		nb_die("%s", nb_errmsg());
	free(b.data);
}

static int score_tsv(const eval_opts *o, gt_entry *gt, long ngt)
{
	captions_tsv tsv;
	if (captions_tsv_read(o->captions, &tsv) < 0)
		nb_die("%s", nb_errmsg());
	const captions_tsv_row *rows = tsv.rows;
	for (long i = 0; i < tsv.n; i++) {
		gt_entry *g = find_gt(gt, ngt, rows[i].id);
		if (!g)
			nb_die("captions '%s' line %ld: id %" PRIu64 " is not in the ground truth of '%s'", o->captions,
			       rows[i].line, rows[i].id, o->shards);
		g->caption = i;
	}
	long missing = 0;
	uint64_t first_missing = 0;
	metrics_acc *acc = metrics_new();
	for (long i = 0; i < ngt; i++) {
		if (gt[i].caption < 0) {
			if (!missing)
				first_missing = gt[i].id;
			missing++;
			continue;
		}
		metrics_add(acc, rows[gt[i].caption].text, gt[i].cells);
	}
	if (missing && !o->allow_missing)
		nb_die("captions '%s': %ld of %ld ground-truth images have no caption (first: id %" PRIu64
		       "); use --allow-missing to score the rest",
		       o->captions, missing, ngt, first_missing);
	if (missing)
		nb_warn("captions '%s': %ld of %ld ground-truth images have no caption", o->captions, missing, ngt);
	metrics_result r;
	metrics_finish(acc, &r);
	print_scores(&r, missing, o->json);
	metrics_free(acc);
	captions_tsv_free(&tsv);
	return 0;
}

static int score_model(const eval_opts *o)
{
	model_run mr = {0};
	mr.m = ckpt_load_model(o->model, (int)o->batch);
	if (!mr.m)
		nb_die("%s", nb_errmsg());
	const vlm_config *cfg = vlm_get_config(mr.m);
	mr.batch = (int)o->batch;
	mr.size = cfg->image_size;
	mr.d = decoder_create(mr.m, mr.batch, 0);
	if (!mr.d)
		nb_die("%s", nb_errmsg());
	mr.o.K = 0;
	mr.o.max_tokens = cfg->max_text - 1;
	mr.images = nb_xmalloc((size_t)mr.batch * (size_t)mr.size * (size_t)mr.size * 3);
	mr.keys = nb_xmalloc((size_t)mr.batch * sizeof(uint64_t));
	mr.cells = nb_xmalloc((size_t)mr.batch * sizeof(*mr.cells));
	mr.tokens = nb_xmalloc((size_t)mr.batch * (size_t)mr.o.max_tokens * sizeof(uint16_t));
	mr.lens = nb_xmalloc((size_t)mr.batch * sizeof(int));
	mr.acc = metrics_new();
	mr.want_out = o->out_captions != NULL;
	nb_buf_add(&mr.out, "", 0);
	gt_entry *gt;
	long n = load_shards(o, &gt, &mr);
	if (o->write_gt)
		write_gt(o->write_gt, gt, n);
	if (mr.want_out && nb_write_file_atomic(o->out_captions, mr.out.data, mr.out.len) < 0)
		nb_die("%s", nb_errmsg());
	metrics_result r;
	metrics_finish(mr.acc, &r);
	print_scores(&r, 0, o->json);
	metrics_free(mr.acc);
	free(mr.out.data);
	free(mr.images);
	free(mr.keys);
	free(mr.cells);
	free(mr.tokens);
	free(mr.lens);
	free(gt);
	decoder_free(mr.d);
	vlm_free(mr.m);
	return 0;
}

/* Parses argv into o. Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, eval_opts *o)
{
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("shards", &o->shards, "DIR", "image or caption shards with /objects (required)"),
		CLI_OPT_STRING("captions", &o->captions, "FILE", "TSV of id<TAB>caption lines to score"),
		CLI_OPT_STRING("model", &o->model, "CKPT",
			       "decode every image with this checkpoint (greedy, clean) and score it"),
		CLI_OPT_STRING("out-captions", &o->out_captions, "FILE",
			       "with --model: also write the decoded captions as TSV"),
		CLI_OPT_LONG("batch", &o->batch, 1, 4096, "N",
			     "with --model: images decoded together (default " CLI_STR(DEF_BATCH) ")"),
		CLI_OPT_STRING("write-gt", &o->write_gt, "FILE", "write the ground-truth captions as TSV"),
		CLI_OPT_FLAG("allow-missing", 0, &o->allow_missing,
			     "score only the captioned images and report the missing ones\n"
			     "(default: an image without a caption is an error)"),
		CLI_OPT_FLAG("json", 0, &o->json, "also print the scores as one JSON line"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "eval",
		.synopsis = "usage: nboost eval --shards DIR (--captions FILE | --model CKPT | --write-gt FILE) "
			    "[options]\n",
		.about = "Scores captions against the ground truth (/objects) of the shards in DIR:\n"
			 "CHAIR_i, CHAIR_s, object recall, tuple P/R/F1, BLEU-4, CIDEr-D (docs/metrics.md).\n",
		.opts = opts,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (o->captions && o->model)
		return cli_usage_error(&cmd, "--captions and --model exclude each other");
	if (!o->captions && !o->model && !o->write_gt)
		return cli_usage_error(&cmd, "nothing to do: give --captions, --model or --write-gt");
	if (o->out_captions && !o->model)
		return cli_usage_error(&cmd, "--out-captions needs --model");
	return -1;
}

int cmd_eval(int argc, char **argv)
{
	eval_opts o = {.batch = DEF_BATCH};
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.model)
		return score_model(&o);
	gt_entry *gt;
	long n = load_shards(&o, &gt, NULL);
	if (o.write_gt)
		write_gt(o.write_gt, gt, n);
	if (o.captions)
		score_tsv(&o, gt, n);
	free(gt);
	return 0;
}
