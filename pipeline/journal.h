/* The run journal of `nboost run`: RUNDIR/journal.jsonl, the record of what a
 * run has finished, from which a restarted run resumes (shared/DESIGN.md §4).
 * Format, durability and resume rules: schemas/journal.md.
 *
 * Only the master rank writes it; this module knows nothing of MPI. One
 * writer per run directory, enforced with flock() where the file system
 * supports it. Single-threaded.
 *
 * Contract in short:
 *   - Append-only JSON lines. Each record is one write() of the whole line
 *     followed by fdatasync(): when a journal_* writer returns 0 the record
 *     survives a crash; a crash loses at most the record being written.
 *   - A record is validated before it is written, by the same code that
 *     checks it on load, so the writer cannot produce a journal the loader
 *     rejects: every journal_* writer refuses an inconsistent record with an
 *     nb_error and writes nothing.
 *   - Units become done in two steps. journal_unit() records a finished
 *     unit; if it accepted samples it is pending until journal_shard()
 *     records that the shard holding them was committed (renamed into
 *     place). Only committed units count as done. So a crash between a
 *     shard's commit and its journal record, or between a shard's units and
 *     its record, leaves those units not done: they are labeled again, and
 *     the shard file on disk that the journal does not name is an orphan the
 *     caller deletes on resume (journal_shard_known). Units that accepted
 *     nothing (shard "") are done at once.
 *   - Rounds run in order: unit, shard, checkpoint and teacher records and
 *     the round-complete record all belong to the current round (the first
 *     round not complete); after "done" nothing more may be written.
 *   - On resume (journal_open of an existing file) a torn last line is cut
 *     off with a warning, the config digest must match, units left pending
 *     by the crash are voided by a "resume" record, and the caller carries on
 *     from the queries below.
 * Errors name the file and, for a bad line, its line number
 * ("run/journal.jsonl:12: ...").
 */
#ifndef NB_PIPELINE_JOURNAL_H
#define NB_PIPELINE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/nb_io.h"

#define JOURNAL_FILE "journal.jsonl"
#define JOURNAL_SCHEMA "nboost.run"
#define JOURNAL_VERSION 1
/* Ranges checked on write and on load. */
#define JOURNAL_MAX_ROUND (1 << 20)
#define JOURNAL_MAX_COUNT ((int64_t)1 << 62) /* unit ids, steps, counts */
#define JOURNAL_MAX_NAME 255                 /* shard file names, bytes */
#define JOURNAL_MAX_PATH 4095                /* checkpoint and teacher paths */
#define JOURNAL_MAX_DIGEST 128               /* hex digits */

typedef struct journal journal;

/* Opens RUNDIR/JOURNAL_FILE for a run whose results-relevant configuration
 * hashes to config_digest (lowercase hex, 1..JOURNAL_MAX_DIGEST digits; the
 * caller decides what goes into it). RUNDIR must exist.
 *   - No file, or an empty one (or only a torn first line): creates it with
 *     the header record (fsyncing the directory too), a fresh run.
 *   - Otherwise loads it (journal_parse rules): cuts a torn last line off
 *     (ftruncate + fdatasync, with an nb_warn naming the file, the line and
 *     the bytes dropped), checks the digest ("... the job changed in a way
 *     that alters results"), and, unless the run is done, appends a "resume"
 *     record that voids the pending units.
 * NULL with nb_error naming the file and the cause: unreadable, another
 * process holds it, not a run journal, a corrupt or inconsistent line (with
 * its line number), digest mismatch, a newer version. */
journal *journal_open(const char *rundir, const char *config_digest);

/* Reads a journal without changing it (no lock, no truncation, no resume
 * record): for status tools and tests. A torn last line is ignored. NULL with
 * nb_error as journal_open. The writers below refuse a read-only journal. */
journal *journal_read(const char *path);

/* Parses a journal held in memory (the file's bytes). name is used in
 * messages. Complete lines are parsed strictly and applied in order; the
 * last line is dropped, not an error, if it has no '\n' or is not valid
 * JSON (a write torn by a crash). Every other bad line is an error naming
 * name:line. When the result would hold no header and the dropped bytes are
 * not the start of one, this is an error too (a foreign file is never taken
 * for a torn journal). *keep receives the length of the prefix that was
 * used: the file must be truncated to it before appending. An empty input
 * gives a journal with no header (journal_digest() NULL). Read-only result. */
journal *journal_parse(const char *data, size_t len, const char *name, size_t *keep);

/* Closes and frees (NULL is fine). 0, or nb_error if closing the file
 * failed (the records written before were already synced). */
int journal_close(journal *j);

/* ---- writers: each validates, then writes one line + fdatasync ----
 * 0, or -1 with nb_error. A refused record (inconsistent with the journal)
 * leaves the journal usable. A failed write or sync is cut back off the file
 * (ftruncate to the last good record) and makes the journal refuse every
 * later record: after a failed fdatasync the file's state is unknown, and
 * the run must stop and resume from what is on disk. */

/* A unit finished: `accepted` samples went into the shard file `shard` (a
 * file name, no '/'), which must be "" exactly when accepted is 0; rejected
 * samples; seen images. With accepted > 0 the unit is pending until
 * journal_shard(round, shard). A unit already done or pending is refused.
 * Filters must close shards only between units: a unit's samples are in
 * one shard. */
