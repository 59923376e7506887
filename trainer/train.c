#include "trainer/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "model/checkpoint.h"
#include "common/vocab.h"
#include "store/shard_store.h"
#include "trainer/grad_clip.h"
#include "trainer/lr_schedule.h"

struct trainer {
	train_config cfg;
	MPI_Comm comm;
	int rank, size;
	int local_max;               /* largest slice of the global batch */
	vlm_model *m;
	vlm_model *ref;              /* DPO: the frozen reference, NULL otherwise */
	char ref_digest[17];         /* DPO: its parameters' digest (checkpoint item dpo_ref_digest) */
	char resumed_ref[17];        /* DPO: the digest a resumed checkpoint recorded, "" if none */
	float *adam_m, *adam_v;
	batcher *data;
	long step;
	uint64_t *gidx;              /* [batch] global indices of this step */
};

train_config train_config_default(void)
{
	train_config c = {
		.model = vlm_config_default(),
		.steps = 4000, .batch = 64, .lr = 1e-3, .warmup = 200, .clip = 1.0,
		.adam = adamw_defaults(), .seed = 1, .sigma = 0.3f, .sigma_end = -1.0f,
		.objective = TRAIN_SFT, .dpo = {.beta = 0.1, .noise = DPO_NOISE_CHOSEN, .sft_weight = 0.0},
	};
	return c;
}

float train_sigma_at(const train_config *c, long step)
{
	if (c->sigma_end < 0.0f || c->steps <= 1)
		return c->sigma;
	double f = (double)step / (double)(c->steps - 1);
	if (f > 1.0)
		f = 1.0;
	return (float)((double)c->sigma + ((double)c->sigma_end - (double)c->sigma) * f);
}

/* Collective: 0 when ok on every rank. A rank that did not fail itself gets
 * a message saying another did, so each rank's nb_errmsg explains the -1.
 * The trainer's only agreement: the recoverable counterpart of
 * pipeline/ranks.h's ranks_agree, on the trainer's own communicator (the
 * students' in `nboost run`); the caller decides whether to die, and
 * ranks_fail_all tells "on another rank" apart from a cause of its own. */
static int agree(trainer *t, int ok, const char *what)
{
	int all = 0;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, t->comm);
	if (all)
		return 0;
	if (ok)
		nb_error("%s failed on another rank", what);
	return -1;
}

trainer *trainer_create(const train_config *c, MPI_Comm comm)
{
	if (vlm_config_check(&c->model) < 0)
		return NULL;
	if (c->batch < 1 || c->steps < 0) {
		nb_error("bad training config: batch %d and steps %ld must be positive", c->batch, c->steps);
		return NULL;
	}
	trainer *t = nb_xcalloc(1, sizeof *t);
	t->cfg = *c;
	t->comm = comm;
	MPI_Comm_rank(comm, &t->rank);
	MPI_Comm_size(comm, &t->size);
	t->local_max = (c->batch + t->size - 1) / t->size;
	/* a DPO batch has two rows per pair */
	t->m = vlm_create(&c->model, c->objective == TRAIN_DPO ? 2 * t->local_max : t->local_max);
	if (!t->m) {
		free(t);
		return NULL;
	}
	vlm_init(t->m, c->seed);
	size_t n = vlm_nparams(t->m);
	t->adam_m = nb_xcalloc(n, sizeof(float));
	t->adam_v = nb_xcalloc(n, sizeof(float));
	t->data = batcher_create(c->model.image_size, c->model.max_text, c->model.vocab, c->seed);
	if (c->objective == TRAIN_DPO && batcher_set_pairs(t->data) < 0)
		NB_BUG("fresh batcher refused pairs: %s", nb_errmsg());
	t->gidx = nb_xcalloc((size_t)c->batch, sizeof(uint64_t));
	return t;
}

void trainer_free(trainer *t)
{
	if (!t)
		return;
	vlm_free(t->m);
	vlm_free(t->ref);
	free(t->adam_m);
	free(t->adam_v);
	batcher_free(t->data);
	free(t->gidx);
	free(t);
}

