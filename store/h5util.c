#include "store/h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "store/h5zstd.h"

void h5u_quiet(void)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static herr_t keep_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
	char **out = data;
	if (n == 0 && e->desc && e->desc[0])
		*out = (char *)e->desc;
	return 0;
}

void h5u_cause(char *buf, size_t n)
{
	char *desc = NULL;
	/* Walking upward starts at the most specific frame, which is the one
	 * that says what is wrong with the file rather than which API failed. */
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &desc);
	snprintf(buf, n, "%s", desc ? desc : "unknown HDF5 error");
	H5Eclear2(H5E_DEFAULT);
}

hid_t h5u_fapl_new(void)
{
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
		H5Pclose(fapl);
		return -1;
	}
	return fapl;
}

static hid_t untimed(hid_t cls)
{
	hid_t pl = H5Pcreate(cls);
	if (pl >= 0 && H5Pset_obj_track_times(pl, 0) < 0) {
		H5Pclose(pl);
		return -1;
	}
	return pl;
}

hid_t h5u_fcpl_new(void)
{
	return untimed(H5P_FILE_CREATE);
}

hid_t h5u_gcpl_new(void)
{
	return untimed(H5P_GROUP_CREATE);
}

hid_t h5u_dcpl(int rank, const hsize_t *chunk, int zstd_level)
{
	return h5u_dcpl_opts(rank, chunk, zstd_level, 1);
}

hid_t h5u_dcpl_opts(int rank, const hsize_t *chunk, int zstd_level, int checksum)
{
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0)
		return -1;
	/* An explicit zero fill makes the unwritten tail of a partial last
	 * chunk deterministic (no stale heap bytes on disk). */
	static const unsigned char zero[16];
	if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
		goto fail;
	if (H5Pset_fill_value(dcpl, H5T_NATIVE_UCHAR, zero) < 0)
		goto fail;
	if (zstd_level >= 1) {
		unsigned cd = (unsigned)zstd_level;
		if (H5Pset_filter(dcpl, H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &cd) < 0)
			goto fail;
	}
	/* After zstd in the pipeline: the checksum covers the stored bytes and
	 * is verified before anything is decompressed. */
	if (checksum && H5Pset_fletcher32(dcpl) < 0)
		goto fail;
	return dcpl;
fail:
	H5Pclose(dcpl);
	return -1;
}

/* HDF5 sums 16-bit words into a and b (b += a after each word) modulo
 * 65535, folding with end-around carry, so a positive sum never becomes 0:
 * a residue of 0 reads 0xffff unless every word is 0. Here the sums are
 * computed in blocks of ROWS x LANES words: lane l keeps A[l] (its words'
 * sum) and B[l] (A[l] summed after every row), which the compiler
 * vectorizes; the block's b is then sum over l of LANES*B[l] - l*A[l]
 * (word i of k carries weight k - i). ROWS = 256 keeps B below 2^32. */
#define F32_LANES 16
#define F32_ROWS 256

uint32_t h5u_fletcher32(const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t words = n / 2;
	uint64_t a = 0, b = 0;
	int any = 0;
	while (words >= F32_LANES) {
		size_t rows = words / F32_LANES < F32_ROWS ? words / F32_LANES : F32_ROWS;
		uint32_t A[F32_LANES] = {0}, B[F32_LANES] = {0};
		for (size_t r = 0; r < rows; r++, p += 2 * F32_LANES)
			for (int l = 0; l < F32_LANES; l++) {
				A[l] += (uint32_t)p[2 * l] << 8 | p[2 * l + 1];
				B[l] += A[l];
			}
		uint64_t s1 = 0, s2 = 0, k = rows * F32_LANES;
		for (int l = 0; l < F32_LANES; l++) {
			s1 += A[l];
			s2 += (uint64_t)F32_LANES * B[l] - (uint64_t)l * A[l];
		}
		b = (b + k * a + s2) % 65535;
		a = (a + s1) % 65535;
		any |= s1 != 0;
		words -= k;
	}
	for (; words; words--, p += 2) {
		uint32_t w = (uint32_t)p[0] << 8 | p[1];
		a = (a + w) % 65535;
		b = (b + a) % 65535;
		any |= w != 0;
	}
	if (n % 2) {
		/* an odd last byte is the high byte of a word */
		a = (a + ((uint32_t)p[0] << 8)) % 65535;
		b = (b + a) % 65535;
		any |= p[0] != 0;
	}
	if (!any)
		return 0;
	return (uint32_t)((b ? b : 0xffff) << 16 | (a ? a : 0xffff));
}

