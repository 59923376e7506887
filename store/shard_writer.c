/* Shard writer: buffers images into whole chunks and writes each with
 * H5Dwrite_chunk, compressed here with a reused zstd context into exactly
 * the frame the filter would produce, followed by the Fletcher-32 checksum
 * HDF5's filter would append (bypassing HDF5's filter pipeline, its
 * copies and allocations, roughly doubles the write rate). It keeps the small per-sample arrays in memory and writes
 * them at commit, then publishes the file atomically (nb_publish: temp,
 * fsync, rename, fsync dir). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/vocab.h"
#include "store/h5meta.h"
#include "store/h5util.h"
#include "store/shard_store.h"

struct shard_writer {
	char *path, *tmp, *options;
	shard_meta meta;
	int level, checksum;
	hid_t file, images;
	size_t img_bytes, count;
	uint8_t *chunk;      /* chunk_images images not yet written (+ 4 bytes: checksum) */
	uint8_t *zbuf;       /* compressed chunk (+ 4 bytes: checksum) */
	size_t zcap;
	ZSTD_CCtx *cctx;
	size_t chunk_fill;   /* images in chunk */
	size_t written;      /* images already in /images */
	/* The per-sample arrays, as native-endian bytes: ids (uint64),
	 * sources (chars), source_offsets and offsets (uint64, n + 1),
	 * tokens (uint16), score (float), objects (SCENE_CELLS bytes each);
	 * pair shards also rejected tokens and offsets, and pair kinds (uint8). */
	nb_buf ids, sources, source_offsets, tokens, offsets, score, objects;
	nb_buf rtokens, roffsets, kinds;
};

static void writer_free(shard_writer *w)
{
	free(w->path);
	free(w->tmp);
	free(w->options);
	free(w->chunk);
	free(w->zbuf);
	ZSTD_freeCCtx(w->cctx);
	nb_buf *all[] = {&w->ids,   &w->sources, &w->source_offsets, &w->tokens, &w->offsets,
			 &w->score, &w->objects, &w->rtokens,        &w->roffsets, &w->kinds};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		free(all[i]->data);
	free(w);
}

static int valid_origin(const char *o)
{
	return !strcmp(o, "human") || !strcmp(o, "pseudo") || !strcmp(o, "synthetic");
}

static int check_meta(const char *path, const shard_meta *m)
{
	if (m->kind != SHARD_IMAGES && m->kind != SHARD_CAPTIONS && m->kind != SHARD_PAIRS)
		return nb_error("cannot create shard '%s': unknown kind %d", path, (int)m->kind);
	if (m->height < 1 || m->height > 4096 || m->width < 1 || m->width > 4096)
		return nb_error("cannot create shard '%s': image size %dx%d out of range (1..4096)", path,
				m->height, m->width);
	if (m->has_objects != 0 && m->has_objects != 1)
		return nb_error("cannot create shard '%s': has_objects must be 0 or 1, not %d", path, m->has_objects);
	if (m->zstd_level != SHARD_NO_COMPRESSION && (m->zstd_level < 0 || m->zstd_level > 22))
		return nb_error("cannot create shard '%s': zstd level %d out of range (1..22)", path, m->zstd_level);
	if (m->chunk_images < 0 || (size_t)m->chunk_images * m->height * m->width * 3 > SHARD_MAX_CHUNK_BYTES)
		return nb_error("cannot create shard '%s': chunk of %d images is larger than %zu MiB", path,
				m->chunk_images, SHARD_MAX_CHUNK_BYTES >> 20);
	if (m->kind != SHARD_IMAGES) {
		if (!memchr(m->origin, 0, sizeof m->origin) || !valid_origin(m->origin))
			return nb_error("cannot create shard '%s': origin '%.15s' is not human, pseudo or synthetic",
					path, m->origin);
		if (!memchr(m->teacher_digest, 0, sizeof m->teacher_digest) ||
		    !memchr(m->vocab_digest, 0, sizeof m->vocab_digest))
			return nb_error("cannot create shard '%s': digest strings are not NUL-terminated", path);
	}
	return 0;
}

/* HDF5 clears its error stack at every API call, so callers capture the
 * cause right after the failing call and pass it here. */
static int fail_h5(shard_writer *w, const char *what, const char *cause)
{
	return nb_error("cannot write shard '%s': %s: %s", w->path, what, cause);
}

