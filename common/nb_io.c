#include "common/nb_io.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"

void nb_buf_add(nb_buf *b, const void *s, size_t n)
{
	NB_GROW(b->data, b->cap, b->len + n + 1, 256);
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void nb_buf_adds(nb_buf *b, const char *s) { nb_buf_add(b, s, strlen(s)); }

void nb_buf_addf(nb_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		NB_BUG("nb_buf_addf: bad format '%s'", fmt);
	NB_GROW(b->data, b->cap, b->len + (size_t)n + 1, 256);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *nb_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		nb_error("cannot open '%s': %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	nb_buf b = {0};
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		nb_buf_add(&b, chunk, n);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(b.data);
		nb_error("cannot read '%s': read error", path);
		errno = EIO;
		return NULL;
	}
	nb_buf_add(&b, "", 0);
	*len = b.len;
	return b.data;
}

static int make_one_dir(const char *path)
{
	if (mkdir(path, 0777) == 0)
		return 0;
	int e = errno;
	struct stat st;
	if (e == EEXIST && stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		return nb_error("cannot create directory '%s': a file of that name exists", path);
	}
	return nb_error("cannot create directory '%s': %s", path, strerror(e));
}

int nb_mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0)
		return nb_error("cannot create a directory with an empty name");
	if (n >= sizeof buf)
		return nb_error("cannot create directory '%.64s...': path too long", path);
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (size_t i = 1; i < n; i++) {
		if (buf[i] != '/' || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		int rc = make_one_dir(buf);
		buf[i] = '/';
		if (rc < 0)
			return -1;
	}
	return make_one_dir(buf);
}

int nb_fsync_parent(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= (int)sizeof dir)
		return nb_error("cannot sync the directory of '%s': path too long", path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return nb_error("cannot open directory '%s': %s", dir, strerror(errno));
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	/* Some file systems refuse fsync on directories; the rename stands. */
	if (rc < 0 && e != EINVAL && e != EROFS)
		return nb_error("cannot sync directory '%s': %s", dir, strerror(e));
	return 0;
}

int nb_tmp_name(char *tmp, size_t n, const char *path)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	int k = snprintf(tmp, n, "%.*s.%s.tmp.%ld", dirlen, path, path + dirlen, (long)getpid());
	if (k < 0 || (size_t)k >= n)
		return nb_error("cannot write '%s': path too long", path);
	return 0;
}

static int fsync_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

int nb_publish(const char *tmp, const char *path, int durable)
{
	const char *step = NULL;
	if (durable && fsync_file(tmp) < 0)
		step = "fsync";
	else if (rename(tmp, path) < 0)
		step = "rename";
	if (step) {
		int e = errno;
		unlink(tmp);
		return nb_error("cannot write '%s': %s of '%s' failed: %s", path, step, tmp, strerror(e));
	}
	return durable ? nb_fsync_parent(path) : 0;
}

int nb_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	if (nb_tmp_name(tmp, sizeof tmp, path) < 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return nb_error("cannot write '%s': %s", path, strerror(errno));
	const char *p = data;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			return nb_error("cannot write '%s': %s", path, strerror(e));
		}
		off += (size_t)w;
	}
	/* close() releases fd even when it fails: never close it twice. */
	if (close(fd) < 0) {
		int e = errno;
		unlink(tmp);
		return nb_error("cannot write '%s': %s", path, strerror(e));
	}
	return nb_publish(tmp, path, 1);
}