vlm_model *trainer_model(trainer *t) { return t->m; }

static int is_decoder_tensor(const char *name) { return !strncmp(name, "dec.", 4) || !strncmp(name, "head.", 5); }

int trainer_init_decoder(trainer *t, const char *path)
{
	vlm_model *src = ckpt_load_model(path, 1);
	if (!src) {
		char why[1024];
		snprintf(why, sizeof why, "%s", nb_errmsg());
		return nb_error("cannot initialise the decoder from '%s': %s", path, why);
	}
	const vlm_config *a = vlm_get_config(src), *b = vlm_get_config(t->m);
	int nva = (a->image_size / a->patch) * (a->image_size / a->patch);
	int nvb = (b->image_size / b->patch) * (b->image_size / b->patch);
	struct {
		const char *key;
		int have, want;
	} k[] = {{"dec_dim", a->dec_dim, b->dec_dim},       {"dec_layers", a->dec_layers, b->dec_layers},
		 {"dec_heads", a->dec_heads, b->dec_heads}, {"mlp_ratio", a->mlp_ratio, b->mlp_ratio},
		 {"vocab", a->vocab, b->vocab},             {"max_text", a->max_text, b->max_text},
		 {"visual tokens", nva, nvb}};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
		if (k[i].have != k[i].want) {
			vlm_free(src);
			return nb_error("cannot initialise the decoder from '%s': its %s is %d, this model's %d", path,
					k[i].key, k[i].have, k[i].want);
		}
	/* Same decoder shape: the "dec." and "head." tensors line up by name. */
	int copied = 0;
	for (int i = 0; i < vlm_ntensors(t->m); i++) {
		const vlm_tensor *d = vlm_tensor_at(t->m, i);
		if (!is_decoder_tensor(d->name))
			continue;
		for (int j = 0; j < vlm_ntensors(src); j++) {
			const vlm_tensor *s = vlm_tensor_at(src, j);
			if (strcmp(s->name, d->name))
				continue;
			if (s->numel != d->numel)
				NB_BUG("tensor %s: %zu vs %zu floats under equal decoder configs", d->name, s->numel, d->numel);
			memcpy(vlm_params(t->m) + d->offset, vlm_params(src) + s->offset, sizeof(float) * d->numel);
			copied++;
		}
	}
	vlm_free(src);
	if (copied == 0)
		NB_BUG("no decoder tensor copied from '%s'", path);
	return 0;
}
batcher *trainer_batcher(trainer *t) { return t->data; }

static int set_reference_local(trainer *t, const char *path, int init_policy)
{
	if (t->cfg.objective != TRAIN_DPO)
		return nb_error("a reference model is for objective dpo only");
	if (t->ref)
		return nb_error("the reference model is set once");
	vlm_model *ref = ckpt_load_model(path, vlm_max_batch(t->m));
	if (!ref) {
		char why[1024];
		snprintf(why, sizeof why, "%s", nb_errmsg());
		return nb_error("cannot load the DPO reference '%s': %s", path, why);
	}
	if (!vlm_config_equal(vlm_get_config(ref), &t->cfg.model)) {
		vlm_free(ref);
		return nb_error("cannot use '%s' as the DPO reference: its model config differs from the job's "
				"[model] (DPO trains a copy of the reference)", path);
	}
	char digest[17];
	ckpt_params_digest(ref, digest);
	if (t->resumed_ref[0] && strcmp(digest, t->resumed_ref)) {
		vlm_free(ref);
		return nb_error("cannot resume with the DPO reference '%s': its parameters (digest %s) are not those "
				"the run started from (digest %s)", path, digest, t->resumed_ref);
	}
	if (init_policy)
		memcpy(vlm_params(t->m), vlm_params(ref), sizeof(float) * vlm_nparams(t->m));
	t->ref = ref;
	memcpy(t->ref_digest, digest, sizeof digest);
	return 0;
}