shard_writer *shard_create(const char *path, const shard_meta *meta)
{
	if (!path || !*path || !meta) {
		nb_error("cannot create shard: no path or metadata given");
		return NULL;
	}
	if (check_meta(path, meta) < 0 || shard_zstd_register() < 0)
		return NULL;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!*base || base[0] == '.') {
		nb_error("cannot create shard '%s': the name must not be empty or start with '.'", path);
		return NULL;
	}
	shard_writer *w = nb_xcalloc(1, sizeof *w);
	w->path = nb_xstrdup(path);
	/* Room for "/." and ".tmp.<pid>" around the name. */
	size_t tmpn = strlen(path) + 64;
	w->tmp = nb_xmalloc(tmpn);
	if (nb_tmp_name(w->tmp, tmpn, path) < 0)
		NB_BUG("nb_tmp_name: %s", nb_errmsg());
	w->meta = *meta;
	w->options = meta->options ? nb_xstrdup(meta->options) : NULL;
	w->meta.options = w->options;
	w->img_bytes = (size_t)meta->height * meta->width * 3;
	if (!w->meta.chunk_images) {
		size_t fit = SHARD_CHUNK_TARGET / w->img_bytes;
		w->meta.chunk_images = fit < 1 ? 1 : (int)fit;
	}
	w->level = meta->zstd_level ? meta->zstd_level : SHARD_ZSTD_DEFAULT;
	w->checksum = !meta->no_checksum;
	size_t chunk_bytes = w->img_bytes * w->meta.chunk_images;
	w->chunk = nb_xmalloc(chunk_bytes + 4);
	w->zcap = ZSTD_compressBound(chunk_bytes);
	w->zbuf = nb_xmalloc(w->zcap + 4);
	w->cctx = ZSTD_createCCtx();
	if (!w->cctx)
		NB_BUG("ZSTD_createCCtx failed");
	/* As the filter does (h5zstd.c): level, and the frame's own checksum
	 * of its content when checksums are on. */
	if (w->level != SHARD_NO_COMPRESSION &&
	    (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level)) ||
	     ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, w->checksum))))
		NB_BUG("zstd rejects level %d", w->level);
	w->file = w->images = -1;
	uint64_t zero = 0;
	nb_buf_add(&w->source_offsets, &zero, sizeof zero);
	nb_buf_add(&w->offsets, &zero, sizeof zero);
	nb_buf_add(&w->roffsets, &zero, sizeof zero);

	hid_t fcpl = h5u_fcpl_new(), fapl = h5u_fapl_new();
	w->file = fcpl >= 0 && fapl >= 0 ? H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl) : -1;
	int err = errno;
	char cause[256];
	if (w->file < 0)
		h5u_cause(cause, sizeof cause);
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (w->file < 0) {
		nb_error("cannot create shard '%s': cannot create temporary '%s': %s (%s)", path, w->tmp, cause,
			 strerror(err));
		writer_free(w);
		return NULL;
	}
	hsize_t dims[4] = {0, (hsize_t)meta->height, (hsize_t)meta->width, 3};
	hsize_t maxd[4] = {H5S_UNLIMITED, dims[1], dims[2], 3};
	hsize_t chunk[4] = {(hsize_t)w->meta.chunk_images, dims[1], dims[2], 3};
	hid_t space = H5Screate_simple(4, dims, maxd);
	hid_t dcpl = h5u_dcpl_opts(4, chunk, w->level, w->checksum);
	if (space >= 0 && dcpl >= 0)
		w->images = H5Dcreate2(w->file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	if (w->images < 0)
		h5u_cause(cause, sizeof cause);
	if (space >= 0)
		H5Sclose(space);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (w->images < 0) {
		fail_h5(w, "cannot create /images", cause);
		shard_abort(w);
		return NULL;
	}
	return w;
}