int journal_unit(journal *j, int round, int64_t unit, const char *shard, int64_t accepted,
		 int64_t rejected, int64_t seen);
/* The shard file `shard` of this round was committed (fsynced and renamed
 * into place): its pending units become done. Refused when no pending unit
 * names it or it was committed before. The record carries the unit and
 * sample counts, checked on load. */
int journal_shard(journal *j, int round, const char *shard);
/* The students wrote a checkpoint at optimizer step `step` to `path`. */
int journal_checkpoint(journal *j, int round, int64_t step, const char *path);
/* The teacher of this round: checkpoint path and its digest (ckpt_digest,
 * lowercase hex). Repeating the same teacher is a no-op returning 0; a
 * different one for the same round is refused. */
int journal_teacher(journal *j, int round, const char *path, const char *digest);
/* The round is complete; refused while units of it are pending. The next
 * round becomes current. */
int journal_round(journal *j, int round);
/* The run is complete; refused while units are pending. */
int journal_done(journal *j);

/* ---- queries (any journal; rounds out of range give 0 / NULL) ---- */

/* The header's config digest; NULL for a journal without a header. */
const char *journal_digest(const journal *j);
/* Records (complete lines, header included) and resumes so far. */
int64_t journal_records(const journal *j);
int journal_resumes(const journal *j);
/* Committed (done) units: unit_done is O(1) (hash set). */
int journal_unit_done(const journal *j, int round, int64_t unit);
int64_t journal_units_done(const journal *j, int round);
/* Sums over the round's done units; any pointer may be NULL. */
void journal_round_totals(const journal *j, int round, int64_t *accepted, int64_t *rejected,
			  int64_t *seen);
/* Units recorded but whose shard is not committed (0 after journal_open). */
int64_t journal_pending(const journal *j);
/* Committed shards of a round in commit order: the i-th name (0-based), its
 * unit and sample counts (NULL for out of range; pointers may be NULL). */
int journal_shard_count(const journal *j, int round);
const char *journal_shard_at(const journal *j, int round, int i, int64_t *units, int64_t *samples);
/* Whether the journal names this shard as committed in this round. */
int journal_shard_known(const journal *j, int round, const char *shard);
/* The last checkpoint recorded (of any round): 1 and the fields (pointers
 * may be NULL; path valid until the journal is closed), or 0 if none. */
int journal_last_checkpoint(const journal *j, int *round, int64_t *step, const char **path);
/* The teacher path of a round, NULL if none; *digest (may be NULL) its digest. */
const char *journal_teacher_of(const journal *j, int round, const char **digest);
int journal_round_complete(const journal *j, int round);
/* Rounds complete = the current round (the first not complete). */
int journal_rounds_complete(const journal *j);
int journal_run_done(const journal *j);

/* ---- flat JSON lines (shared with pipeline/events.h) ----
 * Objects of string, integer and number values, one per line, nothing
 * nested. Writer: keys are plain ASCII written as given; strings are escaped
 * (\" \\ \n \r \t, \u00XX for other control characters) and invalid UTF-8
 * bytes become U+FFFD; numbers are finite (a non-finite one is written as
 * null, which jsonl_parse refuses). */

void jsonl_begin(nb_buf *b);                                     /* "{" */
void jsonl_str(nb_buf *b, const char *key, const char *val);
void jsonl_int(nb_buf *b, const char *key, int64_t v);
void jsonl_num(nb_buf *b, const char *key, double v, int decimals); /* "%.*f", decimals 0..17 */
void jsonl_end(nb_buf *b);                                       /* "}\n" */

/* Parser: strict JSON for such objects. Whitespace is space or tab; strings
 * must be valid UTF-8 without raw control characters, escapes are \" \\ \/
 * \b \f \n \r \t and \uXXXX (no surrogates, no \u0000); numbers follow JSON
 * (an integer without fraction or exponent must fit int64 and is
 * JSONL_INT, others JSONL_NUM and finite, at most 399 characters: every
 * jsonl_num output fits); keys are unique; at most
 * JSONL_MAX_FIELDS fields and JSONL_MAX_LINE bytes; nothing after the '}'
 * but whitespace. No nesting, arrays, true/false/null. */
#define JSONL_MAX_FIELDS 16
#define JSONL_MAX_LINE 65536

enum jsonl_type { JSONL_STR, JSONL_INT, JSONL_NUM };

typedef struct {
	const char *key;     /* decoded, NUL-terminated */
	enum jsonl_type type;
	const char *s;       /* JSONL_STR: decoded, NUL-terminated (no NUL inside) */
	int64_t i;           /* JSONL_INT */
	double d;            /* JSONL_NUM, and JSONL_INT as a double */
} jsonl_field;

/* Zero-initialise; reuse across lines; jsonl_obj_free at the end. Pointers
 * in f[] are valid until the next jsonl_parse on the same object. */
typedef struct {
	int n;
	jsonl_field f[JSONL_MAX_FIELDS];
	char *mem;
	size_t cap;
} jsonl_obj;

/* Parses one line (without its '\n', not necessarily NUL-terminated). 0, or
 * nb_error "column N: <cause>" (1-based byte column). */
int jsonl_parse(jsonl_obj *o, const char *line, size_t len);
/* The field named key, or NULL. */
const jsonl_field *jsonl_get(const jsonl_obj *o, const char *key);
void jsonl_obj_free(jsonl_obj *o);

#endif