void h5u_fletcher32_put(uint8_t *at, uint32_t sum)
{
	for (int i = 0; i < 4; i++)
		at[i] = (uint8_t)(sum >> (8 * i));
}

int h5u_fletcher32_ok(const void *stored, size_t n)
{
	if (n < 4)
		return 0;
	const uint8_t *tail = (const uint8_t *)stored + n - 4;
	uint32_t want = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
	return h5u_fletcher32(stored, n - 4) == want;
}

/* Checks the link `path` names (relative to loc) without following it. */
static int check_link(hid_t loc, const char *path, const char *shown, char *why, size_t whyn)
{
	htri_t e = H5Lexists(loc, path, H5P_DEFAULT);
	if (e <= 0) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "dataset '%s' is missing", shown);
		return -1;
	}
	H5L_info_t li;
	if (H5Lget_info(loc, path, &li, H5P_DEFAULT) < 0) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "'%s' is an unreadable link", shown);
		return -1;
	}
	if (li.type == H5L_TYPE_HARD)
		return 0;
	if (li.type == H5L_TYPE_EXTERNAL) {
		char target[512] = "";
		const char *file = NULL, *obj = NULL;
		size_t n = li.u.val_size < sizeof target ? li.u.val_size : sizeof target;
		if (H5Lget_val(loc, path, target, n, H5P_DEFAULT) < 0 ||
		    H5Lunpack_elink_val(target, n, NULL, &file, &obj) < 0)
			file = obj = NULL;
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "'%s' is an external link (to '%s:%s'): data from another file is refused", shown,
			 file ? file : "?", obj ? obj : "?");
	} else if (li.type == H5L_TYPE_SOFT) {
		snprintf(why, whyn, "'%s' is a soft link: only hard links are followed", shown);
	} else {
		snprintf(why, whyn, "'%s' is a user-defined link (type %d): only hard links are followed", shown,
			 (int)li.type);
	}
	return -1;
}

int h5u_check_dataset_storage(hid_t ds, const char *name, char *why, size_t whyn)
{
	hid_t dcpl = H5Dget_create_plist(ds);
	if (dcpl < 0) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "dataset '%s' has unreadable creation properties", name);
		return -1;
	}
	int rc = 0;
	H5D_layout_t layout = H5Pget_layout(dcpl);
	int ext = H5Pget_external_count(dcpl);
	if (layout == H5D_VIRTUAL) {
		snprintf(why, whyn, "dataset '%s' is a virtual dataset: data mapped from other files is refused", name);
		rc = -1;
	} else if (ext != 0) {
		char file[256] = "?";
		off_t off;
		hsize_t size;
		if (ext < 0 || H5Pget_external(dcpl, 0, sizeof file, file, &off, &size) < 0)
			snprintf(file, sizeof file, "?");
		file[sizeof file - 1] = '\0';
		snprintf(why, whyn, "dataset '%s' stores its data in an external file ('%s'): data from outside this "
			 "file is refused", name, file);
		rc = -1;
	} else if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED && layout != H5D_COMPACT) {
		snprintf(why, whyn, "dataset '%s' has an unknown storage layout %d", name, (int)layout);
		rc = -1;
	} else if (layout != H5D_CHUNKED) {
		/* Compact and contiguous data must be exactly dims x element
		 * size: libhdf5 1.10.8 copies the dataspace's size out of a
		 * shorter compact buffer (a heap overflow inside H5Dread, found
		 * by fuzz_shard_reader). Contiguous storage may be unallocated. */
		hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
		hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
		size_t es = t >= 0 ? H5Tget_size(t) : 0;
		hsize_t stored = H5Dget_storage_size(ds);
		if (np < 0 || !es || (hsize_t)np > ((hsize_t)-1) / es) {
			snprintf(why, whyn, "dataset '%s' has an unreadable size", name);
			rc = -1;
		} else if (stored != (hsize_t)np * es && (layout == H5D_COMPACT || stored != 0)) {
			snprintf(why, whyn, "dataset '%s' is corrupt: its %s storage holds %llu bytes for %lld elements of %zu "
				 "bytes", name, layout == H5D_COMPACT ? "compact" : "contiguous",
				 (unsigned long long)stored, (long long)np, es);
			rc = -1;
		}
		if (sp >= 0)
			H5Sclose(sp);
		if (t >= 0)
			H5Tclose(t);
	}
	H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	return rc;
}

