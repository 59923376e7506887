# common/: error reporting, RNG, small-file I/O.
nb_unit_test(test_common_io nb_common)
nb_unit_test(test_json nb_common)
