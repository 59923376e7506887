/* cli/cli_args.h: the one option parser of every nboost command.
 *
 * A command describes its options in a table and its positional arguments
 * and usage text in a cli_command; cli_parse reads argv against it and
 * prints every error in one wording:
 *
 *   nboost CMD: unknown option '--foo'
 *   nboost CMD: option '--out' needs a value
 *   nboost CMD: option '--force' takes no value
 *   nboost CMD: --steps: 'x' is not an integer        (common/nb_num.h)
 *   nboost CMD: missing --out DIR                      (a required option)
 *   nboost CMD: missing JOB                            (too few positionals)
 *   nboost CMD: unexpected argument 'x'                (too many)
 *   nboost CMD: command line: unknown key 'nosie.sigma' (did you mean 'noise.sigma'?)
 *   nboost CMD: '--a.b=c' sets a job-file key, but CMD reads no job file
 *
 * each followed by a blank line and the usage on stderr, exit status 2.
 * Options are "--name value", "--name=value", "-x" for a short name, and
 * "--" ends them. -h/--help prints the usage on stdout, --version the
 * version (cli_version.h); both end the command with status 0. When the command
 * reads a job file, "--section.key=value" (a dot in the name) sets that key
 * in cli_command.overrides. The usage text is the command's synopsis and
 * description followed by an options list generated from the table, so
 * the two cannot drift. */
#ifndef NB_CLI_ARGS_H
#define NB_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "common/jobfile.h"
#include "common/nb_error.h"

typedef enum {
	CLI_FLAG,   /* no value; sets *dest.flag = 1 */
	CLI_STRING, /* *dest.str points into argv; required: an error when absent */
	CLI_LONG,   /* nb_parse_long in [lo, hi] */
	CLI_U64,    /* nb_parse_u64 in [ulo, uhi] */
	CLI_SIZE,   /* nb_parse_size (k, M, G suffixes, powers of 1024) in [ulo, uhi] */
	CLI_DOUBLE, /* nb_parse_double in [dlo, dhi] */
} cli_kind;

typedef struct {
	const char *name; /* without "--"; NULL ends the table */
	char short_name;  /* 'q' for -q, or 0 */
	cli_kind kind;
	union {
		int *flag;
		const char **str;
		long *l;
		uint64_t *u;
		double *d;
	} dest; /* left untouched unless the option is given */
	long lo, hi;
	uint64_t ulo, uhi;
	double dlo, dhi;
	int required;
	const char *arg;  /* value placeholder in the help: "DIR", "N" */
	const char *flag_value; /* CLI_FLAG only: also accepts --name=<this>, which sets *dest.flag = 2 */
	const char *help; /* may hold '\n': continuation lines are indented */
} cli_option;

#define CLI_OPT_FLAG(nm, sh, p, hp) {.name = (nm), .short_name = (sh), .kind = CLI_FLAG, .dest.flag = (p), .help = (hp)}
/* A flag that also takes one fixed value: --resume or --resume=auto. */
#define CLI_OPT_FLAG_OR(nm, p, v, hp) {.name = (nm), .kind = CLI_FLAG, .dest.flag = (p), .flag_value = (v), .help = (hp)}
#define CLI_OPT_STRING(nm, p, ar, hp) {.name = (nm), .kind = CLI_STRING, .dest.str = (p), .arg = (ar), .help = (hp)}
#define CLI_OPT_REQUIRED(nm, p, ar, hp) \
	{.name = (nm), .kind = CLI_STRING, .dest.str = (p), .required = 1, .arg = (ar), .help = (hp)}
#define CLI_OPT_LONG(nm, p, min, max, ar, hp) \
	{.name = (nm), .kind = CLI_LONG, .dest.l = (p), .lo = (min), .hi = (max), .arg = (ar), .help = (hp)}
#define CLI_OPT_U64(nm, p, min, max, ar, hp) \
	{.name = (nm), .kind = CLI_U64, .dest.u = (p), .ulo = (min), .uhi = (max), .arg = (ar), .help = (hp)}
#define CLI_OPT_SIZE(nm, p, min, max, ar, hp) \
	{.name = (nm), .kind = CLI_SIZE, .dest.u = (p), .ulo = (min), .uhi = (max), .arg = (ar), .help = (hp)}
#define CLI_OPT_DOUBLE(nm, p, min, max, ar, hp) \
	{.name = (nm), .kind = CLI_DOUBLE, .dest.d = (p), .dlo = (min), .dhi = (max), .arg = (ar), .help = (hp)}
#define CLI_OPT_END {.name = NULL}
/* A macro's value as a string literal, for numbers in help texts:
 * "(default " CLI_STR(DEF_BATCH) ")". */
#define CLI_STR(x) CLI_STR_(x)
#define CLI_STR_(x) #x

typedef struct {
	const char *name;       /* "train": messages start "nboost train: " */
	const char *synopsis;   /* "usage: nboost train JOB ...\n" (one or more lines) */
	const char *about;      /* the paragraph after it, or NULL */
	const cli_option *opts; /* ended by CLI_OPT_END; -h/--help is implicit */
	const char *footer;     /* printed after the options, or NULL */
	/* Positional arguments: their placeholder in messages ("JOB"), and how
	 * many are accepted (max_pos < 0: any number). */
	const char *positional;
	int min_pos, max_pos;
	/* NULL: "--a.b=c" is an error. Otherwise each such argument is set in
	 * it (origin "command line"), and check_keys, when set, vets the keys
	 * once all are read (the command's known-key check). */
	jobfile *overrides;
	int (*check_keys)(const jobfile *overrides);
} cli_command;

/* Parses argv[1..argc) (argv[0] is the command name). On success returns -1
 * and moves the positional arguments, in order, to argv[1..1 + *npos) (the
 * rest of argv is the options, in their order). Otherwise returns the exit
 * status for the command: 0 after printing the usage for --help, 2 after
 * printing a usage error. */
int cli_parse(const cli_command *c, int argc, char **argv, int *npos);

/* Routes SIGTERM, SIGINT and SIGUSR1 (the stop signals of every long
 * command: docs/exit-codes.md) to handler. */
void cli_catch_stop_signals(void (*handler)(int));

/* The usage: synopsis, about, the options generated from the table, footer. */
void cli_usage(const cli_command *c, FILE *f);

/* For the checks a table cannot express (options that exclude each other,
 * choice values): prints "nboost NAME: <message>", a blank line and the
 * usage to stderr; returns 2. */
int cli_usage_error(const cli_command *c, const char *fmt, ...) NB_PRINTF(2, 3);

#endif
