/* The consistency filter (DESIGN.md §5, docs/pipeline.md "Consistency
 * filter"): a teacher captions an image once clean and K times under
 * independent NoiseBoost noise; a statement of the clean caption is kept if
 * at least `vote` of the K noisy captions repeat it, and the verdict says
 * whether the caption becomes a pseudo-label, with what score and tokens.
 *
 * Statements are those of labeler/caption_parse.h; a statement's identity is
 * its whole tuple (size, color, shape, cell). Within one caption a repeated
 * tuple counts once, in the clean caption (one statement to vote on) and in
 * each noisy caption (one vote at most per noisy caption). Malformed
 * statements of a noisy caption are ignored (they vote for nothing).
 *
 * Checks, in this order; the first that fails is the verdict's reason:
 *   1. the clean caption has a malformed statement   -> CONS_PARSE_FAILURE
 *   2. the clean caption has no valid statement       -> CONS_NO_STATEMENT
 *   3. votes (skipped when K = 0):
 *        whole mode:  a statement has fewer than `vote` votes -> CONS_TOO_FEW_VOTES
 *        subset mode: no statement has `vote` votes           -> CONS_TOO_FEW_VOTES
 *   4. score < min_score                               -> CONS_LOW_SCORE
 * total = distinct valid statements of the clean caption, kept = those with
 * at least `vote` votes (all of them when K = 0), score = kept / total
 * (0 when total = 0). They are filled whatever the verdict.
 *
 * K = 0 is "raw pseudo-labels": no noisy captions and no vote, every
 * statement is kept (score 1) and the clean caption passes unchanged in
 * either mode; checks 1 and 2 still apply, so raw and filtered labels differ
 * only by the vote.
 *
 * Output tokens (words only, no bos/eos; common/vocab.h ids), written only
 * when accepted:
 *   whole mode (and K = 0): the clean caption, unchanged (repeats included);
 *   subset mode: each kept statement once, as "<size> <color> <shape> <row>
 *   <column> .", in reading order of the grid (cell 0 = top left .. cell 8 =
 *   bottom right, as scene_caption writes them); statements of one cell keep
 *   their order in the clean caption.
 * The output is never longer than the clean caption, so an out buffer of
 * clean_len tokens always suffices.
 *
 * Pure functions on caller memory: no allocation, no global state,
 * thread-safe. */
#ifndef NB_CONSISTENCY_H
#define NB_CONSISTENCY_H

#include <stdint.h>

typedef enum { CONS_WHOLE = 0, CONS_SUBSET = 1 } consistency_mode;

typedef enum {
	CONS_OK = 0,
	CONS_NO_STATEMENT,           /* clean caption has no valid statement */
	CONS_TOO_FEW_VOTES,          /* whole: a statement below vote; subset: none kept */
	CONS_LOW_SCORE,              /* score < min_score */
	CONS_PARSE_FAILURE,          /* clean caption has a malformed statement */
	CONS_NREASONS
} consistency_reason;

typedef struct {
	int vote;                    /* votes needed to keep a statement, 1..K (ignored when K = 0) */
	consistency_mode mode;       /* CONS_WHOLE (default) or CONS_SUBSET */
	double min_score;            /* accept only if score >= min_score, 0..1; default 0 */
} consistency_opts;

typedef struct {
	int accepted;                /* 1: a pseudo-label; 0: rejected for `reason` */
	consistency_reason reason;   /* CONS_OK when accepted */
	float score;                 /* kept / total, 0 when total = 0 (stored in caption shards) */
	int kept, total;             /* distinct valid statements of the clean caption: kept, all */
	int ntokens;                 /* output tokens written; 0 when rejected */
} consistency_verdict;

/* Verdicts tallied by a filter rank: add one per image, merge across ranks. */
typedef struct {
	long images;                 /* verdicts added */
	long accepted;
	long rejected[CONS_NREASONS]; /* by reason; [CONS_OK] stays 0 */
	long statements;             /* sum of verdict.total */
	long kept;                   /* sum of verdict.kept */
} consistency_counts;

/* Defaults: vote = 1, whole mode, min_score = 0. */
void consistency_opts_default(consistency_opts *o);

/* Judges one image. clean[0..clean_len) is the clean caption; noisy[k]
 * [0..noisy_lens[k]), k < K, are the noisy ones (noisy and noisy_lens may be
 * NULL when K = 0). The order of the noisy captions does not matter. out
 * receives at most max tokens; *v is always filled on success.
 * Returns 0, or nb_error (and *v zeroed) on a bad argument: K < 0, vote
 * outside 1..K with K > 0, min_score outside 0..1, a negative length, or an
 * accepted output longer than max. */
int consistency_judge(const consistency_opts *o, const uint16_t *clean, int clean_len,
		      const uint16_t *const *noisy, const int *noisy_lens, int K,
		      uint16_t *out, int max, consistency_verdict *v);

/* The same on one image's block of decode_greedy output (model/decode.h):
 * stream s (0 = clean, 1..K = noisy) is streams[s * stride ..] with length
 * lens[s]. For image i of a batch: streams = tokens + i*(1+K)*max_tokens,
 * stride = max_tokens, lens = lens + i*(1+K). With K > 0 a length over
 * stride is an error. */
int consistency_judge_streams(const consistency_opts *o, const uint16_t *streams, int stride,
			      const int *lens, int K, uint16_t *out, int max, consistency_verdict *v);

/* "ok", "no_statement", "too_few_votes", "low_score", "parse_failure";
 * "unknown" for anything else. For logs and stats files. */
const char *consistency_reason_name(consistency_reason r);

/* "whole" | "subset"; consistency_mode_parse returns the mode or -1 (the
 * job-file key filter.mode). */
const char *consistency_mode_name(consistency_mode m);
int consistency_mode_parse(const char *s);

/* Tallies: counts += v; dst += src. Zero-initialise a counts struct to start. */
void consistency_counts_add(consistency_counts *c, const consistency_verdict *v);
void consistency_counts_merge(consistency_counts *dst, const consistency_counts *src);

#endif
