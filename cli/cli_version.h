/* cli/cli_version.h: the text of `nboost --version` and `nboost CMD
 * --version`: the version and git commit (common/nb_prov.h) and the
 * versions of the libraries this binary runs with. */
#ifndef NB_CLI_VERSION_H
#define NB_CLI_VERSION_H

#include <stdio.h>

void cli_print_version(FILE *f);

#endif
