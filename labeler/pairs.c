#include "labeler/pairs.h"

#include <string.h>

#include "common/nb_error.h"
#include "common/nb_rng.h"
#include "labeler/caption_parse.h"

/* The key of the synthetic draws, apart from every other stream. */
#define KEY_PAIRS 0x7061697273ull

/* Which (color, shape) objects the image holds. */
static void present_pairs(const uint8_t cells[SCENE_CELLS], uint8_t present[SCENE_PAIRS])
{
	memset(present, 0, SCENE_PAIRS);
	for (int c = 0; c < SCENE_CELLS; c++)
		if (cells[c])
			present[scene_obj_pair(cells[c])] = 1;
}

int pairs_has_absent(const uint8_t cells[SCENE_CELLS], const uint16_t *ids, int n, int *absent)
{
	uint8_t present[SCENE_PAIRS];
	present_pairs(cells, present);
	caption_tuple t[PAIR_MAX_TOKENS];
	caption_stats st;
	caption_parse_tokens(ids, n, t, PAIR_MAX_TOKENS, &st);
	int k = 0, m = st.ntuples < PAIR_MAX_TOKENS ? st.ntuples : PAIR_MAX_TOKENS;
	for (int i = 0; i < m; i++)
		k += !present[t[i].color * SCENE_SHAPES + t[i].shape];
	if (absent)
		*absent = k;
	return k > 0;
}

int pairs_theme(const uint8_t cells[SCENE_CELLS])
{
	int best = 0, best_n = -1;
	for (int th = 0; th < SCENE_THEMES; th++) {
		int n = 0;
		for (int c = 0; c < SCENE_CELLS; c++)
			for (int k = 0; k < 4 && cells[c]; k++)
				n += scene_obj_color(cells[c]) == scene_theme_pairs[th][k][0] &&
				     scene_obj_shape(cells[c]) == scene_theme_pairs[th][k][1];
		if (n > best_n) {
			best = th;
			best_n = n;
		}
	}
	return best;
}

/* The ground-truth caption of cells as token ids. */
static int caption_of(const uint8_t cells[SCENE_CELLS], uint16_t *ids)
{
	char text[256];
	if (scene_caption(cells, text, sizeof text) < 0)
		NB_BUG("scene caption over 256 bytes");
	int n = caption_tokenize(text, ids, PAIR_MAX_TOKENS);
	if (n > PAIR_MAX_TOKENS)
		NB_BUG("scene caption of %d tokens", n);
	return n;
}

/* Indices of the occupied (occupied = 1) or free cells; returns the count. */
static int cells_where(const uint8_t cells[SCENE_CELLS], int occupied, int *at)
{
	int n = 0;
	for (int c = 0; c < SCENE_CELLS; c++)
		if ((cells[c] != 0) == occupied)
			at[n++] = c;
	return n;
}

/* Replaces 1 or 2 objects with absent objects of the image's theme, each in
 * a free cell. 0 when the theme has no absent object. */
static int synth_prior(uint8_t cells[SCENE_CELLS], nb_rng *r)
{
	uint8_t present[SCENE_PAIRS];
	present_pairs(cells, present);
	int th = pairs_theme(cells), cand[4], nc = 0;
	for (int k = 0; k < 4; k++) {
		int color = scene_theme_pairs[th][k][0], shape = scene_theme_pairs[th][k][1];
		if (!present[color * SCENE_SHAPES + shape])
			cand[nc++] = k;
	}
	int occ[SCENE_CELLS], nocc = cells_where(cells, 1, occ);
	if (nc == 0 || nocc == 0)
		return 0;
	int want = 1 + (int)nb_rng_below(r, 2);
	if (want > nc)
		want = nc;
	if (want > nocc)
		want = nocc;
	for (int i = 0; i < want; i++) {
		/* pick an object to drop and an absent theme object, distinct each time */
		nocc = cells_where(cells, 1, occ);
		int drop = occ[nb_rng_below(r, (uint64_t)nocc)];
		int pick = (int)nb_rng_below(r, (uint64_t)(nc - i));
		int k = cand[pick];
		cand[pick] = cand[nc - i - 1];
		int size = scene_obj_size(cells[drop]);
		cells[drop] = 0;
		/* a free cell other than the dropped one when there is one: a
		 * prior-led mention rarely names the right place */
		int fr[SCENE_CELLS], nfree = 0;
		for (int c = 0; c < SCENE_CELLS; c++)
			if (!cells[c] && c != drop)
				fr[nfree++] = c;
		int place = nfree ? fr[nb_rng_below(r, (uint64_t)nfree)] : drop;
		cells[place] = scene_obj_code(size, scene_theme_pairs[th][k][0], scene_theme_pairs[th][k][1]);
	}
	return 1;
}

