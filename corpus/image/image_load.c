/* Decoding an image file from disk (nboost caption, tests). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"

image_status image_load(const char *path, size_t max_pixels, nb_image *out)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		nb_error("cannot open image '%s': %s", path, strerror(errno));
		return IMG_DECODE_ERROR;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		nb_error("cannot read image '%s': not a regular file", path);
		fclose(f);
		return IMG_DECODE_ERROR;
	}
	size_t len = (size_t)st.st_size;
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
