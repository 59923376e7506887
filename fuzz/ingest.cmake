# URL list parser (plain and gzip-compressed) and image decoders (PNG, JPEG,
# WebP). The code under test is compiled into each target (not linked from
# the uninstrumented libraries) so libFuzzer sees its coverage; zlib and
# libwebp are Debian's (not instrumented).
nb_fuzz(fuzz_urllist PkgConfig::ZLIB_PC)
target_sources(fuzz_urllist PRIVATE ${CMAKE_SOURCE_DIR}/corpus/ingest/urllist.c ${CMAKE_SOURCE_DIR}/common/nb_error.c
               ${CMAKE_SOURCE_DIR}/common/nb_io.c)
target_include_directories(fuzz_urllist PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(fuzz_urllist PRIVATE Threads::Threads)

nb_fuzz(fuzz_image_decode PNG::PNG JPEG::JPEG PkgConfig::WEBP Threads::Threads m)
target_sources(fuzz_image_decode PRIVATE ${CMAKE_SOURCE_DIR}/corpus/image/image_decode.c
               ${CMAKE_SOURCE_DIR}/corpus/image/image_webp.c
               ${CMAKE_SOURCE_DIR}/corpus/image/image_resize.c ${CMAKE_SOURCE_DIR}/common/nb_error.c)
target_include_directories(fuzz_image_decode PRIVATE ${CMAKE_SOURCE_DIR})
