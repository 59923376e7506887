/* PNG decoding against a reference: test/png_reference.py writes PNGs of
 * every colour type and bit depth (1..16), interlaced and not, with the RGB
 * pixels they must decode to (checked against Pillow there); each must
 * decode to exactly those pixels. 16-bit samples map to v / 257 rounded
 * (see the script). Skipped (77) without /usr/bin/python3 + Pillow + numpy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/image/image_io.h"
#include "test_util.h"

/* Decodes dir/name.png and compares it with dir/name.rgb. */
static void check_case(const char *dir, const char *name, int w, int h)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.rgb", dir, name);
	size_t len = 0;
	uint8_t *want = (uint8_t *)nb_read_file(path, &len);
	CHECK_MSG(want && len == (size_t)w * (size_t)h * 3, "%s: expected pixels missing", name);
	snprintf(path, sizeof(path), "%s/%s.png", dir, name);
	nb_image im;
	image_status st = image_load(path, 1u << 20, &im);
	CHECK_MSG(st == IMG_OK, "%s: %s", name, nb_errmsg());
	if (st != IMG_OK || !want || len != (size_t)w * (size_t)h * 3) {
		free(want);
		return;
	}
	CHECK_MSG(im.width == w && im.height == h, "%s: %dx%d, expected %dx%d", name, im.width, im.height, w, h);
	if (im.width == w && im.height == h) {
		int differ = 0, maxd = 0;
		for (int i = 0; i < w * h; i++) {
			int d = 0;
			for (int c = 0; c < 3; c++) {
				int e = abs((int)im.rgb[i * 3 + c] - (int)want[i * 3 + c]);
				d = e > d ? e : d;
			}
			differ += d > 0;
			maxd = d > maxd ? d : maxd;
		}
		CHECK_MSG(differ == 0, "%s: %d of %d pixels differ (max diff %d)", name, differ, w * h, maxd);
	}
	image_free(&im);
	free(want);
}

int main(void)
{
	if (system("/usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null") != 0) {
		fprintf(stderr, "test_png_reference: SKIP: /usr/bin/python3 with PIL and numpy is needed "
				"(apt-get install python3-pil python3-numpy)\n");
		return 77;
	}
	char *dir = test_tmpdir("png_reference");
	char cmd[8192];
	const char *src = getenv("NB_SRC");
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/test/png_reference.py' '%s'", src ? src : ".", dir);
	CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
	char path[4096];
	snprintf(path, sizeof(path), "%s/cases.tsv", dir);
	FILE *f = fopen(path, "r");
	CHECK_MSG(f != NULL, "no %s", path);
	int ncases = 0;
	char name[256];
	int w, h;
	while (f && fscanf(f, "%255s %d %d", name, &w, &h) == 3) {
		check_case(dir, name, w, h);
		ncases++;
	}
	if (f)
		fclose(f);
	CHECK_MSG(ncases >= 70, "%d reference cases", ncases);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	free(dir);
	return test_summary("test_png_reference");
}
