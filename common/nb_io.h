/* Small-file I/O shared by every command: a growable buffer, whole-file
 * reads, and atomic whole-file writes (the reliability contract: a reader
 * sees the old file or the complete new one, never a partial one). */
#ifndef NB_IO_H
#define NB_IO_H

#include <stddef.h>

/* A growable byte buffer, NUL-terminated after every append once non-empty.
 * Zero-initialise it; free data with free(). Single-threaded. */
typedef struct {
	char *data;
	size_t len, cap;
} nb_buf;

void nb_buf_add(nb_buf *b, const void *s, size_t n);
void nb_buf_adds(nb_buf *b, const char *s);

/* Reads a whole file into a NUL-terminated buffer (caller frees). NULL with
 * errno set and nb_errmsg() naming the file and the cause on failure. */
char *nb_read_file(const char *path, size_t *len);

/* Writes data to "<dir>/.<name>.tmp.<pid>", fsyncs it, renames it to path
 * and fsyncs the directory. 0, or nb_error naming the file and the cause
 * (the temporary file is removed). */
int nb_write_file_atomic(const char *path, const void *data, size_t len);

/* fsync of the directory holding path (makes a rename durable). 0 or nb_error. */
int nb_fsync_parent(const char *path);

/* mkdir -p: creates path and its missing parents (mode 0777 less umask).
 * 0 when path is, or now is, a directory; nb_error naming the component
 * and the cause otherwise (a file in the way, permissions, too long). */
int nb_mkdir_p(const char *path);

#endif
