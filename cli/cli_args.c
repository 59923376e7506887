/* cli/cli_args.c: the option parser shared by every command (cli_args.h). */
#include "cli/cli_args.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_version.h"
#include "common/nb_num.h"

#define MAX_OPTS 64

int cli_usage_error(const cli_command *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nboost %s: ", c->name);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	cli_usage(c, stderr);
	return 2;
}

/* ---- the usage text ---- */

static int left_width(const cli_option *o)
{
	return (o->short_name ? 4 : 0) + 2 + (int)strlen(o->name) + (o->arg ? 1 + (int)strlen(o->arg) : 0) +
	       (o->flag_value ? 3 + (int)strlen(o->flag_value) : 0);
}

/* "  -q, --quiet    help", continuation lines of help indented to match. */
static void print_option(FILE *f, char sh, const char *name, const char *arg, const char *help, int width)
{
	char left[128];
	const char *sep = arg && arg[0] != '[' ? " " : ""; /* "--out DIR", "--resume[=auto]" */
	if (sh)
		snprintf(left, sizeof left, "-%c, --%s%s%s", sh, name, sep, arg ? arg : "");
	else
		snprintf(left, sizeof left, "--%s%s%s", name, sep, arg ? arg : "");
	fprintf(f, "  %-*s", width, left);
	const char *s = help;
	for (;;) {
		const char *nl = strchr(s, '\n');
		fprintf(f, "%.*s\n", nl ? (int)(nl - s) : (int)strlen(s), s);
		if (!nl || !nl[1])
			break;
		s = nl + 1;
		fprintf(f, "  %-*s", width, "");
	}
}

void cli_usage(const cli_command *c, FILE *f)
{
	fputs(c->synopsis, f);
	if (c->about)
		fprintf(f, "\n%s", c->about);
	int width = 10; /* "-h, --help" */
	for (const cli_option *o = c->opts; o->name; o++)
		if (left_width(o) > width)
			width = left_width(o);
	if (c->overrides && width < 15)
		width = 15; /* "--section.key=V" */
	width += 2;
	fprintf(f, "\noptions:\n");
	for (const cli_option *o = c->opts; o->name; o++) {
		char flag_arg[64];
		const char *arg = o->arg;
		if (o->flag_value) { /* "--resume[=auto]" */
			snprintf(flag_arg, sizeof flag_arg, "[=%s]", o->flag_value);
			arg = flag_arg;
		}
		print_option(f, o->short_name, o->name, arg, o->help, width);
	}
	if (c->overrides)
		print_option(f, 0, "section.key=V", NULL, "override any job-file key (schemas/job_file.md)", width);
	print_option(f, 'h', "help", NULL, "this text", width);
	print_option(f, 0, "version", NULL, "version, git commit and library versions", width);
	if (c->footer)
		fprintf(f, "\n%s", c->footer);
	fprintf(f, "\nexit status: 0 done, 1 error, 2 usage, 75 stopped on a signal, resumable\n"
		   "(docs/exit-codes.md)\n");
}

/* ---- parsing ---- */

static const cli_option *find_long(const cli_option *opts, const char *name, size_t len)
{
	for (const cli_option *o = opts; o->name; o++)
		if (strlen(o->name) == len && !strncmp(o->name, name, len))
			return o;
	return NULL;
}

static const cli_option *find_short(const cli_option *opts, char ch)
{
	for (const cli_option *o = opts; o->name; o++)
		if (o->short_name && o->short_name == ch)
			return o;
	return NULL;
}

/* Stores val in the option's destination. 0 or nb_error ("--steps: 'x' is
 * not an integer"). */
static int set_value(const cli_option *o, const char *val)
{
	char what[80];
	snprintf(what, sizeof what, "--%s", o->name);
	switch (o->kind) {
	case CLI_FLAG:
		if (val && (!o->flag_value || strcmp(val, o->flag_value)))
			return nb_error("%s: '%s' is not a value it takes (only --%s or --%s=%s)", what, val, o->name,
					o->name, o->flag_value ? o->flag_value : "");
		*o->dest.flag = val ? 2 : 1;
		return 0;
	case CLI_STRING:
		if (!*val)
			return nb_error("%s: the value is empty", what);
		*o->dest.str = val;
		return 0;
	case CLI_LONG:
		return nb_parse_long(val, o->lo, o->hi, what, o->dest.l);
	case CLI_U64:
		return nb_parse_u64(val, o->ulo, o->uhi, what, o->dest.u);
	case CLI_SIZE:
		return nb_parse_size(val, o->ulo, o->uhi, what, o->dest.u);
	case CLI_DOUBLE:
		return nb_parse_double(val, o->dlo, o->dhi, what, o->dest.d);
	}
	return nb_error("%s: unknown option kind", what);
}

