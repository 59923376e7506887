# Ingest: decode+resize cost without the network (bench_ingest); the end-to-end
# loopback benchmark with nginx is the script bench/ingest.sh.
nb_bench(bench_ingest nb_image)
