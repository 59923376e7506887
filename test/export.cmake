# nboost export (cli/cmd_export.c): JSON lines and LLaVA JSON from shards and run directories.
nb_script_test(export_cli export_cli.sh)
nb_script_test(python_reader python_reader.sh)
