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
#include "store/h5meta.h"
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

/* ---- digests and checksums ---- */

/* Every dataset carries its checksum in this attribute; the root lists one
 * per root attribute in CKPT_ATTR_SUMS ("name hex\n" lines). Both are FNV-1a
 * 64 over the stored little-endian bytes (strings: without the NUL), as 16
 * hex digits. They catch corruption and stray edits, not forgery. */
#define CKPT_SUM_ATTR "fnv1a64"
#define CKPT_ATTR_SUMS "attr_checksums"
#define FNV_OFFSET 0xcbf29ce484222325ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void hex16(const void *data, size_t n, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)fnv1a(FNV_OFFSET, data, n));
}

static void le64(uint64_t v, unsigned char b[8])
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

void ckpt_params_digest(vlm_model *m, char out[17])
{
	hex16(vlm_params(m), vlm_nparams(m) * sizeof(float), out);
}

/* ---- writing ---- */

/* Creates dataset name in g, writes data (nbytes in memory) and tags it
 * with its checksum. Failures record HDF5's cause in `cause` right away
 * (later calls clear the error stack). */
static int write_summed(hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
			const void *data, size_t nbytes, char *cause, size_t n)
{
	if (h5u_write_dataset(g, name, ftype, mtype, rank, dims, NULL, H5P_DEFAULT, data, cause, n) < 0)
		return -1;
	char sum[17];
	hex16(data, nbytes, sum);
	hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
	int rc = d >= 0 && h5u_put_str(d, CKPT_SUM_ATTR, sum) == 0 ? 0 : -1;
	if (rc < 0)
		h5u_cause(cause, n);
	if (d >= 0)
		H5Dclose(d);
	return rc;
}

static int write_tensors(hid_t g, vlm_model *m, const float *base, char *cause, size_t n)
{
	for (int i = 0; i < vlm_ntensors(m); i++) {
		const vlm_tensor *t = vlm_tensor_at(m, i);
		hsize_t dims[4];
		for (int k = 0; k < t->ndim; k++)
			dims[k] = (hsize_t)t->shape[k];
		if (write_summed(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims, base + t->offset,
				 t->numel * sizeof(float), cause, n) < 0)
			return -1;
	}
	return 0;
}

/* Root attributes, each noted with its checksum for CKPT_ATTR_SUMS. */
typedef struct {
	hid_t f;
	nb_buf sums;
	int rc;
} attr_writer;

static void note_sum(attr_writer *w, const char *name, const void *bytes, size_t n)
{
	char sum[17];
	hex16(bytes, n, sum);
	nb_buf_addf(&w->sums, "%s %s\n", name, sum);
}

static void put_i64(attr_writer *w, const char *name, int64_t v)
{
	unsigned char b[8];
	le64((uint64_t)v, b);
	w->rc |= h5u_put_i64(w->f, name, v);
	note_sum(w, name, b, 8);
}

static void put_u64(attr_writer *w, const char *name, uint64_t v)
{
	unsigned char b[8];
	le64(v, b);
	w->rc |= h5u_put_u64(w->f, name, v);
	note_sum(w, name, b, 8);
}

static void put_str(attr_writer *w, const char *name, const char *v)
{
	w->rc |= h5u_put_str(w->f, name, v);
	note_sum(w, name, v, strlen(v));
}

static int write_root_attrs(hid_t f, vlm_model *m, const ckpt_save_info *info, const char *digest)
{
	const vlm_config *c = vlm_get_config(m);
	attr_writer w = {.f = f};
	put_str(&w, "schema", CKPT_SCHEMA);
	put_i64(&w, "version", CKPT_VERSION);
	for (int i = 0; i < NFIELDS; i++)
		put_i64(&w, cfg_fields[i].name, cfg_get(c, i));
	put_str(&w, "vocab_digest", vocab_digest());
	put_i64(&w, "step", info->step);
	put_u64(&w, "seed", info->seed);
	put_str(&w, "params_digest", digest);
	put_i64(&w, "has_adam", info->adam_m && info->adam_v);
	put_str(&w, "job_config", info->job_config ? info->job_config : "");
	w.rc |= h5u_put_str(f, CKPT_ATTR_SUMS, w.sums.data);
	free(w.sums.data);
	return w.rc ? -1 : 0;
}

