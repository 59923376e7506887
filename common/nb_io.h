/* Small-file I/O shared by every command: a growable buffer, whole-file
 * reads, and atomic whole-file writes (the reliability contract: a reader
 * sees the old file or the complete new one, never a partial one). */
#ifndef NB_IO_H
#define NB_IO_H

#include <stddef.h>

#include "common/nb_error.h"

/* A growable byte buffer, NUL-terminated after every append once non-empty.
 * Zero-initialise it; free data with free(). Single-threaded. */
typedef struct {
	char *data;
	size_t len, cap;
} nb_buf;

void nb_buf_add(nb_buf *b, const void *s, size_t n);
void nb_buf_adds(nb_buf *b, const char *s);
/* printf-append. The arguments must not point into b (it may move). */
void nb_buf_addf(nb_buf *b, const char *fmt, ...) NB_PRINTF(2, 3);

/* The one growth rule for arrays: makes room for `need` elements in
 * `ptr` (capacity `cap`, both lvalues), doubling from at least `min`.
 * Dies on allocation failure, like nb_xrealloc. */
#define NB_GROW(ptr, cap, need, min)                                                         \
	do {                                                                                 \
		if ((size_t)(need) > (size_t)(cap)) {                                        \
			size_t nb_grow_c_ = (cap) ? (size_t)(cap) : (size_t)(min);           \
			while (nb_grow_c_ < (size_t)(need))                                  \
				nb_grow_c_ *= 2;                                             \
			(ptr) = nb_xrealloc((ptr), nb_grow_c_ * sizeof *(ptr));              \
			(cap) = nb_grow_c_;                                                  \
		}                                                                            \
	} while (0)

/* Reads a whole file into a NUL-terminated buffer (caller frees). NULL with
 * errno set and nb_errmsg() naming the file and the cause on failure. */
char *nb_read_file(const char *path, size_t *len);

/* The temporary name of path for this process: "<dir>/.<name>.tmp.<pid>".
 * 0, or nb_error when it does not fit in n bytes. */
int nb_tmp_name(char *tmp, size_t n, const char *path);

/* The one atomic publish: makes the complete file `tmp` visible as `path`.
 * With durable, fsyncs tmp first and the directory after the rename, so a
 * crash leaves the old file or the new one. On failure tmp is removed and
 * the nb_error names path, the step that failed and the cause:
 * "cannot write 'x': rename of '.x.tmp.12' failed: ...". */
int nb_publish(const char *tmp, const char *path, int durable);

/* Writes data to nb_tmp_name(path), then nb_publish(durable). 0, or
 * nb_error naming the file and the cause (the temporary file is removed). */
int nb_write_file_atomic(const char *path, const void *data, size_t len);

/* fsync of the directory holding path (makes a rename durable). 0 or nb_error. */
int nb_fsync_parent(const char *path);

/* mkdir -p: creates path and its missing parents (mode 0777 less umask).
 * 0 when path is, or now is, a directory; nb_error naming the component
 * and the cause otherwise (a file in the way, permissions, too long). */
int nb_mkdir_p(const char *path);

#endif
