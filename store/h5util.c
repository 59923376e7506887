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

hid_t h5u_dcpl(int rank, const hsize_t *chunk, int zstd_level)
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
	return dcpl;
fail:
	H5Pclose(dcpl);
	return -1;
}

int h5u_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
		      const hsize_t *maxdims, hid_t dcpl, const void *data, char *cause, size_t causen)
{
	hid_t space = H5Screate_simple(rank, dims, maxdims);
	hid_t ds = space >= 0 ? H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
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
