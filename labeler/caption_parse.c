#include "labeler/caption_parse.h"

#include <stdlib.h>

#include "common/nb_error.h"
#include "common/scene.h"
#include "common/vocab.h"

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int caption_tokenize(const char *text, uint16_t *ids, int max)
{
	int n = 0;
	const char *p = text;
	while (*p) {
		if (is_space(*p)) {
			p++;
			continue;
		}
		int id;
		if (*p == '.') {
			id = VOCAB_DOT;
			p++;
		} else {
			const char *w = p;
			while (*p && !is_space(*p) && *p != '.')
				p++;
			id = vocab_id(w, (int)(p - w));
			/* Specials written as text ("<eos>") are not caption words. */
			if (id < VOCAB_DOT)
				id = VOCAB_UNK;
		}
		if (n < max)
			ids[n] = (uint16_t)id;
		if (n < (1 << 30))
			n++;
	}
	return n;
}

/* Value of `id` within the vocabulary range [first, first + count), or -1. */
static int slot(int id, int first, int count)
{
	return id >= first && id < first + count ? id - first : -1;
}

static int statement_tuple(const uint16_t *w, int nw, caption_tuple *t)
{
	if (nw != 5)
		return -1;
	int size = slot(w[0], VOCAB_SIZE0, SCENE_SIZES);
	int color = slot(w[1], VOCAB_COLOR0, SCENE_COLORS);
	int shape = slot(w[2], VOCAB_SHAPE0, SCENE_SHAPES);
	int row = slot(w[3], VOCAB_ROW0, SCENE_ROWS);
	int col = slot(w[4], VOCAB_COL0, SCENE_COLS);
	if (size < 0 || color < 0 || shape < 0 || row < 0 || col < 0)
		return -1;
	t->size = (uint8_t)size;
	t->color = (uint8_t)color;
	t->shape = (uint8_t)shape;
	t->cell = (uint8_t)(row * SCENE_COLS + col);
	return 0;
}

void caption_parse_tokens(const uint16_t *ids, int n, caption_tuple *tuples, int max, caption_stats *st)
{
	st->statements = st->malformed = st->ntuples = 0;
	int start = 0;
	for (int i = 0; i <= n; i++) {
		int end_of_statement = i < n && ids[i] == VOCAB_DOT;
		int trailing = i == n && start < n;
		if (!end_of_statement && !trailing)
			continue;
		caption_tuple t;
		st->statements++;
		/* A trailing statement lacks its "." and is malformed whatever its words. */
		if (trailing || statement_tuple(ids + start, i - start, &t) < 0) {
			st->malformed++;
		} else {
			if (st->ntuples < max)
				tuples[st->ntuples] = t;
			st->ntuples++;
		}
		start = i + 1;
	}
}

void caption_parse_text(const char *text, caption_tuple **tuples, caption_stats *st)
{
	uint16_t small[256];
	uint16_t *ids = small;
	int n = caption_tokenize(text, small, 256);
	if (n > 256) {
		ids = nb_xmalloc((size_t)n * sizeof(*ids));
		caption_tokenize(text, ids, n);
	}
	/* At most one tuple per 6 tokens: size the array by the token count. */
	int max = n / 6 + 1;
	*tuples = nb_xmalloc((size_t)max * sizeof(**tuples));
	caption_parse_tokens(ids, n, *tuples, max, st);
	if (st->ntuples == 0) {
		free(*tuples);
		*tuples = NULL;
	}
	if (ids != small)
		free(ids);
}

uint8_t caption_tuple_code(const caption_tuple *t)
{
	return scene_obj_code(t->size, t->color, t->shape);
}
