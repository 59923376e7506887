# model/ benchmarks (owner: model). Not tests: run by hand, see docs/performance.md.
nb_bench(bench_sgemm ${CMAKE_DL_LIBS})
nb_bench(bench_train_step nb_model)
nb_bench(bench_decode nb_labeler nb_model)
nb_bench(bench_dpo_step nb_trainer)
