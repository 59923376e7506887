/* The caption vocabulary: the words of the scene grammar plus specials.
 * Token ids are stable (they are stored in caption shards as uint16, and the
 * vocabulary digest is stored beside them to catch a mismatch).
 *
 *   0 <pad>  1 <bos>  2 <eos>  3 <unk>  4 "."
 *   5..6 sizes, 7..14 colors, 15..20 shapes, 21..23 rows, 24..26 columns */
#ifndef NB_VOCAB_H
#define NB_VOCAB_H

#include <stdint.h>

enum {
	VOCAB_PAD = 0, VOCAB_BOS = 1, VOCAB_EOS = 2, VOCAB_UNK = 3, VOCAB_DOT = 4,
	VOCAB_SIZE0 = 5, VOCAB_COLOR0 = 7, VOCAB_SHAPE0 = 15, VOCAB_ROW0 = 21, VOCAB_COL0 = 24,
	VOCAB_SIZE = 27
};

const char *vocab_word(int id);          /* "<unk>" for ids out of range */
int vocab_id(const char *word, int len); /* VOCAB_UNK for unknown words */
/* Splits text on whitespace into ids (no bos/eos added). Writes at most max
 * ids; returns the number of words seen (may exceed max: caller checks). */
int vocab_encode(const char *text, uint16_t *ids, int max);
/* Joins ids with single spaces, stopping at <eos>; skips <pad> and <bos>.
 * Returns the length written (truncates to bufsize-1). */
int vocab_decode(const uint16_t *ids, int n, char *buf, int bufsize);
/* 16 hex digits identifying the word list, stored in shards and checkpoints. */
const char *vocab_digest(void);
/* The same digest of any word list (words[0..n)), for checking a /vocab
 * stored in a file against its vocab_digest attribute. */
void vocab_digest_of(const char *const *words, int n, char out[17]);

#endif
