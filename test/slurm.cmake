nb_script_test(slurm_smoke slurm_smoke.sh)
nb_script_test(run_slurm run_slurm.sh)
set_tests_properties(run_slurm PROPERTIES RUN_SERIAL TRUE)
