/* nboost pairs: preference pairs for DPO (labeler/pairs.h) from shards with
 * ground truth, written as pair shards (schemas/pair_shard.md). MPI: the
 * images of all input shards, in shard_list order, are split into one
 * contiguous range per rank; each rank writes one shard,
 * OUT/pairs-RRRRR.h5. A pair depends only on its image, the model and the
 * seed, so the set of pairs is the same for any rank count. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/vocab.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "labeler/pairs.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "pipeline/ranks.h"
#include "store/shard_store.h"

typedef struct {
	const char *model, *shards, *out;
	int synthetic_only, fill, quiet;
	uint64_t seed;
	long batch;
} pairs_cli;

/* Per rank, summed on rank 0: images seen, images whose model caption had
 * no absent statement, and pairs by kind. */
enum { ST_IMAGES, ST_PERFECT, ST_NONE, ST_KIND0, ST_N = ST_KIND0 + PAIR_KINDS };

static int parse_args(int argc, char **argv, pairs_cli *o)
{
	memset(o, 0, sizeof *o);
	o->seed = 1;
	o->batch = 32;
	const cli_option opts[] = {
		CLI_OPT_STRING("model", &o->model, "CKPT",
			       "the checkpoint whose clean greedy captions make on-policy pairs\n"
			       "(required unless --synthetic-only)"),
		CLI_OPT_REQUIRED("shards", &o->shards, "DIR", "shards with ground truth (/objects) (required)"),
		CLI_OPT_REQUIRED("out", &o->out, "DIR",
				 "output directory for the pair shards, pairs-RRRRR.h5 (required;\n"
				 "must hold no shard yet)"),
		CLI_OPT_FLAG("synthetic-only", 0, &o->synthetic_only,
			     "synthetic pairs for every image, no model (default: off)"),
		CLI_OPT_FLAG("synthetic-when-perfect", 0, &o->fill,
			     "a synthetic pair where the model's caption has no absent\n"
			     "statement (default: no pair for such an image)"),
		CLI_OPT_U64("seed", &o->seed, 0, UINT64_MAX, "S", "seed of the synthetic pairs (default 1)"),
		CLI_OPT_LONG("batch", &o->batch, 1, 4096, "N", "images decoded together (default 32)"),
		CLI_OPT_FLAG("quiet", 'q', &o->quiet, "no summary on stdout (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "pairs",
		.synopsis = "usage: nboost pairs --shards DIR --out DIR (--model CKPT | --synthetic-only) [options]\n"
			    "       mpirun -np N nboost pairs ...\n",
		.about = "Makes preference pairs for `nboost train --objective dpo`: the chosen caption is\n"
			 "the ground truth of the image's objects; the rejected one is the model's clean\n"
			 "greedy caption when it states an object absent from the image (on-policy), or\n"
			 "the ground truth with one or two objects replaced by absent objects of the\n"
			 "scene's theme, or with one object's color or shape swapped (synthetic).\n"
			 "Each pair records how it was made (schemas/pair_shard.md). The same pairs come\n"
			 "out for any rank count.\n",
		.opts = opts,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	if (!o->synthetic_only && !o->model) {
		fprintf(stderr, "nboost pairs: pass --model CKPT (or --synthetic-only)\n");
		return 2;
	}
	if (o->synthetic_only && (o->model || o->fill)) {
		fprintf(stderr, "nboost pairs: --synthetic-only takes no --model or --synthetic-when-perfect\n");
		return 2;
	}
	return -1;
}

/* The input shards and their sample counts (every rank reads them).
 * Each must have ground truth. -1 + nb_error. */
static int list_inputs(const char *dir, char ***paths, size_t **counts, int *n)
{
	*n = shard_list(dir, paths);
	if (*n < 0)
		return -1;
	if (*n == 0)
		return nb_error("no committed shard in '%s'", dir);
	*counts = nb_xcalloc((size_t)*n, sizeof **counts);
	for (int i = 0; i < *n; i++) {
		shard_reader *r = shard_open((*paths)[i]);
		if (!r)
			return -1;
		int gt = shard_reader_meta(r)->has_objects;
		(*counts)[i] = shard_count(r);
		shard_close(r);
		if (!gt)
			return nb_error("cannot make pairs from '%s': it has no ground truth (/objects)", (*paths)[i]);
	}
	return 0;
}

/* Rank 0: the output directory exists and holds no shard. */
static int prepare_out(const char *out)
{
	if (nb_mkdir_p(out) < 0)
		return -1;
	shard_sweep_tmp(out);
	char **have = NULL;
	int n = shard_list(out, &have);
	if (n < 0)
		return -1;
	shard_list_free(have, n);
	if (n > 0)
		return nb_error("output directory '%s' already holds %d shard(s): give an empty directory", out, n);
	return 0;
}

typedef struct {
	const pairs_cli *o;
	vlm_model *m;
	decoder *dec;
	int S, max_tokens;
	shard_writer *w;
	/* the batch being gathered */
	int fill;
	uint8_t *images, *cells;
	uint64_t *ids;
	uint16_t *tokens;
	int *lens;
	long st[ST_N];
} pairs_run;

/* Decodes the gathered images (unless synthetic-only) and appends their pairs. */
static int flush_batch(pairs_run *p)
{
	if (!p->fill)
		return 0;
	pairs_mode mode = p->o->synthetic_only ? PAIRS_SYNTHETIC : p->o->fill ? PAIRS_FILL : PAIRS_ON_POLICY;
	if (mode != PAIRS_SYNTHETIC) {
		decode_opts d = {.K = 0, .sigma = 0.0f, .seed = p->o->seed, .max_tokens = p->max_tokens};
		if (decode_greedy(p->dec, p->images, p->ids, p->fill, &d, p->tokens, p->lens) < 0)
			return -1;
	}
	size_t img = (size_t)p->S * p->S * 3;
	for (int i = 0; i < p->fill; i++) {
		const uint8_t *cells = p->cells + (size_t)i * SCENE_CELLS;
		const uint16_t *cap = p->tokens + (size_t)i * p->max_tokens;
		int ncap = mode == PAIRS_SYNTHETIC ? 0 : p->lens[i];
		p->st[ST_IMAGES]++;
		if (mode != PAIRS_SYNTHETIC && !pairs_has_absent(cells, cap, ncap, NULL))
			p->st[ST_PERFECT]++;
		pair pr;
		int made = pairs_make(cells, cap, ncap, p->ids[i], p->o->seed, mode, &pr);
		if (made < 0)
			return -1;
		if (made == 0) {
			p->st[ST_NONE]++;
			continue;
		}
		shard_sample s = {.id = p->ids[i], .image = p->images + i * img, .source = "", .tokens = pr.chosen,
				  .ntokens = pr.nchosen, .score = 1.0f, .objects = cells, .rejected = pr.rejected,
				  .nrejected = pr.nrejected, .pair_kind = pr.kind};
		if (shard_append(p->w, &s) < 0)
			return -1;
		p->st[ST_KIND0 + pr.kind]++;
	}
	p->fill = 0;
	return 0;
}

/* Samples [lo, hi) of shard path into the batch, flushing as it fills. */
static int read_range(pairs_run *p, const char *path, size_t lo, size_t hi)
{
	shard_reader *r = shard_open(path);
	if (!r)
		return -1;
	const shard_meta *m = shard_reader_meta(r);
	int rc = 0;
	if (m->height != p->S || m->width != p->S)
		rc = nb_error("cannot make pairs from '%s': images are %dx%d, the model takes %dx%d", path, m->width,
			      m->height, p->S, p->S);
	size_t img = (size_t)p->S * p->S * 3;
	for (size_t i = lo; rc == 0 && i < hi; i++) {
		shard_sample s;
		if (shard_get(r, i, &s) < 0) {
			rc = -1;
			break;
		}
		memcpy(p->images + (size_t)p->fill * img, s.image, img);
		memcpy(p->cells + (size_t)p->fill * SCENE_CELLS, s.objects, SCENE_CELLS);
		p->ids[p->fill++] = s.id;
		if (p->fill == p->o->batch)
			rc = flush_batch(p);
	}
	shard_close(r);
	return rc;
}

/* This rank's images [lo, hi) of the concatenated inputs, into its shard. */
static int make_rank(pairs_run *p, char **paths, const size_t *counts, int n, size_t lo, size_t hi)
{
	size_t at = 0;
	for (int i = 0; i < n && at < hi; i++) {
		size_t a = lo > at ? lo - at : 0, b = hi - at < counts[i] ? hi - at : counts[i];
		if (a < b && read_range(p, paths[i], a, b) < 0)
			return -1;
		at += counts[i];
	}
	return flush_batch(p);
}

static int setup_run(pairs_run *p, const pairs_cli *o, int rank, int S_from_shards)
{
	memset(p, 0, sizeof *p);
	p->o = o;
	p->S = S_from_shards;
	p->max_tokens = PAIR_MAX_TOKENS;
	if (!o->synthetic_only) {
		p->m = ckpt_load_model(o->model, (int)o->batch);
		if (!p->m)
			return -1;
		p->S = vlm_get_config(p->m)->image_size;
		int mt = vlm_get_config(p->m)->max_text - 1;
		p->max_tokens = mt < PAIR_MAX_TOKENS ? mt : PAIR_MAX_TOKENS;
		p->dec = decoder_create(p->m, (int)o->batch, 0);
		if (!p->dec)
			return -1;
	}
	size_t img = (size_t)p->S * p->S * 3;
	p->images = nb_xmalloc(img * (size_t)o->batch);
	p->cells = nb_xmalloc(SCENE_CELLS * (size_t)o->batch);
	p->ids = nb_xmalloc(sizeof(uint64_t) * (size_t)o->batch);
	p->tokens = nb_xcalloc((size_t)o->batch * (size_t)p->max_tokens, sizeof(uint16_t));
	p->lens = nb_xcalloc((size_t)o->batch, sizeof(int));
	shard_meta meta = {.kind = SHARD_PAIRS, .height = p->S, .width = p->S, .has_objects = 1};
	snprintf(meta.origin, sizeof meta.origin, "synthetic");
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());
	if (o->model && ckpt_digest(o->model, meta.teacher_digest) < 0)
		return -1;
	char path[4096];
	if (snprintf(path, sizeof path, "%s/pairs-%05d.h5", o->out, rank) >= (int)sizeof path)
		return nb_error("output path '%s/pairs-%05d.h5' is too long", o->out, rank);
	p->w = shard_create(path, &meta);
	return p->w ? 0 : -1;
}

static void free_run(pairs_run *p)
{
	if (p->w)
		shard_abort(p->w);
	decoder_free(p->dec);
	vlm_free(p->m);
	free(p->images);
	free(p->cells);
	free(p->ids);
	free(p->tokens);
	free(p->lens);
}

/* The image side of the first input shard (synthetic-only has no model). */
static int first_size(const char *path)
{
	shard_reader *r = shard_open(path);
	int S = r ? shard_reader_meta(r)->height : 0;
	shard_close(r);
	return S;
}

static void print_summary(const long *st, const char *out, int nranks)
{
	printf("images          %ld\n", st[ST_IMAGES]);
	printf("perfect         %ld (model captions with no absent statement)\n", st[ST_PERFECT]);
	printf("no pair         %ld\n", st[ST_NONE]);
	long all = 0;
	for (int k = 0; k < PAIR_KINDS; k++) {
		printf("%-15s %ld\n", pair_kind_name(k), st[ST_KIND0 + k]);
		all += st[ST_KIND0 + k];
	}
	printf("pairs           %ld in %d shard(s) in %s\n", all, nranks, out);
}

int cmd_pairs(int argc, char **argv)
{
	pairs_cli o;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	int rank = 0, nranks = 1;
	ranks_start(&argc, &argv, &rank, &nranks);
	ranks_threads(NULL);
	ranks_agree(rank != 0 || prepare_out(o.out) == 0, "preparing the output directory");
	char **paths = NULL;
	size_t *counts = NULL;
	int n = 0;
	ranks_agree(list_inputs(o.shards, &paths, &counts, &n) == 0, "listing the input shards");
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += counts[i];
	size_t lo = total * (size_t)rank / (size_t)nranks, hi = total * (size_t)(rank + 1) / (size_t)nranks;
	pairs_run p;
	int ok = setup_run(&p, &o, rank, first_size(paths[0])) == 0 && make_rank(&p, paths, counts, n, lo, hi) == 0;
	ranks_agree(ok, "making pairs");
	shard_writer *w = p.w;
	p.w = NULL;
	ranks_agree(shard_commit(w) == 0, "committing the pair shard");
	long st[ST_N];
	MPI_Reduce(p.st, st, ST_N, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
	if (rank == 0 && !o.quiet) {
		print_summary(st, o.out, nranks);
		ranks_agree(nb_stdout_flush() == 0, "writing the summary");
	} else {
		ranks_agree(1, "writing the summary");
	}
	free_run(&p);
	shard_list_free(paths, n);
	free(counts);
	ranks_finish();
	return 0;
}