int trainer_set_reference(trainer *t, const char *path, int init_policy)
{
	return agree(t, set_reference_local(t, path, init_policy) == 0, "loading the DPO reference");
}
long trainer_step_index(const trainer *t) { return t->step; }

int trainer_add_shard(trainer *t, const char *path)
{
	int ok = batcher_add_shard(t->data, path, t->step) == 0;
	return agree(t, ok, "adding a shard");
}

/* Broadcasts a string from rank 0 (NULL-safe on other ranks): returns a
 * malloc'ed copy on every rank. */
static char *bcast_text(trainer *t, const char *text)
{
	unsigned long long len = t->rank == 0 ? strlen(text) : 0;
	MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, t->comm);
	char *s = nb_xmalloc((size_t)len + 1);
	if (t->rank == 0)
		memcpy(s, text, (size_t)len);
	if (len)
		MPI_Bcast(s, (int)len, MPI_CHAR, 0, t->comm);
	s[len] = '\0';
	return s;
}

/* Joins the not-yet-added shards of dir with newlines (rank 0 only). */
static char *list_new_shards(trainer *t, const char *dir, int *ok)
{
	char **paths = NULL;
	int n = shard_list(dir, &paths);
	if (n < 0) {
		*ok = 0;
		return nb_xstrdup("");
	}
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += strlen(paths[i]) + 1;
	char *s = nb_xcalloc(len + 1, 1);
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		if (batcher_has_shard(t->data, paths[i]))
			continue;
		if (strchr(paths[i], '\n')) {
			nb_error("cannot add shard '%s': a newline in its name", paths[i]);
			*ok = 0;
			break;
		}
		size_t k = strlen(paths[i]);
		memcpy(s + at, paths[i], k);
		s[at + k] = '\n';
		at += k + 1;
	}
	shard_list_free(paths, n);
	return s;
}

int trainer_watch(trainer *t, const char *dir)
{
	int ok = 1;
	char *mine = t->rank == 0 ? list_new_shards(t, dir, &ok) : NULL;
	if (agree(t, ok, "listing shards") < 0) {
		free(mine);
		return -1;
	}
	char *all = bcast_text(t, mine ? mine : "");
	free(mine);
	int added = 0;
	for (char *p = all; ok && *p;) {
		char *nl = strchr(p, '\n');
		*nl = '\0';
		if (batcher_add_shard(t->data, p, t->step) < 0)
			ok = 0;
		else
			added++;
		p = nl + 1;
	}
	free(all);
	return agree(t, ok, "adding a shard") < 0 ? -1 : added;
}

static void apply_adamw(trainer *t, double lr)
{
	vlm_model *m = t->m;
	float *p = vlm_params(m), *g = vlm_grads(m);
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *x = vlm_tensor_at(m, i);
		adamw_update(p + x->offset, g + x->offset, t->adam_m + x->offset, t->adam_v + x->offset, x->numel,
			     &t->cfg.adam, lr, t->step + 1, x->decay);
	}
}

/* The rank's slice [lo, hi) of the global batch t->gidx. */
static void local_slice(const trainer *t, int *lo, int *hi)
{
	*lo = (int)((long)t->rank * t->cfg.batch / t->size);
	*hi = (int)((long)(t->rank + 1) * t->cfg.batch / t->size);
}

/* Sums of the loss terms of one step, all-reduced in one call with the
 * failure count. */
enum { SUM_LOSS, SUM_FAILED, SUM_MARGIN, SUM_CORRECT, SUM_SFT, SUM_N };

/* The supervised forward/backward on the rank's slice: grads, sums[SUM_LOSS]
 * (token loss sum); *ok = 0 on failure. gtokens: global target tokens. */
static void sft_local(trainer *t, const vlm_batch *b, long gtokens, double *sums, int *ok)
{
	const train_config *c = &t->cfg;
	vlm_noise noise = {.sigma = train_sigma_at(c, t->step), .seed = c->seed, .stream = (uint64_t)t->step,
			   .blind = c->text_only};
	long nt = 0;
	double loss = vlm_forward_backward(t->m, b, &noise, (float)(1.0 / (double)gtokens), &nt);
	*ok = !isnan(loss) || nt > 0;
	sums[SUM_LOSS] = *ok ? loss : 0.0;
}

