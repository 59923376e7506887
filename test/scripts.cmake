# Scripts under scripts/ that need no build: the apt mirror lookup of scripts/fresh-check.
nb_script_test(apt_mirror apt_mirror.sh)
nb_script_test(check_layers check_layers.sh)
