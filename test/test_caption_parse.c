/* The caption parser: valid statements become tuples, every kind of
 * malformed statement is counted and skipped, and scene_caption's output
 * parses back to the ground truth it came from. */
#include <stdlib.h>
#include <string.h>

#include "common/scene.h"
#include "labeler/caption_parse.h"
#include "common/vocab.h"
#include "test_util.h"

static caption_stats parse(const char *text, caption_tuple **t)
{
	caption_stats st;
	caption_parse_text(text, t, &st);
	return st;
}

static void check_counts(const char *text, int statements, int malformed, int ntuples)
{
	caption_tuple *t;
	caption_stats st = parse(text, &t);
	CHECK_MSG(st.statements == statements && st.malformed == malformed && st.ntuples == ntuples,
		  "'%s': got %d statements, %d malformed, %d tuples; expected %d, %d, %d", text, st.statements,
		  st.malformed, st.ntuples, statements, malformed, ntuples);
	CHECK(st.ntuples == st.statements - st.malformed);
	free(t);
}

static void test_valid(void)
{
	caption_tuple *t;
	caption_stats st = parse("small red circle top left . large blue square middle center .", &t);
	CHECK(st.statements == 2 && st.malformed == 0 && st.ntuples == 2);
	/* small=0 red=0 circle=0 cell 0*3+0; large=1 blue=2 square=1 cell 1*3+1 = 4 */
	CHECK(t[0].size == 0 && t[0].color == 0 && t[0].shape == 0 && t[0].cell == 0);
	CHECK(t[1].size == 1 && t[1].color == 2 && t[1].shape == 1 && t[1].cell == 4);
	CHECK(caption_tuple_code(&t[1]) == scene_obj_code(1, 2, 1));
	free(t);

	/* bottom right = cell 8; orange = 7, ring = 5 */
	st = parse("  large\torange ring\nbottom   right.", &t);
	CHECK(st.ntuples == 1 && t[0].size == 1 && t[0].color == 7 && t[0].shape == 5 && t[0].cell == 8);
	free(t);
}

static void test_malformed(void)
{
	check_counts("", 0, 0, 0);
	check_counts("   \n\t ", 0, 0, 0);
	check_counts("small red circle top left", 1, 1, 0);             /* no closing "." */
	check_counts("small red circle top left . small red", 2, 1, 1);  /* trailing words */
	check_counts("small red blob top left .", 1, 1, 0);             /* unknown word */
	check_counts("red small circle top left .", 1, 1, 0);           /* wrong slot order */
	check_counts("small red circle top .", 1, 1, 0);                /* too few words */
	check_counts("small red circle top left right .", 1, 1, 0);     /* too many words */
	check_counts(". .", 2, 2, 0);                                   /* empty statements */
	check_counts("small red circle top left . . large red circle top left .", 3, 1, 2);
	check_counts("<eos> red circle top left .", 1, 1, 0);            /* specials are not words */
	check_counts("SMALL red circle top left .", 1, 1, 0);           /* words as written: case matters */
	check_counts("small red circle top left .small red circle top left.", 2, 0, 2);
}

static void test_tokens(void)
{
	caption_stats st;
	caption_tuple t[4];
	/* large(6) green(8) cross(18) middle(22) right(26) . */
	uint16_t ok[] = {6, 8, 18, 22, 26, VOCAB_DOT};
	caption_parse_tokens(ok, 6, t, 4, &st);
	CHECK(st.ntuples == 1 && t[0].size == 1 && t[0].color == 1 && t[0].shape == 3 && t[0].cell == 5);

	uint16_t eos[] = {6, 8, VOCAB_EOS, 22, 26, VOCAB_DOT};
	caption_parse_tokens(eos, 6, t, 4, &st);
	CHECK(st.statements == 1 && st.malformed == 1 && st.ntuples == 0);

	uint16_t wild[] = {6, 8, 18, 22, 60000, VOCAB_DOT, 6, 8, 18, 22, 26, VOCAB_DOT};
	caption_parse_tokens(wild, 12, t, 4, &st);
	CHECK(st.statements == 2 && st.malformed == 1 && st.ntuples == 1);

	/* More valid statements than room: counted, only max written. */
	uint16_t three[18];
	for (int i = 0; i < 18; i++)
		three[i] = ok[i % 6];
	caption_parse_tokens(three, 18, t, 2, &st);
	CHECK(st.ntuples == 3 && st.statements == 3);
	caption_parse_tokens(three, 18, NULL, 0, &st);
	CHECK(st.ntuples == 3);
	caption_parse_tokens(three, 0, NULL, 0, &st);
	CHECK(st.statements == 0 && st.ntuples == 0);
}

static void test_tokenize(void)
{
	uint16_t ids[8];
	int n = caption_tokenize("small red. zzz", ids, 8);
	CHECK(n == 4 && ids[0] == VOCAB_SIZE0 && ids[1] == VOCAB_COLOR0 && ids[2] == VOCAB_DOT && ids[3] == VOCAB_UNK);
	/* Truncation reports the full count. */
	n = caption_tokenize("a b c d e f g h i j", ids, 3);
	CHECK(n == 10);
	CHECK(caption_tokenize("", ids, 8) == 0);
	/* Specials written as text are unknown words, not the special tokens. */
	n = caption_tokenize("<eos> <pad> <bos> <unk>", ids, 8);
	CHECK(n == 4 && ids[0] == VOCAB_UNK && ids[1] == VOCAB_UNK && ids[2] == VOCAB_UNK && ids[3] == VOCAB_UNK);
}

/* Every scene_caption parses back to exactly its cells. */
static void test_roundtrip(void)
{
	uint64_t s = 12345;
	int bad = 0;
	for (int iter = 0; iter < 2000; iter++) {
		uint8_t cells[SCENE_CELLS];
		int placed = 0;
		for (int c = 0; c < SCENE_CELLS; c++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			int r = (int)((s >> 33) % 200);
			/* Scenes hold at most SCENE_MAX_OBJECTS: scene_caption's bound. */
			cells[c] = r < SCENE_MAX_CODE && placed < SCENE_MAX_OBJECTS ? (uint8_t)(r + 1) : 0;
			placed += cells[c] != 0;
		}
		char buf[256];
		CHECK(scene_caption(cells, buf, sizeof buf) >= 0);
		caption_tuple *t;
		caption_stats st = parse(buf, &t);
		uint8_t back[SCENE_CELLS] = {0};
		for (int i = 0; i < st.ntuples; i++)
			back[t[i].cell] = caption_tuple_code(&t[i]);
		if (st.malformed != 0 || memcmp(back, cells, SCENE_CELLS) != 0)
			bad++;
		free(t);
	}
	CHECK_MSG(bad == 0, "%d of 2000 scene captions did not parse back", bad);
}

int main(void)
{
	test_valid();
	test_malformed();
	test_tokens();
	test_tokenize();
	test_roundtrip();
	return test_summary("test_caption_parse");
}
