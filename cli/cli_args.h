/* Shared option splitting for the hand-written option loops of the commands. */
#ifndef NB_CLI_ARGS_H
#define NB_CLI_ARGS_H

#include <stddef.h>

/* argv[*i] is "--key=value" or "--key" with the value in argv[*i + 1].
 * Writes the key (truncated to keysz - 1) and points *val at the value,
 * advancing *i past a separate value. Returns 0, or -1 when the value is
 * missing (the caller reports "option '...' needs a value"). */
int cli_option_value(int argc, char **argv, int *i, char *key, size_t keysz, const char **val);

#endif
