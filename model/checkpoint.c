/* Checkpoint files: writing, validating and reading (model/checkpoint.h,
 * schemas/checkpoint.md). */
#include "model/checkpoint.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/vocab.h"
#include "store/h5util.h"

/* Largest text stored as an attribute (HDF5 object headers hold < 64 KiB). */
#define CKPT_MAX_ATTR_TEXT 60000

static const struct {
	const char *name;
	size_t off;
} cfg_fields[] = {
	{"image_size", offsetof(vlm_config, image_size)}, {"patch", offsetof(vlm_config, patch)},
	{"enc_dim", offsetof(vlm_config, enc_dim)},       {"enc_layers", offsetof(vlm_config, enc_layers)},
	{"enc_heads", offsetof(vlm_config, enc_heads)},   {"dec_dim", offsetof(vlm_config, dec_dim)},
	{"dec_layers", offsetof(vlm_config, dec_layers)}, {"dec_heads", offsetof(vlm_config, dec_heads)},
	{"mlp_ratio", offsetof(vlm_config, mlp_ratio)},   {"vocab", offsetof(vlm_config, vocab)},
	{"max_text", offsetof(vlm_config, max_text)},
};
#define NFIELDS ((int)(sizeof cfg_fields / sizeof cfg_fields[0]))

static int *cfg_field(vlm_config *c, int i) { return (int *)((char *)c + cfg_fields[i].off); }
static int cfg_get(const vlm_config *c, int i) { return *(const int *)((const char *)c + cfg_fields[i].off); }

/* ---- digest ---- */

void ckpt_params_digest(vlm_model *m, char out[17])
{
	const unsigned char *p = (const unsigned char *)vlm_params(m);
	size_t n = vlm_nparams(m) * sizeof(float);
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- writing ---- */

/* Writing fails on a full disk or a broken file; each step that can fail
 * records HDF5's cause in `cause` right away (later calls clear it). */
static int write_tensors(hid_t g, vlm_model *m, const float *base, char *cause, size_t n)
{
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		hsize_t dims[4];
		for (int k = 0; k < t->ndim; k++)
			dims[k] = (hsize_t)t->shape[k];
		if (h5u_write_dataset(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims, NULL, H5P_DEFAULT,
				      base + t->offset, cause, n) < 0)
			return -1;
	}
	return 0;
}

static int write_root_attrs(hid_t f, vlm_model *m, const ckpt_save_info *info, const char *digest)
{
	const vlm_config *c = vlm_get_config(m);
	int rc = h5u_put_str(f, "schema", CKPT_SCHEMA) | h5u_put_i64(f, "version", CKPT_VERSION);
	for (int i = 0; i < NFIELDS; i++)
		rc |= h5u_put_i64(f, cfg_fields[i].name, cfg_get(c, i));
	rc |= h5u_put_str(f, "vocab_digest", vocab_digest());
	rc |= h5u_put_i64(f, "step", info->step);
	rc |= h5u_put_u64(f, "seed", info->seed);
	rc |= h5u_put_str(f, "params_digest", digest);
	rc |= h5u_put_i64(f, "has_adam", info->adam_m && info->adam_v);
	rc |= h5u_put_str(f, "job_config", info->job_config ? info->job_config : "");
	return rc ? -1 : 0;
}

static hid_t make_group(hid_t parent, const char *name, char *cause, size_t n)
{
	hid_t g = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (g < 0)
		h5u_cause(cause, n);
	return g;
}

static int write_contents(hid_t f, vlm_model *m, const ckpt_save_info *info, char *cause, size_t n)
{
	char digest[17];
	ckpt_params_digest(m, digest);
	if (write_root_attrs(f, m, info, digest) < 0) {
		h5u_cause(cause, n);
		return -1;
	}
	hid_t g = make_group(f, "params", cause, n);
	int rc = g >= 0 ? write_tensors(g, m, vlm_params(m), cause, n) : -1;
	if (g >= 0)
		H5Gclose(g);
	if (rc == 0 && info->adam_m && info->adam_v) {
		hid_t ga = make_group(f, "adam", cause, n);
		hid_t gm = ga >= 0 ? make_group(ga, "m", cause, n) : -1;
		hid_t gv = gm >= 0 ? make_group(ga, "v", cause, n) : -1;
		rc = (gv >= 0 && write_tensors(gm, m, info->adam_m, cause, n) == 0 &&
		      write_tensors(gv, m, info->adam_v, cause, n) == 0) ? 0 : -1;
		if (gm >= 0)
			H5Gclose(gm);
		if (gv >= 0)
			H5Gclose(gv);
		if (ga >= 0)
			H5Gclose(ga);
	}
	if (rc == 0) {
		hid_t gs = make_group(f, "state", cause, n);
		rc = gs >= 0 ? 0 : -1;
		for (int i = 0; rc == 0 && i < info->nitems; i++) {
			const ckpt_item *it = &info->items[i];
			if (it->u64) {
				hsize_t len = it->n;
				rc = h5u_write_dataset(gs, it->name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &len, NULL,
						       H5P_DEFAULT, it->u64, cause, n);
			} else {
				hsize_t len = it->text ? strlen(it->text) : 0;
				rc = h5u_write_dataset(gs, it->name, H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, &len, NULL,
						       H5P_DEFAULT, it->text, cause, n);
			}
		}
		if (gs >= 0)
			H5Gclose(gs);
	}
	return rc;
}

