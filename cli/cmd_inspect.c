/* nboost inspect: what a shard or a checkpoint holds. Shards are opened
 * through the shard store (so they are fully validated); checkpoints are
 * walked generically, so the command keeps up with whatever the trainer
 * writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"
#include "common/scene.h"
#include "common/vocab.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "store/h5util.h"
#include "store/shard_store.h"

#define CHECKPOINT_SCHEMA "nboost.checkpoint"

typedef struct {
	int json;
	long nshow;
} inspect_opts;

/* ---- JSON and value formatting ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Prints an attribute's value: strings quoted in JSON, numbers plain, arrays
 * as [a, b, ...] (at most 16 elements, then "..."). */
static void print_attr_value(FILE *f, hid_t attr, int json)
{
	hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
	hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : 0;
	H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
	if (cls == H5T_STRING && n == 1) {
		char buf[4096] = "";
		if (H5Tis_variable_str(type) > 0) {
			char *v = NULL;
			hid_t mt = H5Tcopy(H5T_C_S1);
			H5Tset_size(mt, H5T_VARIABLE);
			if (H5Aread(attr, mt, &v) >= 0 && v) {
				snprintf(buf, sizeof buf, "%s", v);
				H5free_memory(v);
			}
			H5Tclose(mt);
		} else {
			size_t size = H5Tget_size(type);
			if (size < sizeof buf) {
				hid_t mt = H5Tcopy(H5T_C_S1);
				H5Tset_size(mt, size + 1);
				H5Aread(attr, mt, buf);
				H5Tclose(mt);
			} else {
				snprintf(buf, sizeof buf, "<string of %zu bytes>", size);
			}
		}
		if (json) {
			json_str(f, buf);
		} else {
			fputc('\'', f);
			nb_fput_escaped(f, buf);
			fputc('\'', f);
		}
	} else if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 1 && n <= (1 << 20)) {
		int is_float = cls == H5T_FLOAT, is_unsigned = cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE;
		size_t count = (size_t)n;
		double *d = is_float ? calloc(count, sizeof *d) : NULL;
		long long *ll = !is_float && !is_unsigned ? calloc(count, sizeof *ll) : NULL;
		unsigned long long *ull = is_unsigned ? calloc(count, sizeof *ull) : NULL;
		herr_t rc = H5Aread(attr, is_float ? H5T_NATIVE_DOUBLE : is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG,
				    is_float ? (void *)d : is_unsigned ? (void *)ull : (void *)ll);
		if (rc < 0) {
			H5Eclear2(H5E_DEFAULT);
			fputs(json ? "null" : "<unreadable>", f);
		} else {
			if (n > 1)
				fputc('[', f);
			for (size_t i = 0; i < count && i < 16; i++) {
				if (i)
					fputs(", ", f);
				if (is_float)
					fprintf(f, "%.*g", H5Tget_size(type) == 4 ? 7 : 17, d[i]);
				else if (is_unsigned)
					fprintf(f, "%llu", ull[i]);
				else
					fprintf(f, "%lld", ll[i]);
			}
			if (count > 16)
				fputs(json ? ", \"...\"" : ", ...", f);
			if (n > 1)
				fputc(']', f);
		}
		free(d);
		free(ll);
		free(ull);
	} else {
		fputs(json ? "\"<unsupported type>\"" : "<unsupported type>", f);
	}
	if (type >= 0)
		H5Tclose(type);
	if (space >= 0)
		H5Sclose(space);
}

typedef struct {
	FILE *f;
	int json, count;
} attr_walk;

static herr_t print_attr(hid_t obj, const char *name, const H5A_info_t *info, void *data)
{
	(void)info;
	attr_walk *w = data;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		return 0;
	if (w->json) {
		fputs(w->count ? ", " : "", w->f);
		json_str(w->f, name);
		fputs(": ", w->f);
	} else {
		char q[256];
		fprintf(w->f, "  %-16s ", nb_quote(q, sizeof q, name));
	}
	print_attr_value(w->f, a, w->json);
	if (!w->json)
		fputc('\n', w->f);
	H5Aclose(a);
	w->count++;
	return 0;
}

static void print_attrs(FILE *f, hid_t obj, int json)
{
	attr_walk w = {f, json, 0};
	hsize_t idx = 0;
	if (json)
		fputs("{", f);
	H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, &w);
	if (json)
		fputs("}", f);
}

/* ---- datasets ---- */

