# The shard store and the zstd filter (pipeline/shard_*.c, pipeline/h5zstd*.c).
nb_unit_test(test_shard_store nb_shard nb_hdf5)
nb_unit_test(test_shard_zstd nb_shard)
nb_script_test(shard_interop shard_interop.sh)
nb_script_test(shard_inspect shard_inspect.sh)
