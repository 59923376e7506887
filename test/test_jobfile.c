/* Job files (common/jobfile.h): parsing, typed getters, command-line
 * overrides, and an error naming file:line (or the origin) for each kind of
 * bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/jobfile.h"
#include "test_util.h"

static const char *VALID =
	"# a comment line\n"
	"\n"
	"[train]\n"
	"steps = 100   # trailing comment\n"
	"lr=3e-3\n"
	"   nesterov =  yes  \n"
	"\r\n"
	"[noise]\n"
	"sigma = 0.3\r\n"
	"mode = whole\n"
	"empty =\n";

static void test_valid(void)
{
	jobfile *j = jobfile_parse(VALID, "v.conf");
	CHECK(j != NULL);
	if (!j)
		return;
	CHECK(jobfile_count(j) == 6);
	CHECK(!strcmp(jobfile_key_at(j, 0), "train.steps") && !strcmp(jobfile_value_at(j, 0), "100"));
	CHECK(!strcmp(jobfile_key_at(j, 4), "noise.mode") && !strcmp(jobfile_value_at(j, 4), "whole"));
	CHECK(!strcmp(jobfile_get(j, "noise.sigma"), "0.3"));
	CHECK(!strcmp(jobfile_get(j, "noise.empty"), ""));
	CHECK(jobfile_get(j, "noise.absent") == NULL);
	CHECK(!strcmp(jobfile_origin(j, "train.steps"), "v.conf:4"));
	CHECK(!strcmp(jobfile_origin(j, "noise.sigma"), "v.conf:9"));

	long l;
	double d;
	int b;
	CHECK(jobfile_int(j, "train.steps", 7, 1, 1000, &l) == 0 && l == 100);
	CHECK(jobfile_int(j, "train.absent", 7, 1, 1000, &l) == 0 && l == 7);
	CHECK(jobfile_double(j, "train.lr", 1, 0, 1, &d) == 0 && d == 3e-3);
	CHECK(jobfile_double(j, "train.absent", 0.5, 0, 1, &d) == 0 && d == 0.5);
	CHECK(jobfile_bool(j, "train.nesterov", 0, &b) == 0 && b == 1);
	CHECK(jobfile_bool(j, "train.absent", 1, &b) == 0 && b == 1);
	CHECK(!strcmp(jobfile_str(j, "noise.mode", "subset"), "whole"));
	CHECK(!strcmp(jobfile_str(j, "noise.absent", "subset"), "subset"));

	/* Boundaries of the range are inside it. */
	CHECK(jobfile_int(j, "train.steps", 0, 100, 100, &l) == 0 && l == 100);
	const char *known[] = {"train.steps", "train.lr", "train.nesterov", "noise.sigma", "noise.mode", "noise.empty", NULL};
	CHECK(jobfile_check_known(j, known) == 0);
	jobfile_free(j);

	/* Every spelling of a boolean. */
	const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
	j = jobfile_new();
	for (int i = 0; i < 4; i++) {
		CHECK(jobfile_set(j, "a.b", yes[i], "t") == 0);
		CHECK(jobfile_bool(j, "a.b", 0, &b) == 0 && b == 1);
		CHECK(jobfile_set(j, "a.b", no[i], "t") == 0);
		CHECK(jobfile_bool(j, "a.b", 1, &b) == 0 && b == 0);
	}
	CHECK(jobfile_count(j) == 1); /* set replaces */
	jobfile_free(j);
}

/* Parsing `text` fails with a message containing every needle. */
static void parse_fails(const char *text, const char *n1, const char *n2)
{
	nb_errclear();
	jobfile *j = jobfile_parse(text, "bad.conf");
	CHECK_MSG(j == NULL, "parsed: %s", text);
	jobfile_free(j);
	CHECK_MSG(test_contains(nb_errmsg(), n1) && (!n2 || test_contains(nb_errmsg(), n2)),
		  "message '%s' lacks '%s' / '%s'", nb_errmsg(), n1, n2 ? n2 : "");
}

