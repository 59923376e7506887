/* The consistency filter: votes per statement (full tuples, repeats once per
 * caption), whole vs subset mode, every vote threshold, min_score, the
 * rejection reasons in their order, K = 0 as raw pseudo-labels, the subset
 * caption's reading order and its round trip through the parser, the
 * decode_greedy block form, argument errors and the tallies; and a
 * brute-force reference on random captions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "labeler/caption_parse.h"
#include "labeler/consistency.h"
#include "test_util.h"

enum { MAXTOK = 128, MAXK = 8 };

/* Statements used below; cells 0 (A), 4 (B), 8 (C), 2 (D), 6 (E). */
#define A "small red circle top left ."
#define B "large blue square middle center ."
#define C "small green triangle bottom right ."
#define D "large yellow cross top right ."
#define E "small cyan ring bottom left ."

typedef struct {
	int rc;
	consistency_verdict v;
	char text[512];              /* output caption, "" when rejected */
} result;

static result judge_text(const consistency_opts *o, const char *clean, const char *const *noisy, int K)
{
	static uint16_t ids[MAXK + 1][MAXTOK];
	const uint16_t *ptrs[MAXK];
	int lens[MAXK], clen;
	uint16_t out[MAXTOK];
	clen = caption_tokenize(clean, ids[0], MAXTOK);
	for (int k = 0; k < K; k++) {
		lens[k] = caption_tokenize(noisy[k], ids[k + 1], MAXTOK);
		ptrs[k] = ids[k + 1];
	}
	result r;
	memset(&r, 0, sizeof(r));
	r.rc = consistency_judge(o, ids[0], clen, K ? ptrs : NULL, K ? lens : NULL, K, out, MAXTOK, &r.v);
	if (r.rc == 0 && r.v.accepted)
		vocab_decode(out, r.v.ntokens, r.text, sizeof(r.text));
	return r;
}

static consistency_opts opts(int vote, consistency_mode mode, double min_score)
{
	consistency_opts o;
	consistency_opts_default(&o);
	o.vote = vote;
	o.mode = mode;
	o.min_score = min_score;
	return o;
}

#define CHECK_VERDICT(r, acc, reason_, kept_, total_)                                              \
	CHECK_MSG((r).rc == 0 && (r).v.accepted == (acc) && (r).v.reason == (reason_) &&            \
			  (r).v.kept == (kept_) && (r).v.total == (total_),                         \
		  "rc %d accepted %d reason %s kept %d total %d", (r).rc, (r).v.accepted,           \
		  consistency_reason_name((r).v.reason), (r).v.kept, (r).v.total)

static void test_defaults(void)
{
	consistency_opts o;
	memset(&o, 0x5a, sizeof(o));
	consistency_opts_default(&o);
	CHECK(o.vote == 1 && o.mode == CONS_WHOLE && o.min_score == 0);
}

static void test_whole_vs_subset(void)
{
	/* A: 3 votes, B: 1, C: 1. */
	const char *noisy[] = {A " " B, A, C " " A};
	consistency_opts w = opts(2, CONS_WHOLE, 0), s = opts(2, CONS_SUBSET, 0);
	result r = judge_text(&w, A " " B " " C, noisy, 3);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 1, 3);
	CHECK(r.v.ntokens == 0 && r.text[0] == 0);
	CHECK_NEAR(r.v.score, 1.0 / 3, 1e-6);

	r = judge_text(&s, A " " B " " C, noisy, 3);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 3);
	CHECK(r.v.ntokens == 6 && !strcmp(r.text, A));
	CHECK_NEAR(r.v.score, 1.0 / 3, 1e-6);

	/* Everything has a vote at vote = 1: whole passes the clean caption unchanged. */
	w.vote = 1;
	r = judge_text(&w, C " " A " " B, noisy, 3);
	CHECK_VERDICT(r, 1, CONS_OK, 3, 3);
	CHECK(!strcmp(r.text, C " " A " " B) && r.v.ntokens == 18 && r.v.score == 1.0f);
	/* Subset at vote = 1 keeps all, re-serialised in reading order (A cell 0, B 4, C 8). */
	s.vote = 1;
	r = judge_text(&s, C " " A " " B, noisy, 3);
	CHECK_VERDICT(r, 1, CONS_OK, 3, 3);
	CHECK(!strcmp(r.text, A " " B " " C));

	/* Nothing survives: subset rejects too. */
	const char *none[] = {D, E};
	s.vote = 1;
	r = judge_text(&s, A " " B, none, 2);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 2);
	CHECK(r.v.score == 0.0f);
}