typedef struct {
	char name[256];
	int rank;
	hsize_t dims[8];
	unsigned long long elements, raw, stored;
} ds_info;

typedef struct {
	ds_info *v;
	int n, cap;
	const char *prefix; /* only objects under this path, or NULL */
} ds_list;

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
	ds_list *l = data;
	if (info->type != H5O_TYPE_DATASET)
		return 0;
	hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
	if (ds < 0)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = nb_xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
	}
	ds_info *d = &l->v[l->n++];
	memset(d, 0, sizeof *d);
	snprintf(d->name, sizeof d->name, "%s%s", l->prefix ? l->prefix : "/", name);
	hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
	d->rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : 0;
	if (d->rank < 0 || d->rank > 8)
		d->rank = 0;
	if (d->rank)
		H5Sget_simple_extent_dims(sp, d->dims, NULL);
	d->elements = sp >= 0 ? (unsigned long long)H5Sget_simple_extent_npoints(sp) : 0;
	d->raw = d->elements * (t >= 0 ? H5Tget_size(t) : 0);
	d->stored = H5Dget_storage_size(ds);
	if (sp >= 0)
		H5Sclose(sp);
	if (t >= 0)
		H5Tclose(t);
	H5Dclose(ds);
	return 0;
}

static void list_datasets(hid_t file, const char *group, ds_list *l)
{
	hid_t g = H5Oopen(file, group, H5P_DEFAULT);
	if (g < 0) {
		H5Eclear2(H5E_DEFAULT);
		return;
	}
	char prefix[256];
	snprintf(prefix, sizeof prefix, "%s%s", group, strcmp(group, "/") ? "/" : "");
	l->prefix = prefix;
	H5Ovisit(g, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, l);
	l->prefix = NULL;
	H5Oclose(g);
}

static void print_shape(FILE *f, const ds_info *d)
{
	fputc('[', f);
	for (int i = 0; i < d->rank; i++)
		fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)d->dims[i]);
	fputc(']', f);
}

static void print_datasets(FILE *f, const ds_list *l, int json)
{
	for (int i = 0; i < l->n; i++) {
		const ds_info *d = &l->v[i];
		if (json) {
			fprintf(f, "%s{\"name\": ", i ? ", " : "");
			json_str(f, d->name);
			fputs(", \"shape\": ", f);
			print_shape(f, d);
			fprintf(f, ", \"raw_bytes\": %llu, \"stored_bytes\": %llu}", d->raw, d->stored);
		} else {
			char q[256];
			fprintf(f, "  %-20s ", nb_quote(q, sizeof q, d->name));
			print_shape(f, d);
			fprintf(f, "  raw %llu B, stored %llu B\n", d->raw, d->stored);
		}
	}
}

/* ---- shards ---- */

static void print_sample(FILE *f, const shard_meta *m, const shard_sample *s, size_t index, int json, int first)
{
	char caption[1024] = "", truth[512] = "", rejected[1024] = "";
	if (m->kind != SHARD_IMAGES)
		vocab_decode(s->tokens, s->ntokens, caption, sizeof caption);
	if (m->kind == SHARD_PAIRS)
		vocab_decode(s->rejected, s->nrejected, rejected, sizeof rejected);
	if (s->objects && scene_caption(s->objects, truth, sizeof truth) < 0)
		snprintf(truth, sizeof truth, "<unprintable>");
	if (json) {
		fprintf(f, "%s{\"index\": %zu, \"id\": %llu, \"source\": ", first ? "" : ", ", index,
			(unsigned long long)s->id);
		json_str(f, s->source);
		if (m->kind != SHARD_IMAGES) {
			fputs(", \"caption\": ", f);
			json_str(f, caption);
			fprintf(f, ", \"ntokens\": %d, \"score\": %.6g", s->ntokens, s->score);
		}
		if (m->kind == SHARD_PAIRS) {
			fputs(", \"rejected\": ", f);
			json_str(f, rejected);
			fprintf(f, ", \"pair_kind\": \"%s\"", pair_kind_name(s->pair_kind));
		}
		if (s->objects) {
			fputs(", \"truth\": ", f);
			json_str(f, truth);
		}
		fputc('}', f);
		return;
	}
	fprintf(f, "  [%zu] id %llu  source '", index, (unsigned long long)s->id);
	nb_fput_escaped(f, s->source);
	fputs("'\n", f);
	if (m->kind == SHARD_CAPTIONS) {
		fprintf(f, "      caption (%d tokens, score %.3f): ", s->ntokens, s->score);
		nb_fput_escaped(f, caption);
		fputc('\n', f);
	}
	if (m->kind == SHARD_PAIRS) {
		fprintf(f, "      chosen (%d tokens): ", s->ntokens);
		nb_fput_escaped(f, caption);
		fprintf(f, "\n      rejected (%d tokens, %s): ", s->nrejected, pair_kind_name(s->pair_kind));
		nb_fput_escaped(f, rejected);
		fputc('\n', f);
	}
	if (s->objects)
		fprintf(f, "      truth: %s\n", truth);
}

