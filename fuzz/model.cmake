# model/: the checkpoint reader on HDF5 file images (checkpoint.c and the
# HDF5 helpers compiled into the target so that coverage reaches them).
nb_fuzz(fuzz_checkpoint nb_model)
target_sources(fuzz_checkpoint PRIVATE ${CMAKE_SOURCE_DIR}/model/checkpoint.c ${CMAKE_SOURCE_DIR}/store/h5util.c
               ${CMAKE_SOURCE_DIR}/store/h5meta.c)
target_include_directories(fuzz_checkpoint PRIVATE ${CMAKE_SOURCE_DIR})
