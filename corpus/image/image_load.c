/* Decoding an image file from disk (nboost caption, tests). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"

/* Opens path for reading without blocking (a FIFO's open() waits for a
 * writer, forever if none comes) and checks that it is a regular file
 * before anything is read. The stream, or NULL after nb_error; *size set. */
static FILE *open_regular(const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		nb_error("cannot open image '%s': %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		nb_error("cannot read image '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		nb_error("cannot read image '%s': not a regular file (%s)", path,
			 S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory" : "a device or socket");
		close(fd);
		return NULL;
	}
	FILE *f = fdopen(fd, "rb");
	if (!f) {
		nb_error("cannot read image '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	*size = (size_t)st.st_size;
	return f;
}

image_status image_load(const char *path, size_t max_pixels, nb_image *out)
{
	size_t len;
	FILE *f = open_regular(path, &len);
	if (!f)
		return IMG_DECODE_ERROR;
	uint8_t *buf = nb_xmalloc(len ? len : 1);
	if (fread(buf, 1, len, f) != len) {
		nb_error("cannot read image '%s': short read", path);
		fclose(f);
		free(buf);
		return IMG_DECODE_ERROR;
	}
	fclose(f);
	image_status s = image_decode(buf, len, max_pixels, out);
	free(buf);
	if (s != IMG_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", nb_errmsg());
		nb_error("cannot load image '%s': %s", path, msg);
	}
	return s;
}