static hid_t make_group(hid_t parent, const char *name, char *cause, size_t n)
{
	hid_t gcpl = h5u_gcpl_new();
	hid_t g = gcpl >= 0 ? H5Gcreate2(parent, name, H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
	if (gcpl >= 0)
		H5Pclose(gcpl);
	if (g < 0)
		h5u_cause(cause, n);
	return g;
}

static int write_adam(hid_t f, vlm_model *m, const ckpt_save_info *info, char *cause, size_t n)
{
	hid_t ga = make_group(f, "adam", cause, n);
	hid_t gm = ga >= 0 ? make_group(ga, "m", cause, n) : -1;
	hid_t gv = gm >= 0 ? make_group(ga, "v", cause, n) : -1;
	int rc = (gv >= 0 && write_tensors(gm, m, info->adam_m, cause, n) == 0 &&
		  write_tensors(gv, m, info->adam_v, cause, n) == 0) ? 0 : -1;
	if (gv >= 0)
		H5Gclose(gv);
	if (gm >= 0)
		H5Gclose(gm);
	if (ga >= 0)
		H5Gclose(ga);
	return rc;
}

static int write_state(hid_t f, const ckpt_save_info *info, char *cause, size_t n)
{
	hid_t gs = make_group(f, "state", cause, n);
	int rc = gs >= 0 ? 0 : -1;
	for (int i = 0; rc == 0 && i < info->nitems; i++) {
		const ckpt_item *it = &info->items[i];
		if (it->u64) {
			hsize_t len = it->n;
			rc = write_summed(gs, it->name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &len, it->u64,
					  it->n * sizeof(uint64_t), cause, n);
		} else {
			const char *text = it->text ? it->text : "";
			hsize_t len = strlen(text);
			rc = write_summed(gs, it->name, H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, &len, text, (size_t)len,
					  cause, n);
		}
	}
	if (gs >= 0)
		H5Gclose(gs);
	return rc;
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
	if (rc == 0 && info->adam_m && info->adam_v)
		rc = write_adam(f, m, info, cause, n);
	if (rc == 0)
		rc = write_state(f, info, cause, n);
	/* For h5py users: the words of the token ids, and what made the file
	 * (schemas/checkpoint.md). */
	if (rc == 0)
		rc = h5m_put_vocab(f, cause, n);
	if (rc == 0)
		rc = h5m_put_provenance(f, NULL, cause, n);
	return rc;
}

/* The core driver's buffer is allocated through these file-image callbacks
 * and kept when the file closes: the image of the closed file, whose
 * superblock (checksum included) is final. An image taken while the file
 * is open carries a stale superblock checksum in the 1.10 format, which
 * libhdf5 then refuses. */
typedef struct {
	void *mem;  /* the driver's buffer */
	size_t cap; /* its size */
	int closed; /* the driver handed it back at close */
} kept_image;

static void *ki_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
	kept_image *k = udata;
	void *p = malloc(size ? size : 1);
	if (p && op == H5FD_FILE_IMAGE_OP_FILE_OPEN)
		k->mem = p, k->cap = size;
	return p;
}

static void *ki_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *udata)
{
	(void)op, (void)udata;
	return memcpy(dest, src, size);
}

static void *ki_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata)
{
	kept_image *k = udata;
	void *p = realloc(ptr, size ? size : 1);
	if (p && (ptr == k->mem || op == H5FD_FILE_IMAGE_OP_FILE_RESIZE))
		k->mem = p, k->cap = size;
	return p;
}

static herr_t ki_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
	kept_image *k = udata;
	if (ptr && ptr == k->mem && op == H5FD_FILE_IMAGE_OP_FILE_CLOSE) {
		k->closed = 1; /* kept: the caller owns it now */
		return 0;
	}
	if (ptr == k->mem)
		k->mem = NULL, k->cap = 0;
	free(ptr);
	return 0;
}

/* HDF5 copies the callbacks with the property list; every copy shares
 * the one kept_image of the build. */
