/* nboost eval: scores captions against the ground truth (/objects) of a
 * directory of shards, with the metrics of labeler/metrics.h
 * (docs/metrics.md). The captions come from a TSV file ("id<TAB>caption"
 * per line, labeler/captions_tsv.h) or from a checkpoint that decodes every
 * image greedily (labeler/evaluate.h).
 * --write-gt writes the ground-truth captions as such a TSV. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/scene.h"
#include "labeler/captions_tsv.h"
#include "labeler/evaluate.h"
#include "labeler/metrics.h"
#include "labeler/pope.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "pipeline/ranks.h"

typedef struct {
	const char *shards, *captions, *model, *out_captions, *write_gt, *corpus;
	long batch;
	int json, allow_missing, pope;
	int rank, size; /* MPI: --model splits the images over the ranks */
} eval_opts;

/* Model mode: what on_caption keeps of each decoded image. */
typedef struct {
	nb_buf out;                  /* --out-captions: id<TAB>caption lines */
	int want_out;
	evaluate_truth *gt;          /* --write-gt: the ground truth, in decoding order */
	long ngt, gt_cap;
	int want_gt;
} model_out;

static int on_caption(void *ctx, uint64_t id, const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS])
{
	model_out *mo = ctx;
	if (mo->want_out) {
		char text[1024];
		vocab_decode(tokens, n, text, (int)sizeof text);
		captions_tsv_add(&mo->out, id, text);
	}
	if (mo->want_gt) {
		NB_GROW(mo->gt, mo->gt_cap, mo->ngt + 1, 1024);
		mo->gt[mo->ngt].id = id;
		memcpy(mo->gt[mo->ngt].cells, cells, SCENE_CELLS);
		mo->ngt++;
	}
	return 0;
}

/* One decoded image as it travels to rank 0: id, token count, cells, tokens. */
typedef struct {
	uint64_t id;
	int32_t n;
	uint8_t cells[SCENE_CELLS];
} caption_rec;

/* evaluate_shards' on_caption on every rank: the image's record, to be
 * scored on rank 0 in shard order. */
static int keep_record(void *ctx, uint64_t id, const uint16_t *tokens, int n, const uint8_t cells[SCENE_CELLS])
{
	nb_buf *b = ctx;
	caption_rec r = {.id = id, .n = n};
	memcpy(r.cells, cells, SCENE_CELLS);
	nb_buf_add(b, &r, sizeof r);
	nb_buf_add(b, tokens, (size_t)n * sizeof(uint16_t));
	return 0;
}

static void sink_buf(void *ctx, const void *bytes, size_t n) { nb_buf_add(ctx, bytes, n); }

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Rank 0: scores the records of every rank in order (the order of one
 * process, so the same sums and bytes), keeps what --out-captions and
 * --write-gt need, and checks that no id appears twice across shares. */
static void score_records(const nb_buf *b, const char *dir, model_out *mo, metrics_result *res)
{
	metrics_acc *acc = metrics_new();
	uint64_t *ids = NULL;
	long n = 0, cap = 0;
	for (size_t at = 0; at < b->len;) {
		caption_rec r;
		memcpy(&r, b->data + at, sizeof r);
		at += sizeof r;
		uint16_t *tok = nb_xmalloc((size_t)r.n * sizeof(uint16_t) + 1);
		memcpy(tok, b->data + at, (size_t)r.n * sizeof(uint16_t));
		at += (size_t)r.n * sizeof(uint16_t);
		metrics_add_tokens(acc, tok, r.n, r.cells);
		on_caption(mo, r.id, tok, r.n, r.cells);
		free(tok);
		NB_GROW(ids, cap, n + 1, 1024);
		ids[n++] = r.id;
	}
	qsort(ids, (size_t)n, sizeof *ids, cmp_u64);
	for (long i = 1; i < n; i++)
		if (ids[i] == ids[i - 1])
			nb_die("shards in '%s': image id %" PRIu64 " appears twice", dir, ids[i]);
	free(ids);
	metrics_finish(acc, res);
	metrics_free(acc);
}