int ckpt_save(const char *path, vlm_model *m, const ckpt_save_info *info)
{
	h5u_quiet();
	if (info->job_config && strlen(info->job_config) > CKPT_MAX_ATTR_TEXT)
		return nb_error("cannot write checkpoint '%s': job config text is %zu bytes (limit %d)", path,
				strlen(info->job_config), CKPT_MAX_ATTR_TEXT);
	const char *slash = strrchr(path, '/');
	if (!*(slash ? slash + 1 : path))
		return nb_error("cannot write checkpoint '%s': not a file name", path);
	char tmp[4200];
	if (nb_tmp_name(tmp, sizeof tmp, path) < 0)
		return nb_error("cannot write checkpoint '%s': path too long", path);
	hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0)
		return nb_error("cannot write checkpoint '%s': cannot create '%s' (missing directory or no permission?)",
				path, tmp);
	char cause[256] = "unknown HDF5 error";
	int rc = write_contents(f, m, info, cause, sizeof cause);
	if (H5Fclose(f) < 0 && rc == 0) {
		h5u_cause(cause, sizeof cause);
		rc = -1;
	}
	if (rc < 0) {
		unlink(tmp);
		return nb_error("cannot write checkpoint '%s': HDF5 write failed (disk full?): %s", path, cause);
	}
	/* nb_publish names the step that failed and removes the temporary. */
	if (nb_publish(tmp, path, 1) < 0)
		return nb_error("cannot save checkpoint: %s", nb_errmsg());
	return 0;
}

/* ---- reading ---- */

struct ckpt_file {
	char *path;
	hid_t f;
	vlm_config cfg;
	long step;
	uint64_t seed;
	int has_adam;
	char *job;
	char digest[17];
};

void ckpt_close(ckpt_file *f)
{
	if (!f)
		return;
	if (f->f >= 0)
		H5Fclose(f->f);
	free(f->path);
	free(f->job);
	free(f);
}

static int read_config(ckpt_file *c)
{
	char why[256];
	for (int i = 0; i < NFIELDS; i++) {
		int64_t v;
		if (h5u_get_i64(c->f, cfg_fields[i].name, &v, why, sizeof why) < 0)
			return nb_error("cannot load checkpoint '%s': config: %s", c->path, why);
		if (v < -2147483647 || v > 2147483647)
			return nb_error("cannot load checkpoint '%s': config attribute '%s' = %lld out of range",
					c->path, cfg_fields[i].name, (long long)v);
		*cfg_field(&c->cfg, i) = (int)v;
	}
	if (vlm_config_check(&c->cfg) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, nb_errmsg());
	return 0;
}

static int compare_config(const ckpt_file *c, const vlm_config *expect)
{
	nb_buf list = {0};
	for (int i = 0; i < NFIELDS; i++) {
		int a = cfg_get(&c->cfg, i), b = cfg_get(expect, i);
		if (a != b)
			nb_buf_addf(&list, "%s%s %d (checkpoint) vs %d (requested)", list.len ? ", " : "",
				    cfg_fields[i].name, a, b);
	}
	int rc = 0;
	if (list.len)
		rc = nb_error("checkpoint '%s' does not match the requested model config: %s", c->path, list.data);
	free(list.data);
	return rc;
}

