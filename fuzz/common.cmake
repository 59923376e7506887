# common/: the JSON reader (compiled into the target for coverage, as
# fuzz_jobfile does with jobfile.c: nb_common itself is not instrumented).
nb_fuzz(fuzz_json nb_common)
target_sources(fuzz_json PRIVATE ${CMAKE_SOURCE_DIR}/common/nb_json.c)
target_include_directories(fuzz_json PRIVATE ${CMAKE_SOURCE_DIR})