/* K = 4; statement j of the clean caption appears in exactly j noisy
 * captions (S0 = E in none ... S4 = A in all four). */
static void test_vote_thresholds(void)
{
	const char *clean = E " " C " " D " " B " " A;  /* E:0 C:1 D:2 B:3 A:4 votes */
	const char *noisy[] = {A " " B " " D " " C, B " " A " " D, A " " B, A};
	for (int vote = 1; vote <= 4; vote++) {
		consistency_opts s = opts(vote, CONS_SUBSET, 0);
		result r = judge_text(&s, clean, noisy, 4);
		CHECK_VERDICT(r, 1, CONS_OK, 5 - vote, 5);
		CHECK_NEAR(r.v.score, (5.0 - vote) / 5, 1e-6);
		/* Kept: the statements with >= vote votes, in reading order A(0) D(2) B(4) C(8). */
		static const char *const expect[5] = {"", A " " D " " B " " C, A " " D " " B, A " " B, A};
		CHECK_MSG(!strcmp(r.text, expect[vote]), "vote %d: '%s'", vote, r.text);
		CHECK(r.v.ntokens == 6 * (5 - vote));

		consistency_opts w = opts(vote, CONS_WHOLE, 0);
		r = judge_text(&w, clean, noisy, 4);
		CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 5 - vote, 5);
		/* Without E (0 votes) whole passes only while vote <= 1 (C has 1). */
		r = judge_text(&w, C " " D " " B " " A, noisy, 4);
		CHECK_VERDICT(r, vote <= 1, vote <= 1 ? CONS_OK : CONS_TOO_FEW_VOTES, 5 - vote, 4);
	}
	/* vote = K needs unanimity. */
	consistency_opts w = opts(4, CONS_WHOLE, 0);
	result r = judge_text(&w, A " " A, noisy, 4);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 1);
}

/* Identity is the whole tuple: same object elsewhere, or another size, is another statement. */
static void test_identity(void)
{
	const char *noisy[] = {"small red circle top center .", "large red circle top left .",
			       "small red square top left .", "small blue circle top left ."};
	consistency_opts s = opts(1, CONS_SUBSET, 0);
	result r = judge_text(&s, A, noisy, 4);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 1);
}

static void test_duplicates(void)
{
	/* The clean caption's repeat is one statement; a noisy caption's repeat one vote. */
	const char *noisy[] = {A " " A " " A, B};
	consistency_opts s = opts(2, CONS_SUBSET, 0);
	result r = judge_text(&s, A " " A " " B, noisy, 2);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 2);

	const char *noisy2[] = {A " " A, A " " B};
	r = judge_text(&s, A " " B " " A, noisy2, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 2);
	CHECK(!strcmp(r.text, A));
	s.vote = 1;
	r = judge_text(&s, A " " B " " A, noisy2, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 2, 2);
	CHECK(!strcmp(r.text, A " " B) && r.v.ntokens == 12);

	/* Whole mode keeps the clean caption as it was, repeat included. */
	consistency_opts w = opts(1, CONS_WHOLE, 0);
	r = judge_text(&w, A " " B " " A, noisy2, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 2, 2);
	CHECK(!strcmp(r.text, A " " B " " A) && r.v.ntokens == 18);
}

