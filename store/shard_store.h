/* The HDF5 shard store: image shards, caption shards and preference-pair
 * shards (schemas/image_shard.md, schemas/caption_shard.md,
 * schemas/pair_shard.md: a caption shard whose caption is the chosen one,
 * plus a rejected caption and how the pair was made). Datasets are chunked and compressed with zstd
 * (HDF5 filter 32015, registered in-process by this module).
 *
 * Writing: one writer per file, one file per rank. A writer creates
 * "<dir>/.<name>.tmp.<pid>", appends samples, and shard_commit() flushes,
 * fsyncs, renames it to its final name and fsyncs the directory. Until then
 * no reader can see the shard. shard_abort() (or a crash) leaves only the
 * hidden temporary file, which shard_list() ignores and shard_sweep_tmp()
 * removes.
 *
 * Every chunk of every dataset carries HDF5's Fletcher-32 checksum of its
 * stored bytes (and zstd frames their content checksum); a chunk that fails
 * it is an error naming the shard, the dataset and the chunk's rows.
 *
 * Reading: shard_open() validates the schema name and version, dataset
 * shapes and dtypes, the offsets' monotonicity and bounds, and that no
 * caption is empty, before it returns. It refuses datasets whose data would
 * come from another file (external links, soft links, virtual datasets,
 * external raw storage). Any problem yields NULL and nb_errmsg() naming the
 * file and the cause. Samples are read in order (shard_next) or by index (shard_get);
 * images are read in blocks of whole chunks, so sequential reading costs one
 * decompression per chunk.
 *
 * Not thread-safe: HDF5 is built without thread safety, so one thread per
 * process touches the store. Different ranks may read the same shard. */
#ifndef NB_SHARD_STORE_H
#define NB_SHARD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/scene.h"

#define SHARD_SCHEMA_IMAGES "nboost.images"
#define SHARD_SCHEMA_CAPTIONS "nboost.captions"
#define SHARD_SCHEMA_PAIRS "nboost.pairs"
#define SHARD_VERSION 1
#define SHARD_MAX_TOKENS 64   /* per caption, enforced on write and read */
/* Largest /images chunk the store writes or reads (bytes), so that a corrupt
 * chunk shape cannot make a reader allocate without bound. */
#define SHARD_MAX_CHUNK_BYTES ((size_t)64 << 20)
/* Default size of an /images chunk (bytes, uncompressed): the images that
 * fit in 1 MiB, h5py's and HDF5's default chunk cache, so that reading
 * images one by one decompresses each chunk once (schemas/image_shard.md,
 * "Chunk size and the chunk cache"). */
#define SHARD_CHUNK_TARGET ((size_t)1 << 20)
/* shard_meta.zstd_level value that stores chunks unfiltered (benchmark
 * baseline); otherwise zstd_level is 1..22, 0 meaning SHARD_ZSTD_DEFAULT. */
#define SHARD_NO_COMPRESSION (-1)
#define SHARD_ZSTD_DEFAULT 1   /* chosen by bench/bench_shard.c: schemas/image_shard.md */

typedef enum { SHARD_IMAGES = 0, SHARD_CAPTIONS = 1, SHARD_PAIRS = 2 } shard_kind;

/* How a preference pair was made (schemas/pair_shard.md, /pair_kind). */
typedef enum {
	PAIR_ON_POLICY = 0,          /* rejected: a model's caption with an absent statement */
	PAIR_SYNTH_PRIOR = 1,        /* rejected: ground truth with statements replaced by absent theme objects */
	PAIR_SYNTH_COLOR = 2,        /* rejected: ground truth with one statement's color swapped */
	PAIR_SYNTH_SHAPE = 3,        /* rejected: ground truth with one statement's shape swapped */
	PAIR_KINDS = 4
} pair_kind;
/* "on-policy", "synthetic-prior", "synthetic-color", "synthetic-shape"; "?" out of range. */
const char *pair_kind_name(int kind);

