/* Sources with control characters, a TAB, a newline, a backslash, DEL,
 * invalid UTF-8 and a C1 control survive the shard store byte for byte (the
 * store keeps them; escaping is the printers' job, docs/guarantees.md).
 *
 * `test_shard_sources --write DIR` instead writes DIR/odd.h5 (an image shard
 * of 16x16 images with ground truth and those sources), DIR/count (the
 * number of samples) and DIR/sources.bin (the sources, each followed by a
 * NUL) for test/cli_robust.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/scene.h"
#include "store/shard_store.h"
#include "test_util.h"

#define SIZE 16

static const char *const sources[] = {
	"\x1b[31mred\x1b[0m",
	"a\tb",
	"line1\nline2",
	"back\\slash",
	"cr\r",
	"del\x7f",
	"bad\xff",
	"c1\xc2\x9b",
	"utf8-\xc3\xa9",
	"",
	"plain/path.png",
};
#define NSRC (sizeof sources / sizeof sources[0])

static int write_odd(const char *path)
{
	shard_meta m;
	memset(&m, 0, sizeof m);
	m.kind = SHARD_IMAGES;
	m.height = m.width = SIZE;
	m.has_objects = 1;
	shard_writer *w = shard_create(path, &m);
	if (!w)
		return -1;
	uint8_t image[SIZE * SIZE * 3];
	for (size_t i = 0; i < NSRC; i++) {
		memset(image, (int)(17 * i), sizeof image);
		uint8_t cells[SCENE_CELLS] = {0};
		cells[i % SCENE_CELLS] = scene_obj_code((int)i % SCENE_SIZES, (int)i % SCENE_COLORS, (int)i % SCENE_SHAPES);
		shard_sample s = {.id = 100 + i, .image = image, .source = sources[i], .objects = cells};
		if (shard_append(w, &s) < 0) {
			shard_abort(w);
			return -1;
		}
	}
	return shard_commit(w);
}

/* DIR/count and DIR/sources.bin for the script. */
static int write_expected(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/count", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "%zu\n", NSRC);
	if (fclose(f))
		return -1;
	snprintf(path, sizeof path, "%s/sources.bin", dir);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	for (size_t i = 0; i < NSRC; i++)
		fwrite(sources[i], 1, strlen(sources[i]) + 1, f);
	return fclose(f) ? -1 : 0;
}

static void check_roundtrip(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/odd.h5", dir);
	CHECK_MSG(write_odd(path) == 0, "%s", nb_errmsg());
	shard_reader *r = shard_open(path);
	CHECK_MSG(r != NULL, "%s", nb_errmsg());
	if (!r)
		return;
	CHECK(shard_count(r) == NSRC);
	shard_sample s;
	for (size_t i = 0; i < NSRC && shard_next(r, &s) == 1; i++)
		CHECK_MSG(s.id == 100 + i && !strcmp(s.source, sources[i]), "sample %zu", i);
	shard_close(r);
	remove(path);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--write")) {
		char path[4200];
		snprintf(path, sizeof path, "%s/odd.h5", argv[2]);
		if (nb_mkdir_p(argv[2]) < 0 || write_odd(path) < 0 || write_expected(argv[2]) < 0) {
			fprintf(stderr, "test_shard_sources: %s\n", nb_errmsg());
			return 1;
		}
		return 0;
	}
	char *dir = test_tmpdir("shard-sources");
	check_roundtrip(dir);
	remove(dir);
	free(dir);
	return test_summary("test_shard_sources");
}
