# The option parser shared by every command (cli/cli_args.h).
nb_script_test(cli_options cli_options.sh)