static int read_header(ckpt_file *c, const vlm_config *expect)
{
	char why[256], s[128];
	/* No schema at all is another kind of HDF5 file, not a damaged
	 * checkpoint: say so. */
	if (H5Aexists(c->f, "schema") <= 0)
		return nb_error("cannot load checkpoint '%s': schema attribute missing (not an nboost checkpoint)",
				c->path);
	if (h5u_get_str(c->f, "schema", s, sizeof s, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s (not an nboost checkpoint)", c->path, why);
	if (strcmp(s, CKPT_SCHEMA) != 0)
		return nb_error("cannot load checkpoint '%s': wrong schema '%s' (expected %s)", c->path, s,
				CKPT_SCHEMA);
	int64_t ver;
	if (h5u_get_i64(c->f, "version", &ver, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	if (ver != CKPT_VERSION)
		return nb_error("cannot load checkpoint '%s': version %lld (this build reads version %d)", c->path,
				(long long)ver, CKPT_VERSION);
	if (h5u_get_str(c->f, "vocab_digest", s, sizeof s, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	if (strcmp(s, vocab_digest()) != 0)
		return nb_error("cannot load checkpoint '%s': vocabulary digest '%s' differs from this build's '%s'",
				c->path, s, vocab_digest());
	if (read_config(c) < 0)
		return -1;
	if (expect && compare_config(c, expect) < 0)
		return -1;
	int64_t step, has_adam;
	if (h5u_get_i64(c->f, "step", &step, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	if (step < 0)
		return nb_error("cannot load checkpoint '%s': step attribute negative (%lld)", c->path,
				(long long)step);
	c->step = (long)step;
	if (h5u_get_u64(c->f, "seed", &c->seed, why, sizeof why) < 0 ||
	    h5u_get_i64(c->f, "has_adam", &has_adam, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	c->has_adam = has_adam != 0;
	if (h5u_get_str(c->f, "params_digest", s, sizeof s, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	if (strlen(s) != 16)
		return nb_error("cannot load checkpoint '%s': params_digest attribute is not 16 hex digits",
				c->path);
	memcpy(c->digest, s, 17);
	/* The text limit on write, plus its terminator. */
	c->job = h5u_get_str_alloc(c->f, "job_config", CKPT_MAX_ATTR_TEXT + 1, why, sizeof why);
	if (!c->job)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	return 0;
}

ckpt_file *ckpt_open(const char *path, const vlm_config *expect)
{
	h5u_quiet();
	if (access(path, R_OK) != 0)
		return nb_error("cannot load checkpoint '%s': %s", path, strerror(errno)), NULL;
	htri_t is = H5Fis_hdf5(path);
	if (is <= 0)
		return nb_error("cannot load checkpoint '%s': not an HDF5 file (or truncated before its header)", path),
		       NULL;
	ckpt_file *c = nb_xcalloc(1, sizeof *c);
	c->path = nb_xstrdup(path);
	c->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (c->f < 0) {
		nb_error("cannot load checkpoint '%s': HDF5 cannot open it (file truncated or corrupt)", path);
		ckpt_close(c);
		return NULL;
	}
	if (read_header(c, expect) < 0) {
		ckpt_close(c);
		return NULL;
	}
	return c;
}

const vlm_config *ckpt_config(const ckpt_file *f) { return &f->cfg; }
long ckpt_step(const ckpt_file *f) { return f->step; }
uint64_t ckpt_seed(const ckpt_file *f) { return f->seed; }
const char *ckpt_job_config(const ckpt_file *f) { return f->job; }
int ckpt_has_adam(const ckpt_file *f) { return f->has_adam; }

static const char *shape_str(char *buf, size_t n, int ndim, const hsize_t *d)
{
	size_t at = 0;
	buf[0] = '\0';
	for (int k = 0; k < ndim && at < n; k++) {
		int w = snprintf(buf + at, n - at, "%s%llu", k ? "," : "[", (unsigned long long)d[k]);
		if (w < 0)
			break;
		at += (size_t)w;
	}
	if (at < n)
		snprintf(buf + at, n - at, ndim ? "]" : "[]");
	return buf;
}

static int read_tensors(ckpt_file *c, vlm_model *m, const char *group, float *base)
{
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		char name[512];
		snprintf(name, sizeof name, "%s/%s", group, t->name);
		if (H5Lexists(c->f, group, H5P_DEFAULT) <= 0 || H5Lexists(c->f, name, H5P_DEFAULT) <= 0)
			return nb_error("cannot load checkpoint '%s': tensor '%s' is missing", c->path, name);
		hid_t d = H5Dopen2(c->f, name, H5P_DEFAULT);
		if (d < 0)
			return nb_error("cannot load checkpoint '%s': '%s' is not a dataset", c->path, name);
		hid_t sp = H5Dget_space(d);
		hid_t ft = H5Dget_type(d);
		hsize_t dims[8] = {0}, want[4];
		int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
		if (nd >= 0 && nd <= 8)
			H5Sget_simple_extent_dims(sp, dims, NULL);
		for (int k = 0; k < t->ndim; k++)
			want[k] = (hsize_t)t->shape[k];
		int ok = nd == t->ndim;
		for (int k = 0; ok && k < nd; k++)
			ok = dims[k] == want[k];
		int rc = 0;
		if (!ok) {
			char a[96], b[96];
			rc = nb_error("cannot load checkpoint '%s': tensor '%s' has shape %s, the model expects %s",
				      c->path, name, nd >= 0 && nd <= 8 ? shape_str(a, sizeof a, nd, dims) : "?",
				      shape_str(b, sizeof b, t->ndim, want));
		} else if (ft < 0 || H5Tget_class(ft) != H5T_FLOAT) {
			rc = nb_error("cannot load checkpoint '%s': tensor '%s' is not floating point", c->path, name);
		} else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, base + t->offset) < 0) {
			rc = nb_error("cannot load checkpoint '%s': cannot read tensor '%s' (file truncated or corrupt)",
				      c->path, name);
		}
		if (ft >= 0)
			H5Tclose(ft);
		if (sp >= 0)
			H5Sclose(sp);
		H5Dclose(d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ckpt_read_params(ckpt_file *c, vlm_model *m)
{
	if (!vlm_config_equal(vlm_get_config(m), &c->cfg))
		return compare_config(c, vlm_get_config(m));
	if (read_tensors(c, m, "/params", vlm_params(m)) < 0)
		return -1;
	char d[17];
	ckpt_params_digest(m, d);
	if (strcmp(d, c->digest) != 0)
		return nb_error("cannot load checkpoint '%s': parameters hash to %s but the file records %s "
				"(file corrupt)", c->path, d, c->digest);
	return 0;
}

int ckpt_read_adam(ckpt_file *c, vlm_model *m, float *adam_m, float *adam_v)
{
	if (!c->has_adam)
		return nb_error("cannot resume from checkpoint '%s': it holds no optimizer state (an inference-only "
				"checkpoint)", c->path);
	if (!vlm_config_equal(vlm_get_config(m), &c->cfg))
		return compare_config(c, vlm_get_config(m));
	if (read_tensors(c, m, "/adam/m", adam_m) < 0 || read_tensors(c, m, "/adam/v", adam_v) < 0)
		return -1;
	return 0;
}

static int read_state(ckpt_file *c, const char *name, hid_t mtype, size_t esize, void **out, size_t *n)
{
	char full[512];
	snprintf(full, sizeof full, "/state/%s", name);
	if (H5Lexists(c->f, "/state", H5P_DEFAULT) <= 0 || H5Lexists(c->f, full, H5P_DEFAULT) <= 0)
		return nb_error("cannot load checkpoint '%s': '%s' is missing", c->path, full);
	hid_t d = H5Dopen2(c->f, full, H5P_DEFAULT);
	if (d < 0)
		return nb_error("cannot load checkpoint '%s': '%s' is not a dataset", c->path, full);
	hid_t sp = H5Dget_space(d);
	int rc = 0;
	hssize_t np = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 ? H5Sget_simple_extent_npoints(sp) : -1;
	if (np < 0) {
		rc = nb_error("cannot load checkpoint '%s': '%s' is not one-dimensional", c->path, full);
	} else {
		*out = nb_xcalloc((size_t)np + 1, esize);
		*n = (size_t)np;
		if (np > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
			free(*out);
			*out = NULL;
			rc = nb_error("cannot load checkpoint '%s': cannot read '%s' (file truncated or corrupt)",
				      c->path, full);
		}
	}
	if (sp >= 0)
		H5Sclose(sp);
	H5Dclose(d);
	return rc;
}

int ckpt_read_u64(ckpt_file *c, const char *name, uint64_t **out, size_t *n)
{
	void *p = NULL;
	if (read_state(c, name, H5T_NATIVE_UINT64, sizeof(uint64_t), &p, n) < 0)
		return -1;
	*out = p;
	return 0;
}

int ckpt_read_text(ckpt_file *c, const char *name, char **out)
{
	void *p = NULL;
	size_t n = 0;
	if (read_state(c, name, H5T_NATIVE_UCHAR, 1, &p, &n) < 0)
		return -1;
	*out = p; /* calloc'ed n + 1 bytes: NUL-terminated */
	return 0;
}

vlm_model *ckpt_load_model(const char *path, int max_batch)
{
	ckpt_file *c = ckpt_open(path, NULL);
	if (!c)
		return NULL;
	vlm_model *m = vlm_create(&c->cfg, max_batch);
	if (!m) {
		/* nb_error formats before it stores, so its own message may be
		 * an argument. */
		nb_error("cannot load checkpoint '%s': %s", path, nb_errmsg());
		ckpt_close(c);
		return NULL;
	}
	if (ckpt_read_params(c, m) < 0) {
		vlm_free(m);
		ckpt_close(c);
		return NULL;
	}
	ckpt_close(c);
	return m;
}

int ckpt_digest(const char *path, char out[17])
{
	ckpt_file *c = ckpt_open(path, NULL);
	if (!c)
		return -1;
	memcpy(out, c->digest, 17);
	ckpt_close(c);
	return 0;
}
