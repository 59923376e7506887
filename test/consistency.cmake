# labeler/consistency: the pseudo-label consistency filter (docs/pipeline.md).
nb_unit_test(test_consistency nb_labeler)
