/* common/nb_io.h, nb_num.h, nb_time.h: buffer growth, whole-file reads,
 * atomic writes and publishing, strict number parsing, durations, and their
 * errors. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include "common/nb_error.h"
#include "common/nb_escape.h"
#include "common/nb_io.h"
#include "common/nb_num.h"
#include "common/nb_time.h"
#include "test/test_util.h"

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_buf_addf(void)
{
	nb_buf b = {0};
	nb_buf_addf(&b, "%d-%s", 42, "x");
	CHECK(b.len == 4 && !strcmp(b.data, "42-x") && b.cap >= 5);
	/* One append longer than the first allocation (256 bytes). */
	char big[600];
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	nb_buf_addf(&b, "[%s]", big);
	CHECK(b.len == 4 + 601 && b.cap >= b.len + 1);
	CHECK(!strncmp(b.data, "42-x[q", 6) && b.data[b.len - 1] == ']' && b.data[b.len] == '\0');
	CHECK(strlen(b.data) == b.len);
	/* Many small appends across several doublings, mixed with nb_buf_add. */
	nb_buf c = {0};
	for (int i = 0; i < 1000; i++) {
		nb_buf_addf(&c, "%03d,", i);
		nb_buf_add(&c, "", 0);
	}
	CHECK(c.len == 4000 && strlen(c.data) == 4000);
	CHECK(!strncmp(c.data, "000,001,", 8) && !strcmp(c.data + 3996, "999,"));
	/* An empty format still yields a terminated (allocated) buffer. */
	nb_buf e = {0};
	nb_buf_addf(&e, "%s", "");
	CHECK(e.data && e.len == 0 && e.data[0] == '\0');
	free(b.data);
	free(c.data);
	free(e.data);
}

static void test_grow(void)
{
	int *a = NULL;
	size_t cap = 0;
	NB_GROW(a, cap, 1, 16);
	CHECK(a && cap == 16);
	a[15] = 7;
	NB_GROW(a, cap, 16, 16); /* fits: no change */
	CHECK(cap == 16 && a[15] == 7);
	NB_GROW(a, cap, 17, 16);
	CHECK(cap == 32 && a[15] == 7);
	NB_GROW(a, cap, 1000, 16); /* doubles until it fits */
	CHECK(cap == 1024 && a[15] == 7);
	a[999] = 1;
	free(a);
	/* An int capacity, as structs with int counts keep it. */
	double *d = NULL;
	int icap = 0;
	NB_GROW(d, icap, 5, 4);
	CHECK(d && icap == 8);
	d[7] = 1.5;
	free(d);
}

