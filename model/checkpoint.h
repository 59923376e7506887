/* Checkpoint I/O (schemas/checkpoint.md): HDF5 with the model config as
 * attributes, /params/<name>, /adam/m/<name>, /adam/v/<name>, the step and
 * the RNG state. Written atomically (temporary name, fsync, rename).
 * Loading validates the schema, version, vocabulary digest and every tensor's
 * shape; a truncated file or a config mismatch gives NULL/-1 and nb_errmsg()
 * naming the file and the cause. */
#ifndef NB_CHECKPOINT_H
#define NB_CHECKPOINT_H

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

#endif