static int cmp_truth(const void *a, const void *b)
{
	uint64_t x = ((const evaluate_truth *)a)->id, y = ((const evaluate_truth *)b)->id;
	return (x > y) - (x < y);
}

static void print_json(const char *split, const metrics_result *r, long missing, const pope_result *pp)
{
	printf("{");
	if (split) {
		printf("\"split\":\"");
		for (const unsigned char *c = (const unsigned char *)split; *c; c++)
			printf(*c == '"' || *c == '\\' ? "\\%c" : *c < 0x20 ? "\\u%04x" : "%c", *c);
		printf("\",");
	}
	printf("\"n\":%ld,\"missing\":%ld,\"chair_i\":%.9g,\"chair_s\":%.9g,\"recall\":%.9g,"
	       "\"tuple_precision\":%.9g,\"tuple_recall\":%.9g,\"tuple_f1\":%.9g,\"bleu1\":%.9g,\"bleu2\":%.9g,"
	       "\"bleu3\":%.9g,\"bleu4\":%.9g,\"cider_d\":%.9g,\"statements\":%ld,\"malformed\":%ld,"
	       "\"mentions\":%ld,\"hallucinated\":%ld,\"gt_objects\":%ld",
	       r->captions, missing, r->chair_i, r->chair_s, r->recall, r->tuple_p, r->tuple_r, r->tuple_f1,
	       r->bleu[0], r->bleu[1], r->bleu[2], r->bleu[3], r->cider_d, r->statements, r->malformed, r->mentions,
	       r->hallucinated, r->gt_objects);
	printf(",\"mentions_by_position\":[");
	for (int k = 0; k < METRICS_POSITIONS; k++)
		printf("%s%ld", k ? "," : "", r->pos_mentions[k]);
	printf("],\"chair_i_by_position\":[");
	for (int k = 0; k < METRICS_POSITIONS; k++)
		printf("%s%.9g", k ? "," : "", r->pos_chair_i[k]);
	printf("]");
	if (pp)
		printf(",\"pope_probes\":%ld,\"pope_accuracy\":%.9g,\"pope_precision\":%.9g,\"pope_recall\":%.9g,"
		       "\"pope_f1\":%.9g,\"pope_yes_ratio\":%.9g",
		       pp->probes, pp->accuracy, pp->precision, pp->recall, pp->f1, pp->yes_ratio);
	printf("}\n");
}

static void print_pope(FILE *f, const pope_result *pp)
{
	fprintf(f, "POPE probes          %ld  (%ld present, %ld absent, favoured by the prior)\n", pp->probes,
	       pp->positives, pp->probes - pp->positives);
	fprintf(f, "POPE accuracy        %.4f\n", pp->accuracy);
	fprintf(f, "POPE precision       %.4f\n", pp->precision);
	fprintf(f, "POPE recall          %.4f\n", pp->recall);
	fprintf(f, "POPE F1              %.4f\n", pp->f1);
	fprintf(f, "POPE yes ratio       %.4f\n", pp->yes_ratio);
}

static void print_scores(FILE *f, const metrics_result *r, long missing)
{
	fprintf(f, "n (images scored)    %ld\n", r->captions);
	fprintf(f, "missing captions     %ld\n", missing);
	fprintf(f, "CHAIR_i              %.4f  (%ld of %ld mentions)\n", r->chair_i, r->hallucinated, r->mentions);
	fprintf(f, "CHAIR_s              %.4f  (%ld of %ld captions)\n", r->chair_s, r->hallucinating_captions,
	       r->captions);
	fprintf(f, "object recall        %.4f  (%ld of %ld objects)\n", r->recall, r->gt_recalled, r->gt_objects);
	fprintf(f, "tuple precision      %.4f\n", r->tuple_p);
	fprintf(f, "tuple recall         %.4f\n", r->tuple_r);
	fprintf(f, "tuple F1             %.4f\n", r->tuple_f1);
	fprintf(f, "BLEU-4               %.4f\n", r->bleu[3]);
	fprintf(f, "CIDEr-D              %.4f\n", r->cider_d);
	fprintf(f, "malformed statements %ld of %ld\n", r->malformed, r->statements);
	fprintf(f, "CHAIR_i by position  ");
	for (int k = 0; k < METRICS_POSITIONS; k++)
		if (r->pos_mentions[k])
			fprintf(f, "%s%d:%.3f", k ? " " : "", k + 1, r->pos_chair_i[k]);
	fprintf(f, "\n");
}

