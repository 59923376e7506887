# Shard store: write/read images/s and compression ratio per zstd level.
nb_bench(bench_shard nb_store nb_common m)
