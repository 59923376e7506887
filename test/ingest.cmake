# Web ingest: URL lists, codecs and resizing, the HTTP fetcher, the command.
nb_unit_test(test_urllist nb_ingest)
nb_unit_test(test_ingest_status nb_ingest)
nb_unit_test(test_image_codec nb_image)
nb_unit_test(test_png_reference nb_image)
nb_script_test(ingest_http ingest_http.sh)
nb_script_test(ingest_file ingest_file.sh)
nb_script_test(fuzz_smoke fuzz_smoke.sh)
nb_script_test(ingest_model ingest_model.sh)