/* The DPO forward/backward on the rank's pair rows (trainer/dpo.h). */
static void dpo_local(trainer *t, const vlm_batch *b, long gtokens, double *sums, int *ok)
{
	const train_config *c = &t->cfg;
	vlm_noise noise = {.sigma = train_sigma_at(c, t->step), .seed = c->seed, .stream = (uint64_t)t->step,
			   .blind = c->text_only};
	double *ref_nll = nb_xmalloc(sizeof(double) * (size_t)b->B);
	dpo_sums ds = {0};
	*ok = dpo_reference(t->ref, b, ref_nll) == 0 &&
	      dpo_loss(t->m, b, ref_nll, &noise, &c->dpo, 1.0 / (double)c->batch, 1.0 / (double)gtokens, 1, &ds) == 0;
	free(ref_nll);
	sums[SUM_LOSS] = ds.loss;
	sums[SUM_MARGIN] = ds.margin;
	sums[SUM_CORRECT] = (double)ds.correct;
	sums[SUM_SFT] = ds.sft;
}

/* Target tokens of rows [0, rows) of b. */
static long count_rows(const vlm_batch *b, int rows)
{
	long n = 0;
	for (long i = 0; i < (long)rows * b->T; i++)
		n += b->targets[i] != VOCAB_PAD;
	return n;
}

int trainer_step(trainer *t, train_stats *st)
{
	const train_config *c = &t->cfg;
	int dpo = c->objective == TRAIN_DPO;
	if (dpo && !t->ref)
		return nb_error("objective dpo: no reference model was set (trainer_set_reference)");
	/* Every rank draws the same global list, so the data need no exchange. */
	if (agree(t, batcher_next(t->data, c->batch, t->gidx) == 0, "drawing a batch") < 0)
		return -1;
	int lo, hi;
	local_slice(t, &lo, &hi);
	vlm_batch b;
	if (dpo)
		batcher_make_pairs(t->data, t->gidx + lo, hi - lo, &b);
	else
		batcher_make(t->data, t->gidx + lo, hi - lo, &b);
	/* supervised: every target token; DPO: the chosen rows' (the SFT term) */
	long tokens = b.B ? count_rows(&b, dpo ? b.B / 2 : b.B) : 0, gtokens = 0;
	MPI_Allreduce(&tokens, &gtokens, 1, MPI_LONG, MPI_SUM, t->comm);
	if (gtokens <= 0) {
		nb_error("batch at step %ld has no target tokens", t->step);
		return -1;
	}
	double sums[SUM_N] = {0}, gsums[SUM_N];
	int ok = 1;
	size_t n = vlm_nparams(t->m);
	float *g = vlm_grads(t->m);
	if (b.B > 0 && dpo)
		dpo_local(t, &b, gtokens, sums, &ok);
	else if (b.B > 0)
		sft_local(t, &b, gtokens, sums, &ok);
	else
		memset(g, 0, n * sizeof(float));
	sums[SUM_FAILED] = ok ? 0.0 : 1.0;
	/* The loss sums and the failure count travel together: one extra small call. */
	MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, t->comm);
	MPI_Allreduce(sums, gsums, SUM_N, MPI_DOUBLE, MPI_SUM, t->comm);
	if (gsums[SUM_FAILED] != 0.0) {
		if (ok)
			nb_error("forward/backward at step %ld failed on another rank", t->step);
		return -1;
	}
	/* Diverged: fail before the update, so the last checkpoint stays good. */
	if (!isfinite(gsums[SUM_LOSS]))
		return nb_error("loss is not finite at step %ld (training diverged: lower train.lr or raise "
				"train.warmup)", t->step);
	lr_schedule s = {.base = c->lr, .warmup = c->warmup, .total = c->steps};
	double lr = lr_schedule_at(&s, t->step);
	double norm = grad_clip_global(g, n, c->clip);
	apply_adamw(t, lr);
	t->step++;
	memset(st, 0, sizeof *st);
	st->step = t->step;
	st->loss = gsums[SUM_LOSS] / (double)gtokens;
	st->lr = lr;
	st->grad_norm = norm;
	st->tokens = gtokens;
	st->samples = c->batch;
	if (dpo) {
		st->dpo = 1;
		st->dpo_loss = gsums[SUM_LOSS] / (double)c->batch;
		st->sft_loss = gsums[SUM_SFT] / (double)gtokens;
		st->loss = st->dpo_loss + c->dpo.sft_weight * st->sft_loss;
		st->reward_margin = gsums[SUM_MARGIN] / (double)c->batch;
		st->reward_accuracy = gsums[SUM_CORRECT] / (double)c->batch;
	}
	return 0;
}