static int flush_chunk(shard_writer *w)
{
	if (!w->chunk_fill)
		return 0;
	size_t chunk_bytes = w->img_bytes * w->meta.chunk_images;
	/* A partial last chunk is stored full size, padded with the fill value
	 * (0), exactly as HDF5 itself stores edge chunks. */
	memset(w->chunk + w->chunk_fill * w->img_bytes, 0, chunk_bytes - w->chunk_fill * w->img_bytes);
	const void *data = w->chunk;
	size_t size = chunk_bytes;
	if (w->level != SHARD_NO_COMPRESSION) {
		size = ZSTD_compress2(w->cctx, w->zbuf, w->zcap, w->chunk, chunk_bytes);
		if (ZSTD_isError(size))
			return nb_error("cannot write shard '%s': zstd: %s", w->path, ZSTD_getErrorName(size));
		data = w->zbuf;
	}
	if (w->checksum) {
		/* The buffers have 4 bytes of room after the data. */
		uint8_t *at = (uint8_t *)data + size;
		h5u_fletcher32_put(at, h5u_fletcher32(data, size));
		size += 4;
	}
	hsize_t offset[4] = {w->written, 0, 0, 0};
	hsize_t extent[4] = {w->written + w->chunk_fill, (hsize_t)w->meta.height, (hsize_t)w->meta.width, 3};
	char cause[256];
	if (H5Dset_extent(w->images, extent) < 0) {
		h5u_cause(cause, sizeof cause);
		return fail_h5(w, "cannot extend /images", cause);
	}
	if (H5Dwrite_chunk(w->images, H5P_DEFAULT, 0, offset, size, data) < 0) {
		h5u_cause(cause, sizeof cause);
		return fail_h5(w, "cannot write /images", cause);
	}
	w->written += w->chunk_fill;
	w->chunk_fill = 0;
	return 0;
}

/* No token but <pad>: nothing to learn from. */
static int empty_caption(const uint16_t *tokens, int n)
{
	for (int i = 0; i < n; i++)
		if (tokens[i] != VOCAB_PAD)
			return 0;
	return 1;
}

/* The rejected half of a pair: 1..SHARD_MAX_TOKENS tokens, not all <pad>,
 * and a known kind. */
static int check_pair(shard_writer *w, const shard_sample *s)
{
	if (s->nrejected < 1 || s->nrejected > SHARD_MAX_TOKENS || !s->rejected)
		return nb_error("cannot append to shard '%s': pair %llu has a rejected caption of %d tokens (allowed "
				"1..%d)", w->path, (unsigned long long)s->id, s->nrejected, SHARD_MAX_TOKENS);
	if (empty_caption(s->rejected, s->nrejected))
		return nb_error("cannot append to shard '%s': pair %llu has an empty rejected caption (%d tokens, "
				"none but <pad>)", w->path, (unsigned long long)s->id, s->nrejected);
	if (s->pair_kind < 0 || s->pair_kind >= PAIR_KINDS)
		return nb_error("cannot append to shard '%s': pair %llu has kind %d (known 0..%d)", w->path,
				(unsigned long long)s->id, s->pair_kind, PAIR_KINDS - 1);
	return 0;
}

int shard_append(shard_writer *w, const shard_sample *s)
{
	if (!w || !s)
		return nb_error("cannot append to shard: no writer or sample given");
	if (!s->image)
		return nb_error("cannot append to shard '%s': sample %llu has no image", w->path,
				(unsigned long long)s->id);
	int caption = w->meta.kind != SHARD_IMAGES, pairs = w->meta.kind == SHARD_PAIRS;
	if (pairs && check_pair(w, s) < 0)
		return -1;
	if (caption && (s->ntokens < 0 || s->ntokens > SHARD_MAX_TOKENS || (s->ntokens && !s->tokens)))
		return nb_error("cannot append to shard '%s': sample %llu has %d tokens (allowed 1..%d)", w->path,
				(unsigned long long)s->id, s->ntokens, SHARD_MAX_TOKENS);
	if (caption && empty_caption(s->tokens, s->ntokens))
		return nb_error("cannot append to shard '%s': sample %llu has an empty caption (%d tokens, none but "
				"<pad>)", w->path, (unsigned long long)s->id, s->ntokens);
	if (w->meta.has_objects) {
		if (!s->objects)
			return nb_error("cannot append to shard '%s': sample %llu has no ground-truth objects", w->path,
					(unsigned long long)s->id);
		for (int i = 0; i < SCENE_CELLS; i++)
			if (s->objects[i] > SCENE_MAX_CODE)
				return nb_error("cannot append to shard '%s': sample %llu has object code %d (max %d)",
						w->path, (unsigned long long)s->id, s->objects[i], SCENE_MAX_CODE);
	}
	memcpy(w->chunk + w->chunk_fill * w->img_bytes, s->image, w->img_bytes);
	w->chunk_fill++;
	nb_buf_add(&w->ids, &s->id, sizeof s->id);
	nb_buf_adds(&w->sources, s->source ? s->source : "");
	uint64_t end = w->sources.len;
	nb_buf_add(&w->source_offsets, &end, sizeof end);
	if (caption) {
		nb_buf_add(&w->tokens, s->tokens, (size_t)s->ntokens * sizeof *s->tokens);
		end = w->tokens.len / sizeof *s->tokens;
		nb_buf_add(&w->offsets, &end, sizeof end);
		nb_buf_add(&w->score, &s->score, sizeof s->score);
	}
	if (pairs) {
		nb_buf_add(&w->rtokens, s->rejected, (size_t)s->nrejected * sizeof *s->rejected);
		end = w->rtokens.len / sizeof *s->rejected;
		nb_buf_add(&w->roffsets, &end, sizeof end);
		uint8_t k = (uint8_t)s->pair_kind;
		nb_buf_add(&w->kinds, &k, 1);
	}
	if (w->meta.has_objects)
		nb_buf_add(&w->objects, s->objects, SCENE_CELLS);
	w->count++;
	if (w->chunk_fill == (size_t)w->meta.chunk_images)
		return flush_chunk(w);
	return 0;
}

