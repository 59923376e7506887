/* Shard store plumbing shared by writers and readers: filter registration
 * and the directory view (committed shards, crashed writers' temporaries). */
#include "store/shard_store.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "store/h5util.h"
#include "store/h5zstd.h"

int shard_zstd_register(void)
{
	h5u_quiet();
	/* Registering again replaces the class with itself, so no "done" flag
	 * (global state) is needed for idempotence. */
	if (H5Zregister(&h5zstd_class) < 0)
		return nb_error("cannot register the zstd HDF5 filter %d", H5ZSTD_FILTER_ID);
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !memcmp(s + n - m, suffix, m);
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = nb_xmalloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Why a directory entry named like a shard is not one, or NULL when it is
 * a regular file (directly or through a symbolic link). lstat and stat
 * never open the entry, so a FIFO cannot block the listing. */
static const char *not_a_shard(const char *path)
{
	struct stat lst, st;
	if (lstat(path, &lst) < 0)
		return strerror(errno);
	if (stat(path, &st) < 0)
		return S_ISLNK(lst.st_mode) && errno == ENOENT ? "a dangling symbolic link" : strerror(errno);
	if (S_ISREG(st.st_mode))
		return NULL;
	if (S_ISDIR(st.st_mode))
		return "a directory, not a shard file";
	if (S_ISFIFO(st.st_mode))
		return "a FIFO, not a shard file";
	if (S_ISSOCK(st.st_mode))
		return "a socket, not a shard file";
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		return "a device, not a shard file";
	return "not a regular file";
}

int shard_list(const char *dir, char ***paths)
{
	*paths = NULL;
	DIR *d = opendir(dir);
	if (!d)
		return nb_error("cannot list shards in '%s': %s", dir, strerror(errno));
	char **v = NULL;
	int n = 0, cap = 0, rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !ends_with(e->d_name, ".h5"))
			continue;
		char *p = join_path(dir, e->d_name);
		const char *why = not_a_shard(p);
		if (why) {
			/* Skipping it would silently drop a shard's worth of data. */
			rc = nb_error("cannot list shards in '%s': '%s' is %s", dir, p, why);
			free(p);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = nb_xrealloc(v, (size_t)cap * sizeof *v);
		}
		v[n++] = p;
	}
	closedir(d);
	if (rc < 0) {
		shard_list_free(v, n);
		return -1;
	}
	if (n > 1)
		qsort(v, (size_t)n, sizeof *v, cmp_str);
	*paths = v;
	return n;
}

void shard_list_free(char **paths, int n)
{
	for (int i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int shard_sweep_tmp(const char *dir)
{
	/* a live writer on this host keeps its file; anything else was left
	 * by a writer that died (or is a zombie) before commit */
	return nb_sweep_tmp(dir);
}

const char *pair_kind_name(int kind)
{
	static const char *const names[PAIR_KINDS] = {"on-policy", "synthetic-prior", "synthetic-color",
						      "synthetic-shape"};
	return kind >= 0 && kind < PAIR_KINDS ? names[kind] : "?";
}
