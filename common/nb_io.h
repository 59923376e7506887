/* Small-file I/O shared by every command: a growable buffer, whole-file
 * reads, and atomic whole-file writes (the reliability contract: a reader
 * sees the old file or the complete new one, never a partial one). */
#ifndef NB_IO_H
#define NB_IO_H

#include <stddef.h>
#include <sys/types.h>

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

/* What a file of this st_mode is, for messages: "regular file", "FIFO",
 * "directory", "symbolic link", "character device", "block device",
 * "socket" (each takes the article "a"). */
const char *nb_file_kind(mode_t mode);

/* Opens path read-only if it is a regular file (symbolic links followed),
 * never blocking: a FIFO or a device is refused before it is opened, and
 * the open itself is non-blocking with a check of what was opened (for a
 * file swapped in between). The fd, or -1 with errno set and nb_error
 * "cannot open <what> 'x': <cause>" or "...: it is a FIFO, not a regular
 * file" (what NULL: "cannot open 'x': ..."). */
int nb_open_input(const char *path, const char *what);

/* nb_open_input, then close: 0 when path is a regular file that can be
 * opened, else -1 with the same nb_error. For inputs that another library
 * opens (HDF5, libpng), so that it never blocks on a FIFO. */
int nb_check_input(const char *path, const char *what);

/* Reads a whole regular file (nb_open_input) into a NUL-terminated buffer
 * (caller frees). NULL with errno set and nb_errmsg() naming what, the file
 * and the cause on failure. nb_read_file is nb_read_input with what NULL. */
char *nb_read_input(const char *path, const char *what, size_t *len);
char *nb_read_file(const char *path, size_t *len);

/* 0 when path does not exist or is a regular file: what an atomic write
 * may replace. Anything else (a FIFO, a device, a directory, a socket, a
 * symbolic link, which is not followed) is refused with nb_error "cannot
 * write 'x': it is a FIFO, not a regular file", so that a write never
 * turns a special file into a regular one. Called by nb_publish and
 * nb_write_file_atomic; callers that do long work before writing call it
 * first, to fail before the work. */
int nb_check_output(const char *path);

/* The temporary name of path for this process: "<dir>/.<name>.tmp.<pid>".
 * 0, or nb_error when it does not fit in n bytes. */
int nb_tmp_name(char *tmp, size_t n, const char *path);

/* The writer's pid of a temporary file name ".<name>.tmp.<pid>" (the last
 * ".tmp." tag), or -1 for any other name. */
long nb_tmp_owner(const char *name);

/* 1 when process pid runs on this host: it exists and is not a zombie (a
 * process that exited but was not reaped writes nothing more). */
int nb_pid_alive(long pid);

/* Removes dir's temporary files (nb_tmp_owner) whose writer is not alive:
 * leftovers of killed writers. A live writer's file stays. Returns how many
 * were removed, or -1 + nb_error when dir cannot be read. */
int nb_sweep_tmp(const char *dir);

/* The one atomic publish: makes the complete file `tmp` visible as `path`
 * (refused, as nb_check_output, when path is there and is not a regular
 * file). With durable, fsyncs tmp first and the directory after the rename, so a
 * crash leaves the old file or the new one. On failure tmp is removed and
 * the nb_error names path, the step that failed and the cause:
 * "cannot write 'x': rename of '.x.tmp.12' failed: ...". */
int nb_publish(const char *tmp, const char *path, int durable);

/* Writes data to nb_tmp_name(path), then nb_publish(durable). 0, or
 * nb_error naming the file and the cause (the temporary file is removed). */
int nb_write_file_atomic(const char *path, const void *data, size_t len);

/* Flushes stdout. 0, or nb_error "error writing standard output: <cause>"
 * when this flush or an earlier write to stdout failed (a full disk,
 * /dev/full, a closed pipe with SIGPIPE ignored). */
int nb_stdout_flush(void);
/* Flushes and closes stdout, at the end of main: 0 or nb_error as
 * nb_stdout_flush. */
int nb_stdout_close(void);

/* fsync of the directory holding path (makes a rename durable). 0 or nb_error. */
int nb_fsync_parent(const char *path);

/* mkdir -p: creates path and its missing parents (mode 0777 less umask).
 * 0 when path is, or now is, a directory; nb_error naming the component
 * and the cause otherwise (a file in the way, permissions, too long). */
int nb_mkdir_p(const char *path);

#endif
