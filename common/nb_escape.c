#include "common/nb_escape.h"

#include <string.h>

#include "common/nb_error.h"

/* Bytes in the valid UTF-8 sequence (2 to 4) starting a multi-byte
 * character at s[0..n), or 0 when s does not start one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* The escaping of what starts at s[0..n) (n > 0) into out (at least 9
 * bytes, NUL-terminated); returns the input bytes it covers. */
static size_t escape_one(const unsigned char *s, size_t n, char out[9])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = s[0];
	const char *named = c == '\\' ? "\\\\" : c == '\t' ? "\\t" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : NULL;
	if (named) {
		strcpy(out, named);
		return 1;
	}
	if (c >= 0x20 && c < 0x7f) {
		out[0] = (char)c, out[1] = '\0';
		return 1;
	}
	size_t len = c >= 0x80 ? utf8_seq(s, n) : 0;
	/* A C1 control is two bytes, both written out: \xc2\x80 .. \xc2\x9f. */
	if (len == 2 && c == 0xc2 && s[1] <= 0x9f) {
		char *o = out;
		for (int i = 0; i < 2; i++)
			*o++ = '\\', *o++ = 'x', *o++ = hex[s[i] >> 4], *o++ = hex[s[i] & 15];
		*o = '\0';
		return 2;
	}
	if (len) {
		memcpy(out, s, len);
		out[len] = '\0';
		return len;
	}
	out[0] = '\\', out[1] = 'x', out[2] = hex[c >> 4], out[3] = hex[c & 15], out[4] = '\0';
	return 1;
}

void nb_buf_add_escaped(nb_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char e[9];
	nb_buf_add(b, "", 0);
	for (size_t i = 0; i < n;) {
		i += escape_one(p + i, n - i, e);
		nb_buf_adds(b, e);
	}
}

void nb_fput_escaped(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	char e[9];
	for (size_t i = 0; i < n;) {
		i += escape_one(p + i, n - i, e);
		fputs(e, f);
	}
}

const char *nb_quote(char *buf, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), at = 0, total = 0;
	char e[9];
	for (size_t i = 0; i < n;) {
		i += escape_one(p + i, n - i, e);
		total += strlen(e);
	}
	/* When it does not all fit, keep room for "..." after the last whole escape. */
	size_t room = total < cap ? cap - 1 : cap - 4;
	buf[0] = '\0';
	for (size_t i = 0; i < n;) {
		size_t used = escape_one(p + i, n - i, e), el = strlen(e);
		if (at + el > room) {
			strcpy(buf + at, "...");
			return buf;
		}
		memcpy(buf + at, e, el + 1);
		at += el;
		i += used;
	}
	return buf;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nb_unescape(char *s, size_t n, size_t *len, size_t *at)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			s[out++] = s[i];
			continue;
		}
		*at = i;
		if (i + 1 == n)
			return nb_error("bad escape '\\' at the end");
		char c = s[i + 1];
		if (c == '\\' || c == 't' || c == 'n' || c == 'r') {
			s[out++] = c == '\\' ? '\\' : c == 't' ? '\t' : c == 'n' ? '\n' : '\r';
			i++;
			continue;
		}
		int h = -1, l = -1;
		if (c == 'x' && i + 3 < n)
			h = hex_digit(s[i + 2]), l = hex_digit(s[i + 3]);
		if (h < 0 || l < 0) {
			/* What follows the backslash, escaped itself for the message. */
			size_t k = c == 'x' ? (n - i - 1 < 3 ? n - i - 1 : 3) : 1;
			char raw[4], q[48];
			memcpy(raw, s + i + 1, k);
			raw[k] = '\0';
			return nb_error("bad escape '\\%s' (expected \\\\, \\t, \\n, \\r or \\xNN)",
					nb_quote(q, sizeof q, raw));
		}
		if (h == 0 && l == 0)
			return nb_error("bad escape '\\x00' (a NUL byte)");
		s[out++] = (char)(h * 16 + l);
		i += 3;
	}
	s[out] = '\0';
	*len = out;
	return 0;
}
