/* PLACEHOLDER: replaced by the real command. */
#include "common/nb_error.h"
#include "pipeline/commands.h"

int cmd_train(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nb_die("'train' is not built yet");
}
