/* PLACEHOLDER: replaced by the real command. */
#include "common/nb_error.h"
#include "pipeline/commands.h"

int cmd_synth(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nb_die("'synth' is not built yet");
}
