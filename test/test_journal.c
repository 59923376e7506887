/* pipeline/journal.h and pipeline/events.h: the flat JSON parser and writer,
 * journal round trip, refusals, resume rules (torn last line cut off, corrupt
 * line an error with file and line, digest check, pending units voided),
 * truncation at every byte offset, SIGKILL of a writer at random moments,
 * a failing disk, and the event log. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "pipeline/events.h"
#include "pipeline/journal.h"
#include "test/test_util.h"

#define DIGEST "0123456789abcdef"

static char jpath[4200];

static char *slurp(const char *path, size_t *len)
{
	char *s = nb_read_file(path, len);
	if (!s) {
		fprintf(stderr, "%s\n", nb_errmsg());
		exit(2);
	}
	return s;
}

static void spit(const char *path, const char *data, size_t len)
{
	if (nb_write_file_atomic(path, data, len) < 0) {
		fprintf(stderr, "%s\n", nb_errmsg());
		exit(2);
	}
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k;
}

static int parse_ok(jsonl_obj *o, const char *s) { return jsonl_parse(o, s, strlen(s)) == 0; }

static void test_jsonl(void)
{
	jsonl_obj o = {0};
	CHECK(parse_ok(&o, "{}") && o.n == 0);
	CHECK(parse_ok(&o, " \t{ } \t"));
	CHECK(parse_ok(&o, "{\"a\":1,\"b\":-0,\"c\":\"x\",\"d\":1.5e3,\"e\":-9223372036854775808}"));
	CHECK(o.n == 5 && jsonl_get(&o, "a")->type == JSONL_INT && jsonl_get(&o, "a")->i == 1);
	CHECK(jsonl_get(&o, "b")->type == JSONL_INT && jsonl_get(&o, "b")->i == 0);
	CHECK(jsonl_get(&o, "c")->type == JSONL_STR && !strcmp(jsonl_get(&o, "c")->s, "x"));
	CHECK(jsonl_get(&o, "d")->type == JSONL_NUM && jsonl_get(&o, "d")->d == 1500.0);
	CHECK(jsonl_get(&o, "e")->i == INT64_MIN && jsonl_get(&o, "zz") == NULL);
	CHECK(parse_ok(&o, "{\"s\":\"q\\\"b\\\\s\\/n\\n\\u00e9\\u20ac\xc3\xa9\"}"));
	CHECK(!strcmp(jsonl_get(&o, "s")->s, "q\"b\\s/n\n\xc3\xa9\xe2\x82\xac\xc3\xa9"));
	CHECK(parse_ok(&o, "{\"k\" : \"v\" , \"n\" : 2}") && o.n == 2);

	static const char *const bad[] = {
		"", "{", "}", "[]", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
		"{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}", "{\"a\":true}", "{\"a\":null}", "{\"a\":{}}", "{\"a\":[1]}",
		"{\"a\":1}x", "{\"a\":1}{}", "{a:1}", "{\"a\":\"x}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":\"\\ud800\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\x80\"}",
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"tab\there\"}", "{\"a\":1,\"a\":2}", "{\"a\":99999999999999999999}",
		"{\"a\":1e999}", "{\"a\":1}\r", "\xef\xbb\xbf{}", "{\"a\":1 ,}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK_MSG(!parse_ok(&o, bad[i]), "accepted '%s'", bad[i]);
	CHECK(jsonl_parse(&o, "{\"a\":1,}", 8) < 0 && test_contains(nb_errmsg(), "column 8"));
	/* NUL inside the line (a zero-filled torn write). */
	CHECK(jsonl_parse(&o, "{\"a\":\"\0\"}", 9) < 0);
	CHECK(jsonl_parse(&o, "{}\0", 3) < 0);
	/* Field and length limits. */
	nb_buf b = {0};
	jsonl_begin(&b);
	for (int i = 0; i < JSONL_MAX_FIELDS; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		jsonl_int(&b, k, i);
	}
	CHECK(jsonl_parse(&o, b.data, b.len) < 0); /* no '}' yet */
	b.len--;
	nb_buf_adds(&b, ",\"k15\":1}");
	CHECK(jsonl_parse(&o, b.data, b.len - 9) < 0); /* not closed */
	b.len = 0;
	jsonl_begin(&b);
	for (int i = 0; i < JSONL_MAX_FIELDS; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		jsonl_int(&b, k, i);
	}
	nb_buf_adds(&b, "}");
	CHECK(parse_ok(&o, b.data) && o.n == JSONL_MAX_FIELDS);
	b.data[b.len - 1] = ',';
	nb_buf_adds(&b, "\"kx\":1}");
	CHECK(!parse_ok(&o, b.data) && test_contains(nb_errmsg(), "more than 16 fields"));
	b.len = 0;
	nb_buf_adds(&b, "{\"s\":\"");
	while (b.len < JSONL_MAX_LINE)
		nb_buf_adds(&b, "xxxxxxxx");
	nb_buf_adds(&b, "\"}");
	CHECK(!parse_ok(&o, b.data) && test_contains(nb_errmsg(), "longer than"));

	/* Writer: every byte 1..255 survives or becomes U+FFFD; numbers. */
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	b.len = 0;
	jsonl_begin(&b);
	jsonl_str(&b, "s", all);
	jsonl_str(&b, "u", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	jsonl_int(&b, "i", INT64_MIN);
	jsonl_num(&b, "d", 2.5, 3);
	jsonl_end(&b);
	CHECK(b.data[b.len - 1] == '\n' && memchr(b.data, '\n', b.len - 1) == NULL);
	CHECK(jsonl_parse(&o, b.data, b.len - 1) == 0);
	const char *s = jsonl_get(&o, "s")->s;
	CHECK(!strncmp(s, all, 127)); /* ASCII, control characters included, round-trips */
	/* 0x80..0xff in a row form no valid sequence: U+FFFD each. */
	CHECK(strlen(s) == 127 + 3 * 128);
	for (int i = 0; i < 128 && strlen(s) == 127 + 3 * 128; i++)
		CHECK(!memcmp(s + 127 + 3 * i, "\xef\xbf\xbd", 3));
	CHECK(!strcmp(jsonl_get(&o, "u")->s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	CHECK(jsonl_get(&o, "i")->i == INT64_MIN && jsonl_get(&o, "d")->d == 2.5);
	b.len = 0;
	jsonl_begin(&b);
	jsonl_num(&b, "x", 1.0 / 0.0, 3);
	jsonl_end(&b);
	CHECK(!strcmp(b.data, "{\"x\":null}\n"));
	/* Whatever jsonl_num writes parses back. */
	b.len = 0;
	jsonl_begin(&b);
	jsonl_num(&b, "max", -1.7976931348623157e308, 99);
	jsonl_num(&b, "tiny", 1e-300, 17);
	jsonl_end(&b);
	CHECK(jsonl_parse(&o, b.data, b.len - 1) == 0 && jsonl_get(&o, "max")->d == -1.7976931348623157e308);
	CHECK(jsonl_get(&o, "tiny")->type == JSONL_NUM && jsonl_get(&o, "tiny")->d == 0.0);
	free(b.data);
	jsonl_obj_free(&o);
}

/* The journal of a small two-round run; returns the open journal. */
static journal *write_run(const char *dir)
{
	journal *j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	if (!j)
		exit(1);
	CHECK(journal_records(j) == 1 && journal_resumes(j) == 0 && !strcmp(journal_digest(j), DIGEST));
	CHECK(journal_teacher(j, 0, "teacher.ckpt", "00ff") == 0);
	CHECK(journal_unit(j, 0, 0, "p-0-0.h5", 10, 2, 12) == 0);
	CHECK(journal_unit(j, 0, 3, "p-0-1.h5", 7, 5, 12) == 0);
	CHECK(journal_unit(j, 0, 1, "", 0, 12, 12) == 0);
	CHECK(journal_unit(j, 0, 2, "p-0-0.h5", 11, 1, 12) == 0);
	CHECK(journal_unit_done(j, 0, 1) && !journal_unit_done(j, 0, 0) && journal_pending(j) == 3);
	CHECK(journal_shard(j, 0, "p-0-0.h5") == 0);
	CHECK(journal_unit_done(j, 0, 0) && journal_unit_done(j, 0, 2) && !journal_unit_done(j, 0, 3));
	CHECK(journal_checkpoint(j, 0, 100, "round-0/student.ckpt") == 0);
	CHECK(journal_shard(j, 0, "p-0-1.h5") == 0);
	CHECK(journal_checkpoint(j, 0, 200, "round-0/student \"q\".ckpt") == 0);
	CHECK(journal_round(j, 0) == 0);
	CHECK(journal_teacher(j, 1, "round-0/student \"q\".ckpt", "abcdef") == 0);
	CHECK(journal_unit(j, 1, 0, "p-1-0.h5", 9, 3, 12) == 0);
	CHECK(journal_shard(j, 1, "p-1-0.h5") == 0);
	CHECK(journal_unit(j, 1, 1, "", 0, 0, 0) == 0);
	return j;
}

static void check_run(const journal *j, int done)
{
	CHECK(!strcmp(journal_digest(j), DIGEST));
	CHECK(journal_units_done(j, 0) == 4 && journal_units_done(j, 1) == 2 && journal_units_done(j, 2) == 0);
	for (int u = 0; u < 4; u++)
		CHECK(journal_unit_done(j, 0, u));
	CHECK(!journal_unit_done(j, 0, 4) && !journal_unit_done(j, 0, -1) && !journal_unit_done(j, 7, 0));
	int64_t a, r, s;
	journal_round_totals(j, 0, &a, &r, &s);
	CHECK(a == 28 && r == 20 && s == 48);
	journal_round_totals(j, 1, &a, &r, &s);
	CHECK(a == 9 && r == 3 && s == 12);
	journal_round_totals(j, 5, &a, NULL, NULL);
	CHECK(a == 0);
	int64_t nu, ns;
	CHECK(journal_shard_count(j, 0) == 2 && journal_shard_count(j, 1) == 1 && journal_shard_count(j, 3) == 0);
	const char *sh = journal_shard_at(j, 0, 0, &nu, &ns);
	CHECK(sh && !strcmp(sh, "p-0-0.h5") && nu == 2 && ns == 21);
	sh = journal_shard_at(j, 0, 1, &nu, &ns);
	CHECK(sh && !strcmp(sh, "p-0-1.h5") && nu == 1 && ns == 7);
	CHECK(journal_shard_at(j, 0, 2, NULL, NULL) == NULL && journal_shard_at(j, 0, -1, NULL, NULL) == NULL);
	CHECK(journal_shard_known(j, 0, "p-0-1.h5") && !journal_shard_known(j, 1, "p-0-1.h5"));
	CHECK(!journal_shard_known(j, 0, "p-0-9.h5") && journal_shard_known(j, 1, "p-1-0.h5"));
	int cr;
	int64_t step;
	const char *path;
	CHECK(journal_last_checkpoint(j, &cr, &step, &path) == 1);
	CHECK(cr == 0 && step == 200 && !strcmp(path, "round-0/student \"q\".ckpt"));
	const char *dg;
	CHECK(!strcmp(journal_teacher_of(j, 0, &dg), "teacher.ckpt") && !strcmp(dg, "00ff"));
	CHECK(!strcmp(journal_teacher_of(j, 1, &dg), "round-0/student \"q\".ckpt") && !strcmp(dg, "abcdef"));
	CHECK(journal_teacher_of(j, 2, &dg) == NULL && dg == NULL);
	CHECK(journal_round_complete(j, 0) && journal_round_complete(j, 1) == done && !journal_round_complete(j, 9));
	CHECK(journal_rounds_complete(j) == (done ? 2 : 1));
	CHECK(journal_run_done(j) == done);
	CHECK(journal_pending(j) == 0);
}

static void test_round_trip(const char *dir)
{
	journal *j = write_run(dir);
	check_run(j, 0);
	int64_t recs = journal_records(j);
	CHECK(recs == 15);
	CHECK(journal_close(j) == 0);

	size_t len;
	char *text = slurp(jpath, &len);
	CHECK(count_lines(text, len) == 15 && text[len - 1] == '\n');
	CHECK(!strncmp(text, "{\"journal\":\"nboost.run\",\"version\":1,\"config_digest\":\"" DIGEST "\"}\n", 70));
	CHECK(strstr(text, "\n{\"ev\":\"unit\",\"round\":0,\"unit\":3,\"shard\":\"p-0-1.h5\",\"accepted\":7,\"rejected\":5,"
			   "\"seen\":12}\n") != NULL);
	CHECK(strstr(text, "\n{\"ev\":\"shard\",\"round\":0,\"shard\":\"p-0-0.h5\",\"units\":2,\"samples\":21}\n"));
	CHECK(strstr(text, "\n{\"ev\":\"checkpoint\",\"round\":0,\"step\":200,\"path\":\"round-0/student \\\"q\\\".ckpt\"}\n"));
	CHECK(strstr(text, "\n{\"ev\":\"round\",\"round\":0}\n"));
	free(text);

	/* Read-only load: the same state, the file untouched. */
	off_t size = file_size(jpath);
	j = journal_read(jpath);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	check_run(j, 0);
	CHECK(journal_records(j) == recs);
	CHECK(journal_unit(j, 1, 5, "", 0, 0, 0) == -1 && test_contains(nb_errmsg(), "read-only"));
	CHECK(journal_close(j) == 0 && file_size(jpath) == size);

	/* Resume: same state, a resume record, then the run goes on to done. */
	j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	check_run(j, 0);
	CHECK(journal_resumes(j) == 1 && journal_records(j) == recs + 1);
	CHECK(journal_round(j, 1) == 0 && journal_done(j) == 0);
	check_run(j, 1);
	CHECK(journal_close(j) == 0);
	text = slurp(jpath, &len);
	CHECK(strstr(text, "\n{\"ev\":\"resume\",\"dropped\":0}\n{\"ev\":\"round\",\"round\":1}\n{\"ev\":\"done\"}\n"));
	free(text);

	/* A done run reopens without writing anything, and takes nothing more. */
	size = file_size(jpath);
	j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	check_run(j, 1);
	CHECK(journal_resumes(j) == 1 && file_size(jpath) == size);
	CHECK(journal_checkpoint(j, 2, 1, "x") == -1 && test_contains(nb_errmsg(), "after \"done\""));
	CHECK(journal_close(j) == 0 && file_size(jpath) == size);
}

static void test_refusals(const char *dir)
{
	unlink(jpath);
	journal *j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	off_t size = file_size(jpath);
#define REFUSED(call, msg)                                                                              \
	do {                                                                                            \
		CHECK_MSG((call) == -1 && test_contains(nb_errmsg(), msg), "%s -> '%s'", #call, nb_errmsg()); \
		CHECK(file_size(jpath) == size);                                                        \
	} while (0)
	REFUSED(journal_unit(j, 0, 0, "a/b.h5", 1, 0, 1), "not a file name");
	REFUSED(journal_unit(j, 0, 0, "..", 1, 0, 1), "not a file name");
	REFUSED(journal_unit(j, 0, 0, "a\nb", 1, 0, 1), "control character");
	REFUSED(journal_unit(j, 0, 0, "a\xff", 1, 0, 1), "not valid UTF-8");
	REFUSED(journal_unit(j, 0, 0, "", 1, 0, 1), "exactly when no sample");
	REFUSED(journal_unit(j, 0, 0, "x.h5", 0, 1, 1), "exactly when no sample");
	REFUSED(journal_unit(j, 0, -1, "", 0, 1, 1), "out of range");
	REFUSED(journal_unit(j, 0, 0, "", 0, -1, 1), "out of range");
	REFUSED(journal_unit(j, -1, 0, "", 0, 1, 1), "out of range");
	REFUSED(journal_unit(j, 1, 0, "", 0, 1, 1), "before round 0 is complete");
	REFUSED(journal_checkpoint(j, 0, 1, ""), "empty path");
	REFUSED(journal_checkpoint(j, 0, -5, "c"), "out of range");
	REFUSED(journal_teacher(j, 0, "t", "ABC"), "lowercase hex");
	REFUSED(journal_teacher(j, 0, "t", ""), "lowercase hex");
	REFUSED(journal_shard(j, 0, "none.h5"), "no pending units");
	CHECK(journal_unit(j, 0, 0, "", 0, 3, 3) == 0);
	CHECK(journal_unit(j, 0, 1, "s.h5", 2, 1, 3) == 0);
	size = file_size(jpath);
	REFUSED(journal_unit(j, 0, 0, "", 0, 3, 3), "already done");
	REFUSED(journal_unit(j, 0, 1, "s.h5", 2, 1, 3), "already pending in shard 's.h5'");
	REFUSED(journal_round(j, 0), "still pending");
	REFUSED(journal_done(j), "still pending");
	CHECK(journal_shard(j, 0, "s.h5") == 0);
	size = file_size(jpath);
	REFUSED(journal_shard(j, 0, "s.h5"), "no pending units");
	REFUSED(journal_unit(j, 0, 2, "s.h5", 1, 0, 1), "already committed");
	CHECK(journal_teacher(j, 0, "t.ckpt", "ab") == 0);
	size = file_size(jpath);
	int64_t recs = journal_records(j);
	CHECK(journal_teacher(j, 0, "t.ckpt", "ab") == 0 && journal_records(j) == recs); /* the same: no-op */
	REFUSED(journal_teacher(j, 0, "t.ckpt", "cd"), "already has a teacher");
	CHECK(journal_round(j, 0) == 0);
	size = file_size(jpath);
	REFUSED(journal_unit(j, 0, 9, "", 0, 0, 0), "already complete");
	REFUSED(journal_round(j, 0), "already complete");
	REFUSED(journal_round(j, 2), "before round 1");
	CHECK(journal_done(j) == 0);
	size = file_size(jpath);
	REFUSED(journal_round(j, 1), "after \"done\"");
#undef REFUSED
	CHECK(journal_close(j) == 0);
	j = journal_read(jpath);
	CHECK_MSG(j && journal_run_done(j) && journal_units_done(j, 0) == 2, "%s", nb_errmsg());
	journal_close(j);

	/* Bad arguments to open. */
	CHECK(journal_open(dir, "XYZ") == NULL && test_contains(nb_errmsg(), "lowercase hex"));
	CHECK(journal_open("/nonexistent-dir/x", DIGEST) == NULL && test_contains(nb_errmsg(), "/nonexistent-dir/x/journal.jsonl"));
}

/* Pending units of a crashed run are voided on resume and labeled again. */
static void test_pending_resume(const char *dir)
{
	unlink(jpath);
	journal *j = journal_open(dir, DIGEST);
	CHECK(journal_unit(j, 0, 0, "a.h5", 4, 0, 4) == 0);
	CHECK(journal_unit(j, 0, 1, "a.h5", 4, 0, 4) == 0);
	CHECK(journal_unit(j, 0, 2, "b.h5", 4, 0, 4) == 0);
	CHECK(journal_shard(j, 0, "b.h5") == 0);
	CHECK(journal_unit(j, 0, 3, "", 0, 4, 4) == 0);
	journal_close(j); /* "crash": a.h5 never committed */

	j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	CHECK(journal_pending(j) == 0 && journal_resumes(j) == 1);
	CHECK(!journal_unit_done(j, 0, 0) && !journal_unit_done(j, 0, 1));
	CHECK(journal_unit_done(j, 0, 2) && journal_unit_done(j, 0, 3) && journal_units_done(j, 0) == 2);
	CHECK(journal_shard_count(j, 0) == 1 && !journal_shard_known(j, 0, "a.h5"));
	/* The redo may reuse the shard name. */
	CHECK(journal_unit(j, 0, 1, "a.h5", 3, 1, 4) == 0);
	CHECK(journal_unit(j, 0, 0, "a.h5", 4, 0, 4) == 0);
	CHECK(journal_shard(j, 0, "a.h5") == 0);
	journal_close(j);
	size_t len;
	char *text = slurp(jpath, &len);
	CHECK(strstr(text, "{\"ev\":\"resume\",\"dropped\":2}\n"));
	free(text);
	j = journal_read(jpath);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	int64_t nu, ns;
	CHECK(journal_units_done(j, 0) == 4 && journal_shard_at(j, 0, 1, &nu, &ns) && nu == 2 && ns == 7);
	journal_close(j);
}

/* Torn last lines are cut off; other bad lines are errors naming file:line. */
static void test_damage(const char *dir)
{
	unlink(jpath);
	journal_close(write_run(dir));
	size_t len;
	char *good = slurp(jpath, &len);
	size_t nlines = count_lines(good, len);
	nb_buf b = {0};
	/* n = 0: strlen */
	static const struct {
		const char *s;
		size_t n;
	} torn[] = {
		{"{\"ev\":\"unit\",\"rou", 0},            /* no newline */
		{"{\"ev\":\"done\"}", 0},                   /* complete object, no newline */
		{"\0\0\0\0\0\0", 6},                        /* zero fill */
		{"{\"ev\":\"unit\",\"round\":1,\0\0\0\n", 27}, /* zero fill, newline survived */
		{"garbage\n", 0},                           /* unparsable last line */
	};
	for (size_t t = 0; t < sizeof torn / sizeof *torn; t++) {
		b.len = 0;
		nb_buf_add(&b, good, len);
		nb_buf_add(&b, torn[t].s, torn[t].n ? torn[t].n : strlen(torn[t].s));
		spit(jpath, b.data, b.len);
		journal *j = journal_open(dir, DIGEST);
		CHECK_MSG(j != NULL, "torn %zu: %s", t, nb_errmsg());
		if (!j)
			continue;
		CHECK(journal_records(j) == (int64_t)nlines + 1); /* + resume */
		CHECK(journal_units_done(j, 1) == 2 && !journal_run_done(j));
		journal_close(j);
		size_t len2;
		char *now = slurp(jpath, &len2);
		CHECK(len2 == len + strlen("{\"ev\":\"resume\",\"dropped\":0}\n") && !memcmp(now, good, len));
		free(now);
	}

	/* A bad line that is not the last: corruption, an error naming file and line. */
	const char *l3 = good;
	for (int i = 0; i < 2; i++)
		l3 = strchr(l3, '\n') + 1;
	size_t off3 = (size_t)(l3 - good);
	static const struct {
		const char *s;
		size_t n;
		const char *why;
	} corrupt[] = {
		{"garbage\n", 0, "expected '{'"},
		{"{\"ev\":\"unit\",\"round\":0,\"unit\":0,\0\0\0\n", 36, "column 33"},
		{"\n", 0, "unexpected end of line"},
		{"{\"ev\":\"unit\",\"round\":0,\"unit\":1,\"shard\":\"\",\"accepted\":0,\"rejected\":1,\"seen\":1,\"x\":1}\n", 0,
		 "unknown field 'x' in a unit record"},
		{"{\"ev\":\"teleport\"}\n", 0, "unknown record"},
		{"{\"ev\":\"round\",\"round\":3}\n", 0, "before round 0 is complete"},
	};
	for (size_t t = 0; t < sizeof corrupt / sizeof *corrupt; t++) {
		b.len = 0;
		nb_buf_add(&b, good, off3);
		nb_buf_add(&b, corrupt[t].s, corrupt[t].n ? corrupt[t].n : strlen(corrupt[t].s));
		nb_buf_add(&b, good + off3, len - off3);
		spit(jpath, b.data, b.len);
		CHECK_MSG(journal_open(dir, DIGEST) == NULL && test_contains(nb_errmsg(), "journal.jsonl:3: ") &&
				  test_contains(nb_errmsg(), corrupt[t].why),
			  "corrupt %zu: %s", t, nb_errmsg());
		CHECK(journal_read(jpath) == NULL && test_contains(nb_errmsg(), "journal.jsonl:3: "));
		CHECK(file_size(jpath) == (off_t)b.len); /* left as it was */
	}
	/* A complete last line that parses but is inconsistent is corruption too. */
	b.len = 0;
	nb_buf_add(&b, good, len);
	nb_buf_adds(&b, "{\"ev\":\"unit\",\"round\":1,\"unit\":0,\"shard\":\"\",\"accepted\":0,\"rejected\":0,\"seen\":0}\n");
	spit(jpath, b.data, b.len);
	char want[64];
	snprintf(want, sizeof want, "journal.jsonl:%zu: unit 0 of round 1 is already done", nlines + 1);
	CHECK_MSG(journal_open(dir, DIGEST) == NULL && test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	/* Error messages for a few more inconsistencies, each as line 2. */
	static const char *const second[] = {
		"{\"journal\":\"nboost.run\",\"version\":1,\"config_digest\":\"ab\"}\n", "a second header",
		"{\"ev\":\"shard\",\"round\":0,\"shard\":\"s\",\"units\":1,\"samples\":1}\n", "no pending units",
		"{\"ev\":\"resume\",\"dropped\":4}\n", "but 0 are pending",
		"{\"ev\":\"unit\",\"round\":0,\"unit\":\"1\",\"shard\":\"\",\"accepted\":0,\"rejected\":0,\"seen\":0}\n",
		"field 'unit' is not an integer",
		"{\"ev\":\"checkpoint\",\"round\":0,\"step\":1}\n", "missing field 'path'",
	};
	for (size_t t = 0; t < sizeof second / sizeof *second; t += 2) {
		b.len = 0;
		nb_buf_add(&b, good, strchr(good, '\n') + 1 - good);
		nb_buf_adds(&b, second[t]);
		nb_buf_adds(&b, "{\"ev\":\"done\"}\n");
		spit(jpath, b.data, b.len);
		CHECK_MSG(journal_read(jpath) == NULL && test_contains(nb_errmsg(), "journal.jsonl:2: ") &&
				  test_contains(nb_errmsg(), second[t + 1]),
			  "%s", nb_errmsg());
	}
	/* A shard record whose counts disagree with its units. */
	b.len = 0;
	nb_buf_add(&b, good, strchr(good, '\n') + 1 - good);
	nb_buf_adds(&b, "{\"ev\":\"unit\",\"round\":0,\"unit\":0,\"shard\":\"s\",\"accepted\":2,\"rejected\":0,\"seen\":2}\n"
			"{\"ev\":\"shard\",\"round\":0,\"shard\":\"s\",\"units\":1,\"samples\":3}\n");
	spit(jpath, b.data, b.len);
	CHECK(journal_read(jpath) == NULL && test_contains(nb_errmsg(), "journal.jsonl:3: shard 's' of round 0: the record says 1 units and 3 samples"));

	/* Header problems. */
	const char *newer = "{\"journal\":\"nboost.run\",\"version\":2,\"config_digest\":\"ab\"}\n";
	spit(jpath, newer, strlen(newer));
	CHECK(journal_open(dir, "ab") == NULL && test_contains(nb_errmsg(), "newer nboost"));
	const char *other = "{\"journal\":\"other\",\"version\":1,\"config_digest\":\"ab\"}\n";
	spit(jpath, other, strlen(other));
	CHECK(journal_open(dir, "ab") == NULL && test_contains(nb_errmsg(), "not an nboost run journal"));
	const char *noheader = "{\"ev\":\"done\"}\n";
	spit(jpath, noheader, strlen(noheader));
	CHECK(journal_open(dir, "ab") == NULL && test_contains(nb_errmsg(), "journal.jsonl:1: the first line is not"));
	/* A foreign file is never taken for a torn journal and wiped. */
	spit(jpath, "hello world", 11);
	CHECK(journal_open(dir, "ab") == NULL && test_contains(nb_errmsg(), "is not an nboost run journal"));
	CHECK(file_size(jpath) == 11);
	/* A torn header, or an empty file: a fresh journal. */
	spit(jpath, "{\"journal\":\"nboost.run\",\"vers", strlen("{\"journal\":\"nboost.run\",\"vers"));
	journal *j = journal_open(dir, "ab");
	CHECK_MSG(j && journal_records(j) == 1 && journal_resumes(j) == 0, "%s", nb_errmsg());
	journal_close(j);
	spit(jpath, "", 0);
	j = journal_open(dir, "ab");
	CHECK_MSG(j && journal_records(j) == 1, "%s", nb_errmsg());
	journal_close(j);

	/* Digest mismatch: an error, the file unchanged (torn tail included). */
	b.len = 0;
	nb_buf_add(&b, good, len);
	nb_buf_adds(&b, "{\"ev\":");
	spit(jpath, b.data, b.len);
	CHECK(journal_open(dir, "ffff") == NULL && test_contains(nb_errmsg(), "alters results") &&
	      test_contains(nb_errmsg(), "journal.jsonl") && test_contains(nb_errmsg(), DIGEST));
	CHECK(file_size(jpath) == (off_t)b.len);

	/* One writer at a time. */
	j = journal_open(dir, DIGEST);
	CHECK_MSG(j != NULL, "%s", nb_errmsg());
	CHECK(journal_open(dir, DIGEST) == NULL && test_contains(nb_errmsg(), "in use by another nboost run"));
	journal_close(j);
	j = journal_open(dir, DIGEST);
	CHECK(j != NULL);
	journal_close(j);
	free(b.data);
	free(good);
}

/* Every byte offset: a file cut there loads without error and keeps every
 * complete line. */
static void test_truncate_everywhere(const char *dir)
{
	unlink(jpath);
	journal *j = write_run(dir);
	CHECK(journal_unit(j, 1, 2, "p-1-1.h5", 1, 0, 1) == 0); /* one pending at the end */
	CHECK(journal_checkpoint(j, 1, 50, "c\xc3\xa9.ckpt") == 0);
	journal_close(j);
	size_t len;
	char *text = slurp(jpath, &len);
	int bad = 0;
	char first[1200] = "";
	/* journal_open warns at every cut: keep stderr for failures only. */
	fflush(stderr);
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	for (size_t k = 0; k <= len && bad < 5; k++) {
		size_t complete = 0, lines = 0;
		for (size_t i = 0; i < k; i++)
			if (text[i] == '\n')
				complete = i + 1, lines++;
		size_t keep = (size_t)-1;
		j = journal_parse(text, k, "cut.jsonl", &keep);
		if (!j || keep != complete || journal_records(j) != (int64_t)lines)
			if (!bad++)
				snprintf(first, sizeof first, "cut at %zu of %zu: %s (keep %zu, want %zu)", k, len,
					 j ? "wrong state" : nb_errmsg(), keep, complete);
		if (j && k == len)
			CHECK(journal_pending(j) == 1 && journal_last_checkpoint(j, NULL, NULL, NULL));
		journal_close(j);
		/* Through the file, for a sample of offsets: open cuts and resumes. */
		if (k % 23 == 0 || k == complete || k == complete + 1) {
			spit(jpath, text, k);
			j = journal_open(dir, DIGEST);
			if (!j) {
				if (!bad++)
					snprintf(first, sizeof first, "open cut at %zu: %s", k, nb_errmsg());
				continue;
			}
			size_t n2;
			int pending = (int)journal_pending(j);
			journal_close(j);
			char *now = slurp(jpath, &n2);
			/* every complete line still there, then the resume record */
			if (pending || n2 < complete || memcmp(now, text, complete) || (complete && now[n2 - 1] != '\n'))
				if (!bad++)
					snprintf(first, sizeof first, "open cut at %zu: wrong file or state", k);
			free(now);
		}
	}
	dup2(saved, 2);
	close(saved);
	close(devnull);
	CHECK_MSG(bad == 0, "%d failures, first: %s", bad, first);
	free(text);
}

/* A writer killed with SIGKILL at random moments, restarted each time, ends
 * with every unit done exactly once and no acknowledged record lost. Units
 * go in groups of 4 into one shard, committed after the group. */
#define KILL_UNITS 400
static void kill_child(const char *dir, int ackfd)
{
	journal *j = journal_open(dir, DIGEST);
	if (!j) {
		fprintf(stderr, "child: %s\n", nb_errmsg());
		_exit(3);
	}
	int64_t acked = journal_records(j);
	if (write(ackfd, &acked, sizeof acked) != sizeof acked)
		_exit(4);
	if (journal_run_done(j)) { /* the previous writer finished, then was killed */
		journal_close(j);
		_exit(0);
	}
	for (int64_t g = 0; g < KILL_UNITS / 4; g++) {
		char shard[32];
		snprintf(shard, sizeof shard, "s%03" PRId64 ".h5", g);
		for (int64_t u = 4 * g; u < 4 * g + 4; u++) {
			if (journal_unit_done(j, 0, u))
				continue;
			int rc = u % 3 == 0 ? journal_unit(j, 0, u, "", 0, 2, 2) : journal_unit(j, 0, u, shard, 1, 1, 2);
			if (rc < 0) {
				fprintf(stderr, "child: %s\n", nb_errmsg());
				_exit(3);
			}
			acked = journal_records(j);
			if (write(ackfd, &acked, sizeof acked) != sizeof acked)
				_exit(4);
		}
		if (journal_pending(j) && journal_shard(j, 0, shard) < 0) {
			fprintf(stderr, "child: %s\n", nb_errmsg());
			_exit(3);
		}
		acked = journal_records(j);
		if (write(ackfd, &acked, sizeof acked) != sizeof acked)
			_exit(4);
	}
	/* The last two records are acknowledged too: a writer killed after
	 * them (valgrind's timing reaches this) left two records the parent
	 * had not been told of, and the check below failed. */
	if (!journal_round_complete(j, 0)) {
		if (journal_round(j, 0) < 0)
			_exit(3);
		acked = journal_records(j);
		if (write(ackfd, &acked, sizeof acked) != sizeof acked)
			_exit(4);
	}
	if (journal_done(j) < 0)
		_exit(3);
	acked = journal_records(j);
	if (write(ackfd, &acked, sizeof acked) != sizeof acked)
		_exit(4);
	journal_close(j);
	_exit(0);
}

static void test_sigkill(const char *dir)
{
	unlink(jpath);
	srand(12345);
	int finished = 0, kills = 0, tries;
	/* 40 runs killed after 0-30 ms each (a few dozen fdatasyncs), then one
	 * left to finish. */
	for (tries = 0; tries <= 40 && !finished; tries++) {
		int fds[2];
		if (pipe(fds) < 0)
			exit(2);
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			kill_child(dir, fds[1]);
		}
		close(fds[1]);
		if (tries < 40) {
			/* valgrind starts a child some 10x slower */
			long us = (long)(rand() % 30000) * (getenv("NB_UNDER_VALGRIND") ? 10 : 1);
			struct timespec ts = {us / 1000000, us % 1000000 * 1000};
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		int status, killed;
		waitpid(pid, &status, 0);
		killed = !WIFEXITED(status);
		if (WIFEXITED(status)) {
			CHECK_MSG(WEXITSTATUS(status) == 0, "child exit %d", WEXITSTATUS(status));
			finished = WEXITSTATUS(status) == 0;
		} else {
			kills++;
		}
		int64_t acked = 0, a;
		while (read(fds[0], &a, sizeof a) == sizeof a)
			acked = a;
		close(fds[0]);
		/* Killed before it created the file: nothing to check. */
		if (killed && !acked && access(jpath, F_OK) < 0)
			continue;
		/* Read-only: every acknowledged record is there, at most one more. */
		journal *j = journal_read(jpath);
		CHECK_MSG(j != NULL, "after kill %d: %s", tries, nb_errmsg());
		if (!j)
			break;
		size_t len;
		char *text = slurp(jpath, &len);
		int64_t lines = (int64_t)count_lines(text, len);
		free(text);
		/* acked: the child's record count after its last acknowledged
		 * record. None may be lost; a killed child may have finished one
		 * more record without acknowledging it. */
		CHECK_MSG(journal_records(j) >= acked, "records %" PRId64 ", acknowledged %" PRId64,
			  journal_records(j), acked);
		CHECK_MSG(!killed || !acked || journal_records(j) <= acked + 1,
			  "records %" PRId64 ", acknowledged %" PRId64, journal_records(j), acked);
		CHECK(journal_records(j) == lines);
		/* Units done come in whole shard groups or singly, never half a group. */
		for (int64_t g = 0; g < KILL_UNITS / 4; g++) {
			int with = 0, done = 0;
			for (int64_t u = 4 * g; u < 4 * g + 4; u++)
				if (u % 3) {
					with++;
					done += journal_unit_done(j, 0, u);
				}
			CHECK_MSG(done == 0 || done == with, "group %" PRId64 ": %d of %d done", g, done, with);
		}
		journal_close(j);
	}
	CHECK_MSG(finished, "the writer never finished (%d tries)", tries);
	CHECK(kills > 0);
	journal *j = journal_read(jpath);
	CHECK_MSG(j && journal_run_done(j) && journal_units_done(j, 0) == KILL_UNITS, "%s", nb_errmsg());
	if (j) {
		int64_t a, r, s;
		journal_round_totals(j, 0, &a, &r, &s);
		CHECK(s == 2 * KILL_UNITS && a + r == s);
		printf("test_journal: sigkill: %d kills, %d resumes, %" PRId64 " records\n", kills, journal_resumes(j),
		       journal_records(j));
	}
	journal_close(j);
}

/* A write that fails half-way (file size limit): the partial record is cut
 * off and the journal takes nothing more; a reopen resumes from the file. */
static void test_write_failure(const char *dir)
{
	unlink(jpath);
	journal *j = journal_open(dir, DIGEST);
	CHECK(journal_unit(j, 0, 0, "", 0, 1, 1) == 0);
	off_t size = file_size(jpath);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)size + 10;
	signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	CHECK(journal_unit(j, 0, 1, "", 0, 1, 1) == -1 && test_contains(nb_errmsg(), "cannot append to journal") &&
	      test_contains(nb_errmsg(), "journal.jsonl"));
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_DFL);
	CHECK(file_size(jpath) == size);
	CHECK(!journal_unit_done(j, 0, 1));
	CHECK(journal_unit(j, 0, 2, "", 0, 1, 1) == -1 && test_contains(nb_errmsg(), "an earlier write failed"));
	CHECK(file_size(jpath) == size);
	journal_close(j);
	j = journal_open(dir, DIGEST);
	CHECK_MSG(j && journal_unit_done(j, 0, 0) && !journal_unit_done(j, 0, 1), "%s", nb_errmsg());
	CHECK(journal_unit(j, 0, 1, "", 0, 1, 1) == 0);
	journal_close(j);
}

static void test_events(const char *dir)
{
	events *e = events_open(dir);
	CHECK_MSG(e != NULL, "%s", nb_errmsg());
	time_t before = time(NULL);
	CHECK(events_unit(e, 0, 7, "p.h5", 3, 1, 4, 0.25) == 0);
	CHECK(events_unit(e, 0, 8, "", 0, 4, 4, -1) == 0);
	CHECK(events_shard(e, 0, "p.h5", 1, 3) == 0);
	CHECK(events_checkpoint(e, 0, 100, "ck \"1\".h5") == 0);
	CHECK(events_round(e, 0, 2, 3, 5, 8, 12.5) == 0);
	nb_buf *b = events_begin(e, "stop");
	jsonl_str(b, "reason", "SIGTERM\n");
	CHECK(events_emit(e) == 0);
	time_t after = time(NULL);
	CHECK(events_close(e) == 0);
	double w = events_wallclock();
	/* time() reads a coarse clock (glibc: CLOCK_REALTIME_COARSE) that can
	 * differ from CLOCK_REALTIME by a tick at a second boundary: one
	 * second of slack on each side (seen failing once without it). */
	CHECK(w >= (double)before - 1 && w <= (double)after + 2);

	char path[4200];
	snprintf(path, sizeof path, "%s/events.jsonl", dir);
	size_t len;
	char *text = slurp(path, &len);
	CHECK(count_lines(text, len) == 6);
	static const char *const evs[] = {"unit", "unit", "shard", "checkpoint", "round", "stop"};
	jsonl_obj o = {0};
	char *p = text;
	for (int i = 0; i < 6; i++) {
		char *nl = strchr(p, '\n');
		CHECK(jsonl_parse(&o, p, (size_t)(nl - p)) == 0);
		CHECK(o.n >= 2 && !strcmp(o.f[0].key, "t") && o.f[0].type == JSONL_NUM);
		CHECK(o.f[0].d >= (double)before && o.f[0].d < (double)after + 1);
		CHECK(strchr(p, ',') - strchr(p, '.') == 4); /* "t" has milliseconds */
		CHECK(!strcmp(o.f[1].key, "ev") && !strcmp(o.f[1].s, evs[i]));
		if (i == 0)
			CHECK(jsonl_get(&o, "unit")->i == 7 && jsonl_get(&o, "wall_s")->d == 0.25);
		if (i == 1)
			CHECK(jsonl_get(&o, "wall_s") == NULL && !strcmp(jsonl_get(&o, "shard")->s, ""));
		if (i == 3)
			CHECK(!strcmp(jsonl_get(&o, "path")->s, "ck \"1\".h5"));
		if (i == 4)
			CHECK(jsonl_get(&o, "seen")->i == 8 && jsonl_get(&o, "wall_s")->d == 12.5);
		if (i == 5)
			CHECK(!strcmp(jsonl_get(&o, "reason")->s, "SIGTERM\n"));
		p = nl + 1;
	}
	jsonl_obj_free(&o);
	free(text);
	/* Appends on reopen. */
	e = events_open(dir);
	CHECK(events_round(e, 1, 0, 0, 0, 0, -1) == 0);
	events_close(e);
	text = slurp(path, &len);
	CHECK(count_lines(text, len) == 7);
	free(text);
	unlink(path);

	/* Write errors are reported with the file and the cause. */
	e = events_open_path("/dev/full");
	if (e) {
		CHECK(events_unit(e, 0, 1, "", 0, 0, 0, 1) == -1 && test_contains(nb_errmsg(), "/dev/full") &&
		      test_contains(nb_errmsg(), "No space left"));
		events_close(e);
	}
	CHECK(events_open("/nonexistent-dir") == NULL && test_contains(nb_errmsg(), "/nonexistent-dir/events.jsonl"));
}

int main(void)
{
	char *dir = test_tmpdir("journal");
	snprintf(jpath, sizeof jpath, "%s/%s", dir, JOURNAL_FILE);
	test_jsonl();
	test_round_trip(dir);
	test_refusals(dir);
	test_pending_resume(dir);
	test_damage(dir);
	test_truncate_everywhere(dir);
	test_sigkill(dir);
	test_write_failure(dir);
	test_events(dir);
	unlink(jpath);
	rmdir(dir);
	free(dir);
	return test_summary("test_journal");
}
