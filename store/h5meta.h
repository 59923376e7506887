/* What makes an nboost HDF5 file explain itself to h5py, h5dump and HDFView
 * users (schemas/provenance.md, schemas/caption_shard.md): the vocabulary
 * words beside the token ids, a provenance group, and per-dataset
 * descriptions with dimension labels. Shared by the shard store and
 * checkpoints (model/). Assumes h5u_quiet; not thread-safe. */
#ifndef NB_H5META_H
#define NB_H5META_H

#include <stddef.h>

#include <hdf5.h>

#define H5M_VOCAB "vocab"            /* dataset: the token ids' words */
#define H5M_PROVENANCE "provenance"  /* group: what made the file */
#define H5M_MAX_VOCAB 65536          /* words a reader accepts in /vocab */
#define H5M_MAX_WORD 255             /* bytes per word a reader accepts */

/* Writes /vocab into loc: the words of common/vocab.h in id order, a 1-D
 * fixed-length UTF-8 string dataset (NUL-padded), with a description and
 * the dimension label "token_id". 0, or -1 with cause[] set. */
int h5m_put_vocab(hid_t loc, char *cause, size_t n);

/* Checks /vocab in loc against the vocab_digest the file records:
 * 0 when it matches or when there is no /vocab (files written before it);
 * -1 with why[] naming the cause ("'/vocab' (27 words) does not match
 * vocab_digest 'x': its words give 'y'", "dataset '/vocab' has type ...").
 * The dataset is opened with h5u_open_dataset_safe. */
int h5m_check_vocab(hid_t loc, const char *digest, char *why, size_t whyn);

/* Writes the group /provenance into loc with string attributes
 * nboost_version, nboost_commit, command_line, created, host, and options
 * when options is not NULL (common/nb_prov.h). The command line is cut at
 * 16 KiB (ending in "...") so it fits an object header. 0 or -1 with
 * cause[] set. */
int h5m_put_provenance(hid_t loc, const char *options, char *cause, size_t n);

/* Tags a dataset with a string attribute "description" and, when labels is
 * not NULL, the name of each of its rank dimensions (H5DSset_label: h5py
 * shows them as dset.dims[i].label). 0 or -1 with cause[] set. */
int h5m_describe(hid_t ds, const char *description, int rank, const char *const *labels, char *cause, size_t n);
/* The same for dataset `name` in loc. */
int h5m_describe_at(hid_t loc, const char *name, const char *description, int rank, const char *const *labels,
		    char *cause, size_t n);

#endif