/* "--section.key=value": into the command's job-file overrides. */
static int override(const cli_command *c, const char *a)
{
	const char *eq = strchr(a, '=');
	int n = eq ? (int)(eq - a) : (int)strlen(a);
	if (!c->overrides)
		return cli_usage_error(c,
				       "unknown option '%.*s': nboost %s reads no job file, so it takes no "
				       "--section.key=value overrides",
				       n, a, c->name);
	if (!eq)
		return cli_usage_error(c, "option '%s' needs a value (--section.key=value)", a);
	if (jobfile_apply_override(c->overrides, a) < 0)
		return cli_usage_error(c, "%s", nb_errmsg());
	return -1;
}

/* One option at argv[*i] (advancing *i past a separate value). -1 to go
 * on, else the exit status after printing the error. */
static int one_option(const cli_command *c, int argc, char **argv, int *i, unsigned char *seen)
{
	const char *a = argv[*i], *val = NULL;
	const cli_option *o;
	if (a[1] == '-') {
		if (jobfile_is_override(a))
			return override(c, a);
		const char *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) - 2 : strlen(a) - 2;
		o = find_long(c->opts, a + 2, len);
		if (!o && len == 4 && !strncmp(a + 2, "help", 4))
			return cli_usage_error(c, "option '--help' takes no value");
		if (!o)
			return cli_usage_error(c, "unknown option '%.*s'", (int)len + 2, a);
		if (eq)
			val = eq + 1;
	} else {
		o = a[2] ? NULL : find_short(c->opts, a[1]);
		if (!o)
			return cli_usage_error(c, "unknown option '%s'", a);
	}
	if (o->kind == CLI_FLAG && val && !o->flag_value)
		return cli_usage_error(c, "option '--%s' takes no value", o->name);
	if (o->kind != CLI_FLAG && !val) {
		if (*i + 1 >= argc)
			return cli_usage_error(c, "option '--%s' needs a value", o->name);
		val = argv[++*i];
	}
	if (set_value(o, val) < 0)
		return cli_usage_error(c, "%s", nb_errmsg());
	seen[o - c->opts] = 1;
	return -1;
}

/* After the options: the positional count, required options, override keys. */
static int check_complete(const cli_command *c, char **pos, int npos, const unsigned char *seen)
{
	if (npos < c->min_pos)
		return cli_usage_error(c, "missing %s", c->positional);
	int max = c->positional ? c->max_pos : 0;
	if (max >= 0 && npos > max)
		return cli_usage_error(c, "unexpected argument '%s'", pos[max]);
	for (const cli_option *o = c->opts; o->name; o++)
		if (o->required && !seen[o - c->opts])
			return cli_usage_error(c, "missing --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
	if (c->overrides && c->check_keys && c->check_keys(c->overrides) < 0)
		return cli_usage_error(c, "%s", nb_errmsg());
	return -1;
}

int cli_parse(const cli_command *c, int argc, char **argv, int *npos)
{
	unsigned char seen[MAX_OPTS] = {0};
	int nopts = 0;
	while (c->opts[nopts].name)
		nopts++;
	if (nopts > MAX_OPTS)
		nb_die("nboost %s: more than %d options in the table", c->name, MAX_OPTS);
	/* positionals, then the options, each in order */
	char **pos = nb_xcalloc((size_t)argc + 1, sizeof(char *)), **rest = nb_xcalloc((size_t)argc + 1, sizeof(char *));
	int np = 0, nr = 0, rc = -1, end_of_opts = 0;
	for (int i = 1; i < argc && rc < 0; i++) {
		char *a = argv[i];
		if (end_of_opts || a[0] != '-' || !a[1]) {
			pos[np++] = a;
		} else if (!strcmp(a, "--")) {
			end_of_opts = 1;
			rest[nr++] = a;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cli_usage(c, stdout);
			rc = 0;
		} else if (!strcmp(a, "--version")) {
			cli_print_version(stdout);
			rc = 0;
		} else {
			int first = i;
			rc = one_option(c, argc, argv, &i, seen);
			for (int k = first; k <= i && k < argc; k++)
				rest[nr++] = argv[k];
		}
	}
	if (rc < 0)
		rc = check_complete(c, pos, np, seen);
	if (rc < 0) {
		memcpy(argv + 1, pos, (size_t)np * sizeof(char *));
		memcpy(argv + 1 + np, rest, (size_t)nr * sizeof(char *));
		*npos = np;
	}
	free(pos);
	free(rest);
	return rc;
}

void cli_catch_stop_signals(void (*handler)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
}
