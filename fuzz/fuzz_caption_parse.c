/* libFuzzer target: the caption parser and the metrics on arbitrary text.
 * The first 9 bytes are the ground-truth cells (any byte: out-of-range codes
 * must be ignored, not crash), the rest is the caption. Besides memory
 * safety it checks the parser's and metrics' invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labeler/caption_parse.h"
#include "labeler/metrics.h"

#define REQUIRE(c) \
	do {           \
		if (!(c))  \
			abort(); \
	} while (0)

static int unit(double x) { return x >= 0 && x <= 1 + 1e-12; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t cells[SCENE_CELLS] = {0};
	size_t nc = size < SCENE_CELLS ? size : SCENE_CELLS;
	memcpy(cells, data, nc);
	char *text = malloc(size - nc + 1);
	memcpy(text, data + nc, size - nc);
	text[size - nc] = '\0';

	caption_tuple *t;
	caption_stats st;
	caption_parse_text(text, &t, &st);
	REQUIRE(st.statements >= 0 && st.malformed >= 0 && st.ntuples == st.statements - st.malformed);
	for (int i = 0; i < st.ntuples; i++)
		REQUIRE(t[i].size < SCENE_SIZES && t[i].color < SCENE_COLORS && t[i].shape < SCENE_SHAPES &&
			t[i].cell < SCENE_CELLS);
	free(t);

	uint16_t ids[8];
	int n = caption_tokenize(text, ids, 8);
	REQUIRE(n >= 0);

	metrics_acc *a = metrics_new();
	metrics_add(a, text, cells);
	metrics_add(a, "small red circle top left .", cells);
	metrics_result r;
	metrics_finish(a, &r);
	metrics_free(a);
	REQUIRE(r.captions == 2 && r.malformed >= st.malformed);
	REQUIRE(unit(r.chair_i) && unit(r.chair_s) && unit(r.recall) && unit(r.tuple_p) && unit(r.tuple_r) &&
		unit(r.tuple_f1));
	for (int k = 0; k < 4; k++)
		REQUIRE(unit(r.bleu[k]));
	REQUIRE(r.cider_d >= 0 && r.cider_d <= 10 + 1e-9);
	free(text);
	return 0;
}
