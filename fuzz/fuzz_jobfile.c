/* libFuzzer target: the job-file parser, its typed getters and the
 * command-line overrides (each input line becomes one argv entry). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jobfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	jobfile *j = jobfile_parse(text, "fuzz.conf");
	if (j) {
		for (int i = 0; i < jobfile_count(j); i++) {
			const char *k = jobfile_key_at(j, i);
			long l;
			double d;
			int b;
			(void)jobfile_int(j, k, 0, -100, 100, &l);
			(void)jobfile_double(j, k, 0, -1, 1, &d);
			(void)jobfile_bool(j, k, 0, &b);
			if (!jobfile_str(j, k, NULL) || !jobfile_value_at(j, i) || !jobfile_origin(j, k))
				abort();
		}
		const char *known[] = {"train.steps", "train.lr", "noise.sigma", "filter.vote", NULL};
		(void)jobfile_check_known(j, known);
	} else {
		j = jobfile_new();
	}

	/* Overrides: argv from the lines of the input, after a program name. */
	int argc = 1;
	char *argv[66];
	char prog[] = "nboost";
	argv[0] = prog;
	for (char *p = text; *p && argc < 64;) {
		argv[argc++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	argv[argc] = NULL;
	int before = argc;
	if (jobfile_apply_overrides(j, &argc, argv) == 0 && (argc > before || argc < 1 || argv[argc] != NULL))
		abort();
	jobfile_free(j);
	free(text);
	return 0;
}