/* Where the human-readable report goes: stdout, or stderr with --json so
 * that stdout holds JSON alone. */
static FILE *report(const eval_opts *o) { return o->json ? stderr : stdout; }

static void write_gt(const char *path, const evaluate_truth *gt, long n)
{
	nb_buf b = {0};
	nb_buf_add(&b, "", 0);
	for (long i = 0; i < n; i++) {
		char cap[512];
		if (scene_caption(gt[i].cells, cap, (int)sizeof cap) < 0)
			nb_die("image %" PRIu64 ": ground truth has too many objects for a caption", gt[i].id);
		captions_tsv_add(&b, gt[i].id, cap);
	}
	if (nb_write_file_atomic(path, b.data, b.len) < 0)
		nb_die("%s", nb_errmsg());
	free(b.data);
}

static int score_tsv(const eval_opts *o, evaluate_truth *gt, long ngt)
{
	captions_tsv tsv;
	if (captions_tsv_read(o->captions, &tsv) < 0)
		nb_die("%s", nb_errmsg());
	const captions_tsv_row *rows = tsv.rows;
	long *caption = nb_xmalloc(((size_t)ngt + 1) * sizeof(long)); /* row of each gt entry, -1 if none */
	for (long i = 0; i < ngt; i++)
		caption[i] = -1;
	for (long i = 0; i < tsv.n; i++) {
		evaluate_truth *g = evaluate_find_truth(gt, ngt, rows[i].id);
		if (!g)
			nb_die("captions '%s' line %ld: id %" PRIu64 " is not in the ground truth of '%s'", o->captions,
			       rows[i].line, rows[i].id, o->shards);
		caption[g - gt] = i;
	}
	long missing = 0;
	uint64_t first_missing = 0;
	metrics_acc *acc = metrics_new();
	for (long i = 0; i < ngt; i++) {
		if (caption[i] < 0) {
			if (!missing)
				first_missing = gt[i].id;
			missing++;
			continue;
		}
		metrics_add(acc, rows[caption[i]].text, gt[i].cells);
	}
	if (missing && !o->allow_missing)
		nb_die("captions '%s': %ld of %ld ground-truth images have no caption (first: id %" PRIu64
		       "); use --allow-missing to score the rest",
		       o->captions, missing, ngt, first_missing);
	if (missing)
		nb_warn("captions '%s': %ld of %ld ground-truth images have no caption", o->captions, missing, ngt);
	metrics_result r;
	metrics_finish(acc, &r);
	print_scores(report(o), &r, missing);
	if (o->json)
		print_json(NULL, &r, missing, NULL);
	metrics_free(acc);
	free(caption);
	captions_tsv_free(&tsv);
	return 0;
}

/* Decodes every image of dir with m (labeler/evaluate.h), scores the
 * captions and, with --pope, probes the images (labeler/pope.h). */
