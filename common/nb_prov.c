/* Provenance of written files (common/nb_prov.h). */
#include "common/nb_prov.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Generated at build time into the build tree (common/build_info.cmake). */
extern const char nb_build_version[];
extern const char nb_build_commit[];

static char *cmdline;

const char *nb_version(void) { return nb_build_version; }
const char *nb_commit(void) { return nb_build_commit; }

/* A word a shell reads back as itself needs no quotes. */
static int plain_word(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *s))
			return 0;
	return 1;
}

static void add_quoted(nb_buf *b, const char *s)
{
	if (plain_word(s)) {
		nb_buf_adds(b, s);
		return;
	}
	nb_buf_adds(b, "'");
	for (; *s; s++)
		if (*s == '\'')
			nb_buf_adds(b, "'\\''");
		else
			nb_buf_add(b, s, 1);
	nb_buf_adds(b, "'");
}

void nb_prov_set_argv(int argc, char *const *argv)
{
	nb_buf b = {0};
	for (int i = 0; i < argc; i++) {
		if (i)
			nb_buf_adds(&b, " ");
		add_quoted(&b, argv[i]);
	}
	nb_buf_add(&b, "", 1);
	free(cmdline);
	cmdline = b.data;
}

const char *nb_prov_cmdline(void) { return cmdline ? cmdline : ""; }

void nb_prov_time(char *buf, size_t n)
{
	time_t t = time(NULL);
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && *sde) {
		char *end;
		errno = 0;
		long long v = strtoll(sde, &end, 10);
		if (!*end && !errno && v >= 0)
			t = (time_t)v;
	}
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "unknown");
}

void nb_prov_host(char *buf, size_t n)
{
	if (n == 0)
		return;
	if (gethostname(buf, n) < 0 || !buf[0])
		snprintf(buf, n, "unknown");
	buf[n - 1] = '\0';
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void add_json_str(nb_buf *b, const char *s)
{
	nb_buf_adds(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			nb_buf_addf(b, "\\%c", c);
		else if (c == '\n')
			nb_buf_adds(b, "\\n");
		else if (c == '\t')
			nb_buf_adds(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			nb_buf_addf(b, "\\u%04x", c);
		else
			nb_buf_add(b, s, 1);
	}
	nb_buf_adds(b, "\"");
}

static void add_field(nb_buf *b, const char *key, const char *value, int last)
{
	nb_buf_addf(b, "  \"%s\": ", key);
	add_json_str(b, value);
	nb_buf_adds(b, last ? "\n" : ",\n");
}

void nb_prov_json(nb_buf *b, const char *options)
{
	char when[32], host[256];
	nb_prov_time(when, sizeof when);
	nb_prov_host(host, sizeof host);
	nb_buf_adds(b, "{\n");
	add_field(b, "nboost_version", nb_version(), 0);
	add_field(b, "nboost_commit", nb_commit(), 0);
	add_field(b, "command_line", nb_prov_cmdline(), 0);
	add_field(b, "created", when, 0);
	add_field(b, "host", host, !options);
	if (options)
		add_field(b, "options", options, 1);
	nb_buf_adds(b, "}\n");
}

int nb_prov_write_dir(const char *dir)
{
	nb_buf path = {0}, text = {0};
	nb_buf_addf(&path, "%s/provenance.json", dir);
	nb_buf_add(&path, "", 1);
	int rc = 0;
	if (access(path.data, F_OK) != 0) {
		nb_prov_json(&text, NULL);
		rc = nb_write_file_atomic(path.data, text.data, text.len);
	}
	free(path.data);
	free(text.data);
	return rc;
}