static void *ki_udata_copy(void *udata)
{
	return udata;
}

static herr_t ki_udata_free(void *udata)
{
	(void)udata;
	return 0;
}

/* The file's length from its superblock (version 2 or 3, 8-byte
 * addresses: the end-of-file address at byte 28), or 0. */
static size_t image_length(const uint8_t *p, size_t cap)
{
	static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
	if (cap < 48 || memcmp(p, sig, 8) || (p[8] != 2 && p[8] != 3) || p[9] != 8)
		return 0;
	uint64_t eof = 0;
	for (int i = 7; i >= 0; i--)
		eof = eof << 8 | p[28 + i];
	return eof <= cap ? (size_t)eof : 0;
}

/* Builds the whole file in memory (HDF5's core driver, no backing store):
 * HDF5 never touches the disk, so a full disk cannot leave it with a
 * half-closed file (which crashed at exit). HDF5's 1.10 format
 * (h5u_fapl_new): every metadata block carries a checksum. *image is
 * malloc'ed. 0, or -1 with cause set. */
static int build_image(const char *name, vlm_model *m, const ckpt_save_info *info, void **image, size_t *size,
		       char *cause, size_t n)
{
	kept_image k = {0};
	H5FD_file_image_callbacks_t cb = {ki_malloc, ki_memcpy, ki_realloc, ki_free,
					 ki_udata_copy, ki_udata_free, &k};
	hid_t fapl = h5u_fapl_new(), fcpl = h5u_fcpl_new();
	hid_t f = -1;
	if (fapl >= 0 && fcpl >= 0 && H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) >= 0 &&
	    H5Pset_file_image_callbacks(fapl, &cb) >= 0)
		f = H5Fcreate(name, H5F_ACC_TRUNC, fcpl, fapl);
	if (f < 0)
		h5u_cause(cause, n);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (f < 0)
		return -1;
	int rc = write_contents(f, m, info, cause, n);
	if (H5Fclose(f) < 0 && rc == 0) {
		h5u_cause(cause, n);
		rc = -1;
	}
	size_t len = k.closed ? image_length(k.mem, k.cap) : 0;
	if (rc == 0 && !len) {
		snprintf(cause, n, "%s", k.closed ? "the image's superblock is not version 2 or 3 with 8-byte addresses"
						 : "HDF5 did not close the file (an object was left open)");
		rc = -1;
	}
	if (rc < 0) {
		if (k.closed)
			free(k.mem);
		return -1;
	}
	*image = k.mem;
	*size = len;
	return 0;
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
	char cause[256] = "unknown HDF5 error";
	void *image = NULL;
	size_t size = 0;
	if (build_image(tmp, m, info, &image, &size, cause, sizeof cause) < 0)
		return nb_error("cannot write checkpoint '%s': HDF5 cannot build it: %s", path, cause);
	/* The temporary, fsync, rename, fsync of the directory; on failure
	 * the temporary is removed and the message names the cause. */
	int rc = nb_write_file_atomic(path, image, size);
	free(image);
	if (rc < 0) {
		/* "cannot write 'PATH': CAUSE": keep the cause, name it a checkpoint */
		char msg[1024], prefix[4300];
		snprintf(prefix, sizeof prefix, "cannot write '%s': ", path);
		const char *e = nb_errmsg();
		snprintf(msg, sizeof msg, "%s", strncmp(e, prefix, strlen(prefix)) ? e : e + strlen(prefix));
		return nb_error("cannot write checkpoint '%s': %s", path, msg);
	}
	return 0;
}

/* ---- reading ---- */

struct ckpt_file {
	char *path;
	hid_t f;
	int version;
	char *sums;                  /* CKPT_ATTR_SUMS (version 2) */
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
	free(f->sums);
	free(f->job);
	free(f);
}

/* The checksum CKPT_ATTR_SUMS records for attribute name into out[17]: 0,
 * or -1 when it lists none. */
static int recorded_sum(const char *sums, const char *name, char out[17])
{
	size_t k = strlen(name);
	for (const char *l = sums; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		if (strncmp(l, name, k) || l[k] != ' ' || strspn(l + k + 1, "0123456789abcdef") != 16 ||
		    (l[k + 17] != '\n' && l[k + 17] != '\0'))
			continue;
		memcpy(out, l + k + 1, 16);
		out[16] = '\0';
		return 0;
	}
	return -1;
}

