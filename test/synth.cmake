# Synthetic scene corpus tests (owner: synth)
nb_unit_test(test_synth_render nb_synth nb_model nb_common m)
nb_unit_test(test_synth_png nb_synth nb_image nb_common PNG::PNG)
nb_script_test(synth_cli synth_cli.sh)
