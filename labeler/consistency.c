#include "labeler/consistency.h"

#include <string.h>

#include "common/nb_error.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "labeler/caption_parse.h"

/* Every distinct tuple has a dense index, so a caption's distinct statements
 * fit fixed arrays whatever its length. */
enum { TUPLE_SPACE = SCENE_SIZES * SCENE_COLORS * SCENE_SHAPES * SCENE_CELLS };
enum { STATEMENT_TOKENS = 6 };  /* five words and "." */

static int tuple_index(const caption_tuple *t)
{
	return ((t->size * SCENE_COLORS + t->color) * SCENE_SHAPES + t->shape) * SCENE_CELLS + t->cell;
}

/* Where the noisy captions are: a pointer array, or decode_greedy's block. */
typedef struct {
	const uint16_t *const *ptrs;
	const int *lens;
	const uint16_t *base;
	int stride;
} noisy_src;

static const uint16_t *noisy_ids(const noisy_src *s, int k)
{
	return s->ptrs ? s->ptrs[k] : s->base + (size_t)(k + 1) * (size_t)s->stride;
}

/* The statement starting at *pos (up to and including its ".", or to the end
 * when the "." is missing), parsed by caption_parse_tokens so that the
 * filter and the metrics agree on every statement. Advances *pos. Returns 1
 * for a valid statement (*t filled), 0 for a malformed one, -1 at the end. */
static int next_statement(const uint16_t *ids, int n, int *pos, caption_tuple *t)
{
	int start = *pos;
	if (start >= n)
		return -1;
	int i = start;
	while (i < n && ids[i] != VOCAB_DOT)
		i++;
	*pos = i < n ? i + 1 : n;
	caption_stats st;
	caption_parse_tokens(ids + start, *pos - start, t, 1, &st);
	return st.ntuples == 1;
}

static int check_opts(const consistency_opts *o, int K)
{
	if (K < 0)
		return nb_error("consistency filter: K = %d noisy captions (must be >= 0)", K);
	if (o->mode != CONS_WHOLE && o->mode != CONS_SUBSET)
		return nb_error("consistency filter: unknown mode %d", (int)o->mode);
	if (K > 0 && (o->vote < 1 || o->vote > K))
		return nb_error("consistency filter: vote = %d outside 1..K (K = %d)", o->vote, K);
	if (!(o->min_score >= 0 && o->min_score <= 1))
		return nb_error("consistency filter: min_score = %g outside 0..1", o->min_score);
	return 0;
}

static void put_statement(uint16_t *out, const caption_tuple *t)
{
	out[0] = (uint16_t)(VOCAB_SIZE0 + t->size);
	out[1] = (uint16_t)(VOCAB_COLOR0 + t->color);
	out[2] = (uint16_t)(VOCAB_SHAPE0 + t->shape);
	out[3] = (uint16_t)(VOCAB_ROW0 + t->cell / SCENE_COLS);
	out[4] = (uint16_t)(VOCAB_COL0 + t->cell % SCENE_COLS);
	out[5] = VOCAB_DOT;
}