/* Two statements in one cell keep their clean-caption order. */
static void test_reading_order(void)
{
	const char *x = "large white diamond middle center .";
	char clean[256];
	snprintf(clean, sizeof clean, "%s %s %s %s", C, x, B, A);
	const char *noisy[] = {A " " B " " C " " "large white diamond middle center ."};
	consistency_opts s = opts(1, CONS_SUBSET, 0);
	result r = judge_text(&s, clean, noisy, 1);
	char expect[256];
	snprintf(expect, sizeof expect, "%s %s %s %s", A, x, B, C);
	CHECK_VERDICT(r, 1, CONS_OK, 4, 4);
	CHECK_MSG(!strcmp(r.text, expect), "'%s'", r.text);
}

static void permute_check(const consistency_opts *o, const char *clean, const char **noisy, int K, int at,
			  const result *ref, int *bad)
{
	if (at == K) {
		result r = judge_text(o, clean, noisy, K);
		if (memcmp(&r.v, &ref->v, sizeof(r.v)) != 0 || strcmp(r.text, ref->text) != 0 || r.rc != ref->rc)
			(*bad)++;
		return;
	}
	for (int i = at; i < K; i++) {
		const char *t = noisy[at];
		noisy[at] = noisy[i];
		noisy[i] = t;
		permute_check(o, clean, noisy, K, at + 1, ref, bad);
		noisy[i] = noisy[at];
		noisy[at] = t;
	}
}

static void test_order_independence(void)
{
	const char *noisy[] = {A " " B, C, B " " E " junk .", A " " C " " D, "", B};
	const char *clean = D " " B " " A " " C;
	int bad = 0;
	for (int mode = 0; mode < 2; mode++)
		for (int vote = 1; vote <= 4; vote++) {
			consistency_opts o = opts(vote, (consistency_mode)mode, 0);
			result ref = judge_text(&o, clean, noisy, 6);
			CHECK(ref.rc == 0);
			permute_check(&o, clean, noisy, 6, 0, &ref, &bad);
		}
	CHECK_MSG(bad == 0, "%d permutations changed the verdict", bad);
	/* And the reference values: A 2, B 3, C 2, D 1 votes. */
	consistency_opts o = opts(2, CONS_SUBSET, 0);
	result r = judge_text(&o, clean, noisy, 6);
	CHECK_VERDICT(r, 1, CONS_OK, 3, 4);
	CHECK(!strcmp(r.text, A " " B " " C));
	o.vote = 3;
	r = judge_text(&o, clean, noisy, 6);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 4);
	CHECK(!strcmp(r.text, B));
}

static void test_malformed(void)
{
	const char *noisy[] = {A " " B, A " " B};
	consistency_opts s = opts(1, CONS_SUBSET, 0), w = opts(1, CONS_WHOLE, 0);
	/* One malformed statement rejects the caption in either mode; counts still filled. */
	const char *bad[] = {
		A " small red blob top left .",       /* unknown word */
		A " " B " red small circle top left .", /* wrong slot order */
		A " " B " small red circle top",     /* no closing "." */
		A " . " B,                           /* empty statement */
		A " <eos> " B,                       /* a special among the words */
	};
	static const int total[] = {1, 2, 2, 2, 1};
	for (int i = 0; i < 5; i++) {
		result r = judge_text(&s, bad[i], noisy, 2);
		CHECK_VERDICT(r, 0, CONS_PARSE_FAILURE, total[i], total[i]);
		CHECK(r.v.ntokens == 0 && r.text[0] == 0);
		r = judge_text(&w, bad[i], noisy, 2);
		CHECK_VERDICT(r, 0, CONS_PARSE_FAILURE, total[i], total[i]);
	}
	/* Nothing but malformed statements: a parse failure, not "no statement". */
	result r = judge_text(&s, ". .", noisy, 2);
	CHECK_VERDICT(r, 0, CONS_PARSE_FAILURE, 0, 0);
	r = judge_text(&s, "small red", noisy, 2);
	CHECK_VERDICT(r, 0, CONS_PARSE_FAILURE, 0, 0);

	/* Malformed noisy statements vote for nothing, the rest of that caption still votes. */
	const char *mixed[] = {"blob . " A " small red circle top", "small red circle top left"};
	r = judge_text(&s, A, mixed, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 1);
	s.vote = 2;
	r = judge_text(&s, A, mixed, 2);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 1);
}

