# Shard store: write/read images/s and compression ratio per zstd level, and
# the cost of the chunk checksums (with/without, interleaved in one run).
nb_bench(bench_shard nb_store nb_common m)
