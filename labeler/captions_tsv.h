/* The captions TSV (schemas/captions_tsv.md): one "id<TAB>caption" line
 * per image, as written by `nboost eval --write-gt` and `--out-captions` and
 * read by `nboost eval --captions`. The id is a decimal unsigned 64-bit
 * integer; the caption is the rest of the line (it may be empty), escaped
 * as common/nb_escape.h says (\\, \t, \n, \r, \xNN), and the reader undoes
 * the escaping, so a caption round-trips exactly. Lines end in LF or CRLF,
 * the last one may lack it; a UTF-8 byte-order mark at the start of the file
 * is skipped. Empty lines, NUL bytes, a TAB inside the caption, a bad escape
 * and duplicate ids are errors. Only a regular file is read (never a FIFO). */
#ifndef NB_LABELER_CAPTIONS_TSV_H
#define NB_LABELER_CAPTIONS_TSV_H

#include <stddef.h>
#include <stdint.h>

#include "common/nb_io.h"

typedef struct {
	uint64_t id;
	long line;  /* 1-based line number in the file */
	char *text; /* the caption, NUL-terminated, in the parsed buffer */
} captions_tsv_row;

typedef struct {
	captions_tsv_row *rows; /* sorted by id, ids unique */
	long n;
	char *buf;              /* the file's text (captions_tsv_read), or NULL */
} captions_tsv;

/* Reads and parses the file at path. 0, or nb_error naming the file, and
 * the line and the cause for bad content ("captions 'x.tsv' line 3: ..."). */
int captions_tsv_read(const char *path, captions_tsv *t);

/* Parses len bytes of data in place: it writes NULs over the line ends and
 * at data[len], so data must hold len + 1 bytes (nb_read_file's buffers
 * do). The rows point into data, which the caller keeps and frees; t->buf
 * is NULL. name is the file name for messages. 0 or nb_error as
 * captions_tsv_read. */
int captions_tsv_parse(const char *name, char *data, size_t len, captions_tsv *t);

/* Appends the line "id<TAB>caption<LF>" to b, the caption escaped: what
 * the writers of the format use, so that the reader gets it back. */
void captions_tsv_add(nb_buf *b, uint64_t id, const char *caption);

/* Frees the rows (and the buffer of captions_tsv_read); t is zeroed. */
void captions_tsv_free(captions_tsv *t);

#endif
