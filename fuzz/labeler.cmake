# The parsers are compiled into the targets (not linked from the component
# libraries) so that libFuzzer's coverage instrumentation reaches them.
nb_fuzz(fuzz_caption_parse nb_model nb_common)
target_sources(fuzz_caption_parse PRIVATE ${CMAKE_SOURCE_DIR}/labeler/caption_parse.c ${CMAKE_SOURCE_DIR}/labeler/metrics.c)
target_include_directories(fuzz_caption_parse PRIVATE ${CMAKE_SOURCE_DIR})

nb_fuzz(fuzz_jobfile nb_common)
target_sources(fuzz_jobfile PRIVATE ${CMAKE_SOURCE_DIR}/common/jobfile.c)
target_include_directories(fuzz_jobfile PRIVATE ${CMAKE_SOURCE_DIR})

nb_fuzz(fuzz_captions_tsv nb_common)
target_sources(fuzz_captions_tsv PRIVATE ${CMAKE_SOURCE_DIR}/labeler/captions_tsv.c)
target_include_directories(fuzz_captions_tsv PRIVATE ${CMAKE_SOURCE_DIR})