typedef struct {
	shard_kind kind;
	int height, width;           /* every image is height x width x 3, uint8 */
	int has_objects;             /* /objects present: ground truth, uint8 [N,9] */
	/* caption and pair shards only (ignored for image shards): */
	char origin[16];             /* "human" | "pseudo" | "synthetic" */
	char teacher_digest[65];     /* checkpoint digest of the teacher, "" if none */
	char vocab_digest[17];       /* vocab_digest() of the token ids */
	int round;                   /* Noisy Student round, 0 for human/synthetic */
	float sigma;                 /* teacher noise level used for pseudo-labels */
	int K, vote;                 /* noisy samples and vote threshold */
	/* writer tuning (not stored): */
	int zstd_level;              /* default SHARD_ZSTD_DEFAULT (1) when 0; SHARD_NO_COMPRESSION = none */
	int chunk_images;            /* images per HDF5 chunk; 0: as many as fit in SHARD_CHUNK_TARGET, at least 1 */
	int no_checksum;             /* 1: no checksums (benchmark baseline, tests of old shards) */
	/* stored in /provenance (schemas/provenance.md), copied by shard_create: */
	const char *options;         /* the writer's effective options (ingest), NULL = none */
} shard_meta;

/* One sample. On write, the pointers are read (and copied) by shard_append.
 * On read, they point into the reader's buffers and stay valid until the next
 * shard_next/shard_get call on that reader. */
typedef struct {
	uint64_t id;
	const uint8_t *image;        /* height*width*3 bytes, RGB, row-major */
	const char *source;          /* URL or path; "" allowed */
	const uint16_t *tokens;      /* caption shards: token ids, no bos/eos */
	int ntokens;
	float score;                 /* caption shards: consistency score (1 for human) */
	const uint8_t *objects;      /* SCENE_CELLS bytes when has_objects, else NULL */
	/* pair shards only: tokens/ntokens above are the chosen caption */
	const uint16_t *rejected;    /* the rejected caption's token ids */
	int nrejected;
	int pair_kind;               /* pair_kind */
} shard_sample;

typedef struct shard_writer shard_writer;
typedef struct shard_reader shard_reader;

/* Registers filter 32015 with the HDF5 library in this process (idempotent).
 * Called by shard_create/shard_open; exposed for tools that open files
 * directly. Returns 0 or nb_error. */
int shard_zstd_register(void);

/* Creates a writer whose final name is `path`. NULL + nb_errmsg on failure. */
shard_writer *shard_create(const char *path, const shard_meta *meta);
int shard_append(shard_writer *w, const shard_sample *s);
size_t shard_writer_count(const shard_writer *w);
/* Flush, close, fsync, rename into place, fsync the directory. Frees w. */
int shard_commit(shard_writer *w);
/* Close and delete the temporary file. Frees w. */
void shard_abort(shard_writer *w);

shard_reader *shard_open(const char *path);
const shard_meta *shard_reader_meta(const shard_reader *r);
size_t shard_count(const shard_reader *r);
const char *shard_path(const shard_reader *r);
/* Sequential: 1 = sample filled, 0 = end, -1 = error (nb_errmsg). */
int shard_next(shard_reader *r, shard_sample *out);
/* Random access by index in [0, count): 0 or -1. */
int shard_get(shard_reader *r, size_t index, shard_sample *out);
void shard_rewind(shard_reader *r);
/* Reads (and so verifies) every image chunk, without moving shard_next's
 * position: 0, or -1 + nb_errmsg naming the first bad chunk. The other
 * datasets were verified by shard_open. */
int shard_verify(shard_reader *r);
void shard_close(shard_reader *r);
/* The same validation for a shard held in memory (an HDF5 file image of
 * `size` bytes, copied; `name` labels messages). For fuzzing and tools that
 * receive a shard over a channel. NULL + nb_errmsg on failure. */
shard_reader *shard_open_image(const void *image, size_t size, const char *name);
/* 1 when every dataset of the shard carries a Fletcher-32 checksum and its
 * HDF5 metadata is checksummed too (superblock version 2 or later: all
 * shards nboost writes now), 0 for older shards (read with a warning
 * printed once per process; see schemas/image_shard.md). */
int shard_has_checksums(const shard_reader *r);

/* Lists committed shards ("*.h5", not hidden) in dir, sorted by name.
 * Returns the count and sets *paths (free each and the array with
 * shard_list_free), or -1 + nb_errmsg. An entry named like a shard that is
 * not a regular file (a dangling symbolic link, a directory, a FIFO, ...)
 * is an error naming it and why, never skipped; entries are never opened. */
int shard_list(const char *dir, char ***paths);
void shard_list_free(char **paths, int n);
/* Removes temporaries left in dir by crashed writers: those whose writer
 * pid is not alive on this host, a zombie counting as dead. Returns how
 * many. */
int shard_sweep_tmp(const char *dir);

#endif
