#include "common/vocab.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const words[VOCAB_SIZE] = {
	"<pad>", "<bos>", "<eos>", "<unk>", ".",
	"small", "large",
	"red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange",
	"circle", "square", "triangle", "cross", "diamond", "ring",
	"top", "middle", "bottom",
	"left", "center", "right",
};

const char *vocab_word(int id)
{
	return (id >= 0 && id < VOCAB_SIZE) ? words[id] : words[VOCAB_UNK];
}

int vocab_id(const char *word, int len)
{
	for (int i = 0; i < VOCAB_SIZE; i++)
		if ((int)strlen(words[i]) == len && memcmp(words[i], word, (size_t)len) == 0)
			return i;
	return VOCAB_UNK;
}

int vocab_encode(const char *text, uint16_t *ids, int max)
{
	int n = 0;
	const char *p = text;
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (n < max)
			ids[n] = (uint16_t)vocab_id(w, (int)(p - w));
		n++;
	}
	return n;
}

int vocab_decode(const uint16_t *ids, int n, char *buf, int bufsize)
{
	int at = 0;
	if (bufsize < 1)
		return 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (ids[i] == VOCAB_EOS)
			break;
		if (ids[i] == VOCAB_PAD || ids[i] == VOCAB_BOS)
			continue;
		const char *w = vocab_word(ids[i]);
		int k = snprintf(buf + at, (size_t)(bufsize - at), "%s%s", at ? " " : "", w);
		if (k < 0 || k >= bufsize - at) {
			buf[at] = '\0';
			break;
		}
		at += k;
	}
	return at;
}

void vocab_digest_of(const char *const *w, int n, char out[17])
{
	/* FNV-1a over the words joined by newlines (each one followed by one). */
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < n; i++) {
		for (const char *c = w[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
		h = (h ^ '\n') * 0x100000001b3ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

const char *vocab_digest(void)
{
	static char hex[17];
	/* Computed, not cached in a mutable flag, so it stays correct and
	 * race-free. */
	char tmp[17];
	vocab_digest_of(words, VOCAB_SIZE, tmp);
	memcpy(hex, tmp, sizeof tmp);
	return hex;
}
