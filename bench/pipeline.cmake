# nboost run (pipeline/): the master's unit dispatch under mpirun with null
# teachers (bench_scheduler; bench/scheduler.sh loops the teacher count), and
# one teacher rank's labeling work per K (bench_label). The overhead of the
# other roles on a teacher is the script bench/run_overhead.sh.
nb_bench(bench_scheduler nb_pipeline)
nb_bench(bench_label nb_model nb_store nb_common)
