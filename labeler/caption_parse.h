/* The caption parser: caption words -> statements -> object tuples.
 *
 * A caption is a sequence of statements, each ended by ".". A valid statement
 * is exactly "<size> <color> <shape> <row> <column>" in the words of the
 * scene grammar (common/scene.h, common/vocab.h). The parser is tolerant:
 * a statement with the wrong number of words, a word in the wrong slot, an
 * unknown word, an empty statement (a "." with no words before it) or
 * trailing words with no closing "." is counted as malformed and skipped.
 *
 * Text is tokenised by caption_tokenize: words are split on whitespace and
 * every "." is a token of its own ("left." is "left" "."). Words outside the
 * vocabulary become VOCAB_UNK. Token arrays are words only; <pad>, <bos>,
 * <eos> and <unk> inside them count as unknown words.
 *
 * Pure functions on caller memory; no allocation except where stated;
 * thread-safe. */
#ifndef NB_CAPTION_PARSE_H
#define NB_CAPTION_PARSE_H

#include <stdint.h>

/* One object statement. cell is row * SCENE_COLS + column, 0..8, the index
 * into the ground-truth cells[] of common/scene.h. */
typedef struct {
	uint8_t size, color, shape, cell;
} caption_tuple;

typedef struct {
	int statements;              /* all statements, valid and malformed */
	int malformed;               /* statements skipped */
	int ntuples;                 /* valid statements = statements - malformed */
} caption_stats;

/* Tokenises text into vocabulary ids (see above). Writes at most max ids;
 * returns the number of tokens (may exceed max: the caller checks). */
int caption_tokenize(const char *text, uint16_t *ids, int max);

/* Parses ids[0..n). Writes at most max tuples in caption order (tuples may be
 * NULL when max is 0) and fills *st (st->ntuples may exceed max). */
void caption_parse_tokens(const uint16_t *ids, int n, caption_tuple *tuples, int max, caption_stats *st);

/* Tokenises and parses text. Allocates the tuples: *tuples is malloc'ed
 * (NULL when there are none; the caller frees). Dies only on out-of-memory. */
void caption_parse_text(const char *text, caption_tuple **tuples, caption_stats *st);

/* The ground-truth code (common/scene.h scene_obj_code) of a tuple. */
uint8_t caption_tuple_code(const caption_tuple *t);

#endif
