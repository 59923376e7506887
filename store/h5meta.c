/* Self-describing HDF5 files (store/h5meta.h). */
#include "store/h5meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5_hl.h>

#include "common/nb_io.h"
#include "common/nb_prov.h"
#include "common/vocab.h"
#include "store/h5util.h"

#define MAX_CMDLINE (16 << 10)

/* A fixed-length UTF-8 string type of `size` bytes, NUL-padded. */
static hid_t str_type(size_t size)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t >= 0 && (H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
		       H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

int h5m_describe(hid_t ds, const char *description, int rank, const char *const *labels, char *cause, size_t n)
{
	int rc = h5u_put_str(ds, "description", description);
	for (int i = 0; rc == 0 && labels && i < rank; i++)
		rc = H5DSset_label(ds, (unsigned)i, labels[i]) < 0 ? -1 : 0;
	if (rc < 0)
		h5u_cause(cause, n);
	return rc;
}

int h5m_describe_at(hid_t loc, const char *name, const char *description, int rank, const char *const *labels,
		    char *cause, size_t n)
{
	hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
	if (ds < 0) {
		h5u_cause(cause, n);
		return -1;
	}
	int rc = h5m_describe(ds, description, rank, labels, cause, n);
	H5Dclose(ds);
	return rc;
}

int h5m_put_vocab(hid_t loc, char *cause, size_t n)
{
	size_t width = 1;
	for (int i = 0; i < VOCAB_SIZE; i++)
		if (strlen(vocab_word(i)) > width)
			width = strlen(vocab_word(i));
	char *words = nb_xcalloc(VOCAB_SIZE, width);
	for (int i = 0; i < VOCAB_SIZE; i++)
		memcpy(words + (size_t)i * width, vocab_word(i), strlen(vocab_word(i)));
	hid_t t = str_type(width);
	hsize_t dims[1] = {VOCAB_SIZE};
	int rc = t < 0 ? -1 : h5u_write_dataset(loc, H5M_VOCAB, t, t, 1, dims, NULL, H5P_DEFAULT, words, cause, n);
	if (t < 0)
		h5u_cause(cause, n);
	if (t >= 0)
		H5Tclose(t);
	free(words);
	static const char *const label[] = {"token_id"};
	if (rc == 0)
		rc = h5m_describe_at(loc, H5M_VOCAB,
				     "the word of each token id: decode /tokens with vocab[id] (ids 0-3 are <pad> <bos> "
				     "<eos> <unk>); its digest is the vocab_digest attribute",
				     1, label, cause, n);
	return rc;
}

/* Reads the fixed-length string dataset ds of n words into a table of
 * pointers into one block (*block; free both). 0 or -1 with why[]. */
static int read_words(hid_t ds, size_t count, char ***out, char **block, char *why, size_t whyn)
{
	hid_t ft = H5Dget_type(ds);
	int ok = ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0;
	size_t size = ok ? H5Tget_size(ft) : 0;
	if (ft >= 0)
		H5Tclose(ft);
	if (!ok || size < 1 || size > H5M_MAX_WORD) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "dataset '/%s' is not an array of fixed-length strings of 1..%d bytes", H5M_VOCAB,
			 H5M_MAX_WORD);
		return -1;
	}
	char *raw = nb_xcalloc(count ? count : 1, size + 1);
	hid_t mt = str_type(size + 1);
	if (mt < 0 || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		snprintf(why, whyn, "cannot read dataset '/%s': %s", H5M_VOCAB, cause);
		if (mt >= 0)
			H5Tclose(mt);
		free(raw);
		return -1;
	}
	H5Tclose(mt);
	char **w = nb_xcalloc(count ? count : 1, sizeof *w);
	for (size_t i = 0; i < count; i++) {
		w[i] = raw + i * (size + 1);
		w[i][size] = '\0';
	}
	*out = w;
	*block = raw;
	return 0;
}

int h5m_check_vocab(hid_t loc, const char *digest, char *why, size_t whyn)
{
	htri_t has = H5Lexists(loc, H5M_VOCAB, H5P_DEFAULT);
	H5Eclear2(H5E_DEFAULT);
	if (has <= 0)
		return 0;
	hid_t ds = h5u_open_dataset_safe(loc, "/" H5M_VOCAB, why, whyn);
	if (ds < 0)
		return -1;
	hid_t space = H5Dget_space(ds);
	hsize_t dims[1] = {0};
	int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
	if (rank == 1)
		H5Sget_simple_extent_dims(space, dims, NULL);
	if (space >= 0)
		H5Sclose(space);
	if (rank != 1 || dims[0] < 1 || dims[0] > H5M_MAX_VOCAB) {
		H5Dclose(ds);
		H5Eclear2(H5E_DEFAULT);
		snprintf(why, whyn, "dataset '/%s' is not a list of 1..%d words", H5M_VOCAB, H5M_MAX_VOCAB);
		return -1;
	}
	char **words = NULL, *block = NULL;
	int rc = read_words(ds, (size_t)dims[0], &words, &block, why, whyn);
	H5Dclose(ds);
	if (rc < 0)
		return -1;
	char got[17];
	vocab_digest_of((const char *const *)words, (int)dims[0], got);
	free(words);
	free(block);
	if (strcmp(got, digest) != 0) {
		snprintf(why, whyn, "'/%s' (%llu words) does not match vocab_digest '%.16s': its words give '%s'",
			 H5M_VOCAB, (unsigned long long)dims[0], digest, got);
		return -1;
	}
	return 0;
}

int h5m_put_provenance(hid_t loc, const char *options, char *cause, size_t n)
{
	char when[32], host[256];
	nb_prov_time(when, sizeof when);
	nb_prov_host(host, sizeof host);
	const char *cmd = nb_prov_cmdline();
	char *cut = NULL;
	if (strlen(cmd) > MAX_CMDLINE) {
		cut = nb_xmalloc(MAX_CMDLINE + 4);
		memcpy(cut, cmd, MAX_CMDLINE);
		memcpy(cut + MAX_CMDLINE, "...", 4);
		cmd = cut;
	}
	hid_t gcpl = h5u_gcpl_new();
	hid_t g = gcpl >= 0 ? H5Gcreate2(loc, H5M_PROVENANCE, H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
	if (gcpl >= 0)
		H5Pclose(gcpl);
	int rc = g < 0 ? -1 : 0;
	if (g >= 0) {
		rc |= h5u_put_str(g, "nboost_version", nb_version());
		rc |= h5u_put_str(g, "nboost_commit", nb_commit());
		rc |= h5u_put_str(g, "command_line", cmd);
		rc |= h5u_put_str(g, "created", when);
		rc |= h5u_put_str(g, "host", host);
		if (options)
			rc |= h5u_put_str(g, "options", options);
	}
	if (rc)
		h5u_cause(cause, n);
	if (g >= 0)
		H5Gclose(g);
	free(cut);
	return rc ? -1 : 0;
}