static void test_empty(void)
{
	const char *noisy[] = {A, A};
	consistency_opts s = opts(1, CONS_SUBSET, 0), w = opts(2, CONS_WHOLE, 0);
	result r = judge_text(&s, "", noisy, 2);
	CHECK_VERDICT(r, 0, CONS_NO_STATEMENT, 0, 0);
	CHECK(r.v.score == 0.0f && r.v.ntokens == 0);
	r = judge_text(&w, "", noisy, 2);
	CHECK_VERDICT(r, 0, CONS_NO_STATEMENT, 0, 0);
	/* Empty noisy captions are fine: they vote for nothing. */
	const char *empty[] = {"", ""};
	r = judge_text(&w, A, empty, 2);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 1);
}

static void test_min_score(void)
{
	/* A 2 votes, B 2, C 1, D 0; vote 2 keeps A and B: score 2/4. */
	const char *noisy[] = {A " " B " " C, A " " B};
	const char *clean = A " " B " " C " " D;
	consistency_opts s = opts(2, CONS_SUBSET, 0.5);
	result r = judge_text(&s, clean, noisy, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 2, 4);  /* equal passes */
	CHECK(r.v.score == 0.5f && !strcmp(r.text, A " " B));
	s.min_score = 0.51;
	r = judge_text(&s, clean, noisy, 2);
	CHECK_VERDICT(r, 0, CONS_LOW_SCORE, 2, 4);
	CHECK(r.v.score == 0.5f && r.v.ntokens == 0);
	s.vote = 1;                           /* A, B, C kept: 3/4 */
	r = judge_text(&s, clean, noisy, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 3, 4);
	s.min_score = 1;
	r = judge_text(&s, clean, noisy, 2);
	CHECK_VERDICT(r, 0, CONS_LOW_SCORE, 3, 4);
	r = judge_text(&s, A " " B, noisy, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 2, 2);
	/* Subset with nothing kept is too_few_votes, not low_score. */
	const char *none[] = {E, E};
	r = judge_text(&s, A, none, 2);
	CHECK_VERDICT(r, 0, CONS_TOO_FEW_VOTES, 0, 1);
	/* Whole mode: min_score = 1 changes nothing (accepted means score 1). */
	consistency_opts w = opts(1, CONS_WHOLE, 1);
	r = judge_text(&w, A " " B " " C, noisy, 2);
	CHECK_VERDICT(r, 1, CONS_OK, 3, 3);
}

