/* common/nb_io.h: buffer growth, whole-file reads, atomic writes and their errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "test/test_util.h"

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

int main(void)
{
	nb_buf b = {0};
	for (int i = 0; i < 10000; i++)
		nb_buf_add(&b, "ab", 2);
	nb_buf_adds(&b, "!");
	CHECK(b.len == 20001);
	CHECK(b.data[20000] == '!' && b.data[20001] == '\0');
	CHECK(b.cap >= b.len + 1);

	char *dir = test_tmpdir("io");
	char path[4200];
	snprintf(path, sizeof path, "%s/out.txt", dir);
	CHECK(nb_write_file_atomic(path, b.data, b.len) == 0);
	CHECK(count_entries(dir) == 1); /* no temporary left behind */
	size_t len = 0;
	char *back = nb_read_file(path, &len);
	CHECK(back && len == b.len && memcmp(back, b.data, len) == 0 && back[len] == '\0');
	free(back);
	/* Overwrite: the reader sees the whole new content. */
	CHECK(nb_write_file_atomic(path, "new", 3) == 0);
	back = nb_read_file(path, &len);
	CHECK(back && len == 3 && !strcmp(back, "new"));
	free(back);
	/* Empty file reads as an empty, terminated string. */
	CHECK(nb_write_file_atomic(path, "", 0) == 0);
	back = nb_read_file(path, &len);
	CHECK(back && len == 0 && back[0] == '\0');
	free(back);

	/* Errors name the file and the cause. */
	char missing[4200];
	snprintf(missing, sizeof missing, "%s/nope/x.txt", dir);
	CHECK(nb_read_file(missing, &len) == NULL && errno == ENOENT);
	CHECK(test_contains(nb_errmsg(), "nope/x.txt") && test_contains(nb_errmsg(), "No such file"));
	CHECK(nb_write_file_atomic(missing, "x", 1) == -1);
	CHECK(test_contains(nb_errmsg(), "cannot write") && test_contains(nb_errmsg(), "nope/x.txt"));
	CHECK(nb_read_file(dir, &len) == NULL); /* a directory is not a file */
	CHECK(test_contains(nb_errmsg(), dir));

	/* mkdir -p: nested, idempotent, trailing and doubled slashes; a file in the way. */
	char deep[4200], deep2[4200];
	snprintf(deep, sizeof deep, "%s/a//b/c/", dir);
	CHECK(nb_mkdir_p(deep) == 0);
	CHECK(nb_mkdir_p(deep) == 0);
	snprintf(deep2, sizeof deep2, "%s/a/b/c", dir);
	struct stat st;
	CHECK(stat(deep2, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(deep2, sizeof deep2, "%s/out.txt/sub", dir);
	CHECK(nb_mkdir_p(deep2) == -1);
	CHECK(test_contains(nb_errmsg(), "out.txt") && test_contains(nb_errmsg(), "cannot create directory"));
	CHECK(nb_mkdir_p(path) == -1 && test_contains(nb_errmsg(), "a file of that name exists"));
	CHECK(nb_mkdir_p("") == -1);
	snprintf(deep2, sizeof deep2, "%s/a/b/c", dir);
	rmdir(deep2);
	snprintf(deep2, sizeof deep2, "%s/a/b", dir);
	rmdir(deep2);
	snprintf(deep2, sizeof deep2, "%s/a", dir);
	rmdir(deep2);

	free(b.data);
	remove(path);
	rmdir(dir);
	free(dir);
	return test_summary("test_common_io");
}
