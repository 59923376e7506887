nb_script_test(slurm_smoke slurm_smoke.sh)
