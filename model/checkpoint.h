/* Checkpoint I/O (schemas/checkpoint.md): HDF5 with the model config as
 * attributes, /params/<name>, /adam/m/<name>, /adam/v/<name>, the step and
 * the RNG state. Written atomically (temporary name, fsync, rename).
 * Loading validates the schema, version, vocabulary digest, every tensor's
 * shape and every checksum; a truncated, edited or corrupt file or a config
 * mismatch gives NULL/-1 and nb_errmsg() naming the file, the dataset or
 * attribute, and the cause.
 *
 * HDF5 is not thread-safe here: one thread per process calls these. The
 * functions turn HDF5's automatic error printing off and report through
 * nb_error instead. */
#ifndef NB_CHECKPOINT_H
#define NB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/vlm.h"

#define CKPT_SCHEMA "nboost.checkpoint"
#define CKPT_VERSION 2

/* For inference (eval, caption, teachers): loads config and parameters into
 * a new model sized for max_batch. NULL + nb_errmsg on failure. */
vlm_model *ckpt_load_model(const char *path, int max_batch);

/* 16 hex digits identifying a checkpoint's parameters (stored as an
 * attribute at save time), e.g. for the teacher_digest of pseudo shards.
 * Writes into out[17]. 0 or nb_error. */
int ckpt_digest(const char *path, char out[17]);

/* ---- training state (trainer/) ---- */

/* The digest ckpt_digest returns, computed from a model in memory: FNV-1a
 * 64 over the parameter bytes (float32, little-endian, layout order). */
void ckpt_params_digest(vlm_model *m, char out[17]);

/* An extra array saved under /state/<name>: either n uint64 values (u64
 * non-NULL) or a text (stored as a uint8 dataset, no NUL). Used by the
 * trainer for data-order state; the checkpoint module does not interpret it. */
typedef struct {
	const char *name;
	const uint64_t *u64;
	size_t n;
	const char *text;
} ckpt_item;

typedef struct {
	long step;                   /* updates done */
	uint64_t seed;               /* train.seed */
	const char *job_config;      /* effective job file text; NULL = "" */
	const float *adam_m, *adam_v; /* vlm_nparams floats each, or NULL (no optimizer state) */
	const ckpt_item *items;
	int nitems;
} ckpt_save_info;

/* Writes the checkpoint atomically: the file is built in memory (HDF5's
 * core driver: about the file's size again, briefly), then written to
 * "<dir>/.<name>.tmp.<pid>", fsync'ed, renamed over path, and the directory
 * fsync'ed. Every dataset carries a checksum, and the root a checksum per
 * attribute (schemas/checkpoint.md). A failed write (a full disk) removes
 * the temporary. 0 or nb_error naming path and the cause ("No space left on
 * device"). */
int ckpt_save(const char *path, vlm_model *m, const ckpt_save_info *info);

typedef struct ckpt_file ckpt_file;

/* Opens a checkpoint and validates schema, version, vocabulary digest and
 * (version 2) every root attribute's checksum, and refuses a file whose
 * data could come from elsewhere: a dataset with external storage or a
 * virtual layout, an external, soft or user-defined link. When expect is
 * non-NULL, the stored model config must equal it; the error lists every
 * mismatching field with both values. NULL + nb_errmsg. */
ckpt_file *ckpt_open(const char *path, const vlm_config *expect);
/* The same for a file image in memory (size bytes, copied; e.g. a fuzzer's
 * input); name stands for the path in messages. */
ckpt_file *ckpt_open_image(const void *image, size_t size, const char *name, const vlm_config *expect);
void ckpt_close(ckpt_file *f);
const vlm_config *ckpt_config(const ckpt_file *f);
long ckpt_step(const ckpt_file *f);
uint64_t ckpt_seed(const ckpt_file *f);
/* The stored job config text ("" if none); owned by f. */
const char *ckpt_job_config(const ckpt_file *f);
int ckpt_has_adam(const ckpt_file *f);
/* Reads /params into m (whose config must equal the file's), checking every
 * tensor's presence, shape and checksum and the stored params digest. 0 or
 * nb_error. */
int ckpt_read_params(ckpt_file *f, vlm_model *m);
/* Reads /adam/m and /adam/v in m's parameter layout (vlm_nparams floats),
 * each tensor checked against its checksum. A version-1 checkpoint (no
 * checksums beyond the parameters) is refused: "written by an older nboost". */
int ckpt_read_adam(ckpt_file *f, vlm_model *m, float *adam_m, float *adam_v);
/* /state/<name>: *out is malloc'ed (caller frees). 0 or nb_error (missing
 * items, checksum mismatches and version-1 files are errors). */
int ckpt_read_u64(ckpt_file *f, const char *name, uint64_t **out, size_t *n);
int ckpt_read_text(ckpt_file *f, const char *name, char **out);

#endif