static int judge(const consistency_opts *o, const uint16_t *clean, int clean_len, const noisy_src *src,
		 int K, uint16_t *out, int max, consistency_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (check_opts(o, K) < 0)
		return -1;
	if (clean_len < 0 || max < 0)
		return nb_error("consistency filter: negative length (clean %d, out %d)", clean_len, max);
	for (int k = 0; k < K; k++)
		if (src->lens[k] < 0)
			return nb_error("consistency filter: noisy caption %d has length %d", k, src->lens[k]);

	/* The clean caption's distinct tuples, in caption order. */
	short slot[TUPLE_SPACE];     /* tuple index -> position in uniq, -1 if absent */
	caption_tuple uniq[TUPLE_SPACE];
	int votes[TUPLE_SPACE], last[TUPLE_SPACE];
	memset(slot, 0xff, sizeof(slot));
	int nu = 0, malformed = 0, pos = 0, r;
	caption_tuple t;
	while ((r = next_statement(clean, clean_len, &pos, &t)) >= 0) {
		if (r == 0) {
			malformed++;
			continue;
		}
		int idx = tuple_index(&t);
		if (slot[idx] < 0) {
			slot[idx] = (short)nu;
			votes[nu] = 0;
			last[nu] = -1;
			uniq[nu++] = t;
		}
	}

	/* One vote per noisy caption for each clean tuple it contains. */
	for (int k = 0; k < K; k++) {
		const uint16_t *ids = noisy_ids(src, k);
		pos = 0;
		while ((r = next_statement(ids, src->lens[k], &pos, &t)) >= 0) {
			if (r == 0)
				continue;
			int j = slot[tuple_index(&t)];
			if (j >= 0 && last[j] != k) {
				last[j] = k;
				votes[j]++;
			}
		}
	}
	int kept = 0;
	for (int j = 0; j < nu; j++)
		kept += K == 0 || votes[j] >= o->vote;
	v->total = nu;
	v->kept = kept;
	v->score = nu > 0 ? (float)kept / (float)nu : 0.0f;

	if (malformed > 0)
		v->reason = CONS_PARSE_FAILURE;
	else if (nu == 0)
		v->reason = CONS_NO_STATEMENT;
	else if (o->mode == CONS_WHOLE ? kept < nu : kept == 0)
		v->reason = CONS_TOO_FEW_VOTES;
	else if ((double)kept / nu < o->min_score)
		v->reason = CONS_LOW_SCORE;
	else
		v->reason = CONS_OK;
	if (v->reason != CONS_OK)
		return 0;

	int subset = o->mode == CONS_SUBSET && K > 0;
	int need = subset ? STATEMENT_TOKENS * kept : clean_len;
	if (need > max) {
		memset(v, 0, sizeof(*v));
		return nb_error("consistency filter: output needs %d tokens, buffer holds %d", need, max);
	}
	if (!subset) {
		if (clean_len > 0)
			memcpy(out, clean, (size_t)clean_len * sizeof(*out));
	} else {
		/* Reading order: by cell; within a cell, stable in caption order. */
		int n = 0;
		for (int cell = 0; cell < SCENE_CELLS; cell++)
			for (int j = 0; j < nu; j++)
				if (uniq[j].cell == cell && votes[j] >= o->vote) {
					put_statement(out + n, &uniq[j]);
					n += STATEMENT_TOKENS;
				}
	}
	v->ntokens = need;
	v->accepted = 1;
	return 0;
}

void consistency_opts_default(consistency_opts *o)
{
	o->vote = 1;
	o->mode = CONS_WHOLE;
	o->min_score = 0;
}

int consistency_judge(const consistency_opts *o, const uint16_t *clean, int clean_len,
		      const uint16_t *const *noisy, const int *noisy_lens, int K,
		      uint16_t *out, int max, consistency_verdict *v)
{
	noisy_src src = {.ptrs = noisy, .lens = noisy_lens};
	if (K > 0 && (!noisy || !noisy_lens)) {
		memset(v, 0, sizeof(*v));
		return nb_error("consistency filter: K = %d but no noisy captions given", K);
	}
	return judge(o, clean, clean_len, &src, K, out, max, v);
}

int consistency_judge_streams(const consistency_opts *o, const uint16_t *streams, int stride,
			      const int *lens, int K, uint16_t *out, int max, consistency_verdict *v)
{
	for (int s = 0; K > 0 && s <= K; s++)
		if (lens[s] > stride) {
			memset(v, 0, sizeof(*v));
			return nb_error("consistency filter: stream %d has %d tokens, more than the stride %d",
					s, lens[s], stride);
		}
	noisy_src src = {.lens = lens + 1, .base = streams, .stride = stride};
	return judge(o, streams, lens[0], &src, K, out, max, v);
}

const char *consistency_reason_name(consistency_reason r)
{
	static const char *const names[CONS_NREASONS] = {
		[CONS_OK] = "ok",
		[CONS_NO_STATEMENT] = "no_statement",
		[CONS_TOO_FEW_VOTES] = "too_few_votes",
		[CONS_LOW_SCORE] = "low_score",
		[CONS_PARSE_FAILURE] = "parse_failure",
	};
	return (int)r >= 0 && r < CONS_NREASONS ? names[r] : "unknown";
}

const char *consistency_mode_name(consistency_mode m)
{
	return m == CONS_SUBSET ? "subset" : m == CONS_WHOLE ? "whole" : "unknown";
}

int consistency_mode_parse(const char *s)
{
	if (!strcmp(s, "whole"))
		return CONS_WHOLE;
	if (!strcmp(s, "subset"))
		return CONS_SUBSET;
	return -1;
}

void consistency_counts_add(consistency_counts *c, const consistency_verdict *v)
{
	c->images++;
	if (v->accepted)
		c->accepted++;
	else if ((int)v->reason > 0 && v->reason < CONS_NREASONS)
		c->rejected[v->reason]++;
	c->statements += v->total;
	c->kept += v->kept;
}

void consistency_counts_merge(consistency_counts *dst, const consistency_counts *src)
{
	dst->images += src->images;
	dst->accepted += src->accepted;
	for (int r = 0; r < CONS_NREASONS; r++)
		dst->rejected[r] += src->rejected[r];
	dst->statements += src->statements;
	dst->kept += src->kept;
}