static void test_publish(const char *dir)
{
	char path[4200], tmp[4200];
	snprintf(path, sizeof path, "%s/pub.txt", dir);
	CHECK(nb_tmp_name(tmp, sizeof tmp, path) == 0);
	char want[4300];
	snprintf(want, sizeof want, "%s/.pub.txt.tmp.%ld", dir, (long)getpid());
	CHECK_MSG(!strcmp(tmp, want), "%s", tmp);
	char bare[64];
	CHECK(nb_tmp_name(bare, sizeof bare, "x.h5") == 0);
	snprintf(want, sizeof want, ".x.h5.tmp.%ld", (long)getpid());
	CHECK_MSG(!strcmp(bare, want), "%s", bare);
	CHECK(nb_tmp_name(bare, 8, path) == -1 && test_contains(nb_errmsg(), "path too long"));

	for (int durable = 0; durable <= 1; durable++) {
		FILE *f = fopen(tmp, "w");
		CHECK(f != NULL);
		if (!f)
			return;
		fprintf(f, "v%d", durable);
		fclose(f);
		CHECK(nb_publish(tmp, path, durable) == 0);
		CHECK(access(tmp, F_OK) != 0); /* the temporary became the file */
		size_t len;
		char *back = nb_read_file(path, &len);
		CHECK(back && len == 2 && back[0] == 'v' && back[1] == '0' + durable);
		free(back);
		CHECK(count_entries(dir) == 1);
	}
	/* A missing temporary fails at the first step, naming it and the file. */
	CHECK(nb_publish(tmp, path, 1) == -1);
	CHECK_MSG(test_contains(nb_errmsg(), "cannot write") && test_contains(nb_errmsg(), "pub.txt") &&
			  test_contains(nb_errmsg(), "fsync of") && test_contains(nb_errmsg(), "No such file"),
		  "%s", nb_errmsg());
	CHECK(nb_publish(tmp, path, 0) == -1 && test_contains(nb_errmsg(), "rename of"));
	/* A directory as the destination is refused before the rename: the
	 * temporary is removed and the directory left alone. */
	char sub[4300], inner[4400];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	snprintf(inner, sizeof inner, "%s/keep", sub);
	CHECK(nb_mkdir_p(sub) == 0);
	CHECK(nb_write_file_atomic(inner, "k", 1) == 0);
	CHECK(nb_tmp_name(tmp, sizeof tmp, sub) == 0);
	FILE *f = fopen(tmp, "w");
	fclose(f);
	CHECK_MSG(nb_publish(tmp, sub, 1) == -1 && test_contains(nb_errmsg(), "it is a directory, not a regular file"),
		  "%s", nb_errmsg());
	CHECK(access(tmp, F_OK) != 0 && access(inner, F_OK) == 0);
	remove(inner);
	rmdir(sub);
	remove(path);
}

/* A file's whole content, or "" when it cannot be read. */
static const char *content(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

/* A special file where an output goes: nb_write_file_atomic and nb_publish
 * refuse it, naming the path and its kind; it is left as it was (a FIFO is
 * never opened: the alarm turns a blocked open into a failure) and no
 * temporary file stays behind. */
static void refuse_target(const char *dir, const char *target, const char *kind)
{
	char want[4400], tmp[4200];
	snprintf(want, sizeof want, "cannot write '%s': it is a %s, not a regular file", target, kind);
	int before = count_entries(dir);
	alarm(20);
	nb_errclear();
	CHECK_MSG(nb_write_file_atomic(target, "new", 3) == -1 && test_contains(nb_errmsg(), want), "%s: '%s'", kind,
		  nb_errmsg());
	CHECK(nb_tmp_name(tmp, sizeof tmp, target) == 0);
	FILE *f = fopen(tmp, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	for (int durable = 0; durable <= 1; durable++) {
		nb_errclear();
		CHECK_MSG(nb_publish(tmp, target, durable) == -1 && test_contains(nb_errmsg(), want), "%s: '%s'", kind,
			  nb_errmsg());
	}
	alarm(0);
	CHECK_MSG(access(tmp, F_OK) != 0 && count_entries(dir) == before, "%s: a temporary file is left", kind);
	struct stat st;
	CHECK_MSG(lstat(target, &st) == 0 && !strcmp(nb_file_kind(st.st_mode), kind), "%s is now a %s", kind,
		  nb_file_kind(st.st_mode));
}

static void test_special_targets(const char *dir)
{
	char path[4200], victim[4200], buf[64];
	snprintf(path, sizeof path, "%s/fifo", dir);
	CHECK(mkfifo(path, 0644) == 0);
	refuse_target(dir, path, "FIFO");
	remove(path);
	/* A symbolic link is refused, not followed: its target keeps its content. */
	snprintf(victim, sizeof victim, "%s/victim", dir);
	CHECK(nb_write_file_atomic(victim, "old", 3) == 0);
	snprintf(path, sizeof path, "%s/link", dir);
	CHECK(symlink(victim, path) == 0);
	refuse_target(dir, path, "symbolic link");
	CHECK(!strcmp(content(victim, buf, sizeof buf), "old"));
	remove(path);
	remove(victim);
	snprintf(path, sizeof path, "%s/dir", dir);
	CHECK(mkdir(path, 0755) == 0);
	refuse_target(dir, path, "directory");
	rmdir(path);
	/* A socket (its path must fit in sun_path; skipped when it does not). */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int sock = socket(AF_UNIX, SOCK_STREAM, 0);
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", dir) < (int)sizeof sa.sun_path && sock >= 0 &&
	    bind(sock, (struct sockaddr *)&sa, sizeof sa) == 0) {
		refuse_target(dir, sa.sun_path, "socket");
		remove(sa.sun_path);
	}
	if (sock >= 0)
		close(sock);
	/* A character device like /dev/null (root only: skipped otherwise). */
	snprintf(path, sizeof path, "%s/null", dir);
	if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		refuse_target(dir, path, "character device");
		remove(path);
	} else {
		fprintf(stderr, "test_common_io: cannot mknod (%s): the device case is skipped\n", strerror(errno));
	}
	/* A regular file, and nothing, are fine. */
	snprintf(path, sizeof path, "%s/plain", dir);
	CHECK(nb_check_output(path) == 0);
	CHECK(nb_write_file_atomic(path, "a", 1) == 0 && nb_check_output(path) == 0);
	CHECK(nb_write_file_atomic(path, "b", 1) == 0 && !strcmp(content(path, buf, sizeof buf), "b"));
	remove(path);
}

