/* POPE-style object probing (labeler/pope.h, docs/metrics.md "POPE"). */
#include "labeler/pope.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_time.h"
#include "common/vocab.h"
#include "labeler/evaluate.h"
#include "model/decode.h"
#include "store/shard_store.h"

#define WORDS_PER_STATEMENT 6  /* size colour shape row column . */

int pope_probes(const uint8_t cells[SCENE_CELLS], pope_probe *out)
{
	int present[SCENE_PAIRS] = {0}, n = 0;
	for (int c = 0; c < SCENE_CELLS; c++)
		if (cells[c] && cells[c] <= SCENE_MAX_CODE)
			present[scene_obj_pair(cells[c])] = 1;
	int seen[SCENE_PAIRS] = {0};
	for (int c = 0; c < SCENE_CELLS && n < POPE_MAX_POSITIVES; c++) {
		if (!cells[c] || cells[c] > SCENE_MAX_CODE || seen[scene_obj_pair(cells[c])])
			continue;
		seen[scene_obj_pair(cells[c])] = 1;
		out[n++] = (pope_probe){(uint8_t)scene_obj_pair(cells[c]), 1};
	}
	/* The prior's favourites: an absent pair scores one per present object
	 * of its theme (each theme pair belongs to one theme). */
	int score[SCENE_PAIRS] = {0};
	for (int c = 0; c < SCENE_CELLS; c++) {
		if (!cells[c] || cells[c] > SCENE_MAX_CODE)
			continue;
		int q = scene_obj_pair(cells[c]);
		for (int t = 0; t < SCENE_THEMES; t++) {
			int member = 0;
			for (int k = 0; k < 4; k++)
				member |= scene_theme_pairs[t][k][0] * SCENE_SHAPES + scene_theme_pairs[t][k][1] == q;
			if (!member)
				continue;
			for (int k = 0; k < 4; k++) {
				int a = scene_theme_pairs[t][k][0] * SCENE_SHAPES + scene_theme_pairs[t][k][1];
				if (!present[a])
					score[a]++;
			}
		}
	}
	int npos = n;
	for (int k = 0; k < npos; k++) {
		int best = -1;
		for (int a = 0; a < SCENE_PAIRS; a++)
			if (score[a] > 0 && (best < 0 || score[a] > score[best]))
				best = a;
		if (best < 0)
			break;
		out[n++] = (pope_probe){(uint8_t)best, 0};
		score[best] = 0;
	}
	return n;
}

int pope_image(decoder *d, const vlm_config *cfg, const uint8_t *image, const uint8_t cells[SCENE_CELLS],
	       const pope_probe *probes, int nprobes, int *yes)
{
	char cap[512];
	uint16_t gt[64];
	if (scene_caption(cells, cap, sizeof cap) < 0)
		return nb_error("pope: ground truth too long for a caption");
	int ngt = vocab_encode(cap, gt, 64);
	if (ngt < 0 || ngt > 64)
		return nb_error("pope: ground-truth caption of more than 64 tokens");
	/* Boundaries j = 0..n: after j true statements (j = n: the whole
	 * caption), while bos + prefix + size + colour fits the model's text
	 * positions (the shape's distribution is read at the colour). */
	int nb = ngt / WORDS_PER_STATEMENT + 1, maxj = (cfg->max_text - 3) / WORDS_PER_STATEMENT;
	if (nb > maxj + 1)
		nb = maxj + 1;
	int nbr = nb * SCENE_SIZES * SCENE_COLORS, V = cfg->vocab, np = WORDS_PER_STATEMENT * (nb - 1);
	int *at = nb_xmalloc((size_t)nbr * sizeof *at);
	uint16_t(*tok)[2] = nb_xmalloc((size_t)nbr * sizeof *tok);
	int q = 0;
	for (int j = 0; j < nb; j++)
		for (int z = 0; z < SCENE_SIZES; z++)
			for (int c = 0; c < SCENE_COLORS; c++, q++) {
				at[q] = WORDS_PER_STATEMENT * j;
				tok[q][0] = (uint16_t)(VOCAB_SIZE0 + z);
				tok[q][1] = (uint16_t)(VOCAB_COLOR0 + c);
			}
	float *base = nb_xmalloc((size_t)(np + 1) * (size_t)V * sizeof *base);
	float *out = nb_xmalloc((size_t)nbr * 2 * (size_t)V * sizeof *out);
	int rc = decode_branches(d, image, gt, np, at, (const uint16_t(*)[2])tok, nbr, base, out);
	for (int k = 0; k < nprobes; k++)
		yes[k] = 0;
	for (int j = 0; j < nb && rc == 0; j++) {
		/* P(pair next) summed over sizes, for all 48 pairs */
		double pp[SCENE_PAIRS] = {0};
		const float *first = base + (size_t)(WORDS_PER_STATEMENT * j) * (size_t)V;
		for (int z = 0; z < SCENE_SIZES; z++)
			for (int c = 0; c < SCENE_COLORS; c++) {
				int b = (j * SCENE_SIZES + z) * SCENE_COLORS + c;
				const float *o = out + (size_t)b * 2 * (size_t)V;
				for (int sh = 0; sh < SCENE_SHAPES; sh++)
					pp[c * SCENE_SHAPES + sh] += exp((double)first[VOCAB_SIZE0 + z] +
									 (double)o[VOCAB_COLOR0 + c] +
									 (double)o[V + VOCAB_SHAPE0 + sh]);
			}
		int best = 0;
		for (int a = 1; a < SCENE_PAIRS; a++)
			if (pp[a] > pp[best])
				best = a;
		double stop = exp((double)first[VOCAB_EOS]);
		for (int k = 0; k < nprobes; k++)
			if (probes[k].pair == best && pp[best] > stop)
				yes[k] = 1;
	}
	free(out);
	free(base);
	free(tok);
	free(at);
	return rc;
}