hid_t h5u_open_dataset_safe(hid_t loc, const char *path, char *why, size_t whyn)
{
	char shown[520], prefix[512];
	int abs = path[0] == '/';
	snprintf(shown, sizeof shown, "%s%s", abs ? "" : "/", path);
	if (strlen(path) >= sizeof prefix) {
		snprintf(why, whyn, "dataset name '%.64s...' is too long", path);
		return -1;
	}
	/* Each prefix "a", "a/b", ... in turn: a link is checked before any
	 * path through it is resolved. */
	size_t n = strlen(path);
	for (size_t i = abs; i <= n; i++) {
		if (i < n && path[i] != '/')
			continue;
		if (i == (size_t)abs || path[i - 1] == '/')
			continue; /* empty component ("//") */
		memcpy(prefix, path, i);
		prefix[i] = '\0';
		char part[520];
		snprintf(part, sizeof part, "%s%s", abs ? "" : "/", prefix);
		if (check_link(loc, prefix, i == n ? shown : part, why, whyn) < 0)
			return -1;
	}
	H5O_info_t oi;
	if (H5Oget_info_by_name2(loc, path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "'%s' is not a dataset", shown);
		return -1;
	}
	hid_t ds = H5Dopen2(loc, path, H5P_DEFAULT);
	if (ds < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		snprintf(why, whyn, "'%s' is not a readable dataset: %s", shown, cause);
		return -1;
	}
	if (h5u_check_dataset_storage(ds, shown, why, whyn) < 0) {
		H5Dclose(ds);
		return -1;
	}
	return ds;
}

int h5u_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
		      const hsize_t *maxdims, hid_t dcpl, const void *data, char *cause, size_t causen)
{
	hid_t space = H5Screate_simple(rank, dims, maxdims);
	hid_t own = dcpl == H5P_DEFAULT ? untimed(H5P_DATASET_CREATE) : -1;
	hid_t ds = space >= 0 ? H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, own >= 0 ? own : dcpl, H5P_DEFAULT)
			      : -1;
	if (own >= 0)
		H5Pclose(own);
	herr_t rc = -1;
	if (ds >= 0) {
		/* An empty dataset has nothing to write (and data may be NULL). */
		hssize_t np = H5Sget_simple_extent_npoints(space);
		rc = np == 0 ? 0 : H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
	}
	if (rc < 0 && cause)
		h5u_cause(cause, causen);
	if (ds >= 0)
		H5Dclose(ds);
	if (space >= 0)
		H5Sclose(space);
	return rc < 0 ? -1 : 0;
}

static int put_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
	hid_t space = H5Screate(H5S_SCALAR);
	if (space < 0)
		return -1;
	if (H5Aexists(obj, name) > 0)
		H5Adelete(obj, name);
	hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
	int rc = -1;
	if (a >= 0) {
		rc = H5Awrite(a, mtype, value) < 0 ? -1 : 0;
		H5Aclose(a);
	}
	H5Sclose(space);
	return rc;
}

int h5u_put_str(hid_t obj, const char *name, const char *value)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0)
		return -1;
	int rc = -1;
	if (H5Tset_size(t, strlen(value) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0)
		rc = put_attr(obj, name, t, t, value);
	H5Tclose(t);
	return rc;
}

int h5u_put_int(hid_t obj, const char *name, int value)
{
	return put_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, &value);
}

