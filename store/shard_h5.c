#include "store/shard_h5.h"

#include <stdio.h>
#include <string.h>

#include "store/h5zstd.h"
#include "store/shard_store.h"

static herr_t keep_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
	char **out = data;
	if (n == 0 && e->desc && e->desc[0])
		*out = (char *)e->desc;
	return 0;
}

void shard_h5_cause(char *buf, size_t n)
{
	char *desc = NULL;
	/* Walking upward starts at the most specific frame, which is the one
	 * that says what is wrong with the file rather than which API failed. */
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &desc);
	snprintf(buf, n, "%s", desc ? desc : "unknown HDF5 error");
	H5Eclear2(H5E_DEFAULT);
}

hid_t shard_h5_dcpl(int rank, const hsize_t *chunk, int level)
{
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0)
		return -1;
	/* An explicit zero fill makes the unwritten tail of a partial last
	 * chunk deterministic (no stale heap bytes on disk). */
	static const unsigned char zero[16];
	if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
		goto fail;
	hid_t type = H5T_NATIVE_UCHAR;
	if (H5Pset_fill_value(dcpl, type, zero) < 0)
		goto fail;
	if (level != SHARD_NO_COMPRESSION) {
		unsigned cd = (unsigned)level;
		if (H5Pset_filter(dcpl, H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &cd) < 0)
			goto fail;
	}
	return dcpl;
fail:
	H5Pclose(dcpl);
	return -1;
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

int shard_h5_put_str(hid_t obj, const char *name, const char *value)
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

int shard_h5_put_int(hid_t obj, const char *name, int value)
{
	return put_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, &value);
}

int shard_h5_put_float(hid_t obj, const char *name, float value)
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

int shard_h5_get_str(hid_t obj, const char *name, char *buf, size_t n, char *why, size_t whyn)
{
	hid_t a = open_attr(obj, name, H5T_STRING, why, whyn);
	if (a < 0)
		return -1;
	hid_t ft = H5Aget_type(a);
	size_t size = ft >= 0 ? H5Tget_size(ft) : 0;
	if (ft >= 0)
		H5Tclose(ft);
	char tmp[1024];
	if (size == 0 || size >= sizeof tmp) {
		snprintf(why, whyn, "attribute '%s' is a string of %zu bytes", name, size);
		H5Aclose(a);
		return -1;
	}
	hid_t mt = H5Tcopy(H5T_C_S1);
	H5Tset_size(mt, size + 1);
	H5Tset_strpad(mt, H5T_STR_NULLTERM);
	memset(tmp, 0, sizeof tmp);
	herr_t rc = H5Aread(a, mt, tmp);
	H5Tclose(mt);
	H5Aclose(a);
	if (rc < 0) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "unreadable attribute '%s'", name);
		return -1;
	}
	size_t len = strlen(tmp);
	if (len >= n) {
		snprintf(why, whyn, "attribute '%s' is longer than %zu bytes", name, n - 1);
		return -1;
	}
	memcpy(buf, tmp, len + 1);
	return 0;
}

static int get_number(hid_t obj, const char *name, H5T_class_t cls, hid_t mtype, void *value,
		      char *why, size_t whyn)
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

int shard_h5_get_int(hid_t obj, const char *name, int *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_INTEGER, H5T_NATIVE_INT, value, why, whyn);
}

int shard_h5_get_float(hid_t obj, const char *name, float *value, char *why, size_t whyn)
{
	return get_number(obj, name, H5T_FLOAT, H5T_NATIVE_FLOAT, value, why, whyn);
}