/* Swaps one object's color (attr 0) or shape (attr 1) for a value whose
 * (color, shape) is absent from the image. 0 when none exists. */
static int synth_swap(uint8_t cells[SCENE_CELLS], int attr, nb_rng *r)
{
	uint8_t present[SCENE_PAIRS];
	present_pairs(cells, present);
	int occ[SCENE_CELLS], nocc = cells_where(cells, 1, occ);
	if (nocc == 0)
		return 0;
	int c = occ[nb_rng_below(r, (uint64_t)nocc)];
	int size = scene_obj_size(cells[c]), color = scene_obj_color(cells[c]), shape = scene_obj_shape(cells[c]);
	int opts[SCENE_COLORS], no = 0, nvals = attr == 0 ? SCENE_COLORS : SCENE_SHAPES;
	for (int v = 0; v < nvals; v++) {
		int co = attr == 0 ? v : color, sh = attr == 0 ? shape : v;
		if (!present[co * SCENE_SHAPES + sh])
			opts[no++] = v;
	}
	if (no == 0)
		return 0;
	int v = opts[nb_rng_below(r, (uint64_t)no)];
	cells[c] = attr == 0 ? scene_obj_code(size, v, shape) : scene_obj_code(size, color, v);
	return 1;
}

int pairs_synthetic(const uint8_t cells[SCENE_CELLS], uint64_t id, uint64_t seed, pair *out)
{
	int occ[SCENE_CELLS];
	if (cells_where(cells, 1, occ) == 0)
		return 0;
	nb_rng r;
	nb_rng_seed(&r, seed, KEY_PAIRS, id);
	/* prior 1/2, color 1/4, shape 1/4; the next kind when one cannot apply */
	uint64_t d = nb_rng_below(&r, 4);
	int order[3][3] = {{PAIR_SYNTH_PRIOR, PAIR_SYNTH_COLOR, PAIR_SYNTH_SHAPE},
			   {PAIR_SYNTH_COLOR, PAIR_SYNTH_SHAPE, PAIR_SYNTH_PRIOR},
			   {PAIR_SYNTH_SHAPE, PAIR_SYNTH_COLOR, PAIR_SYNTH_PRIOR}};
	const int *try = order[d < 2 ? 0 : d == 2 ? 1 : 2];
	for (int i = 0; i < 3; i++) {
		uint8_t alt[SCENE_CELLS];
		memcpy(alt, cells, SCENE_CELLS);
		int ok = try[i] == PAIR_SYNTH_PRIOR ? synth_prior(alt, &r)
						     : synth_swap(alt, try[i] == PAIR_SYNTH_SHAPE, &r);
		if (!ok)
			continue;
		out->nchosen = caption_of(cells, out->chosen);
		out->nrejected = caption_of(alt, out->rejected);
		out->kind = try[i];
		return 1;
	}
	return 0;
}

int pairs_make(const uint8_t cells[SCENE_CELLS], const uint16_t *model, int nmodel, uint64_t id, uint64_t seed,
	       pairs_mode mode, pair *out)
{
	if (mode != PAIRS_SYNTHETIC) {
		if (nmodel < 0 || nmodel > PAIR_MAX_TOKENS)
			return nb_error("image %llu: a model caption of %d tokens (max %d)", (unsigned long long)id,
					nmodel, PAIR_MAX_TOKENS);
		if (pairs_has_absent(cells, model, nmodel, NULL)) {
			out->nchosen = caption_of(cells, out->chosen);
			memcpy(out->rejected, model, sizeof(uint16_t) * (size_t)nmodel);
			out->nrejected = nmodel;
			out->kind = PAIR_ON_POLICY;
			return out->nchosen > 0;
		}
		if (mode == PAIRS_ON_POLICY)
			return 0;
	}
	return pairs_synthetic(cells, id, seed, out);
}
