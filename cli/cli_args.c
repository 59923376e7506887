#include "cli/cli_args.h"

#include <stdio.h>
#include <string.h>

int cli_option_value(int argc, char **argv, int *i, char *key, size_t keysz, const char **val)
{
	const char *arg = argv[*i];
	const char *eq = strchr(arg, '=');
	if (eq) {
		snprintf(key, keysz, "%.*s", (int)(eq - arg), arg);
		*val = eq + 1;
		return 0;
	}
	snprintf(key, keysz, "%s", arg);
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 0;
}
