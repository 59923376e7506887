# common/: the JSON reader.
nb_fuzz(fuzz_json nb_common)
target_include_directories(fuzz_json PRIVATE ${CMAKE_SOURCE_DIR})