static void score_dir(vlm_model *m, const eval_opts *o, const char *dir, const char *split)
{
	model_out mo = {.want_out = o->out_captions != NULL, .want_gt = o->write_gt != NULL};
	nb_buf_add(&mo.out, "", 0);
	char prefix[160];
	snprintf(prefix, sizeof prefix, "eval%s%s", split ? " " : "", split ? split : "");
	if (o->size > 1) /* rank 0's share: its ETA is the whole job's */
		snprintf(prefix + strlen(prefix), sizeof prefix - strlen(prefix), " (rank 0 of %d)", o->size);
	nb_buf recs = {0};
	nb_buf_add(&recs, "", 0);
	evaluate_opts eo = {.batch = (int)o->batch, .progress = o->rank == 0 ? prefix : NULL,
			    .on_caption = keep_record, .ctx = &recs, .part = o->rank, .nparts = o->size};
	metrics_result r;
	ranks_agree(evaluate_shards(m, dir, &eo, &r) == 0, "scoring the shards");
	ranks_gather_in_order(o->rank ? recs.data : NULL, o->rank ? recs.len : 0, sink_buf, &recs);
	if (o->rank != 0) {
		free(recs.data);
		free(mo.out.data);
		return;
	}
	score_records(&recs, dir, &mo, &r);
	free(recs.data);
	pope_result pp;
	if (o->pope && pope_shards(m, dir, prefix, &pp) < 0)
		nb_die("%s", nb_errmsg());
	if (o->write_gt) {
		qsort(mo.gt, (size_t)mo.ngt, sizeof *mo.gt, cmp_truth);
		write_gt(o->write_gt, mo.gt, mo.ngt);
	}
	if (mo.want_out && nb_write_file_atomic(o->out_captions, mo.out.data, mo.out.len) < 0)
		nb_die("%s", nb_errmsg());
	if (split)
		fprintf(report(o), "== %s (%s)\n", split, dir);
	print_scores(report(o), &r, 0);
	if (o->pope)
		print_pope(report(o), &pp);
	if (o->json)
		print_json(split, &r, 0, o->pope ? &pp : NULL);
	if (nb_stdout_flush() < 0) /* each split's report as it is done */
		nb_die("%s", nb_errmsg());
	free(mo.out.data);
	free(mo.gt);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The test splits of a synth corpus: DIR/test, then DIR/test-* by name. */
static int corpus_splits(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	if (!d)
		nb_die("cannot read corpus directory '%s': %s", dir, strerror(errno));
	int n = 0, cap = 0;
	*names = NULL;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, "test") && strncmp(e->d_name, "test-", 5))
			continue;
		NB_GROW(*names, cap, n + 1, 16);
		(*names)[n++] = nb_xstrdup(e->d_name);
	}
	closedir(d);
	qsort(*names, (size_t)n, sizeof **names, by_name);
	if (n == 0)
		nb_die("corpus '%s' has no test split (test/ or test-*/)", dir);
	return n;
}

static int score_model(const eval_opts *o)
{
	vlm_model *m = ckpt_load_model(o->model, (int)o->batch);
	ranks_agree(m != NULL, "loading the checkpoint");
	if (!o->corpus) {
		score_dir(m, o, o->shards, NULL);
	} else {
		char **names;
		int n = corpus_splits(o->corpus, &names);
		for (int i = 0; i < n; i++) {
			char path[4096];
			if (snprintf(path, sizeof path, "%s/%s", o->corpus, names[i]) >= (int)sizeof path)
				nb_die("corpus path '%s/%s' is too long", o->corpus, names[i]);
			score_dir(m, o, path, names[i]);
			free(names[i]);
		}
		free(names);
	}
	vlm_free(m);
	return 0;
}