/* The subset caption parses back to exactly the kept tuples, in reading order. */
static void test_roundtrip(void)
{
	uint64_t s = 99;
	int bad = 0, accepted = 0;
	for (int iter = 0; iter < 500; iter++) {
		uint16_t clean[MAXTOK], noisy[3][MAXTOK], out[MAXTOK];
		int clen = 0, nlen[3] = {0, 0, 0};
		/* Up to 6 statements from a pool of 12 tuples; noisy captions draw from the same pool. */
		caption_tuple pool[12];
		for (int i = 0; i < 12; i++)
			pool[i] = (caption_tuple){(uint8_t)(i % 2), (uint8_t)(i % 8), (uint8_t)(i % 6), (uint8_t)((i * 5) % 9)};
		for (int c = -1; c < 3; c++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			int n = 1 + (int)((s >> 33) % 6);
			uint16_t *dst = c < 0 ? clean : noisy[c];
			int *len = c < 0 ? &clen : &nlen[c];
			for (int j = 0; j < n; j++) {
				s = s * 6364136223846793005ULL + 1442695040888963407ULL;
				const caption_tuple *t = &pool[(s >> 33) % 12];
				uint16_t *w = dst + *len;
				w[0] = (uint16_t)(VOCAB_SIZE0 + t->size);
				w[1] = (uint16_t)(VOCAB_COLOR0 + t->color);
				w[2] = (uint16_t)(VOCAB_SHAPE0 + t->shape);
				w[3] = (uint16_t)(VOCAB_ROW0 + t->cell / 3);
				w[4] = (uint16_t)(VOCAB_COL0 + t->cell % 3);
				w[5] = VOCAB_DOT;
				*len += 6;
			}
		}
		const uint16_t *ptrs[3] = {noisy[0], noisy[1], noisy[2]};
		consistency_opts o = opts(1 + iter % 3, CONS_SUBSET, 0);
		consistency_verdict v;
		if (consistency_judge(&o, clean, clen, ptrs, nlen, 3, out, MAXTOK, &v) < 0) {
			bad++;
			continue;
		}
		if (!v.accepted)
			continue;
		accepted++;
		caption_tuple back[16];
		caption_stats st;
		caption_parse_tokens(out, v.ntokens, back, 16, &st);
		int ok = st.malformed == 0 && st.ntuples == v.kept && v.ntokens == 6 * v.kept;
		for (int i = 1; ok && i < st.ntuples; i++)
			ok = back[i - 1].cell <= back[i].cell;
		/* Every output tuple is in the clean caption and in >= vote noisy captions, once. */
		for (int i = 0; ok && i < st.ntuples; i++) {
			int votes = 0, inclean = 0;
			for (int c = -1; c < 3; c++) {
				caption_tuple tt[16];
				caption_stats cs;
				caption_parse_tokens(c < 0 ? clean : noisy[c], c < 0 ? clen : nlen[c], tt, 16, &cs);
				int found = 0;
				for (int j = 0; j < cs.ntuples; j++)
					found |= !memcmp(&tt[j], &back[i], sizeof(caption_tuple));
				if (c < 0)
					inclean = found;
				else
					votes += found;
			}
			for (int j = 0; j < i; j++)
				ok &= memcmp(&back[j], &back[i], sizeof(caption_tuple)) != 0;
			ok &= inclean && votes >= o.vote;
		}
		bad += !ok;
	}
	CHECK_MSG(bad == 0, "%d of 500 subset captions did not round-trip", bad);
	CHECK_MSG(accepted > 100, "only %d of 500 accepted: the test lost its power", accepted);
}

/* Brute force: votes by pairwise comparison of the parsed tuples. */
static void reference(const consistency_opts *o, const uint16_t *clean, int clen, uint16_t noisy[][MAXTOK],
		      const int *nlen, int K, consistency_verdict *v)
{
	caption_tuple ct[32], nt[32];
	caption_stats cs, ns;
	caption_parse_tokens(clean, clen, ct, 32, &cs);
	int total = 0, kept = 0;
	for (int i = 0; i < cs.ntuples; i++) {
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= !memcmp(&ct[j], &ct[i], sizeof(caption_tuple));
		if (dup)
			continue;
		total++;
		int votes = 0;
		for (int k = 0; k < K; k++) {
			caption_parse_tokens(noisy[k], nlen[k], nt, 32, &ns);
			int found = 0;
			for (int j = 0; j < ns.ntuples; j++)
				found |= !memcmp(&nt[j], &ct[i], sizeof(caption_tuple));
			votes += found;
		}
		kept += K == 0 || votes >= o->vote;
	}
	memset(v, 0, sizeof(*v));
	v->kept = kept;
	v->total = total;
	v->score = total ? (float)kept / (float)total : 0.0f;
	if (cs.malformed)
		v->reason = CONS_PARSE_FAILURE;
	else if (!total)
		v->reason = CONS_NO_STATEMENT;
	else if (o->mode == CONS_WHOLE ? kept < total : kept == 0)
		v->reason = CONS_TOO_FEW_VOTES;
	else if ((double)kept / total < o->min_score)
		v->reason = CONS_LOW_SCORE;
	v->accepted = v->reason == CONS_OK;
}

