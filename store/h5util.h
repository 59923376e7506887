/* Small HDF5 helpers shared by the shard store, checkpoints (model/) and
 * `nboost inspect`: the cause of a failure from HDF5's error stack, scalar
 * attributes written and read with validation, and whole datasets written
 * in one call. Not an on-disk contract: the formats are in schemas/.
 *
 * Every function here assumes HDF5's automatic error printing is off
 * (h5u_quiet) and reports through its return value; callers add the file
 * name. Not thread-safe (HDF5 is built without thread safety). */
#ifndef NB_H5UTIL_H
#define NB_H5UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

/* Turns off HDF5's own dump of its error stack to stderr: our messages
 * carry its useful part (h5u_cause). */
void h5u_quiet(void);

/* Copies the most specific description on HDF5's error stack of this thread
 * into buf (e.g. "file signature not found"), or "unknown HDF5 error", and
 * clears the stack. HDF5 clears the stack at every API call, so call it
 * right after the failing one. */
void h5u_cause(char *buf, size_t n);

/* Property lists for files nboost writes: HDF5's 1.10 file format, in
 * which the superblock, object headers (with their attributes), chunk
 * indexes and heaps all carry checksums that libhdf5 verifies on read, and
 * no object timestamps (equal content, equal bytes). Readable by libhdf5
 * 1.10 and later. -1 on failure; the caller closes them. */
hid_t h5u_fapl_new(void);
hid_t h5u_fcpl_new(void);
hid_t h5u_gcpl_new(void);

/* Dataset creation properties: chunked with `chunk`, zstd (filter 32015) at
 * `zstd_level` when it is 1 or more, then HDF5's Fletcher-32 checksum of the
 * stored bytes (so HDF5 verifies every chunk on read), fill value 0, no
 * timestamps (so equal content gives byte-identical files). Negative on
 * failure. h5u_dcpl_opts(..., 0) leaves the checksum out. */
hid_t h5u_dcpl(int rank, const hsize_t *chunk, int zstd_level);
hid_t h5u_dcpl_opts(int rank, const hsize_t *chunk, int zstd_level, int checksum);

/* HDF5's Fletcher-32 (H5Z_FILTER_FLETCHER32) of n bytes, bit for bit:
 * 16-bit big-endian words, an odd last byte as the high byte of a word
 * (about 5 GB/s). The filter stores it
 * after the chunk as 4 little-endian bytes (h5u_fletcher32_put). For
 * writers and readers that handle stored chunks themselves
 * (H5Dwrite_chunk, the shard reader's own chunk reads). */
uint32_t h5u_fletcher32(const void *data, size_t n);
void h5u_fletcher32_put(uint8_t *at, uint32_t sum);
/* 1 when the last 4 of the n stored bytes are the checksum of the others. */
int h5u_fletcher32_ok(const void *stored, size_t n);

/* Opens dataset `path` (absolute, or relative to loc) only when its data can
 * come from nothing but this file: every link on the path is a hard link
 * (no external link into another file, no soft link), the object is a
 * dataset, its layout is not virtual (a mapping of other files' datasets)
 * and it has no external raw storage (H5Pset_external: bytes of any local
 * file). Nothing is opened or followed before it is checked. Returns the
 * dataset (H5Dclose it), or -1 with why[] naming the path and the cause:
 * "dataset '/x' is missing", "'/g' is an external link (to 'f.h5:/y'): data
 * from another file is refused", "'/x' is a soft link: ...", "'/x' is not a
 * dataset", "dataset '/x' is a virtual dataset: ...", "dataset '/x' stores
 * its data in an external file ('/etc/passwd'): ...". A readable, trivially
 * callable check for every reader of untrusted HDF5 files (shards,
 * checkpoints). */
hid_t h5u_open_dataset_safe(hid_t loc, const char *path, char *why, size_t whyn);
/* The storage half of the check, on an open dataset: 0, or -1 with why[]
 * (name is only used in the message). */
int h5u_check_dataset_storage(hid_t ds, const char *name, char *why, size_t whyn);

/* Creates dataset `name` in loc of file type ftype and shape dims (maxdims
 * NULL: fixed), with creation properties dcpl (H5P_DEFAULT: contiguous),
 * and writes all of data (memory type mtype) to it. 0, or -1 with cause[]
 * set from the error stack when cause is not NULL. */
int h5u_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
		      const hsize_t *maxdims, hid_t dcpl, const void *data, char *cause, size_t causen);

/* Scalar attributes on `obj`, replacing one of the same name: strings are
 * fixed-length and NUL-terminated; int is int32, i64/u64 are 64-bit, float
 * is float32, all little-endian. 0 or -1. */
int h5u_put_str(hid_t obj, const char *name, const char *value);
int h5u_put_int(hid_t obj, const char *name, int value);
int h5u_put_i64(hid_t obj, const char *name, int64_t value);
int h5u_put_u64(hid_t obj, const char *name, uint64_t value);
int h5u_put_float(hid_t obj, const char *name, float value);

/* Reads a scalar attribute, checking that it exists and is of the right
 * class (a value that does not convert, such as an int64 beyond int, is
 * unreadable). 0, or -1 with why[] set to the cause, naming the attribute:
 * "missing attribute 'x'", "attribute 'x' has the wrong type (expected a
 * scalar integer)", "unreadable attribute 'x'", "attribute 'x' is longer
 * than N bytes". */
int h5u_get_str(hid_t obj, const char *name, char *buf, size_t n, char *why, size_t whyn);
int h5u_get_int(hid_t obj, const char *name, int *value, char *why, size_t whyn);
int h5u_get_i64(hid_t obj, const char *name, int64_t *value, char *why, size_t whyn);
int h5u_get_u64(hid_t obj, const char *name, uint64_t *value, char *why, size_t whyn);
int h5u_get_float(hid_t obj, const char *name, float *value, char *why, size_t whyn);
/* A string attribute of at most max bytes, malloc'ed (caller frees); NULL
 * with why[] set as above. */
char *h5u_get_str_alloc(hid_t obj, const char *name, size_t max, char *why, size_t whyn);

#endif