size_t shard_writer_count(const shard_writer *w)
{
	return w ? w->count : 0;
}

/* A chunked, compressed dataset written in one go: [rows, cols] (cols = 0
 * for 1-D). Chunks are capped at 64 KiB of data. */
static int write_array(shard_writer *w, const char *name, hid_t ftype, hid_t mtype, size_t elsize,
		       const void *data, size_t rows, size_t cols)
{
	int rank = cols ? 2 : 1;
	size_t rowbytes = elsize * (cols ? cols : 1);
	size_t crow = ((size_t)1 << 16) / rowbytes;
	if (crow > rows)
		crow = rows;
	if (crow < 1)
		crow = 1;
	hsize_t dims[2] = {rows, cols}, maxd[2] = {H5S_UNLIMITED, cols}, chunk[2] = {crow, cols};
	char cause[256], what[64];
	snprintf(what, sizeof what, "cannot write /%s", name);
	hid_t dcpl = h5u_dcpl_opts(rank, chunk, w->level, w->checksum);
	if (dcpl < 0) {
		h5u_cause(cause, sizeof cause);
		return fail_h5(w, what, cause);
	}
	int rc = h5u_write_dataset(w->file, name, ftype, mtype, rank, dims, maxd, dcpl, data, cause, sizeof cause);
	H5Pclose(dcpl);
	return rc < 0 ? fail_h5(w, what, cause) : 0;
}

static int write_attrs(shard_writer *w)
{
	const shard_meta *m = &w->meta;
	int caption = m->kind != SHARD_IMAGES;
	hid_t root = w->file;
	int rc = 0;
	const char *schema = m->kind == SHARD_PAIRS	 ? SHARD_SCHEMA_PAIRS
			     : m->kind == SHARD_CAPTIONS ? SHARD_SCHEMA_CAPTIONS
							 : SHARD_SCHEMA_IMAGES;
	rc |= h5u_put_str(root, "schema", schema);
	rc |= h5u_put_int(root, "version", SHARD_VERSION);
	rc |= h5u_put_int(root, "height", m->height);
	rc |= h5u_put_int(root, "width", m->width);
	rc |= h5u_put_int(root, "has_objects", m->has_objects);
	if (caption) {
		rc |= h5u_put_str(root, "origin", m->origin);
		rc |= h5u_put_str(root, "teacher_digest", m->teacher_digest);
		rc |= h5u_put_str(root, "vocab_digest", m->vocab_digest);
		rc |= h5u_put_int(root, "round", m->round);
		rc |= h5u_put_float(root, "sigma", m->sigma);
		rc |= h5u_put_int(root, "K", m->K);
		rc |= h5u_put_int(root, "vote", m->vote);
	}
	char cause[256];
	if (rc)
		h5u_cause(cause, sizeof cause);
	return rc ? fail_h5(w, "cannot write attributes", cause) : 0;
}

/* What h5py, h5dump and HDFView users see (store/h5meta.h): each dataset's
 * description and dimension labels, the vocabulary words of caption
 * shards, and the provenance group. */