static void test_random_reference(void)
{
	uint64_t s = 7;
	int bad = 0, reasons[CONS_NREASONS] = {0};
	/* Word ids near the grammar: mostly statement-shaped, sometimes broken. */
	for (int iter = 0; iter < 3000; iter++) {
		uint16_t caps[MAXK + 1][MAXTOK];
		int lens[MAXK + 1];
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		int K = (int)((s >> 33) % 6);
		for (int c = 0; c <= K; c++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			int nst = (int)((s >> 33) % 5), n = 0;
			for (int j = 0; j < nst; j++) {
				static const int first[5] = {VOCAB_SIZE0, VOCAB_COLOR0, VOCAB_SHAPE0, VOCAB_ROW0, VOCAB_COL0};
				for (int w = 0; w < 5; w++) {
					s = s * 6364136223846793005ULL + 1442695040888963407ULL;
					/* Six tuples in all (3 colors x 2 rows), so that they repeat across captions. */
					caps[c][n++] = (uint16_t)(first[w] + (s >> 33) % (w == 1 ? 3 : w == 3 ? 2 : 1));
				}
				s = s * 6364136223846793005ULL + 1442695040888963407ULL;
				if ((s >> 33) % 40 == 0)
					caps[c][n - 2] = VOCAB_UNK;
				if ((s >> 40) % 60 != 0)
					caps[c][n++] = VOCAB_DOT;
			}
			lens[c] = n;
		}
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		consistency_opts o = opts(K ? 1 + (int)((s >> 33) % K) : 1, (consistency_mode)((s >> 40) % 2),
					  ((s >> 45) % 5) * 0.25);
		const uint16_t *ptrs[MAXK];
		for (int k = 0; k < K; k++)
			ptrs[k] = caps[k + 1];
		uint16_t out[MAXTOK];
		consistency_verdict v, ref;
		int rc = consistency_judge(&o, caps[0], lens[0], ptrs, lens + 1, K, out, MAXTOK, &v);
		reference(&o, caps[0], lens[0], caps + 1, lens + 1, K, &ref);
		if (rc != 0 || v.accepted != ref.accepted || v.reason != ref.reason || v.kept != ref.kept ||
		    v.total != ref.total || v.score != ref.score)
			bad++;
		reasons[v.reason]++;
	}
	CHECK_MSG(bad == 0, "%d of 3000 random verdicts differ from the brute-force reference", bad);
	for (int r = 0; r < CONS_NREASONS; r++)
		CHECK_MSG(reasons[r] > 50, "reason %s drawn %d times", consistency_reason_name(r), reasons[r]);
}

static void test_k0_raw(void)
{
	consistency_opts s = opts(3, CONS_SUBSET, 0.9), w = opts(0, CONS_WHOLE, 1);
	/* Raw: unchanged clean caption, score 1, in either mode; vote is not checked. */
	result r = judge_text(&s, C " " A " " C, NULL, 0);
	CHECK_VERDICT(r, 1, CONS_OK, 2, 2);
	CHECK(r.v.score == 1.0f && !strcmp(r.text, C " " A " " C) && r.v.ntokens == 18);
	r = judge_text(&w, B, NULL, 0);
	CHECK_VERDICT(r, 1, CONS_OK, 1, 1);
	CHECK(!strcmp(r.text, B));
	/* The clean caption's own checks still apply. */
	r = judge_text(&w, "", NULL, 0);
	CHECK_VERDICT(r, 0, CONS_NO_STATEMENT, 0, 0);
	r = judge_text(&s, A " red .", NULL, 0);
	CHECK_VERDICT(r, 0, CONS_PARSE_FAILURE, 1, 1);
}

