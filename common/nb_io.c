#include "common/nb_io.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
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

const char *nb_file_kind(mode_t mode)
{
	if (S_ISREG(mode))
		return "regular file";
	if (S_ISFIFO(mode))
		return "FIFO";
	if (S_ISDIR(mode))
		return "directory";
	if (S_ISLNK(mode))
		return "symbolic link";
	if (S_ISCHR(mode))
		return "character device";
	if (S_ISBLK(mode))
		return "block device";
	if (S_ISSOCK(mode))
		return "socket";
	return "special file";
}

/* "cannot open <what> 'path': <cause>" with errno e kept. */
static int open_error(const char *path, const char *what, int e, const char *cause)
{
	nb_error("cannot open %s%s'%s': %s", what ? what : "", what ? " " : "", path, cause);
	errno = e;
	return -1;
}

int nb_open_input(const char *path, const char *what)
{
	struct stat st;
	char kind[80];
	if (stat(path, &st) < 0)
		return open_error(path, what, errno, strerror(errno));
	if (!S_ISREG(st.st_mode)) {
		snprintf(kind, sizeof kind, "it is a %s, not a regular file", nb_file_kind(st.st_mode));
		return open_error(path, what, EINVAL, kind);
	}
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return open_error(path, what, errno, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno;
		close(fd);
		if (S_ISREG(st.st_mode))
			return open_error(path, what, e, strerror(e));
		snprintf(kind, sizeof kind, "it is a %s, not a regular file", nb_file_kind(st.st_mode));
		return open_error(path, what, EINVAL, kind);
	}
	/* Back to blocking reads (a no-op for regular files on Linux). */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int nb_check_input(const char *path, const char *what)
{
	int fd = nb_open_input(path, what);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

char *nb_read_input(const char *path, const char *what, size_t *len)
{
	int fd = nb_open_input(path, what);
	if (fd < 0)
		return NULL;
	nb_buf b = {0};
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			free(b.data);
			nb_error("cannot read %s%s'%s': %s", what ? what : "", what ? " " : "", path, strerror(e));
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		nb_buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	nb_buf_add(&b, "", 0);
	*len = b.len;
	return b.data;
}

char *nb_read_file(const char *path, size_t *len) { return nb_read_input(path, NULL, len); }

int nb_check_output(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return nb_error("cannot write '%s': %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return nb_error("cannot write '%s': it is a %s, not a regular file (only regular files are replaced)",
				path, nb_file_kind(st.st_mode));
	return 0;
}

/* errno of the first failed write to stdout seen here, 0 if none. */
static int stdout_errno;

int nb_stdout_flush(void)
{
	if (fflush(stdout) != 0 && !stdout_errno)
		stdout_errno = errno ? errno : EIO;
	if (!ferror(stdout) && !stdout_errno)
		return 0;
	if (stdout_errno)
		return nb_error("error writing standard output: %s", strerror(stdout_errno));
	return nb_error("error writing standard output: an earlier write failed");
}

int nb_stdout_close(void)
{
	int rc = nb_stdout_flush();
	if (fclose(stdout) != 0 && rc == 0)
		return nb_error("error writing standard output: %s", strerror(errno));
	return rc;
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
		return nb_error("cannot create directory '%.64s...': %s", path, strerror(ENAMETOOLONG));
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

long nb_tmp_owner(const char *name)
{
	if (name[0] != '.')
		return -1;
	const char *tag = NULL;
	for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp."))
		tag = p;
	if (!tag || tag == name)
		return -1;
	size_t digits = strspn(tag + 5, "0123456789");
	if (digits == 0 || digits > 9 || tag[5 + digits])
		return -1;
	return strtol(tag + 5, NULL, 10);
}

int nb_pid_alive(long pid)
{
	if (pid == (long)getpid())
		return 1;
	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
		return 0;
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 1; /* no /proc: trust kill() */
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces and parentheses; the state
	 * follows the last ')' */
	const char *close_paren = strrchr(buf, ')');
	if (!close_paren || close_paren[1] != ' ')
		return 1;
	char state = close_paren[2];
	return state != 'Z' && state != 'X' && state != 'x';
}

int nb_sweep_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return nb_error("cannot sweep temporary files in '%s': %s", dir, strerror(errno));
	int removed = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		long pid = nb_tmp_owner(e->d_name);
		if (pid < 0 || nb_pid_alive(pid))
			continue;
		size_t n = strlen(dir) + strlen(e->d_name) + 2;
		char *p = nb_xmalloc(n);
		snprintf(p, n, "%s/%s", dir, e->d_name);
		if (unlink(p) == 0)
			removed++;
		else if (errno != ENOENT)
			nb_warn("cannot remove the temporary file '%s': %s", p, strerror(errno));
		free(p);
	}
	closedir(d);
	return removed;
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
	if (nb_check_output(path) < 0) {
		unlink(tmp);
		return -1;
	}
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
	if (nb_check_output(path) < 0 || nb_tmp_name(tmp, sizeof tmp, path) < 0)
		return -1;
	/* A stale temporary of an earlier process with this pid goes; O_EXCL
	 * then never follows a link or opens a FIFO left at that name. */
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
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
