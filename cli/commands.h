/* The nboost subcommands. Each takes the argv after the command name
 * (argv[0] is the command name), prints --help, and returns the exit code. */
#ifndef NB_COMMANDS_H
#define NB_COMMANDS_H

int cmd_synth(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_pairs(int argc, char **argv);

#endif