/* Inputs: only regular files are read, a FIFO is refused at once. */
static void test_special_inputs(const char *dir)
{
	char path[4200], want[4400];
	size_t len;
	snprintf(path, sizeof path, "%s/in.fifo", dir);
	CHECK(mkfifo(path, 0644) == 0);
	alarm(20);
	nb_errclear();
	CHECK(nb_read_file(path, &len) == NULL);
	alarm(0);
	snprintf(want, sizeof want, "cannot open '%s': it is a FIFO, not a regular file", path);
	CHECK_MSG(test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	remove(path);
	nb_errclear();
	CHECK(nb_read_file(dir, &len) == NULL);
	snprintf(want, sizeof want, "cannot open '%s': it is a directory, not a regular file", dir);
	CHECK_MSG(test_contains(nb_errmsg(), want), "%s", nb_errmsg());
	/* A symbolic link to a regular file is read through. */
	char target[4200];
	snprintf(target, sizeof target, "%s/t.txt", dir);
	snprintf(path, sizeof path, "%s/l.txt", dir);
	CHECK(nb_write_file_atomic(target, "hi", 2) == 0 && symlink(target, path) == 0);
	char *back = nb_read_file(path, &len);
	CHECK(back && len == 2 && !strcmp(back, "hi"));
	free(back);
	remove(path);
	remove(target);
}

/* A message longer than the buffer keeps its start and its cause. */
static void test_long_message(const char *dir)
{
	char path[4200];
	int n = snprintf(path, sizeof path, "%s/", dir);
	while (n < 4100)
		n += snprintf(path + n, sizeof path - (size_t)n, "%s", n % 200 == 0 ? "/" : "d");
	path[4100] = '\0';
	const char *cause = strerror(ENAMETOOLONG);
	size_t cl = strlen(cause);
	nb_error("cannot write '%s': %s", path, cause);
	const char *m = nb_errmsg();
	size_t ml = strlen(m);
	CHECK_MSG(ml < 4096 && ml >= cl && !strcmp(m + ml - cl, cause), "%zu bytes, ends '%s'", ml,
		  ml > 80 ? m + ml - 80 : m);
	CHECK(!strncmp(m, "cannot write '", 14) && strstr(m, "...") != NULL);
	/* Nested context keeps it too. */
	nb_error("cannot save 'x': %s", nb_errmsg());
	m = nb_errmsg();
	ml = strlen(m);
	CHECK(!strncmp(m, "cannot save 'x': cannot write '", 31) && ml >= cl && !strcmp(m + ml - cl, cause));
	/* Through the real failures: the write and mkdir -p. */
	CHECK(nb_write_file_atomic(path, "x", 1) == -1);
	m = nb_errmsg();
	ml = strlen(m);
	CHECK_MSG(ml >= cl && !strcmp(m + ml - cl, cause), "ends '%s'", ml > 80 ? m + ml - 80 : m);
	CHECK(nb_mkdir_p(path) == -1);
	m = nb_errmsg();
	ml = strlen(m);
	CHECK_MSG(ml >= cl && !strcmp(m + ml - cl, cause), "ends '%s'", ml > 80 ? m + ml - 80 : m);
	/* A short message is kept whole; multi-byte characters are not cut. */
	nb_error("short: %s", "ok");
	CHECK(!strcmp(nb_errmsg(), "short: ok"));
	char wide[6000] = "";
	for (int i = 0; i < 1900; i++)
		strcat(wide, "\xc3\xa9");
	nb_error("%s", wide);
	m = nb_errmsg();
	const char *dots = strstr(m, "...");
	CHECK(dots && (unsigned char)dots[-1] == 0xa9 && (unsigned char)dots[3] == 0xc3);
	/* nb_errmsg() as an argument to nb_error(), with an exact-size fill. */
	char exact[2048];
	memset(exact, 'e', sizeof exact - 1);
	exact[sizeof exact - 1] = '\0';
	nb_error("%s", exact);
	nb_error("%s", nb_errmsg());
	CHECK(strlen(nb_errmsg()) == 2047 && strstr(nb_errmsg(), "...") == NULL);
	nb_error("%s!", nb_errmsg());
	CHECK(strlen(nb_errmsg()) < 2048 && strstr(nb_errmsg(), "...") != NULL && !strcmp(nb_errmsg() + 2040, "eeeeee!"));
	nb_errclear();
}

/* s escapes to want, and back (NUL, which no C string holds, is escaped
 * but does not unescape). */
static void escapes_to(const char *s, size_t n, const char *want)
{
	nb_buf b = {0};
	nb_buf_add_escaped(&b, s, n);
	CHECK_MSG(b.data && !strcmp(b.data, want), "escaped '%s', expected '%s'", b.data ? b.data : "(null)", want);
	size_t len = 0, at = 0;
	if (!memchr(s, '\0', n))
		CHECK_MSG(b.data && nb_unescape(b.data, b.len, &len, &at) == 0 && len == n && !memcmp(b.data, s, n),
			  "'%s' does not unescape: %s", want, nb_errmsg());
	free(b.data);
}
#define ESCAPES_TO(lit, want) escapes_to(lit, sizeof lit - 1, want)

/* s does not unescape; the message holds want, the offset is at. */
static void unescape_fails(const char *s, const char *want, size_t want_at)
{
	char copy[64];
	snprintf(copy, sizeof copy, "%s", s);
	size_t len, at = 99;
	nb_errclear();
	CHECK_MSG(nb_unescape(copy, strlen(copy), &len, &at) == -1 && test_contains(nb_errmsg(), want) && at == want_at,
		  "'%s': '%s' at %zu", s, nb_errmsg(), at);
}

static void test_escape(void)
{
	ESCAPES_TO("", "");
	ESCAPES_TO("plain text/path.png 1", "plain text/path.png 1");
	ESCAPES_TO("a\tb\nc\rd\\e", "a\\tb\\nc\\rd\\\\e");
	ESCAPES_TO("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
	ESCAPES_TO("\x01\x1f\x7f", "\\x01\\x1f\\x7f");
	ESCAPES_TO("\0x", "\\x00x");
	/* valid UTF-8 is kept; C1 controls and invalid bytes are not */
	ESCAPES_TO("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0");
	ESCAPES_TO("\xc2\x9b" "1m\xc2\x80", "\\xc2\\x9b1m\\xc2\\x80");
	ESCAPES_TO("\xff\xfe", "\\xff\\xfe");
	ESCAPES_TO("\xc3", "\\xc3");
	ESCAPES_TO("\xc3(", "\\xc3(");
	ESCAPES_TO("\xc0\x80", "\\xc0\\x80");                 /* overlong */
	ESCAPES_TO("\xed\xa0\x80", "\\xed\\xa0\\x80");         /* a surrogate */
	ESCAPES_TO("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
	ESCAPES_TO("\xe2\x82", "\\xe2\\x82");                  /* cut short */

	/* Every byte but NUL, and random byte strings: the escaping has no
	 * control byte, and unescaping gives the input back. */
	unsigned x = 12345;
	for (int t = 1; t < 2000; t++) {
		char in[48];
		size_t n = t < 256 ? 1 : (x = x * 1103515245u + 12345u) % sizeof in;
		for (size_t i = 0; i < n; i++) {
			in[i] = t < 256 ? (char)t : (char)((x = x * 1103515245u + 12345u) >> 16);
			in[i] = in[i] ? in[i] : 'z';
		}
		nb_buf b = {0};
		nb_buf_add_escaped(&b, in, n);
		int clean = 1;
		for (size_t i = 0; i < b.len; i++)
			clean &= (unsigned char)b.data[i] >= 0x20 && (unsigned char)b.data[i] != 0x7f;
		size_t len = 0, at;
		CHECK_MSG(clean && nb_unescape(b.data, b.len, &len, &at) == 0 && len == n && !memcmp(b.data, in, n),
			  "round trip %d", t);
		free(b.data);
	}

	char ok[] = "\\x1B\\x41";
	size_t len, at;
	CHECK(nb_unescape(ok, strlen(ok), &len, &at) == 0 && len == 2 && !strcmp(ok, "\x1b" "A"));
	unescape_fails("a\\qb", "bad escape '\\q' (expected \\\\, \\t, \\n, \\r or \\xNN)", 1);
	unescape_fails("ab\\", "bad escape '\\' at the end", 2);
	unescape_fails("\\x4", "bad escape '\\x4'", 0);
	unescape_fails("x\\x4g", "bad escape '\\x4g'", 1);
	unescape_fails("\\x00", "bad escape '\\x00' (a NUL byte)", 0);
	unescape_fails("\\\x1b", "bad escape '\\\\x1b'", 0);

	char q[16];
	CHECK(!strcmp(nb_quote(q, sizeof q, "a\tb"), "a\\tb"));
	CHECK(!strcmp(nb_quote(q, sizeof q, "\x1b\x1b\x1b\x1b\x1b"), "\\x1b\\x1b\\x1b..."));
	CHECK(!strcmp(nb_quote(q, sizeof q, "0123456789abcdef"), "0123456789ab..."));
	CHECK(!strcmp(nb_quote(q, sizeof q, "0123456789abcde"), "0123456789abcde"));

	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (f) {
		char back[64] = "";
		nb_fput_escaped(f, "x\ty\x1b");
		rewind(f);
		CHECK(fgets(back, sizeof back, f) && !strcmp(back, "x\\ty\\x1b"));
		fclose(f);
	}
}

/* Parsing s fails and the message holds every needle. */
#define PARSE_FAILS(call, n1, n2)                                                                          \
	do {                                                                                               \
		nb_errclear();                                                                             \
		CHECK_MSG((call) == -1 && test_contains(nb_errmsg(), n1) && test_contains(nb_errmsg(), n2), \
			  "%s: '%s'", #call, nb_errmsg());                                                 \
	} while (0)

static void test_parse(void)
{
	long l = -7;
	CHECK(nb_parse_long("42", 0, 100, "--n", &l) == 0 && l == 42);
	CHECK(nb_parse_long("-5", -10, 10, "--n", &l) == 0 && l == -5);
	CHECK(nb_parse_long("100", 0, 100, "--n", &l) == 0 && l == 100); /* bounds are inside */
	CHECK(nb_parse_long("9223372036854775807", LONG_MIN, LONG_MAX, "--n", &l) == 0 && l == LONG_MAX);
	l = -7;
	PARSE_FAILS(nb_parse_long("12x", 0, 100, "--n", &l), "--n: '12x' is not an integer", "");
	PARSE_FAILS(nb_parse_long("", 0, 100, "--n", &l), "--n: '' is not an integer", "");
	PARSE_FAILS(nb_parse_long(" 12", 0, 100, "--n", &l), "' 12' is not an integer", "");
	PARSE_FAILS(nb_parse_long("12 ", 0, 100, "--n", &l), "'12 ' is not an integer", "");
	PARSE_FAILS(nb_parse_long("2.5", 0, 100, "--n", &l), "'2.5' is not an integer", "");
	PARSE_FAILS(nb_parse_long("0x10", 0, 100, "--n", &l), "not an integer", "");
	PARSE_FAILS(nb_parse_long("101", 0, 100, "--n", &l), "--n: 101 is out of range [0, 100]", "");
	PARSE_FAILS(nb_parse_long("-1", 0, 100, "--n", &l), "-1 is out of range [0, 100]", "");
	PARSE_FAILS(nb_parse_long("18446744073709551615", 0, 100, "--n", &l), "out of range", "[0, 100]");
	PARSE_FAILS(nb_parse_long("-99999999999999999999", LONG_MIN, LONG_MAX, "--n", &l), "out of range", "");
	PARSE_FAILS(nb_parse_long("99999999999999999999x", 0, 100, "--n", &l), "not an integer", "");
	CHECK(l == -7); /* untouched on error */
	/* No `what`: the bare cause, for callers that frame it themselves. */
	PARSE_FAILS(nb_parse_long("x", 0, 1, NULL, &l), "'x' is not an integer", "");
	CHECK(!strcmp(nb_errmsg(), "'x' is not an integer"));

	uint64_t u = 7;
	CHECK(nb_parse_u64("18446744073709551615", 0, UINT64_MAX, "seed", &u) == 0 && u == UINT64_MAX);
	CHECK(nb_parse_u64("0", 0, 10, "seed", &u) == 0 && u == 0);
	u = 7;
	PARSE_FAILS(nb_parse_u64("18446744073709551616", 0, UINT64_MAX, "seed", &u), "seed: 18446744073709551616",
		    "out of range [0, 18446744073709551615]");
	PARSE_FAILS(nb_parse_u64("11", 0, 10, "seed", &u), "11 is out of range [0, 10]", "");
	/* A huge value against a small range states that range. */
	PARSE_FAILS(nb_parse_u64("99999999999999999999", 1, 10, "seed", &u), "out of range [1, 10]", "");
	PARSE_FAILS(nb_parse_u64("-1", 0, 10, "seed", &u), "'-1' is not a non-negative integer", "");
	PARSE_FAILS(nb_parse_u64("+1", 0, 10, "seed", &u), "not a non-negative integer", "");
	PARSE_FAILS(nb_parse_u64("", 0, 10, "seed", &u), "'' is not a non-negative integer", "");
	PARSE_FAILS(nb_parse_u64(" 1", 0, 10, "seed", &u), "not a non-negative integer", "");
	PARSE_FAILS(nb_parse_u64("1k", 0, 10, "seed", &u), "'1k' is not a non-negative integer", "");
	PARSE_FAILS(nb_parse_u64("99999999999999999999x", 0, 10, "seed", &u), "not a non-negative integer", "");
	CHECK(u == 7);

	double d = -7;
	CHECK(nb_parse_double("0.25", 0, 1, "--sigma", &d) == 0 && d == 0.25);
	CHECK(nb_parse_double("3e-3", 0, 1, "--sigma", &d) == 0 && d == 3e-3);
	CHECK(nb_parse_double("-1", -1, 1, "--sigma", &d) == 0 && d == -1);
	/* Underflow rounds to (about) zero: as near as a double gets. */
	CHECK(nb_parse_double("1e-400", 0, 1, "--sigma", &d) == 0 && d >= 0 && d < 1e-300);
	d = -7;
	PARSE_FAILS(nb_parse_double("0.5x", 0, 1, "--sigma", &d), "--sigma: '0.5x' is not a number", "");
	PARSE_FAILS(nb_parse_double("", 0, 1, "--sigma", &d), "'' is not a number", "");
	PARSE_FAILS(nb_parse_double(" 0.5", 0, 1, "--sigma", &d), "' 0.5' is not a number", "");
	PARSE_FAILS(nb_parse_double("nan", 0, 1, "--sigma", &d), "'nan' is not a number", "");
	PARSE_FAILS(nb_parse_double("inf", 0, 1e300, "--sigma", &d), "'inf' is not a number", "");
	PARSE_FAILS(nb_parse_double("1.5", 0, 1, "--sigma", &d), "--sigma: 1.5 is out of range [0, 1]", "");
	PARSE_FAILS(nb_parse_double("1e999", 0, 1, "--sigma", &d), "1e999 is out of range [0, 1]", "");
	PARSE_FAILS(nb_parse_double("-1e999", -1, 1, "--sigma", &d), "out of range", "");
	CHECK(d == -7);

	uint64_t z = 7;
	CHECK(nb_parse_size("64", 0, UINT64_MAX, "--chunk", &z) == 0 && z == 64);
	CHECK(nb_parse_size("8k", 0, UINT64_MAX, "--chunk", &z) == 0 && z == 8192);
	CHECK(nb_parse_size("8K", 0, UINT64_MAX, "--chunk", &z) == 0 && z == 8192);
	CHECK(nb_parse_size("2M", 0, UINT64_MAX, "--chunk", &z) == 0 && z == ((uint64_t)2 << 20));
	CHECK(nb_parse_size("3G", 0, UINT64_MAX, "--chunk", &z) == 0 && z == ((uint64_t)3 << 30));
	CHECK(nb_parse_size("0k", 0, 10, "--chunk", &z) == 0 && z == 0);
	CHECK(nb_parse_size("16777215G", 0, UINT64_MAX, "--chunk", &z) == 0 && z == ((uint64_t)16777215 << 30));
	z = 7;
	PARSE_FAILS(nb_parse_size("8kb", 0, UINT64_MAX, "--chunk", &z), "--chunk: '8kb' is not a size", "");
	PARSE_FAILS(nb_parse_size("8m", 0, UINT64_MAX, "--chunk", &z), "'8m' is not a size", "");
	PARSE_FAILS(nb_parse_size("k", 0, UINT64_MAX, "--chunk", &z), "'k' is not a size", "");
	PARSE_FAILS(nb_parse_size("", 0, UINT64_MAX, "--chunk", &z), "'' is not a size", "");
	PARSE_FAILS(nb_parse_size(" 8k", 0, UINT64_MAX, "--chunk", &z), "not a size", "");
	PARSE_FAILS(nb_parse_size("-8", 0, UINT64_MAX, "--chunk", &z), "not a size", "");
	PARSE_FAILS(nb_parse_size("2M", 0, 1000000, "--chunk", &z), "2M is out of range [0, 1000000]", "");
	PARSE_FAILS(nb_parse_size("1k", 1025, 4096, "--chunk", &z), "out of range [1025, 4096]", "");
	/* The suffix must not wrap around 2^64. */
	PARSE_FAILS(nb_parse_size("17179869184G", 0, UINT64_MAX, "--chunk", &z), "out of range", "");
	PARSE_FAILS(nb_parse_size("18446744073709551615k", 0, UINT64_MAX, "--chunk", &z), "out of range", "");
	PARSE_FAILS(nb_parse_size("99999999999999999999", 0, UINT64_MAX, "--chunk", &z), "out of range", "");
	CHECK(z == 7);
}

static void test_duration(void)
{
	char buf[32];
	struct {
		double s;
		const char *want;
	} cases[] = {
		{0, "0s"},          {0.4, "0s"},        {42, "42s"},          {59.6, "59s"},
		{60, "1m00s"},      {185, "3m05s"},     {3599.9, "59m59s"},   {3600, "1h00m"},
		{7620, "2h07m"},    {360000, "100h00m"}, {-1, "?"},           {1e9, "?"},
		{NAN, "?"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		nb_fmt_duration(buf, sizeof buf, cases[i].s);
		CHECK_MSG(!strcmp(buf, cases[i].want), "%g: '%s', want '%s'", cases[i].s, buf, cases[i].want);
	}
	/* A small buffer truncates, terminated. */
	nb_fmt_duration(buf, 3, 185);
	CHECK(!strcmp(buf, "3m"));
	double t0 = nb_now(), t1 = nb_now();
	CHECK(t0 > 0 && t1 >= t0);
}

int main(void)
{
	test_buf_addf();
	test_grow();
	test_parse();
	test_duration();

	nb_buf b = {0};
	for (int i = 0; i < 10000; i++)
		nb_buf_add(&b, "ab", 2);
	nb_buf_adds(&b, "!");
	CHECK(b.len == 20001);
	CHECK(b.data[20000] == '!' && b.data[20001] == '\0');
	CHECK(b.cap >= b.len + 1);

	char *dir = test_tmpdir("io");
	char path[4200];
	snprintf(path, sizeof path, "%s/out.txt", dir);
	CHECK(nb_write_file_atomic(path, b.data, b.len) == 0);
	CHECK(count_entries(dir) == 1); /* no temporary left behind */
	size_t len = 0;
	char *back = nb_read_file(path, &len);
	CHECK(back && len == b.len && memcmp(back, b.data, len) == 0 && back[len] == '\0');
	free(back);
	/* Overwrite: the reader sees the whole new content. */
	CHECK(nb_write_file_atomic(path, "new", 3) == 0);
	back = nb_read_file(path, &len);
	CHECK(back && len == 3 && !strcmp(back, "new"));
	free(back);
	/* Empty file reads as an empty, terminated string. */
	CHECK(nb_write_file_atomic(path, "", 0) == 0);
	back = nb_read_file(path, &len);
	CHECK(back && len == 0 && back[0] == '\0');
	free(back);

	/* Errors name the file and the cause. */
	char missing[4200];
	snprintf(missing, sizeof missing, "%s/nope/x.txt", dir);
	CHECK(nb_read_file(missing, &len) == NULL && errno == ENOENT);
	CHECK(test_contains(nb_errmsg(), "nope/x.txt") && test_contains(nb_errmsg(), "No such file"));
	CHECK(nb_write_file_atomic(missing, "x", 1) == -1);
	CHECK(test_contains(nb_errmsg(), "cannot write") && test_contains(nb_errmsg(), "nope/x.txt"));
	CHECK(nb_read_file(dir, &len) == NULL); /* a directory is not a file */
	CHECK(test_contains(nb_errmsg(), dir));

	/* mkdir -p: nested, idempotent, trailing and doubled slashes; a file in the way. */
	char deep[4200], deep2[4200];
	snprintf(deep, sizeof deep, "%s/a//b/c/", dir);
	CHECK(nb_mkdir_p(deep) == 0);
	CHECK(nb_mkdir_p(deep) == 0);
	snprintf(deep2, sizeof deep2, "%s/a/b/c", dir);
	struct stat st;
	CHECK(stat(deep2, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(deep2, sizeof deep2, "%s/out.txt/sub", dir);
	CHECK(nb_mkdir_p(deep2) == -1);
	CHECK(test_contains(nb_errmsg(), "out.txt") && test_contains(nb_errmsg(), "cannot create directory"));
	CHECK(nb_mkdir_p(path) == -1 && test_contains(nb_errmsg(), "a file of that name exists"));
	CHECK(nb_mkdir_p("") == -1);
	snprintf(deep2, sizeof deep2, "%s/a/b/c", dir);
	rmdir(deep2);
	snprintf(deep2, sizeof deep2, "%s/a/b", dir);
	rmdir(deep2);
	snprintf(deep2, sizeof deep2, "%s/a", dir);
	rmdir(deep2);

	free(b.data);
	remove(path);
	test_publish(dir);
	test_special_targets(dir);
	test_special_inputs(dir);
	test_long_message(dir);
	test_escape();
	rmdir(dir);
	free(dir);
	return test_summary("test_common_io");
}