static void test_streams(void)
{
	/* decode_greedy's layout: 2 images x (1 + K) streams of max_tokens each. */
	enum { K = 3, MT = 40 };
	const char *texts[2][1 + K] = {{A " " B " " C, A " " B, B, A " " C}, {D " " E, E, "", E " " D}};
	uint16_t tokens[2 * (1 + K) * MT];
	int lens[2 * (1 + K)];
	memset(tokens, 0xee, sizeof(tokens));
	for (int i = 0; i < 2; i++)
		for (int k = 0; k <= K; k++)
			lens[i * (1 + K) + k] = caption_tokenize(texts[i][k], tokens + (i * (1 + K) + k) * MT, MT);
	for (int vote = 1; vote <= K; vote++)
		for (int mode = 0; mode < 2; mode++) {
			consistency_opts o = opts(vote, (consistency_mode)mode, 0);
			for (int i = 0; i < 2; i++) {
				uint16_t out[MT];
				consistency_verdict v;
				int rc = consistency_judge_streams(&o, tokens + i * (1 + K) * MT, MT, lens + i * (1 + K), K,
								   out, MT, &v);
				result r = judge_text(&o, texts[i][0], texts[i] + 1, K);
				char text[512] = "";
				if (v.accepted)
					vocab_decode(out, v.ntokens, text, sizeof text);
				CHECK_MSG(rc == 0 && !memcmp(&v, &r.v, sizeof(v)) && !strcmp(text, r.text),
					  "image %d vote %d mode %d", i, vote, mode);
			}
		}
	/* Second image, vote 2: D 1 vote, E 2: subset keeps E only. */
	consistency_opts o = opts(2, CONS_SUBSET, 0);
	consistency_verdict v;
	uint16_t out[MT];
	CHECK(consistency_judge_streams(&o, tokens + (1 + K) * MT, MT, lens + 1 + K, K, out, MT, &v) == 0);
	CHECK(v.accepted && v.kept == 1 && v.total == 2 && v.ntokens == 6 && out[0] == VOCAB_SIZE0 &&
	      out[5] == VOCAB_DOT);
	/* A length beyond the stride is refused. */
	int badlens[1 + K] = {6, 41, 0, 0};
	CHECK(consistency_judge_streams(&o, tokens, MT, badlens, K, out, MT, &v) == -1);
	CHECK(test_contains(nb_errmsg(), "more than the stride"));
}

static void test_errors(void)
{
	uint16_t clean[16], out[16];
	int clen = caption_tokenize(A, clean, 16);
	const uint16_t *ptrs[2] = {clean, clean};
	int lens[2] = {clen, clen};
	consistency_verdict v;
	consistency_opts o = opts(0, CONS_WHOLE, 0);
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	CHECK(test_contains(nb_errmsg(), "vote = 0 outside 1..K (K = 2)"));
	CHECK(v.accepted == 0 && v.ntokens == 0);
	o.vote = 3;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	o.vote = 2;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == 0 && v.accepted);
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, -1, out, 16, &v) == -1);
	CHECK(test_contains(nb_errmsg(), "K = -1"));
	CHECK(consistency_judge(&o, clean, clen, NULL, NULL, 2, out, 16, &v) == -1);
	o.min_score = 1.5;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	CHECK(test_contains(nb_errmsg(), "min_score = 1.5"));
	o.min_score = NAN;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	o.min_score = -0.1;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	o.min_score = 0;
	o.mode = (consistency_mode)7;
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 16, &v) == -1);
	o.mode = CONS_WHOLE;
	int neg[2] = {clen, -1};
	CHECK(consistency_judge(&o, clean, clen, ptrs, neg, 2, out, 16, &v) == -1);
	/* An output that does not fit is an error, not a truncated label... */
	CHECK(consistency_judge(&o, clean, clen, ptrs, lens, 2, out, 5, &v) == -1);
	CHECK(test_contains(nb_errmsg(), "output needs 6 tokens, buffer holds 5"));
	CHECK(v.accepted == 0);
	/* ...while a rejected caption needs no room at all. */
	uint16_t other[16];
	int olen = caption_tokenize(B, other, 16);
	const uint16_t *optrs[2] = {other, other};
	int olens[2] = {olen, olen};
	CHECK(consistency_judge(&o, clean, clen, optrs, olens, 2, NULL, 0, &v) == 0);
	CHECK(!v.accepted && v.reason == CONS_TOO_FEW_VOTES);
}

