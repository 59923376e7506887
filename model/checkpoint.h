/* Checkpoint I/O (schemas/checkpoint.md): HDF5 with the model config as
 * attributes, /params/<name>, /adam/m/<name>, /adam/v/<name>, the step and
 * the RNG state. Written atomically (temporary name, fsync, rename).
 * Loading validates the schema, version, vocabulary digest and every tensor's
 * shape; a truncated file or a config mismatch gives NULL/-1 and nb_errmsg()
 * naming the file and the cause.
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
#define CKPT_VERSION 1

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

/* Writes the checkpoint atomically: "<dir>/.<name>.tmp.<pid>", fsync,
 * rename over path, fsync the directory. 0 or nb_error. */
int ckpt_save(const char *path, vlm_model *m, const ckpt_save_info *info);

typedef struct ckpt_file ckpt_file;

/* Opens a checkpoint and validates schema, version and vocabulary digest.
 * When expect is non-NULL, the stored model config must equal it; the error
 * lists every mismatching field with both values. NULL + nb_errmsg. */
ckpt_file *ckpt_open(const char *path, const vlm_config *expect);
void ckpt_close(ckpt_file *f);
const vlm_config *ckpt_config(const ckpt_file *f);
long ckpt_step(const ckpt_file *f);
uint64_t ckpt_seed(const ckpt_file *f);
/* The stored job config text ("" if none); owned by f. */
const char *ckpt_job_config(const ckpt_file *f);
int ckpt_has_adam(const ckpt_file *f);
/* Reads /params into m (whose config must equal the file's), checking every
 * tensor's presence and shape and the stored params digest. 0 or nb_error. */
int ckpt_read_params(ckpt_file *f, vlm_model *m);
/* Reads /adam/m and /adam/v in m's parameter layout (vlm_nparams floats). */
int ckpt_read_adam(ckpt_file *f, vlm_model *m, float *adam_m, float *adam_v);
/* /state/<name>: *out is malloc'ed (caller frees). 0 or nb_error (missing
 * items are errors). */
int ckpt_read_u64(ckpt_file *f, const char *name, uint64_t **out, size_t *n);
int ckpt_read_text(ckpt_file *f, const char *name, char **out);

#endif
