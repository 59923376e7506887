# The shard store and the zstd filter (store/).
nb_unit_test(test_shard_store nb_store nb_hdf5)
nb_unit_test(test_shard_zstd nb_store)
nb_unit_test(test_shard_guard nb_store nb_hdf5)
nb_unit_test(test_shard_checksum nb_store nb_hdf5)
nb_script_test(shard_interop shard_interop.sh)
nb_script_test(shard_inspect shard_inspect.sh)
nb_unit_test(test_pair_shard nb_store nb_hdf5)