static void test_parse_errors(void)
{
	parse_fails("steps = 1\n", "job file 'bad.conf' line 1", "before any [section]");
	parse_fails("[train]\nsteps = 1\n[noise\n", "line 3", "malformed section header");
	parse_fails("[train] x\n", "line 1", "malformed section header");
	parse_fails("[]\n", "line 1", "invalid section name");
	parse_fails("[tr ain]\n", "line 1", "invalid section name");
	parse_fails("[train]\n\nsteps 1\n", "line 3", "expected 'key = value'");
	parse_fails("[train]\nsteps = 1\n# c\nsteps = 2\n", "line 4", "set twice (first at bad.conf:2)");
	parse_fails("[train]\nst eps = 1\n", "line 2", "invalid key 'st eps'");
	parse_fails("[train]\na.b = 1\n", "line 2", "invalid key 'a.b'");
	parse_fails("[train]\n= 1\n", "line 2", "invalid key");
	char *longline = malloc(5000);
	memcpy(longline, "[a]\nb = ", 8);
	memset(longline + 8, 'x', 4990);
	longline[4998] = '\0';
	parse_fails(longline, "line 2", "longer than 4096");
	free(longline);
}

static void test_getter_errors(void)
{
	jobfile *j = jobfile_parse("[t]\nn = 12x\nbig = 99999999999999999999\nr = 2.5\nd = abc\nnan = nan\n"
				   "flag = maybe\nwide = 50\nneg = -0.5\nmax = 18446744073709551615\nhuge = 1e999\n",
				   "g.conf");
	CHECK(j != NULL);
	if (!j)
		return;
	long l = -1;
	double d = -1;
	int b = -1;
	CHECK(jobfile_int(j, "t.n", 0, 0, 100, &l) < 0);
	CHECK(test_contains(nb_errmsg(), "g.conf:2: t.n = '12x' is not an integer"));
	CHECK(jobfile_int(j, "t.big", 0, 0, 100, &l) < 0 && test_contains(nb_errmsg(), "g.conf:3"));
	/* Too big for a long is a range error, not a spelling one. */
	CHECK_MSG(test_contains(nb_errmsg(), "g.conf:3: t.big = 99999999999999999999 is out of range [0, 100]"),
		  "%s", nb_errmsg());
	CHECK(jobfile_int(j, "t.max", 0, 0, 100, &l) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "g.conf:10: t.max = 18446744073709551615 is out of range [0, 100]"),
		  "%s", nb_errmsg());
	CHECK(jobfile_int(j, "t.max", 0, 0, 100, &l) < 0 && !test_contains(nb_errmsg(), "not an integer"));
	CHECK(jobfile_double(j, "t.huge", 0, 0, 1, &d) < 0);
	CHECK_MSG(test_contains(nb_errmsg(), "g.conf:11: t.huge = 1e999 is out of range [0, 1]"), "%s", nb_errmsg());
	CHECK(jobfile_int(j, "t.r", 0, 0, 100, &l) < 0 && test_contains(nb_errmsg(), "'2.5' is not an integer"));
	CHECK(jobfile_int(j, "t.wide", 0, 0, 10, &l) < 0);
	CHECK(test_contains(nb_errmsg(), "g.conf:8: t.wide = 50 is out of range [0, 10]"));
	CHECK(l == -1); /* untouched on error */
	CHECK(jobfile_double(j, "t.d", 0, 0, 1, &d) < 0 && test_contains(nb_errmsg(), "g.conf:5: t.d = 'abc' is not a number"));
	CHECK(jobfile_double(j, "t.nan", 0, 0, 1, &d) < 0 && test_contains(nb_errmsg(), "'nan' is not a number"));
	CHECK(jobfile_double(j, "t.neg", 0, 0, 1, &d) < 0 && test_contains(nb_errmsg(), "g.conf:9: t.neg = -0.5 is out of range"));
	CHECK(d == -1);
	CHECK(jobfile_bool(j, "t.flag", 0, &b) < 0 && test_contains(nb_errmsg(), "g.conf:7: t.flag = 'maybe' is not a boolean"));
	CHECK(b == -1);

	const char *known[] = {"t.n", "t.big", "t.r", "t.d", "t.nan", "t.flags", "t.wide", "t.neg", "t.max", "t.huge",
			       NULL};
	CHECK(jobfile_check_known(j, known) < 0);
	CHECK(test_contains(nb_errmsg(), "g.conf:7: unknown key 't.flag' (did you mean 't.flags'?)"));
	const char *far[] = {"t.n", "t.big", "t.r", "t.d", "t.nan", "x.completely_other", "t.wide", "t.neg",
			     "t.max", "t.huge", NULL};
	CHECK(jobfile_check_known(j, far) < 0);
	CHECK(test_contains(nb_errmsg(), "unknown key 't.flag'") && !test_contains(nb_errmsg(), "did you mean"));
	jobfile_free(j);
}