static int inspect_shard(const char *path, const inspect_opts *o)
{
	shard_reader *r = shard_open(path);
	if (!r) {
		fprintf(stderr, "nboost: fatal: %s\n", nb_errmsg());
		return 1;
	}
	const shard_meta *m = shard_reader_meta(r);
	hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	ds_list l = {NULL, 0, 0, NULL};
	if (file >= 0)
		list_datasets(file, "/", &l);
	unsigned long long raw = 0, stored = 0;
	for (int i = 0; i < l.n; i++) {
		raw += l.v[i].raw;
		stored += l.v[i].stored;
	}
	double ratio = stored ? (double)raw / (double)stored : 0.0;
	const char *schema = m->kind == SHARD_PAIRS	 ? SHARD_SCHEMA_PAIRS
			     : m->kind == SHARD_CAPTIONS ? SHARD_SCHEMA_CAPTIONS
							 : SHARD_SCHEMA_IMAGES;
	const char *kind = m->kind == SHARD_PAIRS ? "pairs" : m->kind == SHARD_CAPTIONS ? "captions" : "images";
	FILE *f = stdout;
	if (o->json) {
		fputs("{\"file\": ", f);
		json_str(f, path);
		fprintf(f, ", \"schema\": \"%s\", \"version\": %d, \"kind\": \"%s\", \"samples\": %zu, "
			   "\"height\": %d, \"width\": %d, \"raw_bytes\": %llu, \"stored_bytes\": %llu, "
			   "\"ratio\": %.4f, \"checksums\": %s, \"attributes\": ",
			schema, SHARD_VERSION, kind, shard_count(r), m->height, m->width, raw, stored, ratio,
			shard_has_checksums(r) ? "true" : "false");
		if (file >= 0)
			print_attrs(f, file, 1);
		else
			fputs("{}", f);
		fputs(", \"datasets\": [", f);
		print_datasets(f, &l, 1);
		fputs("], \"first\": [", f);
	} else {
		nb_fput_escaped(f, path);
		fprintf(f, "\n  schema %s v%d (%s shard), %zu samples of %dx%d RGB\n", schema, SHARD_VERSION, kind,
			shard_count(r), m->height, m->width);
		fprintf(f, "  %llu bytes raw, %llu stored, ratio %.2f\n", raw, stored, ratio);
		fprintf(f, "  checksums: %s\nattributes:\n",
			shard_has_checksums(r) ? "Fletcher-32 on every chunk of every dataset, HDF5's on all metadata"
					       : "incomplete (written before they were added; corruption may go unnoticed)");
		if (file >= 0)
			print_attrs(f, file, 0);
		fputs("datasets:\n", f);
		print_datasets(f, &l, 0);
		if (o->nshow > 0 && shard_count(r) > 0)
			fprintf(f, "first %zu samples:\n",
				(size_t)o->nshow < shard_count(r) ? (size_t)o->nshow : shard_count(r));
	}
	if (file >= 0)
		H5Fclose(file);
	free(l.v);
	shard_sample s;
	int rc = 0;
	for (long i = 0; i < o->nshow; i++) {
		rc = shard_next(r, &s);
		if (rc != 1)
			break;
		print_sample(f, m, &s, (size_t)i, o->json, i == 0);
	}
	if (o->json)
		fputs("]}\n", f);
	int status = 0;
	/* Every chunk, not just those of the samples shown: inspect is how a
	 * user checks a shard. */
	if (rc >= 0)
		rc = shard_verify(r);
	if (rc < 0) {
		fflush(f);
		fprintf(stderr, "nboost: fatal: %s\n", nb_errmsg());
		status = 1;
	}
	shard_close(r);
	return status;
}

/* ---- checkpoints ---- */