/* Parses argv into o. Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage error, both printed). */
static int parse_args(int argc, char **argv, eval_opts *o)
{
	const cli_option opts[] = {
		CLI_OPT_STRING("shards", &o->shards, "DIR", "image or caption shards with /objects"),
		CLI_OPT_STRING("corpus", &o->corpus, "DIR",
			       "with --model, instead of --shards: score every test split of a\n"
			       "synth corpus (DIR/test and DIR/test-*, e.g. from synth --hard-tests),\n"
			       "one report each"),
		CLI_OPT_STRING("captions", &o->captions, "FILE", "TSV of id<TAB>caption lines to score"),
		CLI_OPT_STRING("model", &o->model, "CKPT",
			       "decode every image with this checkpoint (greedy, clean) and score it"),
		CLI_OPT_STRING("out-captions", &o->out_captions, "FILE",
			       "with --model: also write the decoded captions as TSV"),
		CLI_OPT_LONG("batch", &o->batch, 1, 4096, "N",
			     "with --model: images decoded together (default " CLI_STR(EVALUATE_BATCH) ")"),
		CLI_OPT_STRING("write-gt", &o->write_gt, "FILE", "write the ground-truth captions as TSV"),
		CLI_OPT_FLAG("allow-missing", 0, &o->allow_missing,
			     "score only the captioned images and report the missing ones\n"
			     "(default: an image without a caption is an error)"),
		CLI_OPT_FLAG("pope", 0, &o->pope,
			     "with --model: also probe objects POPE-style: present ones against\n"
			     "absent ones the prior favours (docs/metrics.md)"),
		CLI_OPT_FLAG("json", 0, &o->json,
			     "print the scores as one JSON line per split on stdout, and\n"
			     "nothing else there (the report goes to stderr)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "eval",
		.synopsis = "usage: nboost eval --shards DIR (--captions FILE | --model CKPT | --write-gt FILE) "
			    "[options]\n"
			    "       nboost eval --corpus DIR --model CKPT [--pope] [--json]\n",
		.about = "Scores captions against the ground truth (/objects) of the shards in DIR:\n"
			 "CHAIR_i, CHAIR_s, object recall, tuple P/R/F1, BLEU-4, CIDEr-D, CHAIR_i by\n"
			 "statement position, and with --pope the POPE probe (docs/metrics.md).\n"
			 "With --model under mpirun/srun the ranks split the images and rank 0 prints\n"
			 "the report, the same as one process (--pope runs on rank 0 alone).\n",
		.opts = opts,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (!o->shards == !o->corpus)
		return cli_usage_error(&cmd, o->shards ? "--shards and --corpus exclude each other"
						       : "missing --shards DIR (or --corpus DIR with --model)");
	if (o->corpus && (!o->model || o->out_captions || o->write_gt))
		return cli_usage_error(&cmd, "--corpus needs --model and excludes --out-captions and --write-gt");
	if (o->pope && !o->model)
		return cli_usage_error(&cmd, "--pope needs --model");
	if (o->captions && o->model)
		return cli_usage_error(&cmd, "--captions and --model exclude each other");
	if (!o->captions && !o->model && !o->write_gt)
		return cli_usage_error(&cmd, "nothing to do: give --captions, --model or --write-gt");
	if (o->out_captions && !o->model)
		return cli_usage_error(&cmd, "--out-captions needs --model");
	return -1;
}

/* Refuses bad inputs and outputs before any work: a checkpoint that is not
 * a regular file (a FIFO would block its open), output paths that are not
 * regular files (a write would replace them). */
static void check_files(const eval_opts *o)
{
	if ((o->model && nb_check_input(o->model, "checkpoint") < 0) || (o->write_gt && nb_check_output(o->write_gt) < 0) ||
	    (o->out_captions && nb_check_output(o->out_captions) < 0))
		nb_die("%s", nb_errmsg());
}

int cmd_eval(int argc, char **argv)
{
	eval_opts o = {.batch = EVALUATE_BATCH};
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	check_files(&o);
	if (o.model) {
		ranks_start(&argc, &argv, &o.rank, &o.size);
		score_model(&o);
		ranks_finish();
		return 0;
	}
	evaluate_truth *gt;
	long n;
	if (evaluate_read_truth(o.shards, "eval", &gt, &n) < 0)
		nb_die("%s", nb_errmsg());
	if (o.write_gt)
		write_gt(o.write_gt, gt, n);
	if (o.captions)
		score_tsv(&o, gt, n);
	free(gt);
	return 0;
}
