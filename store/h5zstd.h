/* The zstd HDF5 filter, id 32015 (the HDF5Plugin-Zstandard registration).
 *
 * On disk each chunk is exactly one zstd frame whose header records the
 * decompressed size; cd_values[0] is the compression level used on write
 * (optional, default H5ZSTD_DEFAULT_LEVEL). Files written by nboost can thus
 * be read by h5py/hdf5plugin, and theirs by us.
 *
 * This file is shared by the in-process registration (shard_zstd_register in
 * shard_store.c) and the loadable plugin (h5zstd_plugin.c, built as
 * build/plugins/libh5zstd.so). It calls no HDF5 function, so the plugin works
 * inside any HDF5 1.10 process (serial h5dump, h5py) whichever libhdf5 that
 * process links. Buffers handed to and returned from the filter are owned by
 * HDF5 and allocated with malloc/free (HDF5 1.10's default allocator).
 * Thread-safe: no state beyond the call. */
#ifndef NB_H5ZSTD_H
#define NB_H5ZSTD_H

#include <stddef.h>

#include <hdf5.h>

#define H5ZSTD_FILTER_ID 32015
#define H5ZSTD_DEFAULT_LEVEL 3
/* Refuse to inflate a chunk beyond this (bytes): a corrupt frame header must
 * not make us allocate gigabytes. HDF5 chunks are limited to 4 GiB anyway. */
#define H5ZSTD_MAX_CHUNK ((size_t)1 << 32)

/* The H5Z filter function (see H5Z_func_t). Returns the new data size, or 0
 * on failure (HDF5 then reports a filter error); *buf is left untouched on
 * failure. */
size_t h5zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
		     size_t nbytes, size_t *buf_size, void **buf);

/* The filter class for H5Zregister / H5PLget_plugin_info. */
extern const H5Z_class2_t h5zstd_class;

#endif