static const struct {
	const char *name, *description;
	int rank, captions_only;
	const char *labels[4];
} described[] = {
	{"images", "RGB images, uint8, row-major: images[i] is sample i (HxWx3)", 4, 0,
	 {"sample", "height", "width", "channel"}},
	{"ids", "sample ids, unique within a corpus", 1, 0, {"sample"}},
	{"sources", "the samples' sources (URL or path), UTF-8, concatenated: see source_offsets", 1, 0, {"byte"}},
	{"source_offsets", "source i is sources[source_offsets[i]:source_offsets[i+1]]", 1, 0, {"sample_edge"}},
	{"objects", "ground truth: the object code of each of the 9 grid cells, 0 = empty (common/scene.h)", 2, 0,
	 {"sample", "cell"}},
	{"tokens", "all captions' token ids concatenated, no <bos>/<eos>: the words are in /vocab", 1, 1, {"token"}},
	{"offsets", "caption i is tokens[offsets[i]:offsets[i+1]]", 1, 1, {"sample_edge"}},
	{"score", "share of the clean caption's statements that survived the noise (1 for human and synthetic)", 1,
	 1, {"sample"}},
};

static int describe_all(shard_writer *w)
{
	char cause[256];
	int caption = w->meta.kind == SHARD_CAPTIONS;
	for (size_t i = 0; i < sizeof described / sizeof described[0]; i++) {
		if ((described[i].captions_only && !caption) ||
		    (!strcmp(described[i].name, "objects") && !w->meta.has_objects))
			continue;
		int rc = !strcmp(described[i].name, "images")
				 ? h5m_describe(w->images, described[i].description, 4, described[i].labels, cause,
						sizeof cause)
				 : h5m_describe_at(w->file, described[i].name, described[i].description,
						   described[i].rank, described[i].labels, cause, sizeof cause);
		if (rc < 0)
			return fail_h5(w, "cannot describe the datasets", cause);
	}
	/* The words are known when the ids are this build's (every nboost
	 * writer's case); a caller's other digest gets no /vocab. */
	if (caption && !strcmp(w->meta.vocab_digest, vocab_digest()) && h5m_put_vocab(w->file, cause, sizeof cause) < 0)
		return fail_h5(w, "cannot write /vocab", cause);
	if (h5m_put_provenance(w->file, w->options, cause, sizeof cause) < 0)
		return fail_h5(w, "cannot write /provenance", cause);
	return 0;
}

static int write_tail(shard_writer *w)
{
	size_t n = w->count;
	if (flush_chunk(w) < 0 || write_attrs(w) < 0)
		return -1;
	if (write_array(w, "ids", H5T_STD_U64LE, H5T_NATIVE_UINT64, 8, w->ids.data, n, 0) < 0 ||
	    write_array(w, "sources", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, w->sources.data, w->sources.len, 0) < 0 ||
	    write_array(w, "source_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 8, w->source_offsets.data, n + 1, 0) < 0)
		return -1;
	if (w->meta.kind != SHARD_IMAGES &&
	    (write_array(w, "tokens", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, w->tokens.data, w->tokens.len / 2, 0) < 0 ||
	     write_array(w, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 8, w->offsets.data, n + 1, 0) < 0 ||
	     write_array(w, "score", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, w->score.data, n, 0) < 0))
		return -1;
	if (w->meta.kind == SHARD_PAIRS &&
	    (write_array(w, "rejected_tokens", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, w->rtokens.data,
			 w->rtokens.len / 2, 0) < 0 ||
	     write_array(w, "rejected_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 8, w->roffsets.data, n + 1, 0) < 0 ||
	     write_array(w, "pair_kind", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, w->kinds.data, n, 0) < 0))
		return -1;
	if (w->meta.has_objects &&
	    write_array(w, "objects", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, w->objects.data, n, SCENE_CELLS) < 0)
		return -1;
	return describe_all(w);
}

int shard_commit(shard_writer *w)
{
	if (!w)
		return nb_error("cannot commit shard: no writer given");
	int rc = write_tail(w);
	if (w->images >= 0)
		H5Dclose(w->images);
	w->images = -1;
	if (w->file >= 0 && H5Fclose(w->file) < 0 && rc == 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		rc = fail_h5(w, "cannot close", cause);
	}
	w->file = -1;
	/* nb_publish names the step that failed and removes the temporary. */
	if (rc == 0 && nb_publish(w->tmp, w->path, 1) < 0)
		rc = nb_error("cannot commit shard: %s", nb_errmsg());
	if (rc < 0)
		unlink(w->tmp);
	writer_free(w);
	return rc;
}

void shard_abort(shard_writer *w)
{
	if (!w)
		return;
	if (w->images >= 0)
		H5Dclose(w->images);
	if (w->file >= 0)
		H5Fclose(w->file);
	H5Eclear2(H5E_DEFAULT);
	unlink(w->tmp);
	writer_free(w);
}
