# Synthetic corpus speed (owner: synth): bench_synth [scenes per run]
nb_bench(bench_synth nb_synth nb_store nb_image nb_model nb_common)
