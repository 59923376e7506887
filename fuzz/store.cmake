nb_fuzz(fuzz_zstd_chunk PkgConfig::ZSTD nb_hdf5)
target_sources(fuzz_zstd_chunk PRIVATE ${CMAKE_SOURCE_DIR}/store/h5zstd.c)
target_include_directories(fuzz_zstd_chunk PRIVATE ${CMAKE_SOURCE_DIR})
# The shard reader's whole open path on an HDF5 file image (shard_open_image),
# then every sample. The store's reader code is compiled into the target so
# that coverage reaches it; libhdf5 itself is not instrumented.
nb_fuzz(fuzz_shard_reader nb_common nb_hdf5 PkgConfig::ZSTD)
target_sources(fuzz_shard_reader PRIVATE ${CMAKE_SOURCE_DIR}/store/shard_reader.c ${CMAKE_SOURCE_DIR}/store/shard_store.c
               ${CMAKE_SOURCE_DIR}/store/h5util.c ${CMAKE_SOURCE_DIR}/store/h5meta.c ${CMAKE_SOURCE_DIR}/store/h5zstd.c)
target_include_directories(fuzz_shard_reader PRIVATE ${CMAKE_SOURCE_DIR})
