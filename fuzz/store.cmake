nb_fuzz(fuzz_zstd_chunk PkgConfig::ZSTD nb_hdf5)
target_sources(fuzz_zstd_chunk PRIVATE ${CMAKE_SOURCE_DIR}/store/h5zstd.c)
target_include_directories(fuzz_zstd_chunk PRIVATE ${CMAKE_SOURCE_DIR})
