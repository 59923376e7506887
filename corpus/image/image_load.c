/* Decoding an image file from disk (nboost caption, tests). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/image/image_io.h"

/* nb_open_input: a regular file, opened without blocking (a FIFO's open()
 * waits for a writer, forever if none comes). The stream, or NULL after
 * nb_error; *size set. */
static FILE *open_regular(const char *path, size_t *size)
{
	int fd = nb_open_input(path, "image");
	if (fd < 0)
		return NULL;
	struct stat st;
	FILE *f = fstat(fd, &st) == 0 ? fdopen(fd, "rb") : NULL;
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
