/* Error reporting, in git's manner:
 *   nb_die()   fatal error: prints "nboost: fatal: <msg>" and exits 1;
 *   nb_error() recoverable error: records the message and returns -1, so a
 *              library function can write `return nb_error(...)`. The caller
 *              reads the message with nb_errmsg() and decides what to print;
 *   NB_BUG()   a broken internal invariant: prints file and line, aborts.
 * Messages state the failing thing first, in lowercase with no full stop, and
 * name the file or the value: "cannot open shard 'x.h5': wrong schema 'foo'".
 * A message longer than 2 KiB keeps its start and its end, where the cause
 * is, with "..." for the middle (a 4,000-byte path never hides the cause).
 * The message buffer is thread-local (like errno), so ranks' threads and the
 * library never share mutable error state. */
#ifndef NB_ERROR_H
#define NB_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define NB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NB_NORETURN __attribute__((noreturn))
#else
#define NB_PRINTF(a, b)
#define NB_NORETURN
#endif

NB_NORETURN void nb_die(const char *fmt, ...) NB_PRINTF(1, 2);
int nb_error(const char *fmt, ...) NB_PRINTF(1, 2);
/* The last message recorded by nb_error() in this thread ("" if none). */
const char *nb_errmsg(void);
void nb_errclear(void);
/* Prints "nboost: warning: <msg>" to stderr. */
void nb_warn(const char *fmt, ...) NB_PRINTF(1, 2);
NB_NORETURN void nb_bug(const char *file, int line, const char *fmt, ...) NB_PRINTF(3, 4);
#define NB_BUG(...) nb_bug(__FILE__, __LINE__, __VA_ARGS__)

#define NB_EXIT_STOPPED 75

/* Checked allocation: die with the size and the call site on failure. */
void *nb_malloc_at(size_t n, const char *file, int line);
void *nb_calloc_at(size_t n, size_t size, const char *file, int line);
void *nb_realloc_at(void *p, size_t n, const char *file, int line);
char *nb_strdup_at(const char *s, const char *file, int line);
#define nb_xmalloc(n) nb_malloc_at((n), __FILE__, __LINE__)
#define nb_xcalloc(n, s) nb_calloc_at((n), (s), __FILE__, __LINE__)
#define nb_xrealloc(p, n) nb_realloc_at((p), (n), __FILE__, __LINE__)
#define nb_xstrdup(s) nb_strdup_at((s), __FILE__, __LINE__)

#endif
