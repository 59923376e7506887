/* Ingest status tables and tallies: the round trips the driver and the
 * rank gathering rely on, and the inputs they must refuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "corpus/ingest/ingest.h"
#include "corpus/ingest/ingest_tally.h"
#include "test_util.h"

static void test_status_round_trip(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/s.status.tsv", dir);
	ingest_row rows[2] = {
		{.line = 2, .id = 2, .status = "ok", .attempts = 1, .hash = {0x0123456789abcdefULL, 42},
		 .digest = 0xfedcba9876543210ULL, .url = "http://h/a.png", .key = "k\t1", .detail = "",
		 .width = 640, .height = 480, .sha256 = {0xde, 0xad, [31] = 0x7f}},
		{.line = 5, .id = 5, .status = "http_404", .attempts = 3, .url = "http://h/b\\c",
		 .key = "", .detail = "two\nlines\r"},
	};
	CHECK(ingest_status_write(path, rows, 2) == 0);
	ingest_row *back = NULL;
	size_t n = 0;
	CHECK_MSG(ingest_status_read(path, &back, &n) == 0, "%s", nb_errmsg());
	CHECK(n == 2);
	if (n == 2) {
		CHECK(back[0].line == 2 && back[0].id == 2 && !strcmp(back[0].status, "ok"));
		CHECK(back[0].hash[0] == 0x0123456789abcdefULL && back[0].hash[1] == 42);
		CHECK(!strcmp(back[0].key, "k\t1") && !strcmp(back[1].url, "http://h/b\\c"));
		CHECK(back[1].attempts == 3 && !strcmp(back[1].detail, "two\nlines\r"));
		CHECK(back[0].digest == 0xfedcba9876543210ULL && back[1].digest == 0);
		CHECK(back[0].width == 640 && back[0].height == 480 && back[1].width == 0);
		CHECK(back[0].sha256[0] == 0xde && back[0].sha256[1] == 0xad && back[0].sha256[31] == 0x7f);
		CHECK(back[1].sha256[0] == 0 && back[1].sha256[31] == 0);
	}
	ingest_rows_free(back, n);
}

/* Writes text as a status table and reads it back: the error, or "". */
static const char *read_text(const char *dir, const char *text)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/bad.status.tsv", dir);
	if (nb_write_file_atomic(path, text, strlen(text)) < 0)
		return "write failed";
	ingest_row *rows = NULL;
	size_t n = 0;
	if (ingest_status_read(path, &rows, &n) == 0) {
		ingest_rows_free(rows, n);
		return "";
	}
	return nb_errmsg();
}

static void test_status_refused(const char *dir)
{
	const char *head = "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\n";
	const char *hash = "0000000000000000000000000000000a";
	char t[512];
	CHECK(test_contains(read_text(dir, "line\tid\n"), "missing header"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td", head, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 is truncated"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\n", head, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 has 7 fields"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1x\t%s\tu\tk\td\n", head, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s 2\t2\tok\t1\t%s\tu\tk\td\n", head, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%.31s\tu\tk\td\n", head, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\n", head, hash);
	CHECK(*read_text(dir, t) == 0);
	/* the table with the digest column (the one written now) */
	const char *head2 = "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\tdigest\n";
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\n", head2, hash);
	CHECK(*read_text(dir, t) == 0);
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\n", head2, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 has 8 fields, expected 9"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\tff\n", head2, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\tx\n", head2, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 has more than 9 fields"));
	/* the table with the original size and SHA-256 (written now) */
	const char *head3 = "line\tid\tstatus\tattempts\thash\turl\tkey\tdetail\tdigest\twidth\theight\tsha256\n";
	char sha[65];
	memset(sha, 'a', 64);
	sha[64] = 0;
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\t3\t4\t%s\n", head3, hash, sha);
	CHECK(*read_text(dir, t) == 0);
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\t3\t4\t%.63s\n", head3, hash, sha);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\t-3\t4\t%s\n", head3, hash, sha);
	CHECK(test_contains(read_text(dir, t), "line 2 is malformed"));
	snprintf(t, sizeof t, "%s2\t2\tok\t1\t%s\tu\tk\td\t00000000000000ff\n", head3, hash);
	CHECK(test_contains(read_text(dir, t), "line 2 has 9 fields, expected 12"));
}

static ingest_tally *sample_tally(void)
{
	ingest_tally *t = ingest_tally_new();
	tally_count(t, "ok", 5);
	tally_count(t, "http_404", 1);
	tally_count(t, "ok", 2);
	t->t[T_WALL] = 2.0;
	t->t[T_NETWORK] = 0.1 + 0.2; /* not exact in decimal: must survive the text */
	t->bytes = 1000;
	t->attempts = 9;
	t->retries = 1;
	t->images = 7;
	t->changed = 2;
	return t;
}

static void test_tally_json(void)
{
	ingest_tally *t = sample_tally();
	nb_buf b = {0};
	tally_json(t, "\"shard\": 3, ", &b);
	CHECK_MSG(!strcmp(b.data, "{\"shard\": 3, \"status\": {\"http_404\": 1, \"ok\": 7}, \"records\": 8, "
				  "\"images\": 7, \"bytes\": 1000, \"attempts\": 9, \"retries\": 1, \"changed\": 2, \"time_s\": "
				  "{\"wall\": 2.000000, \"network\": 0.300000, \"decode\": 0.000000, \"resize\": "
				  "0.000000, \"hash\": 0.000000, \"write\": 0.000000}, \"images_per_s\": 3.50}\n"),
		  "%s", b.data);
	free(b.data);
	ingest_tally_free(t);
}

static void test_tally_text(void)
{
	ingest_tally *t = sample_tally();
	nb_buf b = {0};
	ingest_tally_encode(t, &b);
	ingest_tally_encode(t, &b); /* two ranks' tallies, concatenated */
	ingest_tally *sum = ingest_tally_new();
	CHECK_MSG(ingest_tally_merge(sum, b.data, b.len) == 0, "%s", nb_errmsg());
	CHECK(sum->nstatus == 2 && sum->images == 14 && sum->bytes == 2000 && sum->attempts == 18);
	CHECK(sum->retries == 2 && sum->changed == 4 && sum->t[T_WALL] == 4.0 && sum->t[T_NETWORK] == 2 * (0.1 + 0.2));
	for (size_t i = 0; i < sum->nstatus; i++)
		CHECK(sum->status[i].count == (strcmp(sum->status[i].name, "ok") ? 2u : 14u));
	/* An empty text adds nothing; bad text leaves the sum alone. */
	CHECK(ingest_tally_merge(sum, "", 0) == 0 && sum->images == 14);
	const char *bad[] = {"images 3", "images x\n", "frames 3\n", "status 3\n", "time.wall nan\n",
			     "status -1 ok\n", "images 1\nimages\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_MSG(ingest_tally_merge(sum, bad[i], strlen(bad[i])) < 0, "accepted '%s'", bad[i]);
		CHECK(test_contains(nb_errmsg(), "cannot merge ingest tallies"));
	}
	CHECK(ingest_tally_merge(sum, "images 1\0", 9) < 0);
	CHECK(sum->images == 14);
	free(b.data);
	ingest_tally_free(sum);
	ingest_tally_free(t);
}

int main(void)
{
	char *dir = test_tmpdir("ingest_status");
	test_status_round_trip(dir);
	test_status_refused(dir);
	test_tally_json();
	test_tally_text();
	free(dir);
	return test_summary("test_ingest_status");
}