/* Version 2: the attribute's value (its stored bytes) must hash to the
 * checksum recorded for it. 0 or nb_error naming the attribute. */
static int verify_attr(const ckpt_file *c, const char *name, const void *bytes, size_t n)
{
	if (c->version < 2)
		return 0;
	char want[17], got[17];
	if (recorded_sum(c->sums, name, want) < 0)
		return nb_error("cannot load checkpoint '%s': attribute '%s' has no checksum in '%s' (file edited or "
				"corrupt)", c->path, name, CKPT_ATTR_SUMS);
	hex16(bytes, n, got);
	if (strcmp(want, got))
		return nb_error("cannot load checkpoint '%s': attribute '%s' does not match its checksum (file edited "
				"or corrupt)", c->path, name);
	return 0;
}

/* Version 2: dataset `name` (open as d), read into data (nbytes), must hash
 * to its CKPT_SUM_ATTR. 0 or nb_error naming the dataset. */
static int verify_dataset(const ckpt_file *c, hid_t d, const char *name, const void *data, size_t nbytes)
{
	if (c->version < 2)
		return 0;
	char want[32], got[17], why[256];
	if (h5u_get_str(d, CKPT_SUM_ATTR, want, sizeof want, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': dataset '%s' has no checksum: %s (file edited or corrupt)",
				c->path, name, why);
	hex16(data, nbytes, got);
	if (strcmp(want, got))
		return nb_error("cannot load checkpoint '%s': dataset '%s' does not match its checksum (file edited "
				"or corrupt)", c->path, name);
	return 0;
}

/* Root attributes, read and verified. 0 or nb_error. */
static int get_i64(const ckpt_file *c, const char *name, int64_t *v)
{
	char why[256];
	unsigned char b[8];
	if (h5u_get_i64(c->f, name, v, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	le64((uint64_t)*v, b);
	return verify_attr(c, name, b, 8);
}

static int get_u64(const ckpt_file *c, const char *name, uint64_t *v)
{
	char why[256];
	unsigned char b[8];
	if (h5u_get_u64(c->f, name, v, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	le64(*v, b);
	return verify_attr(c, name, b, 8);
}

static int get_str(const ckpt_file *c, const char *name, char *buf, size_t n)
{
	char why[256];
	if (h5u_get_str(c->f, name, buf, n, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	return verify_attr(c, name, buf, strlen(buf));
}

static int read_config(ckpt_file *c)
{
	for (int i = 0; i < NFIELDS; i++) {
		int64_t v;
		if (get_i64(c, cfg_fields[i].name, &v) < 0)
			return -1;
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

/* schema, then version; version 2 brings CKPT_ATTR_SUMS, against which
 * both are checked too. */
static int read_schema_version(ckpt_file *c)
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
	if (ver != 1 && ver != CKPT_VERSION)
		return nb_error("cannot load checkpoint '%s': version %lld (this build reads versions 1 and %d)",
				c->path, (long long)ver, CKPT_VERSION);
	c->version = (int)ver;
	if (c->version < 2)
		return 0;
	/* A few hundred bytes: 16 digits per attribute. */
	c->sums = h5u_get_str_alloc(c->f, CKPT_ATTR_SUMS, 8192, why, sizeof why);
	if (!c->sums)
		return nb_error("cannot load checkpoint '%s': %s (file edited or corrupt)", c->path, why);
	unsigned char b[8];
	le64((uint64_t)ver, b);
	return verify_attr(c, "schema", s, strlen(s)) < 0 || verify_attr(c, "version", b, 8) < 0 ? -1 : 0;
}

static int read_header(ckpt_file *c, const vlm_config *expect)
{
	char s[128];
	if (read_schema_version(c) < 0)
		return -1;
	char why[256];
	if (h5u_get_str(c->f, "vocab_digest", s, sizeof s, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	/* Another build's vocabulary is the likelier cause: say that first. */
	if (strcmp(s, vocab_digest()) != 0)
		return nb_error("cannot load checkpoint '%s': vocabulary digest '%s' differs from this build's '%s'",
				c->path, s, vocab_digest());
	if (verify_attr(c, "vocab_digest", s, strlen(s)) < 0)
		return -1;
	if (h5m_check_vocab(c->f, s, why, sizeof why) < 0)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	if (read_config(c) < 0)
		return -1;
	if (expect && compare_config(c, expect) < 0)
		return -1;
	int64_t step, has_adam;
	if (get_i64(c, "step", &step) < 0)
		return -1;
	if (step < 0)
		return nb_error("cannot load checkpoint '%s': step attribute negative (%lld)", c->path,
				(long long)step);
	c->step = (long)step;
	if (get_u64(c, "seed", &c->seed) < 0 || get_i64(c, "has_adam", &has_adam) < 0)
		return -1;
	c->has_adam = has_adam != 0;
	if (get_str(c, "params_digest", s, sizeof s) < 0)
		return -1;
	if (strlen(s) != 16)
		return nb_error("cannot load checkpoint '%s': params_digest attribute is not 16 hex digits",
				c->path);
	memcpy(c->digest, s, 17);
	/* The text limit on write, plus its terminator. */
	c->job = h5u_get_str_alloc(c->f, "job_config", CKPT_MAX_ATTR_TEXT + 1, why, sizeof why);
	if (!c->job)
		return nb_error("cannot load checkpoint '%s': %s", c->path, why);
	return verify_attr(c, "job_config", c->job, strlen(c->job));
}

/* ---- data only from this file: no external storage, virtual datasets or
 * links (other than hard ones), so that a checkpoint cannot make nboost read
 * another file. Checked for every object when the file is opened. ---- */

typedef struct {
	ckpt_file *c;
	char prefix[256]; /* the group's path with a trailing '/' */
	int depth;
	int refused;      /* an nb_error was set */
} link_check;

static int refuse_link(link_check *lc, hid_t g, const char *name, const H5L_info_t *info)
{
	lc->refused = 1;
	if (info->type == H5L_TYPE_SOFT)
		return nb_error("cannot load checkpoint '%s': '%s%s' is a soft link (refused: a checkpoint holds only "
				"its own datasets)", lc->c->path, lc->prefix, name);
	if (info->type != H5L_TYPE_EXTERNAL)
		return nb_error("cannot load checkpoint '%s': '%s%s' is a user-defined link (refused)", lc->c->path,
				lc->prefix, name);
	char val[1024] = "";
	const char *file = "?", *obj = "?";
	unsigned flags;
	if (info->u.val_size <= sizeof val && H5Lget_val(g, name, val, sizeof val, H5P_DEFAULT) >= 0 &&
	    H5Lunpack_elink_val(val, info->u.val_size, &flags, &file, &obj) < 0)
		file = obj = "?";
	return nb_error("cannot load checkpoint '%s': '%s%s' is an external link (to '%s' in '%s'; refused: a "
			"checkpoint must not make nboost read another file)", lc->c->path, lc->prefix, name, obj, file);
}

/* External raw storage and virtual layouts: store/h5util's check, the one
 * the shard reader uses. */
static int check_storage(link_check *lc, hid_t d, const char *name)
{
	char shown[600], why[1024];
	snprintf(shown, sizeof shown, "%s%s", lc->prefix, name);
	if (h5u_check_dataset_storage(d, shown, why, sizeof why) == 0)
		return 0;
	lc->refused = 1;
	return nb_error("cannot load checkpoint '%s': %s (a checkpoint must not make nboost read another file)",
			lc->c->path, why);
}

static int check_group(link_check *lc, hid_t g);

/* One link of a group: hard links only; datasets must hold their data;
 * groups are checked down to the depth of the format (/adam/m/<tensor>),
 * deeper ones are never read. */
static herr_t check_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
	link_check *lc = data;
	if (info->type != H5L_TYPE_HARD)
		return refuse_link(lc, g, name, info);
	hid_t o = H5Oopen(g, name, H5P_DEFAULT);
	if (o < 0)
		return -1;
	int rc = 0;
	H5I_type_t type = H5Iget_type(o);
	if (type == H5I_DATASET) {
		rc = check_storage(lc, o, name);
	} else if (type == H5I_GROUP && lc->depth < 3) {
		link_check sub = {.c = lc->c, .depth = lc->depth + 1};
		int w = snprintf(sub.prefix, sizeof sub.prefix, "%s%s/", lc->prefix, name);
		if (w < 0 || (size_t)w >= sizeof sub.prefix) {
			lc->refused = 1;
			rc = nb_error("cannot load checkpoint '%s': group name '%s%s' too long (file corrupt)",
				      lc->c->path, lc->prefix, name);
		} else {
			rc = check_group(&sub, o);
			lc->refused |= sub.refused;
		}
	}
	H5Oclose(o);
	return rc < 0 ? -1 : 0;
}

/* Group by group (H5Literate), to the depth of the format, rather than
 * H5Lvisit, which walks as deep as a file's groups go. */
static int check_group(link_check *lc, hid_t g)
{
	hsize_t idx = 0;
	return H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, check_link, lc) < 0 ? -1 : 0;
}

static int check_self_contained(ckpt_file *c)
{
	link_check lc = {.c = c, .prefix = "/"};
	if (check_group(&lc, c->f) < 0 && !lc.refused)
		return nb_error("cannot load checkpoint '%s': cannot list its objects (file truncated or corrupt)",
				c->path);
	return lc.refused ? -1 : 0;
}

/* Takes over c->f (opened): checks and reads the header. */
static ckpt_file *open_checked(ckpt_file *c, const vlm_config *expect)
{
	if (c->f < 0) {
		nb_error("cannot load checkpoint '%s': HDF5 cannot open it (file truncated or corrupt)", c->path);
		ckpt_close(c);
		return NULL;
	}
	if (read_header(c, expect) < 0 || check_self_contained(c) < 0) {
		ckpt_close(c);
		return NULL;
	}
	return c;
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
	return open_checked(c, expect);
}

ckpt_file *ckpt_open_image(const void *image, size_t size, const char *name, const vlm_config *expect)
{
	h5u_quiet();
	ckpt_file *c = nb_xcalloc(1, sizeof *c);
	c->path = nb_xstrdup(name);
	c->f = -1;
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl >= 0 && size > 0 && H5Pset_fapl_core(fapl, 65536, 0) >= 0 &&
	    H5Pset_file_image(fapl, (void *)image, size) >= 0)
		c->f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
	if (fapl >= 0)
		H5Pclose(fapl);
	return open_checked(c, expect);
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
		} else {
			rc = verify_dataset(c, d, name, base + t->offset, t->numel * sizeof(float));
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

/* Version 1 recorded a digest of the parameters only: its optimizer and
 * data-order state cannot be checked, so training does not continue from it. */
static int refuse_old(const ckpt_file *c)
{
	return nb_error("cannot resume from checkpoint '%s': it was written by an older nboost (checkpoint version "
			"1, whose optimizer and data-order state carry no checksums); it still serves for eval, caption "
			"and as a teacher, but training cannot continue from it", c->path);
}

int ckpt_read_adam(ckpt_file *c, vlm_model *m, float *adam_m, float *adam_v)
{
	if (c->version < 2)
		return refuse_old(c);
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
	if (c->version < 2)
		return refuse_old(c);
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
	} else if ((uint64_t)np > H5Dget_storage_size(d) / esize) {
		/* Written contiguous, all of it: a larger extent is a damaged
		 * header, which must not decide an allocation. */
		rc = nb_error("cannot load checkpoint '%s': '%s' claims %lld values but stores %llu bytes (file "
			      "corrupt)", c->path, full, (long long)np, (unsigned long long)H5Dget_storage_size(d));
	} else {
		*out = nb_xcalloc((size_t)np + 1, esize);
		*n = (size_t)np;
		if (np > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
			rc = nb_error("cannot load checkpoint '%s': cannot read '%s' (file truncated or corrupt)",
				      c->path, full);
		else
			rc = verify_dataset(c, d, full, *out, (size_t)np * esize);
		if (rc < 0) {
			free(*out);
			*out = NULL;
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