int h5u_put_i64(hid_t obj, const char *name, int64_t value)
{
	return put_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int h5u_put_u64(hid_t obj, const char *name, uint64_t value)
{
	return put_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

int h5u_put_float(hid_t obj, const char *name, float value)
{
	return put_attr(obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &value);
}

/* Opens attribute `name` if it exists and is a scalar (or 1-element) of
 * class `cls`. Negative with why[] on failure. */
static hid_t open_attr(hid_t obj, const char *name, H5T_class_t cls, char *why, size_t whyn)
{
	if (H5Aexists(obj, name) <= 0) {
		snprintf(why, whyn, "missing attribute '%s'", name);
		return -1;
	}
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0) {
		snprintf(why, whyn, "unreadable attribute '%s'", name);
		return -1;
	}
	hid_t t = H5Aget_type(a);
	hid_t s = H5Aget_space(a);
	hssize_t npoints = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
	H5T_class_t got = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
	int vlen = got == H5T_STRING && H5Tis_variable_str(t) > 0;
	if (t >= 0)
		H5Tclose(t);
	if (s >= 0)
		H5Sclose(s);
	if (got != cls || npoints != 1 || vlen) {
		snprintf(why, whyn, "attribute '%s' has the wrong type (expected a scalar %s)", name,
			 cls == H5T_STRING ? "fixed-length string" : cls == H5T_INTEGER ? "integer" : "float");
		H5Aclose(a);
		return -1;
	}
	return a;
}

char *h5u_get_str_alloc(hid_t obj, const char *name, size_t max, char *why, size_t whyn)
{
	hid_t a = open_attr(obj, name, H5T_STRING, why, whyn);
	if (a < 0)
		return NULL;
	hid_t ft = H5Aget_type(a);
	size_t size = ft >= 0 ? H5Tget_size(ft) : 0;
	if (ft >= 0)
		H5Tclose(ft);
	if (size == 0 || size > max) {
		snprintf(why, whyn, "attribute '%s' is a string of %zu bytes (limit %zu)", name, size, max);
		H5Aclose(a);
		return NULL;
	}
	/* One byte more than stored, so that a string padded with NULs or
	 * spaces instead of terminated still reads as a C string. */
	char *s = nb_xcalloc(size + 1, 1);
	hid_t mt = H5Tcopy(H5T_C_S1);
	herr_t rc = -1;
	if (mt >= 0 && H5Tset_size(mt, size + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0)
		rc = H5Aread(a, mt, s);
	if (mt >= 0)
		H5Tclose(mt);
	H5Aclose(a);
	if (rc < 0) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "unreadable attribute '%s'", name);
		free(s);
		return NULL;
	}
	return s;
}

int h5u_get_str(hid_t obj, const char *name, char *buf, size_t n, char *why, size_t whyn)
{
	/* The stored size may exceed the text (padding): the text is what
	 * must fit. HDF5 keeps attributes under 64 KiB. */
	char *s = h5u_get_str_alloc(obj, name, (size_t)1 << 16, why, whyn);
	if (!s)
		return -1;
	size_t len = strlen(s);
	if (len >= n) {
		snprintf(why, whyn, "attribute '%s' is longer than %zu bytes", name, n - 1);
		free(s);
		return -1;
	}
	memcpy(buf, s, len + 1);
	free(s);
	return 0;
}

static int get_number(hid_t obj, const char *name, H5T_class_t cls, hid_t mtype, void *value, char *why,
		      size_t whyn)
{
	hid_t a = open_attr(obj, name, cls, why, whyn);
	if (a < 0)
		return -1;
	herr_t rc = H5Aread(a, mtype, value);
	H5Aclose(a);
	if (rc < 0) {
		/* Out-of-range conversions (e.g. an int64 beyond int) fail here. */
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "unreadable attribute '%s'", name);
		return -1;
	}
	return 0;
}

int h5u_get_int(hid_t obj, const char *name, int *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_INTEGER, H5T_NATIVE_INT, value, why, whyn);
}

int h5u_get_i64(hid_t obj, const char *name, int64_t *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, value, why, whyn);
}

int h5u_get_u64(hid_t obj, const char *name, uint64_t *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_INTEGER, H5T_NATIVE_UINT64, value, why, whyn);
}

int h5u_get_float(hid_t obj, const char *name, float *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_FLOAT, H5T_NATIVE_FLOAT, value, why, whyn);
}
