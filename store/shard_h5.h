/* Internal to the shard store (shard_*.c): small HDF5 helpers shared by the
 * writer, the reader and `nboost inspect`. Not a public contract.
 * Every function here assumes HDF5's automatic error printing is off
 * (shard_zstd_register does that) and reports through nb_error. */
#ifndef NB_SHARD_H5_H
#define NB_SHARD_H5_H

#include <stddef.h>

#include <hdf5.h>

/* Largest /images chunk the store writes or reads (bytes), so that a corrupt
 * chunk shape cannot make a reader allocate without bound. */
#define SHARD_MAX_CHUNK_BYTES ((size_t)64 << 20)

/* Copies the most specific description on HDF5's error stack of this thread
 * into buf (e.g. "file signature not found"), or "unknown HDF5 error". */
void shard_h5_cause(char *buf, size_t n);

/* Dataset creation properties: chunked with `chunk`, zstd at `level` unless
 * level == SHARD_NO_COMPRESSION, fill value 0, no timestamps (so equal
 * content gives byte-identical files). Negative on failure. */
hid_t shard_h5_dcpl(int rank, const hsize_t *chunk, int level);

/* Attributes on `obj`. 0 or -1 (the caller adds the file name). */
int shard_h5_put_str(hid_t obj, const char *name, const char *value);
int shard_h5_put_int(hid_t obj, const char *name, int value);
int shard_h5_put_float(hid_t obj, const char *name, float value);

/* Reads a scalar string attribute into buf[n] (NUL-terminated). Returns 0,
 * or -1 with why[] set to the cause ("missing", "not a string", "longer
 * than N bytes"...). */
int shard_h5_get_str(hid_t obj, const char *name, char *buf, size_t n, char *why, size_t whyn);
int shard_h5_get_int(hid_t obj, const char *name, int *value, char *why, size_t whyn);
int shard_h5_get_float(hid_t obj, const char *name, float *value, char *why, size_t whyn);

#endif
