# The option parser shared by every command (cli/cli_args.h).
nb_script_test(cli_options cli_options.sh)
# Hostile surroundings (docs/guarantees.md): a full stdout, special files as
# outputs and inputs, control characters in sources, BOMs, long paths.
# test_shard_sources writes the shard with odd sources that the script uses.
nb_unit_test(test_shard_sources nb_store)
nb_script_test(cli_robust cli_robust.sh)
nb_script_test(study_cli study_cli.sh)
# MPI splits of caption --shards and eval --model: 1 vs 2 and 3 ranks, byte for byte.
nb_script_test(split_ranks split_ranks.sh)