static void finish(pope_result *r)
{
	long probes = r->probes ? r->probes : 1, yes = r->yes ? r->yes : 1;
	r->accuracy = (double)r->correct / (double)probes;
	r->precision = r->yes ? (double)r->true_yes / (double)yes : 0.0;
	r->recall = r->positives ? (double)r->true_yes / (double)r->positives : 0.0;
	r->f1 = r->precision + r->recall > 0 ? 2 * r->precision * r->recall / (r->precision + r->recall) : 0.0;
	r->yes_ratio = (double)r->yes / (double)probes;
}

int pope_shards(vlm_model *m, const char *dir, const char *progress, pope_result *r)
{
	memset(r, 0, sizeof *r);
	const vlm_config *cfg = vlm_get_config(m);
	/* the checks of evaluate_shards: shards with /objects of the model's size */
	char **paths = NULL;
	if (evaluate_check_shards(dir, cfg->image_size, NULL) < 0)
		return -1;
	int np = shard_list(dir, &paths);
	if (np < 0)
		return -1;
	decoder *d = decoder_create(m, 1, POPE_MAX_BRANCHES);
	if (!d) {
		shard_list_free(paths, np);
		return -1;
	}
	double t0 = nb_now(), last = t0;
	int rc = 0;
	for (int f = 0; f < np && rc == 0; f++) {
		shard_reader *rd = shard_open(paths[f]);
		if (!rd) {
			rc = -1;
			break;
		}
		for (size_t i = 0; rc == 0 && i < shard_count(rd); i++) {
			shard_sample s;
			if (shard_get(rd, i, &s) < 0) {
				rc = -1;
				break;
			}
			pope_probe probes[2 * POPE_MAX_POSITIVES];
			int answer[2 * POPE_MAX_POSITIVES];
			int n = pope_probes(s.objects, probes);
			if (n == 0)
				continue;
			if (pope_image(d, cfg, s.image, s.objects, probes, n, answer) < 0) {
				char why[1024];
				snprintf(why, sizeof why, "%s", nb_errmsg());
				rc = nb_error("cannot probe shard '%s' sample %zu: %s", paths[f], i, why);
				break;
			}
			r->images++;
			for (int k = 0; k < n; k++) {
				int yes = answer[k];
				r->probes++;
				r->positives += probes[k].present;
				r->yes += yes;
				r->true_yes += yes && probes[k].present;
				r->correct += yes == probes[k].present;
			}
			double now = nb_now();
			if (progress && now - last >= 2.0) {
				last = now;
				fprintf(stderr, "%s: %ld images probed, %.1f img/s\n", progress, r->images,
					(double)r->images / (now - t0));
			}
		}
		shard_close(rd);
	}
	shard_list_free(paths, np);
	decoder_free(d);
	finish(r);
	return rc;
}
