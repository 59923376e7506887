/* image_write_png round-trips through libpng's own decoder and through
 * image_load, leaves no temporary file behind, and reports unwritable paths
 * by name and cause. */
#include <dirent.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "corpus/image/image_io.h"
#include "corpus/synth/synth.h"
#include "test/test_util.h"

/* Decodes with libpng's simplified API, independent of image_io's decoder. */
static uint8_t *read_png(const char *path, int *w, int *h)
{
	png_image im;
	memset(&im, 0, sizeof im);
	im.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&im, path))
		return NULL;
	im.format = PNG_FORMAT_RGB;
	uint8_t *buf = malloc(PNG_IMAGE_SIZE(im));
	if (!png_image_finish_read(&im, NULL, buf, 0, NULL)) {
		free(buf);
		png_image_free(&im);
		return NULL;
	}
	*w = (int)im.width;
	*h = (int)im.height;
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

int main(void)
{
	char *dir = test_tmpdir("synth-png");
	char path[4096];
	int sizes[] = {16, 48, 61};
	for (int i = 0; i < 3; i++) {
		int size = sizes[i];
		uint8_t *img = malloc((size_t)size * size * 3);
		synth_scene sc;
		synth_make(9, SYNTH_TEST, (uint64_t)i, size, &sc, img);
		snprintf(path, sizeof path, "%s/scene-%d.png", dir, size);
		CHECK(image_write_png(path, img, size, size) == 0);
		int w = 0, h = 0;
		uint8_t *back = read_png(path, &w, &h);
		CHECK(back != NULL);
		CHECK(w == size && h == size);
		CHECK(back && memcmp(back, img, (size_t)size * size * 3) == 0);
		free(back);
		/* and through the ingest decoder, which reads synth --png output */
		nb_image im;
		int loaded = image_load(path, 1 << 20, &im) == IMG_OK;
		CHECK_MSG(loaded, "image_load: %s", nb_errmsg());
		if (loaded) {
			CHECK(im.width == size && im.height == size &&
			      memcmp(im.rgb, img, (size_t)size * size * 3) == 0);
			image_free(&im);
		}
		free(img);
	}
	/* overwriting an existing file replaces it */
	uint8_t tiny[2 * 3 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
	snprintf(path, sizeof path, "%s/scene-16.png", dir);
	CHECK(image_write_png(path, tiny, 3, 2) == 0);
	int w = 0, h = 0;
	uint8_t *back = read_png(path, &w, &h);
	CHECK(back && w == 3 && h == 2 && memcmp(back, tiny, sizeof tiny) == 0);
	free(back);
	/* only the three finished files, no temporaries */
	CHECK(count_entries(dir) == 3);

	snprintf(path, sizeof path, "%s/no-such-dir/x.png", dir);
	CHECK(image_write_png(path, tiny, 3, 2) == -1);
	CHECK_MSG(test_contains(nb_errmsg(), "no-such-dir") && test_contains(nb_errmsg(), "No such file"),
		  "message: %s", nb_errmsg());
	snprintf(path, sizeof path, "%s/bad.png", dir);
	CHECK(image_write_png(path, tiny, 0, 2) == -1);
	CHECK(test_contains(nb_errmsg(), "bad dimensions 0x2"));
	CHECK(count_entries(dir) == 3);

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/scene-%d.png", dir, sizes[i]);
		remove(path);
	}
	remove(dir);
	free(dir);
	return test_summary("test_synth_png");
}
