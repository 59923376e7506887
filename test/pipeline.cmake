# pipeline/: nboost run (journal and event log so far).
nb_unit_test(test_journal nb_pipeline)
nb_script_test(run_pipeline run_pipeline.sh)
nb_unit_test(test_scheduler nb_pipeline)
nb_script_test(run_test_split run_test_split.sh)
