/* The one escaping of text that comes from files (shard sources, captions,
 * job-file lines) on its way to a terminal, a message or a TSV field
 * (docs/guarantees.md, "Output escaping"; schemas/captions_tsv.md):
 *
 *   backslash -> \\      TAB -> \t      LF -> \n      CR -> \r
 *   any other byte 0x00-0x1f, and 0x7f     -> \xNN (two lowercase hex digits)
 *   a byte that is not part of valid UTF-8 -> \xNN
 *   a C1 control (U+0080-U+009F)           -> \xc2\xNN (its two bytes)
 *   everything else (printable ASCII, valid UTF-8) is kept as it is.
 *
 * The result holds no control character, so no TAB or newline (a TSV field
 * stays one field on one line) and no terminal escape sequence, and
 * nb_unescape gives back the original bytes exactly. */
#ifndef NB_ESCAPE_H
#define NB_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

#include "common/nb_io.h"

/* Appends the escaping of the n bytes at s to b. */
void nb_buf_add_escaped(nb_buf *b, const char *s, size_t n);

/* Writes the escaping of the string s to f (for printers). */
void nb_fput_escaped(FILE *f, const char *s);

/* The escaping of the string s in buf (cap >= 16 bytes), cut at a whole
 * escape with "..." at the end when it does not fit: for quoting file
 * content in a message. Returns buf. */
const char *nb_quote(char *buf, size_t cap, const char *s);

/* Undoes the escaping of s[0..n) in place: *len bytes remain, followed by
 * a NUL. 0, or -1 with nb_error naming the bad escape ("bad escape '\q'",
 * "bad escape '\x00' (a NUL byte)", "bad escape '\' at the end") and *at
 * set to its offset in s. A byte that needs no escape is kept, whatever it
 * is: checking for raw TABs or control characters is the caller's rule. */
int nb_unescape(char *s, size_t n, size_t *len, size_t *at);

#endif