/* ---- checkpoints ---- */

static int save_rank0(trainer *t, const char *path, const char *job_text)
{
	batcher *d = t->data;
	int ns = batcher_nshards(d);
	size_t plen = 1;
	for (int i = 0; i < ns; i++)
		plen += strlen(batcher_shard_path(d, i)) + 1;
	char *paths = nb_xcalloc(plen, 1);
	uint64_t *steps = nb_xcalloc((size_t)ns + 1, sizeof(uint64_t));
	uint64_t *counts = nb_xcalloc((size_t)ns + 1, sizeof(uint64_t));
	size_t at = 0;
	for (int i = 0; i < ns; i++) {
		const char *p = batcher_shard_path(d, i);
		size_t k = strlen(p);
		memcpy(paths + at, p, k);
		paths[at + k] = '\n';
		at += k + 1;
		steps[i] = (uint64_t)batcher_shard_step(d, i);
		counts[i] = batcher_shard_count(d, i);
	}
	batcher_state bs;
	batcher_get_state(d, &bs);
	uint64_t pos[4] = {bs.cursor, bs.epoch, bs.merges, (uint64_t)t->size};
	ckpt_item items[6] = {
		{.name = "data_order", .u64 = bs.order, .n = bs.norder},
		{.name = "data_position", .u64 = pos, .n = 4},
		{.name = "shard_paths", .text = paths},
		{.name = "shard_steps", .u64 = steps, .n = (size_t)ns},
		{.name = "shard_counts", .u64 = counts, .n = (size_t)ns},
		{.name = "dpo_ref_digest", .text = t->ref_digest},
	};
	/* an empty order still needs a valid pointer for HDF5 */
	uint64_t none = 0;
	if (!items[0].u64)
		items[0].u64 = &none;
	ckpt_save_info info = {.step = t->step, .seed = t->cfg.seed, .job_config = job_text,
			       .adam_m = t->adam_m, .adam_v = t->adam_v, .items = items,
			       .nitems = t->cfg.objective == TRAIN_DPO ? 6 : 5};
	int rc = ckpt_save(path, t->m, &info);
	free(paths);
	free(steps);
	free(counts);
	return rc;
}

int trainer_save(trainer *t, const char *path, const char *job_text)
{
	int rc = t->rank == 0 ? save_rank0(t, path, job_text) : 0;
	MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm);
	if (rc < 0 && t->rank != 0)
		nb_error("writing checkpoint '%s' failed on rank 0", path);
	return rc;
}

/* Re-adds the recorded shards in their original order and checks that each
 * still holds the samples it held. */