static int inspect_checkpoint(const char *path, hid_t file, const inspect_opts *o)
{
	ds_list params = {NULL, 0, 0, NULL}, all = {NULL, 0, 0, NULL};
	list_datasets(file, "/params", &params);
	list_datasets(file, "/", &all);
	unsigned long long total = 0, stored = 0, raw = 0;
	for (int i = 0; i < params.n; i++)
		total += params.v[i].elements;
	for (int i = 0; i < all.n; i++) {
		raw += all.v[i].raw;
		stored += all.v[i].stored;
	}
	int adam = H5Lexists(file, "adam", H5P_DEFAULT) > 0;
	H5Eclear2(H5E_DEFAULT);
	FILE *f = stdout;
	if (o->json) {
		fputs("{\"file\": ", f);
		json_str(f, path);
		fprintf(f, ", \"schema\": \"%s\", \"kind\": \"checkpoint\", \"attributes\": ", CHECKPOINT_SCHEMA);
		print_attrs(f, file, 1);
		fputs(", \"params\": [", f);
		print_datasets(f, &params, 1);
		fprintf(f, "], \"total_params\": %llu, \"adam\": %s, \"datasets\": %d, \"raw_bytes\": %llu, "
			   "\"stored_bytes\": %llu}\n", total, adam ? "true" : "false", all.n, raw, stored);
	} else {
		nb_fput_escaped(f, path);
		fprintf(f, "\n  schema %s (checkpoint)\nattributes:\n", CHECKPOINT_SCHEMA);
		print_attrs(f, file, 0);
		fprintf(f, "params (%d tensors):\n", params.n);
		print_datasets(f, &params, 0);
		fprintf(f, "total parameters: %llu\n", total);
		fprintf(f, "adam state: %s\n", adam ? "present" : "absent");
		fprintf(f, "%d datasets, %llu bytes raw, %llu stored\n", all.n, raw, stored);
	}
	free(params.v);
	free(all.v);
	return 0;
}

static int inspect_file(const char *path, const inspect_opts *o)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': it is a %s, not a regular file\n", path,
			nb_file_kind(st.st_mode));
		return 1;
	}
	if (shard_zstd_register() < 0 || H5Fis_hdf5(path) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': not an HDF5 file\n", path);
		return 1;
	}
	hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (file < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': %s\n", path, cause);
		return 1;
	}
	char schema[256], why[256];
	int status;
	if (h5u_get_str(file, "schema", schema, sizeof schema, why, sizeof why) < 0) {
		char q[300];
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': not an nboost file: %s\n", path,
			nb_quote(q, sizeof q, why));
		status = 1;
	} else if (!strcmp(schema, SHARD_SCHEMA_IMAGES) || !strcmp(schema, SHARD_SCHEMA_CAPTIONS) ||
		   !strcmp(schema, SHARD_SCHEMA_PAIRS)) {
		H5Fclose(file);
		file = -1;
		status = inspect_shard(path, o);
	} else if (!strcmp(schema, CHECKPOINT_SCHEMA)) {
		status = inspect_checkpoint(path, file, o);
	} else {
		char q[300];
		fprintf(stderr, "nboost: fatal: cannot inspect '%s': unknown schema '%s' (expected %s, %s, %s or %s)\n",
			path, nb_quote(q, sizeof q, schema), SHARD_SCHEMA_IMAGES, SHARD_SCHEMA_CAPTIONS,
			SHARD_SCHEMA_PAIRS, CHECKPOINT_SCHEMA);
		status = 1;
	}
	if (file >= 0)
		H5Fclose(file);
	return status;
}

int cmd_inspect(int argc, char **argv)
{
	inspect_opts o = {0, 5};
	const cli_option opts[] = {
		CLI_OPT_LONG("n", &o.nshow, 0, 1000000, "N", "samples to show, 0 for none (default 5)"),
		CLI_OPT_FLAG("json", 0, &o.json, "one JSON object on stdout instead of text (default: off)"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "inspect",
		.synopsis = "usage: nboost inspect FILE [--n N] [--json]\n",
		.about = "Summarises an image, caption or pair shard or a checkpoint: schema, version,\n"
			 "attributes, datasets with raw and stored sizes, and the first samples (id,\n"
			 "source, caption, for pairs the rejected caption and how it was made, ground\n"
			 "truth) or the parameter tensors.\n",
		.opts = opts,
		.positional = "FILE",
		.min_pos = 1,
		.max_pos = 1,
	};
	int npos, rc = cli_parse(&cmd, argc, argv, &npos);
	if (rc >= 0)
		return rc;
	return inspect_file(argv[1], &o);
}
