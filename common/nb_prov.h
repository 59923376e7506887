/* Provenance: what made a file. Every shard, checkpoint and run directory
 * records the nboost version and git commit it was built from, the command
 * line, the creation time (UTC, ISO 8601), the host, and for ingest its
 * effective options (schemas/provenance.md).
 *
 * The command line is the process's own: main() hands argv over once with
 * nb_prov_set_argv; a library user that never does records "" (tests). The
 * creation time honours SOURCE_DATE_EPOCH (the reproducible-builds
 * convention) when it holds a whole number of seconds, so equal content
 * written by the same command on the same host can be byte-identical. */
#ifndef NB_PROV_H
#define NB_PROV_H

#include <stddef.h>

#include "common/nb_io.h"

/* Version and commit baked in at build time (common/build_info.cmake):
 * "0.1.0", and the 40-digit commit with "-dirty" when the tree had
 * uncommitted changes, or "unknown" when built outside git. */
const char *nb_version(void);
const char *nb_commit(void);

/* Records argv (copied; quoted for a POSIX shell where a word needs it).
 * Call once from main, before any writer runs. */
void nb_prov_set_argv(int argc, char *const *argv);
/* The command line recorded, "" when none was. */
const char *nb_prov_cmdline(void);

/* "2026-12-01T17:21:10Z": now, or SOURCE_DATE_EPOCH. buf holds >= 21. */
void nb_prov_time(char *buf, size_t n);
/* The host name, "unknown" when it cannot be read. */
void nb_prov_host(char *buf, size_t n);

/* The provenance as one JSON object (ending in a newline), with "options"
 * when options is not NULL (the ingest's effective options, "key=value"
 * lines). For run directories (provenance.json). */
void nb_prov_json(nb_buf *b, const char *options);

/* Writes "<dir>/provenance.json" (nb_prov_json, atomically) unless it
 * exists: a run directory records the command that created it, and a
 * resume keeps that record (its checkpoints carry the resuming command).
 * 0, or -1 + nb_error naming the file. */
int nb_prov_write_dir(const char *dir);

#endif