static int readd_shards(trainer *t, ckpt_file *f, const char *path)
{
	char *paths = NULL;
	uint64_t *steps = NULL, *counts = NULL;
	size_t nsteps = 0, ncounts = 0;
	int rc = -1;
	if (ckpt_read_text(f, "shard_paths", &paths) < 0 || ckpt_read_u64(f, "shard_steps", &steps, &nsteps) < 0 ||
	    ckpt_read_u64(f, "shard_counts", &counts, &ncounts) < 0)
		goto out;
	if (nsteps != ncounts) {
		nb_error("cannot resume from '%s': shard_steps and shard_counts differ in length", path);
		goto out;
	}
	size_t i = 0;
	for (char *p = paths; *p; i++) {
		char *nl = strchr(p, '\n');
		if (!nl || i >= nsteps) {
			nb_error("cannot resume from '%s': shard list and shard_steps disagree", path);
			goto out;
		}
		*nl = '\0';
		if (batcher_add_shard(t->data, p, (long)steps[i]) < 0)
			goto out;
		size_t have = batcher_shard_count(t->data, batcher_nshards(t->data) - 1);
		if (have != counts[i]) {
			nb_error("cannot resume from '%s': shard '%s' now holds %zu samples, the run used %llu", path, p,
				 have, (unsigned long long)counts[i]);
			goto out;
		}
		p = nl + 1;
	}
	if (i != nsteps) {
		nb_error("cannot resume from '%s': shard list and shard_steps disagree", path);
		goto out;
	}
	rc = 0;
out:
	free(paths);
	free(steps);
	free(counts);
	return rc;
}

/* DPO: the reference digest the checkpoint recorded, checked when the
 * reference is loaded again (set_reference_local). */
static int read_ref_digest(trainer *t, ckpt_file *f, const char *path)
{
	char *d = NULL;
	if (ckpt_read_text(f, "dpo_ref_digest", &d) < 0)
		return nb_error("cannot resume from '%s' with objective dpo: %s", path, nb_errmsg());
	int ok = strlen(d) == 16;
	if (ok)
		memcpy(t->resumed_ref, d, 17);
	free(d);
	return ok ? 0 : nb_error("cannot resume from '%s': dpo_ref_digest is not a digest", path);
}

static int resume_local(trainer *t, const char *path)
{
	if (batcher_nshards(t->data) != 0 || t->step != 0)
		return nb_error("cannot resume from '%s': the trainer has already started", path);
	ckpt_file *f = ckpt_open(path, &t->cfg.model);
	if (!f)
		return -1;
	int rc = -1;
	uint64_t *order = NULL, *pos = NULL;
	size_t norder = 0, npos = 0;
	if (ckpt_seed(f) != t->cfg.seed) {
		nb_error("cannot resume from '%s': it was trained with seed %llu, the job has seed %llu", path,
			 (unsigned long long)ckpt_seed(f), (unsigned long long)t->cfg.seed);
		goto out;
	}
	if (ckpt_read_params(f, t->m) < 0 || ckpt_read_adam(f, t->m, t->adam_m, t->adam_v) < 0)
		goto out;
	if (readd_shards(t, f, path) < 0)
		goto out;
	if (ckpt_read_u64(f, "data_order", &order, &norder) < 0 || ckpt_read_u64(f, "data_position", &pos, &npos) < 0)
		goto out;
	if (npos < 3) {
		nb_error("cannot resume from '%s': data_position has %zu values, expected 4", path, npos);
		goto out;
	}
	batcher_state bs = {.order = order, .norder = norder, .cursor = pos[0], .epoch = pos[1], .merges = pos[2]};
	if (batcher_set_state(t->data, &bs) < 0) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", nb_errmsg());
		nb_error("cannot resume from '%s': %s", path, msg);
		goto out;
	}
	if (npos >= 4 && pos[3] != (uint64_t)t->size && t->rank == 0)
		nb_warn("resuming '%s' on %d rank(s), it was written by %llu: the run continues, but not "
			"bit-identically", path, t->size, (unsigned long long)pos[3]);
	if (t->cfg.objective == TRAIN_DPO && read_ref_digest(t, f, path) < 0)
		goto out;
	t->step = ckpt_step(f);
	rc = 0;
out:
	free(order);
	free(pos);
	ckpt_close(f);
	return rc;
}

int trainer_resume(trainer *t, const char *path)
{
	return agree(t, resume_local(t, path) == 0, "resuming");
}