static void test_names_and_counts(void)
{
	CHECK(!strcmp(consistency_reason_name(CONS_OK), "ok"));
	CHECK(!strcmp(consistency_reason_name(CONS_NO_STATEMENT), "no_statement"));
	CHECK(!strcmp(consistency_reason_name(CONS_TOO_FEW_VOTES), "too_few_votes"));
	CHECK(!strcmp(consistency_reason_name(CONS_LOW_SCORE), "low_score"));
	CHECK(!strcmp(consistency_reason_name(CONS_PARSE_FAILURE), "parse_failure"));
	CHECK(!strcmp(consistency_reason_name(CONS_NREASONS), "unknown"));
	CHECK(!strcmp(consistency_reason_name((consistency_reason)-1), "unknown"));
	CHECK(!strcmp(consistency_mode_name(CONS_WHOLE), "whole"));
	CHECK(!strcmp(consistency_mode_name(CONS_SUBSET), "subset"));
	CHECK(consistency_mode_parse("whole") == CONS_WHOLE);
	CHECK(consistency_mode_parse("subset") == CONS_SUBSET);
	CHECK(consistency_mode_parse("Whole") == -1 && consistency_mode_parse("") == -1);

	consistency_counts c = {0}, d = {0};
	consistency_verdict ok = {.accepted = 1, .reason = CONS_OK, .score = 0.5f, .kept = 2, .total = 4};
	consistency_verdict few = {.reason = CONS_TOO_FEW_VOTES, .kept = 1, .total = 3};
	consistency_verdict parse = {.reason = CONS_PARSE_FAILURE, .kept = 0, .total = 1};
	consistency_counts_add(&c, &ok);
	consistency_counts_add(&c, &few);
	consistency_counts_add(&c, &few);
	consistency_counts_add(&d, &parse);
	consistency_counts_add(&d, &ok);
	CHECK(c.images == 3 && c.accepted == 1 && c.rejected[CONS_TOO_FEW_VOTES] == 2 && c.statements == 10 &&
	      c.kept == 4 && c.rejected[CONS_OK] == 0);
	consistency_counts_merge(&c, &d);
	CHECK(c.images == 5 && c.accepted == 2 && c.rejected[CONS_TOO_FEW_VOTES] == 2 &&
	      c.rejected[CONS_PARSE_FAILURE] == 1 && c.rejected[CONS_LOW_SCORE] == 0 &&
	      c.rejected[CONS_NO_STATEMENT] == 0 && c.statements == 15 && c.kept == 6);
	long sum = c.accepted;
	for (int r = 0; r < CONS_NREASONS; r++)
		sum += c.rejected[r];
	CHECK(sum == c.images);
}

int main(void)
{
	test_defaults();
	test_whole_vs_subset();
	test_vote_thresholds();
	test_identity();
	test_duplicates();
	test_reading_order();
	test_order_independence();
	test_malformed();
	test_empty();
	test_min_score();
	test_roundtrip();
	test_random_reference();
	test_k0_raw();
	test_streams();
	test_errors();
	test_names_and_counts();
	return test_summary("test_consistency");
}
