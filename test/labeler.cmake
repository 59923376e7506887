# labeler/: caption parser, metrics, captions TSV; job-file tests (common/jobfile.c); nboost eval.
nb_unit_test(test_caption_parse nb_labeler)
nb_unit_test(test_metrics nb_labeler)
nb_unit_test(test_captions_tsv nb_labeler)
nb_unit_test(test_jobfile nb_common)
nb_script_test(eval_cli eval_cli.sh)
nb_unit_test(test_evaluate nb_labeler)
nb_unit_test(test_pope nb_labeler)