static void test_overrides(void)
{
	jobfile *j = jobfile_parse("[train]\nsteps = 100\n", "o.conf");
	CHECK(j != NULL);
	if (!j)
		return;
	char a0[] = "train", a1[] = "job.conf", a2[] = "--train.steps=5", a3[] = "--out", a4[] = "dir/x.y",
	     a5[] = "--noise.sigma=0", a6[] = "--model=a.h5", a7[] = "-q";
	char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, NULL};
	int argc = 8;
	CHECK(jobfile_apply_overrides(j, &argc, argv) == 0);
	CHECK(argc == 6);
	CHECK(argv[0] == a0 && argv[1] == a1 && argv[2] == a3 && argv[3] == a4 && argv[4] == a6 && argv[5] == a7);
	CHECK(argv[6] == NULL);
	long l;
	CHECK(jobfile_int(j, "train.steps", 0, 0, 1000, &l) == 0 && l == 5);
	CHECK(!strcmp(jobfile_origin(j, "train.steps"), "command line"));
	CHECK(!strcmp(jobfile_get(j, "noise.sigma"), "0"));
	/* The override's origin is in its errors. */
	char b0[] = "train", b1[] = "--train.steps=lots";
	char *argv2[] = {b0, b1, NULL};
	argc = 2;
	CHECK(jobfile_apply_overrides(j, &argc, argv2) == 0 && argc == 1);
	CHECK(jobfile_int(j, "train.steps", 0, 0, 1000, &l) < 0);
	CHECK(test_contains(nb_errmsg(), "command line: train.steps = 'lots' is not an integer"));

	char c0[] = "train", c1[] = "--train.steps";
	char *argv3[] = {c0, c1, NULL};
	argc = 2;
	CHECK(jobfile_apply_overrides(j, &argc, argv3) < 0);
	CHECK(test_contains(nb_errmsg(), "override '--train.steps' needs a value"));
	char d0[] = "train", d1[] = "--train.st eps=1";
	char *argv4[] = {d0, d1, NULL};
	argc = 2;
	CHECK(jobfile_apply_overrides(j, &argc, argv4) < 0);
	CHECK(test_contains(nb_errmsg(), "invalid key 'train.st eps'"));
	char e0[] = "train", e1[] = "--a.b.c=1";
	char *argv5[] = {e0, e1, NULL};
	argc = 2;
	CHECK(jobfile_apply_overrides(j, &argc, argv5) < 0 && test_contains(nb_errmsg(), "invalid key 'a.b.c'"));
	jobfile_free(j);
}

static void test_files(void)
{
	char *dir = test_tmpdir("jobfile");
	char path[4096];
	snprintf(path, sizeof path, "%s/ok.conf", dir);
	FILE *f = fopen(path, "wb");
	fputs(VALID, f);
	fclose(f);
	jobfile *j = jobfile_load(path);
	CHECK(j != NULL && jobfile_count(j) == 6);
	if (j) {
		char want[4200];
		snprintf(want, sizeof want, "%s:9", path);
		CHECK(!strcmp(jobfile_origin(j, "noise.sigma"), want));
	}
	jobfile_free(j);

	snprintf(path, sizeof path, "%s/nul.conf", dir);
	f = fopen(path, "wb");
	fwrite("[a]\nb = 1\0\nc = 2\n", 1, 17, f);
	fclose(f);
	CHECK(jobfile_load(path) == NULL);
	CHECK(test_contains(nb_errmsg(), "nul.conf' line 2: NUL byte"));

	snprintf(path, sizeof path, "%s/absent.conf", dir);
	CHECK(jobfile_load(path) == NULL);
	CHECK(test_contains(nb_errmsg(), "cannot open job file") && test_contains(nb_errmsg(), "absent.conf") &&
	      test_contains(nb_errmsg(), "No such file"));

	snprintf(path, sizeof path, "%s/bad.conf", dir);
	f = fopen(path, "wb");
	fputs("[a]\nb = 1\nc\n", f);
	fclose(f);
	CHECK(jobfile_load(path) == NULL);
	CHECK(test_contains(nb_errmsg(), "bad.conf' line 3"));

	/* The shipped job files parse. */
	const char *shipped[] = {"jobs/demo.conf", "jobs/tiny.conf"};
	for (int i = 0; i < 2; i++) {
		j = jobfile_load(shipped[i]);
		CHECK_MSG(j != NULL, "%s: %s", shipped[i], nb_errmsg());
		jobfile_free(j);
	}
	free(dir);
}

