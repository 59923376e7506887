/* A training run directory: checkpoint.h5, config.conf (the effective job
 * file, which reproduces the run) and metrics.jsonl (one JSON line per
 * logged step), provenance.json (the command that created it,
 * common/nb_prov.h), plus the progress line on stderr. Used by `nboost train`
 * and by the student ranks of `nboost run`.
 *
 * Every rank of a run opens the same run_dir, since every rank needs the
 * checkpoint path (saving and resuming are collective), but only the
 * writer (rank 0 of the training communicator) touches the files and
 * prints: on the other ranks the functions below that touch files return 0
 * and do nothing. None of them communicates, so a caller agrees on the
 * outcome itself (ranks_agree in the CLI). */
#ifndef NB_TRAINER_RUN_DIR_H
#define NB_TRAINER_RUN_DIR_H

#include "trainer/train.h"

typedef struct {
	char *dir, *checkpoint, *config, *metrics; /* owned paths */
	int writer;
	int lock_fd;                               /* run_dir_lock's, writer only; -1 = none */
	int log_fd;                                /* metrics.jsonl, writer only; -1 = closed */
	/* progress: */
	long first_step, total, log_every;
	double t0, last_print;
} run_dir;

/* Sets up rd for the run directory dir (every rank; writer says whether
 * this rank writes). No I/O. Free with run_dir_close. */
void run_dir_init(run_dir *rd, const char *dir, int writer);

/* One run per directory: takes an exclusive flock() on "<dir>/.lock" (dir
 * must exist) and writes this process's PID into it. Returns the lock's
 * file descriptor, which holds the lock until it is closed (or the process
 * ends); -1 + nb_error when another process holds it: "run directory 'D'
 * is in use by another nboost (pid N)", or the file cannot be opened. File
 * systems without flock (ENOLCK, EOPNOTSUPP) go unguarded: a warning, and
 * the returned descriptor locks nothing. Used by `nboost train` (through
 * run_dir_check) and by the master of `nboost run`. */
int run_dir_lock(const char *dir);

/* Removes the temporaries "<dir>/.<name>.tmp.<pid>" (nb_tmp_name) whose
 * writer is gone: no such process on this host, or a zombie. A live
 * process's temporary stays. Returns how many were removed, or -1 +
 * nb_error when dir cannot be read. */
int run_dir_sweep_tmp(const char *dir);

/* Writer: creates dir (mkdir -p), locks it (run_dir_lock, held until
 * run_dir_close), sweeps dead writers' temporaries (with a line on stderr
 * when there were any) and checks that it suits the run: a fresh run
 * refuses a directory that already holds a checkpoint, a resume needs one.
 * 0 or nb_error naming the directory or checkpoint. */
int run_dir_check(run_dir *rd, int resume);

/* Writer: writes config.conf (atomically) and opens metrics.jsonl, fresh
 * (truncated) or, on resume, with the lines of steps after resume_step
 * dropped first: those steps will be redone, and the log should read like
 * one uninterrupted run; a torn last line (a crash mid-write) goes too.
 * 0 or nb_error naming the file and the cause. */
int run_dir_open_files(run_dir *rd, const char *config_text, int resume, long resume_step);

/* Starts the clock for rates and ETAs: the run goes from first_step to
 * total, a metrics line every log_every steps (and at the last step). */
void run_dir_start(run_dir *rd, long first_step, long total, long log_every);

/* Writer: logs a finished step to metrics.jsonl when due (written and
 * flushed at once) and prints the progress line ("train: step N/T  loss ...
 * ETA ...") at most every two seconds, and at the first and last step.
 * 0, or nb_error naming metrics.jsonl and the cause when the line could
 * not be written (a full disk): the run must stop rather than go on with a
 * log that lacks lines. */
int run_dir_log_step(run_dir *rd, const train_stats *st);

/* Writer: appends an evaluation line to metrics.jsonl:
 * {"step": N, "time": UNIX, "elapsed_s": E, "eval": {FIELDS}}, where fields
 * is the inside of a JSON object ("\"chair_i\": 0.1, ..."). A resume drops
 * it with the step lines after the checkpoint. 0 or nb_error as
 * run_dir_log_step. */
int run_dir_log_eval(run_dir *rd, long step, const char *fields);

/* Writer: keeps the checkpoint just written at step as
 * "<dir>/checkpoint-<step, 8 digits>.h5" (a hard link to checkpoint.h5,
 * which the next save replaces by rename, so the copy costs no space; a
 * copy where links are refused), then removes all but the keep newest of
 * them by step. keep <= 0: nothing. 0 or nb_error naming the file. */
int run_dir_keep_checkpoint(run_dir *rd, long step, long keep);

/* Writer: flushes, fsyncs and closes metrics.jsonl. 0 or nb_error naming
 * the file and the cause. */
int run_dir_finish(run_dir *rd);

/* Closes metrics.jsonl if still open (writer), releases the lock and
 * frees the paths. 0, or nb_error when the log could not be written
 * completely. */
int run_dir_close(run_dir *rd);

#endif
