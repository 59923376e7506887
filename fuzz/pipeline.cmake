# pipeline/: the run journal's JSON-lines parser and loader (compiled into
# the target so that coverage instrumentation reaches it).
nb_fuzz(fuzz_journal nb_common)
target_sources(fuzz_journal PRIVATE ${CMAKE_SOURCE_DIR}/pipeline/journal.c)
target_include_directories(fuzz_journal PRIVATE ${CMAKE_SOURCE_DIR})
