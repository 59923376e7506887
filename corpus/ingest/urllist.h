/* URL lists as corpora arrive: LAION-style TSV or CSV with a header row
 * naming a url column (and optionally caption/text and key/id columns; CSV
 * fields may be quoted, with "" for a quote and embedded newlines), JSONL
 * with one object per line ({"url": ..., "caption": ...}), or a bare list of
 * URLs, one a line. The format comes from the extension (.tsv, .csv, and
 * .jsonl/.json/.ndjson) and, for any other name (.txt included), from the
 * content.
 *
 * A malformed record does not stop parsing: it becomes an entry with bad set
 * (status bad_line), so every input record keeps its place and its status.
 * Blank lines are skipped. Only a file that cannot be read at all, or a
 * header without a url column, is an error.
 *
 * A list may be gzip-compressed (one or more gzip members, detected by the
 * magic bytes 1f 8b, whatever its name; "x.tsv.gz" takes its format from
 * ".tsv"); damaged gzip data is an error naming the list and the cause.
 *
 * Extra columns: urllist_parse_cols keeps, for every record, the text of
 * the named columns (TSV/CSV header names, case-insensitive; JSONL keys,
 * whose string values are unescaped and other values kept as written; ""
 * when a JSONL record lacks the key). A header without one of them is an
 * error; a bare list has no columns. Not thread-safe per list; lists
 * are independent. */
#ifndef NB_URLLIST_H
#define NB_URLLIST_H

#include <stddef.h>

typedef enum { URLLIST_AUTO = 0, URLLIST_TSV, URLLIST_CSV, URLLIST_JSONL, URLLIST_PLAIN } urllist_format;

typedef struct {
	long line;        /* 1-based line where the record starts */
	char *url;        /* "" when bad */
	char *caption;    /* "" when absent */
	char *key;        /* "" when absent */
	const char *bad;  /* NULL, or a static reason ("unterminated quote", ...) */
	char **extra;     /* ncols strings (owned), NULL when ncols is 0 */
} urllist_entry;

typedef struct {
	urllist_entry *e; /* n entries in file order, owned: urllist_free() */
	size_t n;
	urllist_format format;
	char **cols;      /* names of the kept columns, ncols, owned */
	int ncols;
} urllist;

/* "tsv" "csv" "jsonl" "plain" */
const char *urllist_format_name(urllist_format f);
/* Parses len bytes (need not be NUL-terminated). name is used in messages
 * and, with URLLIST_AUTO, for the extension. 0 or nb_error. */
int urllist_parse(const char *buf, size_t len, const char *name, urllist_format fmt, urllist *out);
/* Reads and parses a file. 0 or nb_error naming the file. */
int urllist_load(const char *path, urllist_format fmt, urllist *out);
/* As urllist_parse/urllist_load, also keeping the columns named in keep
 * (comma-separated, NULL or "" for none; names are trimmed, and must be
 * distinct and non-empty). */
int urllist_parse_cols(const char *buf, size_t len, const char *name, urllist_format fmt, const char *keep,
		       urllist *out);
int urllist_load_cols(const char *path, urllist_format fmt, const char *keep, urllist *out);
void urllist_free(urllist *l);

#endif
