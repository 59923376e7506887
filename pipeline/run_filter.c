/* A filter rank: judges each unit's captions with the consistency filter,
 * writes the accepted ones into one pseudo-label shard per unit (committed
 * atomically into RUNDIR/round-R/staging/), and reports the unit to the
 * master, who journals it and only then moves the shard into pseudo/, where
 * the students look (run_master.c, publish_shard). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "labeler/consistency.h"
#include "labeler/metrics.h"
#include "pipeline/run_internal.h"
#include "store/shard_store.h"

NB_NORETURN static void filter_die(const run_ctx *c, const char *what)
{
	fprintf(stderr, "nboost: fatal: filter rank %d: %s: %s\n", c->rank, what, nb_errmsg());
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

/* A unit's message, unpacked in place. */
typedef struct {
	caps_hdr h;
	const uint64_t *ids;
	const int32_t *lens;
	const uint16_t *toks;
	const uint8_t *images, *objects;
	const char *sources;
} caps_view;

static int unpack(const char *buf, size_t len, caps_view *v)
{
	if (len < sizeof v->h)
		return -1;
	memcpy(&v->h, buf, sizeof v->h);
	size_t n = (size_t)v->h.n, k1 = (size_t)v->h.K1, img = (size_t)v->h.S * (size_t)v->h.S * 3;
	size_t at = sizeof v->h, need = at + n * 8 + n * k1 * 4 + n * k1 * (size_t)v->h.maxtok * 2 + n * img +
					(v->h.has_objects ? n * SCENE_CELLS : 0) + (size_t)v->h.src_bytes;
	if (need != len)
		return -1;
	v->ids = (const uint64_t *)(const void *)(buf + at), at += n * 8;
	v->lens = (const int32_t *)(const void *)(buf + at), at += n * k1 * 4;
	v->toks = (const uint16_t *)(const void *)(buf + at), at += n * k1 * (size_t)v->h.maxtok * 2;
	v->images = (const uint8_t *)buf + at, at += n * img;
	v->objects = v->h.has_objects ? (const uint8_t *)buf + at : NULL;
	at += v->h.has_objects ? n * SCENE_CELLS : 0;
	v->sources = buf + at;
	return 0;
}

static void add_truth(truth_counts *t, metrics_acc *a)
{
	metrics_result r;
	metrics_finish(a, &r);
	t->captions += r.captions, t->mentions += r.mentions, t->hallucinated += r.hallucinated;
	t->halluc_captions += r.hallucinating_captions, t->gt_objects += r.gt_objects;
	t->gt_recalled += r.gt_recalled, t->cand_tuples += r.cand_tuples, t->gt_tuples += r.gt_tuples;
	t->tuple_matches += r.tuple_matches;
	metrics_free(a);
}


static void write_unit(const run_ctx *c, const caps_view *v, done_msg *d)
{
	size_t n = (size_t)v->h.n, k1 = (size_t)v->h.K1, mt = (size_t)v->h.maxtok;
	size_t img = (size_t)v->h.S * (size_t)v->h.S * 3;
	char dir[4096], path[4200];
	run_round_dir(c, v->h.round, dir, sizeof dir);
	snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/staging");
	run_unit_shard_name(v->h.unit, d->shard, sizeof d->shard);
	snprintf(path, sizeof path, "%s/%s", dir, d->shard);
	shard_meta meta = {.kind = SHARD_CAPTIONS, .height = v->h.S, .width = v->h.S, .round = v->h.round,
			   .sigma = (float)c->job->sigma, .K = c->job->K, .vote = c->job->filter.vote};
	snprintf(meta.origin, sizeof meta.origin, "pseudo");
	snprintf(meta.teacher_digest, sizeof meta.teacher_digest, "%.16s", v->h.digest);
	snprintf(meta.vocab_digest, sizeof meta.vocab_digest, "%s", vocab_digest());
	shard_writer *w = NULL;
	metrics_acc *raw = v->objects ? metrics_new() : NULL, *acc = v->objects ? metrics_new() : NULL;
	uint16_t *out = nb_xmalloc(mt * sizeof *out);
	const char *src = v->sources;
	for (size_t i = 0; i < n; i++, src += strlen(src) + 1) {
		const uint16_t *streams = v->toks + i * k1 * mt;
		int lens[65];
		for (size_t k = 0; k < k1; k++)
			lens[k] = v->lens[i * k1 + k];
		consistency_verdict verdict;
		if (consistency_judge_streams(&c->job->filter, streams, (int)mt, lens, (int)k1 - 1, out, (int)mt,
					      &verdict) < 0)
			filter_die(c, "consistency filter");
		label_counts *lc = &d->c;
		lc->seen++;
		lc->statements += verdict.total, lc->kept += verdict.kept;
		if (verdict.accepted)
			lc->accepted++;
		else
			lc->rejected[verdict.reason]++;
		if (v->objects) {
			const uint8_t *cells = v->objects + i * SCENE_CELLS;
			metrics_add_tokens(raw, streams, lens[0], cells);
			if (verdict.accepted)
				metrics_add_tokens(acc, out, verdict.ntokens, cells);
		}
		if (!verdict.accepted)
			continue;
		if (!w && !(w = shard_create(path, &meta)))
			filter_die(c, "cannot create a pseudo-label shard");
		shard_sample s = {.id = v->ids[i], .image = v->images + i * img, .source = src, .tokens = out,
				  .ntokens = verdict.ntokens, .score = verdict.score};
		if (shard_append(w, &s) < 0)
			filter_die(c, "cannot write a pseudo-label shard");
	}
	free(out);
	if (raw) {
		add_truth(&d->c.raw, raw);
		add_truth(&d->c.acc, acc);
	}
	if (!w)
		d->shard[0] = '\0';
	else if (shard_commit(w) < 0)
		filter_die(c, "cannot commit a pseudo-label shard");
}

void run_filter(run_ctx *c)
{
	char *buf = NULL;
	size_t cap = 0;
	for (;;) {
		MPI_Status st;
		run_wait(MPI_ANY_SOURCE, MPI_ANY_TAG, -1, &st);
		if (st.MPI_TAG == TAG_STOP) {
			int32_t x;
			MPI_Recv(&x, 1, MPI_INT32_T, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			break;
		}
		if (st.MPI_TAG != TAG_CAPS)
			NB_BUG("filter: unexpected tag %d from rank %d", st.MPI_TAG, st.MPI_SOURCE);
		int len;
		MPI_Get_count(&st, MPI_BYTE, &len);
		NB_GROW(buf, cap, (size_t)len, 1 << 16);
		MPI_Recv(buf, len, MPI_BYTE, st.MPI_SOURCE, TAG_CAPS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		caps_view v;
		if (unpack(buf, (size_t)len, &v) < 0)
			NB_BUG("filter: malformed caption message from rank %d", st.MPI_SOURCE);
		done_msg d = {.round = v.h.round, .unit = v.h.unit};
		write_unit(c, &v, &d);
		MPI_Send(&d, sizeof d, MPI_BYTE, 0, TAG_UNIT_DONE, MPI_COMM_WORLD);
	}
	free(buf);
}
