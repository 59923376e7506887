/* PLACEHOLDER: replaced by the real command. */
#include "common/nb_error.h"
#include "pipeline/commands.h"

int cmd_caption(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nb_die("'caption' is not built yet");
}