/* A byte-order mark, control characters, a FIFO and a directory. */
static void test_hostile(void)
{
	/* A UTF-8 BOM at the start is skipped; line numbers still count from 1. */
	jobfile *j = jobfile_parse("\xef\xbb\xbf[train]\nsteps = 5\n", "bom.conf");
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	if (j) {
		CHECK(!strcmp(jobfile_get(j, "train.steps"), "5") && !strcmp(jobfile_origin(j, "train.steps"), "bom.conf:2"));
		jobfile_free(j);
	}
	/* One past the start is named: files concatenated, or a second BOM. */
	parse_fails("[a]\nb = 1\n\xef\xbb\xbf[c]\n", "job file 'bad.conf' line 3: a byte-order mark inside the file", NULL);
	parse_fails("\xef\xbb\xbf\xef\xbb\xbf[a]\n", "line 1: a byte-order mark inside the file", NULL);
	/* Control characters: refused, and written escaped in the message. */
	parse_fails("[train]\n\x1b[31mred = 1\n", "job file 'bad.conf' line 2: control character '\\x1b' in a text file", NULL);
	parse_fails("[a]\nb = x\by\n", "line 2: control character '\\x08'", NULL);
	parse_fails("[a]\nb = x\ry\n", "line 2: control character '\\r'", NULL);
	parse_fails("[a]\nb = \x7f\n", "line 2: control character '\\x7f'", NULL);
	CHECK(!strchr(nb_errmsg(), 0x7f));
	/* TAB and a CRLF line end are fine. */
	j = jobfile_parse("[a]\r\nb\t=\t1\r\n", "t.conf");
	CHECK_MSG(j && !strcmp(jobfile_get(j, "a.b"), "1"), "%s", nb_errmsg());
	jobfile_free(j);
	/* Invalid UTF-8 in a quoted line is escaped. */
	parse_fails("[a]\nb \xff\n", "expected 'key = value', got 'b \\xff'", NULL);

	char *dir = test_tmpdir("jobfile-hostile");
	char path[4200], want[4400];
	snprintf(path, sizeof path, "%s/bom.conf", dir);
	FILE *f = fopen(path, "wb");
	fputs("\xef\xbb\xbf[train]\nsteps = 5\n", f);
	fclose(f);
	j = jobfile_load(path);
	CHECK_MSG(j != NULL && !strcmp(jobfile_get(j, "train.steps"), "5"), "%s", nb_errmsg());
	jobfile_free(j);
	remove(path);
	/* A FIFO is refused at once (the alarm turns a blocked open into a failure). */
	snprintf(path, sizeof path, "%s/job.fifo", dir);
	CHECK(mkfifo(path, 0644) == 0);
	alarm(20);
	CHECK(jobfile_load(path) == NULL);
	alarm(0);
	snprintf(want, sizeof want, "cannot open job file '%s': it is a FIFO, not a regular file", path);
	CHECK_MSG(test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	remove(path);
	CHECK(jobfile_load(dir) == NULL);
	snprintf(want, sizeof want, "cannot open job file '%s': it is a directory, not a regular file", dir);
	CHECK_MSG(test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	rmdir(dir);
	free(dir);
}

int main(void)
{
	test_valid();
	test_parse_errors();
	test_getter_errors();
	test_overrides();
	test_files();
	test_hostile();
	return test_summary("test_jobfile");
}
