# trainer/: AdamW, schedule, clipping, batcher, checkpoints, job-file settings (trainer/train_job.c), `nboost train`.
nb_unit_test(test_trainer_optim nb_trainer)
nb_unit_test(test_checkpoint nb_model)
nb_unit_test(test_trainer_batcher nb_trainer)
nb_unit_test(test_trainer_step nb_trainer)
nb_unit_test(test_train_job nb_trainer)

# Writes small caption shards for the script tests (not a test itself).
add_executable(test_trainer_mkdata test_trainer_mkdata.c)
target_link_libraries(test_trainer_mkdata PRIVATE nb_store nb_model)

nb_script_test(train_cli train_cli.sh)
nb_script_test(train_ranks train_ranks.sh)
nb_script_test(train_resume train_resume.sh)
nb_script_test(train_text_only train_text_only.sh)
nb_script_test(train_faults train_faults.sh)
nb_script_test(train_rundir train_rundir.sh)
nb_script_test(train_signals train_signals.sh)
nb_script_test(train_jobs train_jobs.sh)
nb_unit_test(test_dpo nb_trainer)
nb_unit_test(test_dpo_torch nb_trainer)
nb_script_test(train_dpo train_dpo.sh)
