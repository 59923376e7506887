/* Shard reader: validates the whole file on open (attributes, datasets,
 * dtypes, shapes, offsets, object codes, captions), keeps the small
 * per-sample arrays in memory and reads images in blocks of whole chunks.
 * Chunks of /images whose pipeline is [zstd][Fletcher-32] (or a part of it)
 * are fetched by us (address and length from H5Dget_chunk_info_by_coord,
 * bytes by pread or from a file image), their checksum verified and inflated here
 * with a reused context straight into the block (no HDF5 pipeline copies);
 * any other filter pipeline goes through H5Dread, chunk by chunk. Every
 * dataset is opened through h5u_open_dataset_safe: nothing outside the
 * shard file is ever read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "common/nb_error.h"
#include "common/vocab.h"
#include "store/h5meta.h"
#include "store/h5util.h"
#include "store/h5zstd.h"
#include "store/shard_store.h"

/* Sequential reads fetch this many bytes of images at once (whole chunks,
 * at least 4 chunks when that stays under READ_AHEAD_MAX). */
#define READ_AHEAD_BYTES ((size_t)8 << 20)
#define READ_AHEAD_MAX ((size_t)32 << 20)

struct shard_reader {
	char *path;
	shard_meta meta;
	hid_t file, images;
	size_t n, img_bytes, chunk_images, block_images;
	uint8_t *block;                /* cached images [block_start, block_start+block_len),
	                                  room for block_images (whole chunks) */
	int direct;                    /* 1: /images chunks fetched by read_chunk_direct */
	int fd;                        /* HDF5's descriptor of the file (sec2 driver), or -1 */
	const uint8_t *mem;            /* or the core driver's copy of a file image */
	hsize_t file_size;
	int zstd, fletcher;            /* its pipeline: zstd first, Fletcher-32 last */
	char unchecked[128];           /* datasets without a checksum, "" if none */
	int old_format;                /* 1: file metadata without checksums */
	ZSTD_DCtx *dctx;
	uint8_t *zbuf;                 /* one stored chunk */
	size_t zcap;
	size_t block_start, block_len;
	size_t pos;                    /* next index for shard_next */
	uint64_t *ids;
	char *sources;                 /* each source NUL-terminated, back to back */
	uint64_t *source_offsets;      /* n+1, into the stored (unterminated) bytes */
	uint16_t *tokens;
	uint64_t *offsets;             /* n+1 */
	float *score;
	uint16_t *rtokens;             /* pair shards: rejected captions */
	uint64_t *roffsets;            /* n+1 */
	uint8_t *kinds;                /* n */
	uint8_t *objects;              /* n*SCENE_CELLS */
};

typedef struct {
	const char *name;
	H5T_class_t cls;
	size_t size;
	H5T_sign_t sign;   /* for integers */
	const char *desc;  /* "uint64" */
} dtype_want;

static const dtype_want T_U8 = {"", H5T_INTEGER, 1, H5T_SGN_NONE, "uint8"};
static const dtype_want T_U16 = {"", H5T_INTEGER, 2, H5T_SGN_NONE, "uint16"};
static const dtype_want T_U64 = {"", H5T_INTEGER, 8, H5T_SGN_NONE, "uint64"};
static const dtype_want T_F32 = {"", H5T_FLOAT, 4, H5T_SGN_ERROR, "float32"};

static void describe_type(hid_t t, char *buf, size_t n)
{
	H5T_class_t c = H5Tget_class(t);
	size_t size = H5Tget_size(t);
	if (c == H5T_INTEGER)
		snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", size * 8);
	else if (c == H5T_FLOAT)
		snprintf(buf, n, "float%zu", size * 8);
	else if (c == H5T_STRING)
		snprintf(buf, n, "string");
	else
		snprintf(buf, n, "HDF5 class %d", (int)c);
}

static int fail(shard_reader *r, const char *fmt, const char *a, const char *b)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, a, b);
	return nb_error("cannot open shard '%s': %s", r->path, msg);
}

/* What one row of each dataset is, for messages naming a chunk's rows. */
static const char *row_unit(const char *name)
{
	if (!strcmp(name, "sources"))
		return "bytes";
	if (!strcmp(name, "tokens") || !strcmp(name, "rejected_tokens"))
		return "tokens";
	if (!strcmp(name, "offsets") || !strcmp(name, "source_offsets") || !strcmp(name, "rejected_offsets"))
		return "entries";
	return "samples";
}

/* 1 when the dataset's pipeline has HDF5's Fletcher-32 checksum. */
static int has_fletcher(hid_t ds)
{
	hid_t dcpl = H5Dget_create_plist(ds);
	unsigned flags = 0;
	size_t ncd = 0;
	int found = dcpl >= 0 &&
		    H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &ncd, NULL, 0, NULL, NULL) >= 0;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	return found;
}

/* Adds "/name" to the list of datasets without a checksum, once. */
static void note_unchecked(shard_reader *r, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = strchr(r->unchecked, '/'); p; p = strchr(p + 1, '/'))
		if (!strncmp(p + 1, name, len) && (p[len + 1] == ',' || p[len + 1] == '\0'))
			return;
	size_t at = strlen(r->unchecked);
	snprintf(r->unchecked + at, sizeof r->unchecked - at, "%s/%s", at ? ", " : "", name);
}

/* Opens /name (refusing links and storage that lead outside the file),
 * checks its element type and rank, fills dims, and notes a dataset
 * without a checksum. */
static hid_t open_dataset(shard_reader *r, const char *name, const dtype_want *want, int rank, hsize_t *dims)
{
	char why[768];
	hid_t ds = h5u_open_dataset_safe(r->file, name, why, sizeof why);
	if (ds < 0) {
		nb_error("cannot open shard '%s': %s", r->path, why);
		return -1;
	}
	if (!has_fletcher(ds))
		note_unchecked(r, name);
	hid_t t = H5Dget_type(ds);
	int ok = t >= 0 && H5Tget_class(t) == want->cls && H5Tget_size(t) == want->size &&
		 (want->cls != H5T_INTEGER || H5Tget_sign(t) == want->sign);
	if (!ok) {
		char got[64] = "unknown";
		if (t >= 0)
			describe_type(t, got, sizeof got);
		nb_error("cannot open shard '%s': dataset '/%s' has type %s (expected %s)", r->path, name, got,
			 want->desc);
	}
	if (t >= 0)
		H5Tclose(t);
	if (ok) {
		hid_t s = H5Dget_space(ds);
		int got_rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
		if (got_rank != rank) {
			nb_error("cannot open shard '%s': dataset '/%s' has %d dimensions (expected %d)", r->path, name,
				 got_rank, rank);
			ok = 0;
		} else {
			H5Sget_simple_extent_dims(s, dims, NULL);
		}
		if (s >= 0)
			H5Sclose(s);
	}
	if (!ok) {
		H5Dclose(ds);
		H5Eclear2(H5E_DEFAULT);
		return -1;
	}
	return ds;
}

/* After a failed read of a whole dataset: reads it again chunk by chunk
 * (rows of `rowbytes` bytes into buf) to name the first failing chunk's
 * rows and its cause. */
static int report_bad_chunk(shard_reader *r, hid_t ds, const char *name, hid_t mtype, size_t rowbytes,
			    size_t rows, void *buf, const char *whole_cause)
{
	hid_t dcpl = H5Dget_create_plist(ds), fspace = H5Dget_space(ds);
	int rank = fspace >= 0 ? H5Sget_simple_extent_ndims(fspace) : -1;
	hsize_t chunk[4] = {0}, dims[4] = {0};
	if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && rank >= 1 && rank <= 4 &&
	    H5Pget_chunk(dcpl, 4, chunk) == rank && chunk[0] >= 1)
		H5Sget_simple_extent_dims(fspace, dims, NULL);
	else
		chunk[0] = rows ? rows : 1;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	char cause[256];
	snprintf(cause, sizeof cause, "%s", whole_cause);
	size_t first = 0, last = rows ? rows - 1 : 0;
	for (size_t row = 0; rank >= 1 && dims[0] && row < rows; row += (size_t)chunk[0]) {
		hsize_t start[4] = {row, 0, 0, 0}, count[4] = {0};
		count[0] = rows - row < chunk[0] ? rows - row : chunk[0];
		for (int k = 1; k < rank; k++)
			count[k] = dims[k];
		hid_t mspace = H5Screate_simple(rank, count, NULL);
		herr_t rc = mspace >= 0 ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) : -1;
		if (rc >= 0)
			rc = H5Dread(ds, mtype, mspace, fspace, H5P_DEFAULT, (uint8_t *)buf + row * rowbytes);
		if (rc < 0)
			h5u_cause(cause, sizeof cause);
		if (mspace >= 0)
			H5Sclose(mspace);
		if (rc < 0) {
			first = row;
			last = row + (size_t)count[0] - 1;
			break;
		}
	}
	if (fspace >= 0)
		H5Sclose(fspace);
	H5Eclear2(H5E_DEFAULT);
	return nb_error("cannot open shard '%s': dataset '/%s' %s %zu..%zu: %s%s", r->path, name, row_unit(name),
			first, last, cause, strstr(cause, "checksum") ? " (the chunk is corrupt)" : "");
}

/* 1 when the filter pipeline of dcpl is one nboost writes: zstd, then
 * Fletcher-32, both in that order, one of them or none (*zstd and
 * *fletcher say which); 0 for any other. */
static int nboost_pipeline(hid_t dcpl, int *zstd, int *fletcher)
{
	*zstd = *fletcher = 0;
	int n = H5Pget_nfilters(dcpl), ok = n >= 0 && n <= 2;
	for (int i = 0; ok && i < n; i++) {
		unsigned flags = 0, cd[8];
		size_t ncd = 8;
		H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
		if (id == H5ZSTD_FILTER_ID && i == 0)
			*zstd = 1;
		else if (id == H5Z_FILTER_FLETCHER32 && i == n - 1)
			*fletcher = 1;
		else
			ok = 0;
	}
	return ok;
}

/* n bytes of the file at addr (a file on disk or a file image): 0, or -1
 * with errno set (0: the file is shorter). */
static int read_at(const shard_reader *r, haddr_t addr, void *buf, size_t n)
{
	if (addr > r->file_size || n > r->file_size - addr)
		return -1;
	if (r->mem) {
		memcpy(buf, r->mem + addr, n);
		return 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t got = pread(r->fd, (uint8_t *)buf + done, n - done, (off_t)(addr + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (got == 0)
				errno = 0; /* the file ended early */
			return -1;
		}
		done += (size_t)got;
	}
	return 0;
}

/* Checks every stored chunk of a chunked dataset against the chunk's size
 * before libhdf5 reads it: every filter applied (mask 0; nboost's writers
 * never skip one, zstd is mandatory), and, for nboost's pipelines, the
 * stored length (no zstd) or the zstd frame's recorded size equal to the
 * chunk's bytes. libhdf5 1.10.8 trusts the filter's output length and
 * copies a whole chunk out of a shorter buffer: a chunk index pointing at
 * another dataset's chunk, or at one stored with a filter skipped, was a
 * heap overflow inside H5Dread (found by fuzz_shard_reader). 0, or -1 with
 * nb_error. */
static int check_chunks(shard_reader *r, hid_t ds, const char *name)
{
	hid_t dcpl = H5Dget_create_plist(ds);
	if (dcpl < 0 || H5Pget_layout(dcpl) != H5D_CHUNKED) {
		if (dcpl >= 0)
			H5Pclose(dcpl);
		H5Eclear2(H5E_DEFAULT);
		return 0;
	}
	hsize_t cdims[H5S_MAX_RANK];
	int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, cdims);
	int nf = H5Pget_nfilters(dcpl), zstd, fletcher, known = nboost_pipeline(dcpl, &zstd, &fletcher);
	H5Pclose(dcpl);
	hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
	size_t chunk_bytes = t >= 0 ? H5Tget_size(t) : 0;
	for (int d = 0; d < rank; d++)
		chunk_bytes = cdims[d] && chunk_bytes <= ((size_t)1 << 40) / cdims[d] ? chunk_bytes * (size_t)cdims[d] : 0;
	if (t >= 0)
		H5Tclose(t);
	hsize_t nchunks = 0;
	int rc = 0;
	if (rank < 1 || !chunk_bytes || sp < 0 || H5Dget_num_chunks(ds, sp, &nchunks) < 0)
		rc = nb_error("cannot open shard '%s': dataset '/%s' has an unreadable chunk layout (corrupt)", r->path,
			      name);
	for (hsize_t i = 0; i < nchunks && rc == 0; i++) {
		unsigned mask = 0;
		hsize_t off[H5S_MAX_RANK] = {0}, size = 0;
		haddr_t addr = HADDR_UNDEF;
		char why[160] = "";
		uint8_t head[18]; /* the largest zstd frame header */
		if (H5Dget_chunk_info(ds, sp, i, off, &mask, &addr, &size) < 0) {
			snprintf(why, sizeof why, "its chunk index is unreadable");
		} else if (mask && nf > 0) {
			snprintf(why, sizeof why, "stored with filters skipped (mask 0x%x)", mask);
		} else if (known && (r->fd >= 0 || r->mem)) {
			size_t tail = fletcher ? 4 : 0;
			if (!zstd && size != chunk_bytes + tail) {
				snprintf(why, sizeof why, "%llu bytes stored for %zu", (unsigned long long)size,
					 chunk_bytes + tail);
			} else if (zstd) {
				size_t n = size - tail < sizeof head ? (size_t)(size - tail) : sizeof head;
				unsigned long long want = size < tail || read_at(r, addr, head, n) < 0
							      ? ZSTD_CONTENTSIZE_ERROR
							      : ZSTD_getFrameContentSize(head, n);
				if (want != chunk_bytes)
					snprintf(why, sizeof why, "its zstd frame is not one chunk of %zu bytes",
						 chunk_bytes);
			}
			/* A damaged chunk is named as such when its checksum says so. */
			uint8_t *all = why[0] && fletcher && size >= 4 && size <= ((hsize_t)1 << 30) ? malloc(size) : NULL;
			if (all && read_at(r, addr, all, (size_t)size) == 0 && !h5u_fletcher32_ok(all, (size_t)size))
				snprintf(why, sizeof why, "checksum mismatch (Fletcher-32)");
			free(all);
		}
		if (why[0]) {
			hsize_t dims[H5S_MAX_RANK] = {0};
			H5Sget_simple_extent_dims(sp, dims, NULL);
			hsize_t last = off[0] + cdims[0] > dims[0] ? dims[0] - 1 : off[0] + cdims[0] - 1;
			rc = nb_error("cannot open shard '%s': dataset '/%s' %s %llu..%llu: %s: the chunk is corrupt",
				      r->path, name, row_unit(name), (unsigned long long)off[0],
				      (unsigned long long)last, why);
		}
	}
	if (sp >= 0)
		H5Sclose(sp);
	H5Eclear2(H5E_DEFAULT);
	return rc;
}

/* Reads a whole 1-D or 2-D dataset of `count` rows of elsize bytes into a
 * new buffer. */
static void *read_all(shard_reader *r, hid_t ds, const char *name, hid_t mtype, size_t elsize, size_t count)
{
	if (count && check_chunks(r, ds, name) < 0)
		return NULL;
	if (count > ((size_t)1 << 40) / elsize) {
		nb_error("cannot open shard '%s': dataset '/%s' claims %zu elements", r->path, name, count);
		return NULL;
	}
	void *buf = malloc(count * elsize + 1);
	if (!buf) {
		nb_error("cannot open shard '%s': out of memory reading '/%s' (%zu elements)", r->path, name, count);
		return NULL;
	}
	if (count && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		report_bad_chunk(r, ds, name, mtype, elsize, count, buf, cause);
		free(buf);
		return NULL;
	}
	return buf;
}

/* Opens, checks and loads a 1-D dataset of exactly `expect` elements (any
 * length when expect == SIZE_MAX; *len gets it). */
static void *load_1d(shard_reader *r, const char *name, const dtype_want *want, hid_t mtype, size_t expect,
		     size_t *len)
{
	hsize_t dims[1];
	hid_t ds = open_dataset(r, name, want, 1, dims);
	if (ds < 0)
		return NULL;
	void *buf = NULL;
	if (expect != SIZE_MAX && dims[0] != expect)
		nb_error("cannot open shard '%s': dataset '/%s' has %llu entries (expected %zu)", r->path, name,
			 (unsigned long long)dims[0], expect);
	else
		buf = read_all(r, ds, name, mtype, want->size, (size_t)dims[0]);
	H5Dclose(ds);
	if (buf && len)
		*len = (size_t)dims[0];
	return buf;
}

/* offsets[0] == 0, non-decreasing, ending exactly at `total`; each span at
 * most max_span (0 = unlimited). */
static int check_offsets(shard_reader *r, const char *name, const uint64_t *off, size_t n, uint64_t total,
			 uint64_t max_span)
{
	if (off[0] != 0)
		return nb_error("cannot open shard '%s': '/%s' starts at %llu (expected 0)", r->path, name,
				(unsigned long long)off[0]);
	for (size_t i = 0; i < n; i++) {
		if (off[i + 1] < off[i])
			return nb_error("cannot open shard '%s': '/%s' not monotone at sample %zu (%llu < %llu)", r->path,
					name, i, (unsigned long long)off[i + 1], (unsigned long long)off[i]);
		if (off[i + 1] > total)
			return nb_error("cannot open shard '%s': '/%s' points past the end of its data at sample %zu "
					"(%llu > %llu)", r->path, name, i, (unsigned long long)off[i + 1],
					(unsigned long long)total);
		if (max_span && off[i + 1] - off[i] > max_span)
			return nb_error("cannot open shard '%s': sample %zu has %llu tokens (max %llu)", r->path, i,
					(unsigned long long)(off[i + 1] - off[i]), (unsigned long long)max_span);
	}
	if (off[n] != total)
		return nb_error("cannot open shard '%s': '/%s' ends at %llu but the data has %llu entries", r->path,
				name, (unsigned long long)off[n], (unsigned long long)total);
	return 0;
}

static int read_attrs(shard_reader *r)
{
	char schema[64], why[256];
	shard_meta *m = &r->meta;
	hid_t root = r->file;
	if (h5u_get_str(root, "schema", schema, sizeof schema, why, sizeof why) < 0)
		return fail(r, "not an nboost shard: %s%s", why, "");
	if (!strcmp(schema, SHARD_SCHEMA_IMAGES))
		m->kind = SHARD_IMAGES;
	else if (!strcmp(schema, SHARD_SCHEMA_CAPTIONS))
		m->kind = SHARD_CAPTIONS;
	else if (!strcmp(schema, SHARD_SCHEMA_PAIRS))
		m->kind = SHARD_PAIRS;
	else
		return nb_error("cannot open shard '%s': wrong schema '%s' (expected %s, %s or %s v%d)", r->path,
				schema, SHARD_SCHEMA_IMAGES, SHARD_SCHEMA_CAPTIONS, SHARD_SCHEMA_PAIRS, SHARD_VERSION);
	int version;
	if (h5u_get_int(root, "version", &version, why, sizeof why) < 0)
		return fail(r, "%s%s", why, "");
	if (version != SHARD_VERSION)
		return nb_error("cannot open shard '%s': unsupported version %d of %s (expected %d)", r->path, version,
				schema, SHARD_VERSION);
	if (h5u_get_int(root, "height", &m->height, why, sizeof why) < 0 ||
	    h5u_get_int(root, "width", &m->width, why, sizeof why) < 0 ||
	    h5u_get_int(root, "has_objects", &m->has_objects, why, sizeof why) < 0)
		return fail(r, "%s%s", why, "");
	if (m->height < 1 || m->height > 4096 || m->width < 1 || m->width > 4096)
		return nb_error("cannot open shard '%s': image size %dx%d out of range (1..4096)", r->path, m->height,
				m->width);
	if (m->has_objects != 0 && m->has_objects != 1)
		return nb_error("cannot open shard '%s': has_objects is %d (expected 0 or 1)", r->path, m->has_objects);
	if (m->kind == SHARD_IMAGES)
		return 0;
	if (h5u_get_str(root, "origin", m->origin, sizeof m->origin, why, sizeof why) < 0 ||
	    h5u_get_str(root, "teacher_digest", m->teacher_digest, sizeof m->teacher_digest, why, sizeof why) < 0 ||
	    h5u_get_str(root, "vocab_digest", m->vocab_digest, sizeof m->vocab_digest, why, sizeof why) < 0 ||
	    h5u_get_int(root, "round", &m->round, why, sizeof why) < 0 ||
	    h5u_get_float(root, "sigma", &m->sigma, why, sizeof why) < 0 ||
	    h5u_get_int(root, "K", &m->K, why, sizeof why) < 0 ||
	    h5u_get_int(root, "vote", &m->vote, why, sizeof why) < 0)
		return fail(r, "%s%s", why, "");
	if (strcmp(m->origin, "human") && strcmp(m->origin, "pseudo") && strcmp(m->origin, "synthetic"))
		return nb_error("cannot open shard '%s': origin '%s' is not human, pseudo or synthetic", r->path,
				m->origin);
	/* The words beside the ids, when stored (shards since issue #12),
	 * must be the ones the digest names. */
	if (h5m_check_vocab(root, m->vocab_digest, why, sizeof why) < 0)
		return fail(r, "%s%s", why, "");
	return 0;
}

/* Reads the /images pipeline into r: direct chunk reads when it is zstd,
 * Fletcher-32, both in that order, or nothing; else through H5Dread. */
static void images_pipeline(shard_reader *r)
{
	r->direct = r->zstd = r->fletcher = 0;
	hid_t dcpl = H5Dget_create_plist(r->images);
	if (dcpl < 0)
		return;
	int ok = nboost_pipeline(dcpl, &r->zstd, &r->fletcher);
	H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	r->direct = ok && (r->fd >= 0 || r->mem);
	if (!r->direct)
		r->zstd = r->fletcher = 0;
}

static int open_images(shard_reader *r)
{
	hsize_t dims[4];
	r->images = open_dataset(r, "images", &T_U8, 4, dims);
	if (r->images < 0)
		return -1;
	if (dims[1] != (hsize_t)r->meta.height || dims[2] != (hsize_t)r->meta.width || dims[3] != 3)
		return nb_error("cannot open shard '%s': '/images' is [%llu,%llu,%llu,%llu] but the attributes say "
				"%dx%d RGB", r->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
				(unsigned long long)dims[2], (unsigned long long)dims[3], r->meta.height, r->meta.width);
	r->n = (size_t)dims[0];
	r->img_bytes = (size_t)r->meta.height * r->meta.width * 3;
	hid_t dcpl = H5Dget_create_plist(r->images);
	hsize_t chunk[4] = {0, 0, 0, 0};
	int layout_ok = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, chunk) == 4;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (!layout_ok || chunk[0] < 1 || chunk[1] != dims[1] || chunk[2] != dims[2] || chunk[3] != 3) {
		H5Eclear2(H5E_DEFAULT);
		return fail(r, "'/images' is not chunked by whole images%s%s", "", "");
	}
	r->chunk_images = (size_t)chunk[0];
	if (r->chunk_images > SHARD_MAX_CHUNK_BYTES / r->img_bytes)
		return nb_error("cannot open shard '%s': '/images' chunks of %zu images are larger than %zu MiB",
				r->path, r->chunk_images, SHARD_MAX_CHUNK_BYTES >> 20);
	images_pipeline(r);
	size_t chunk_bytes = r->chunk_images * r->img_bytes;
	size_t k = (READ_AHEAD_BYTES + chunk_bytes - 1) / chunk_bytes;
	if (k < 4 && 4 * chunk_bytes <= READ_AHEAD_MAX)
		k = 4;
	if (k < 1)
		k = 1;
	r->block_images = k * r->chunk_images;
	return 0;
}

static int load_sources(shard_reader *r)
{
	size_t nbytes = 0;
	uint8_t *flat = load_1d(r, "sources", &T_U8, H5T_NATIVE_UINT8, SIZE_MAX, &nbytes);
	if (!flat)
		return -1;
	r->source_offsets = load_1d(r, "source_offsets", &T_U64, H5T_NATIVE_UINT64, r->n + 1, NULL);
	int rc = -1;
	if (r->source_offsets && check_offsets(r, "source_offsets", r->source_offsets, r->n, nbytes, 0) == 0) {
		if (memchr(flat, 0, nbytes)) {
			nb_error("cannot open shard '%s': '/sources' contains a NUL byte", r->path);
		} else {
			r->sources = malloc(nbytes + r->n + 1);
			if (!r->sources) {
				nb_error("cannot open shard '%s': out of memory for sources", r->path);
			} else {
				for (size_t i = 0; i < r->n; i++) {
					uint64_t a = r->source_offsets[i], b = r->source_offsets[i + 1];
					memcpy(r->sources + a + i, flat + a, b - a);
					r->sources[b + i] = '\0';
				}
				rc = 0;
			}
		}
	}
	free(flat);
	return rc;
}

static int load_captions(shard_reader *r)
{
	size_t ntok = 0;
	r->offsets = load_1d(r, "offsets", &T_U64, H5T_NATIVE_UINT64, r->n + 1, NULL);
	if (!r->offsets)
		return -1;
	hsize_t dims[1];
	hid_t ds = open_dataset(r, "tokens", &T_U16, 1, dims);
	if (ds < 0)
		return -1;
	ntok = (size_t)dims[0];
	H5Dclose(ds);
	/* Check bounds before reading, so a corrupt length cannot make us
	 * allocate more than the offsets allow. */
	if (check_offsets(r, "offsets", r->offsets, r->n, ntok, SHARD_MAX_TOKENS) < 0)
		return -1;
	r->tokens = load_1d(r, "tokens", &T_U16, H5T_NATIVE_UINT16, ntok, NULL);
	if (!r->tokens)
		return -1;
	r->score = load_1d(r, "score", &T_F32, H5T_NATIVE_FLOAT, r->n, NULL);
	if (!r->score)
		return -1;
	/* A caption of nothing but <pad> teaches the model to say nothing. */
	for (size_t i = 0; i < r->n; i++) {
		uint64_t k = r->offsets[i];
		while (k < r->offsets[i + 1] && r->tokens[k] == VOCAB_PAD)
			k++;
		if (k == r->offsets[i + 1])
			return nb_error("cannot open shard '%s': sample %zu (id %llu) has an empty caption (%llu tokens, "
					"none but <pad>)", r->path, i, (unsigned long long)r->ids[i],
					(unsigned long long)(r->offsets[i + 1] - r->offsets[i]));
	}
	return 0;
}

/* Pair shards: the rejected captions (the rules of /tokens) and the kinds. */
static int load_pairs(shard_reader *r)
{
	r->roffsets = load_1d(r, "rejected_offsets", &T_U64, H5T_NATIVE_UINT64, r->n + 1, NULL);
	if (!r->roffsets)
		return -1;
	hsize_t dims[1];
	hid_t ds = open_dataset(r, "rejected_tokens", &T_U16, 1, dims);
	if (ds < 0)
		return -1;
	H5Dclose(ds);
	size_t ntok = (size_t)dims[0];
	if (check_offsets(r, "rejected_offsets", r->roffsets, r->n, ntok, SHARD_MAX_TOKENS) < 0)
		return -1;
	r->rtokens = load_1d(r, "rejected_tokens", &T_U16, H5T_NATIVE_UINT16, ntok, NULL);
	r->kinds = r->rtokens ? load_1d(r, "pair_kind", &T_U8, H5T_NATIVE_UINT8, r->n, NULL) : NULL;
	if (!r->kinds)
		return -1;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t k = r->roffsets[i];
		while (k < r->roffsets[i + 1] && r->rtokens[k] == VOCAB_PAD)
			k++;
		if (k == r->roffsets[i + 1])
			return nb_error("cannot open shard '%s': pair %zu (id %llu) has an empty rejected caption (%llu "
					"tokens, none but <pad>)", r->path, i, (unsigned long long)r->ids[i],
					(unsigned long long)(r->roffsets[i + 1] - r->roffsets[i]));
		if (r->kinds[i] >= PAIR_KINDS)
			return nb_error("cannot open shard '%s': pair %zu (id %llu) has kind %d (known 0..%d)", r->path,
					i, (unsigned long long)r->ids[i], r->kinds[i], PAIR_KINDS - 1);
	}
	return 0;
}

static int load_objects(shard_reader *r)
{
	int present = H5Lexists(r->file, "objects", H5P_DEFAULT) > 0;
	H5Eclear2(H5E_DEFAULT);
	if (!r->meta.has_objects)
		return present ? fail(r, "has '/objects' but attribute has_objects is 0%s%s", "", "") : 0;
	hsize_t dims[2];
	hid_t ds = open_dataset(r, "objects", &T_U8, 2, dims);
	if (ds < 0)
		return -1;
	if (dims[0] != r->n || dims[1] != SCENE_CELLS) {
		H5Dclose(ds);
		return nb_error("cannot open shard '%s': dataset '/objects' is [%llu,%llu] (expected [%zu,%d])",
				r->path, (unsigned long long)dims[0], (unsigned long long)dims[1], r->n, SCENE_CELLS);
	}
	r->objects = read_all(r, ds, "objects", H5T_NATIVE_UINT8, SCENE_CELLS, r->n);
	H5Dclose(ds);
	if (!r->objects)
		return -1;
	for (size_t i = 0; i < r->n * SCENE_CELLS; i++)
		if (r->objects[i] > SCENE_MAX_CODE)
			return nb_error("cannot open shard '%s': sample %zu has object code %d in cell %zu (max %d)",
					r->path, i / SCENE_CELLS, r->objects[i], i % SCENE_CELLS, SCENE_MAX_CODE);
	return 0;
}

/* Checks the path before HDF5 opens it: a regular HDF5 file. */
static int check_file(shard_reader *r)
{
	struct stat st;
	if (stat(r->path, &st) < 0)
		return nb_error("cannot open shard '%s': %s", r->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return nb_error("cannot open shard '%s': not a regular file", r->path);
	if (H5Fis_hdf5(r->path) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		return nb_error("cannot open shard '%s': not an HDF5 file", r->path);
	}
	return 0;
}

/* Finds the bytes of the open file for direct chunk reads: HDF5's own
 * descriptor (sec2 driver) or memory (core driver, a file image of
 * image_size bytes). Neither: chunks go through H5Dread. */
static void locate_bytes(shard_reader *r, size_t image_size)
{
	hid_t fapl = H5Fget_access_plist(r->file);
	hid_t driver = fapl >= 0 ? H5Pget_driver(fapl) : -1;
	void *handle = NULL;
	if (driver >= 0 && (driver == H5FD_SEC2 || driver == H5FD_CORE) &&
	    H5Fget_vfd_handle(r->file, fapl, &handle) >= 0 && handle) {
		struct stat st;
		if (driver == H5FD_SEC2 && fstat(*(int *)handle, &st) == 0) {
			r->fd = *(int *)handle;
			r->file_size = (hsize_t)st.st_size;
		} else if (driver == H5FD_CORE && image_size && *(const uint8_t **)handle) {
			/* the core driver's handle is the address of its buffer */
			r->mem = *(const uint8_t **)handle;
			r->file_size = image_size;
		}
	}
	if (fapl >= 0)
		H5Pclose(fapl);
	H5Eclear2(H5E_DEFAULT);
}

/* Opens r->path with access properties fapl (H5P_DEFAULT: the file); a
 * file image is image_size bytes, else 0. */
static int open_file(shard_reader *r, const char *name, hid_t fapl, size_t image_size)
{
	r->file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
	if (r->file < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		return nb_error("cannot open shard '%s': %s", r->path, cause);
	}
	locate_bytes(r, image_size);
	/* Superblock versions 0 and 1 (HDF5's default format, which nboost
	 * wrote before it moved to the 1.10 format) have no metadata
	 * checksums: a damaged attribute or chunk index can go unnoticed. */
	H5F_info2_t info;
	if (H5Fget_info2(r->file, &info) >= 0 && info.super.version < 2)
		r->old_format = 1;
	H5Eclear2(H5E_DEFAULT);
	return 0;
}

/* Once per process: corpora written before checksums stay readable. */
static void warn_unchecked(const shard_reader *r)
{
	static int warned;
	if (warned)
		return;
	warned = 1;
	nb_warn("shard '%s' has no checksums (%s%s%s%s): it was written before nboost checksummed shards or by "
		"another tool, so a corrupt chunk or attribute in it may go unnoticed; rewriting it adds them "
		"(printed once for all such shards)", r->path, r->unchecked[0] ? "datasets " : "", r->unchecked,
		r->unchecked[0] && r->old_format ? "; " : "", r->old_format ? "file metadata" : "");
}

static int validate(shard_reader *r)
{
	if (read_attrs(r) < 0 || open_images(r) < 0)
		return -1;
	if (r->n > ((size_t)1 << 32))
		return nb_error("cannot open shard '%s': %zu samples is more than a shard may hold", r->path, r->n);
	r->ids = load_1d(r, "ids", &T_U64, H5T_NATIVE_UINT64, r->n, NULL);
	if (!r->ids || load_sources(r) < 0)
		return -1;
	if (r->meta.kind != SHARD_IMAGES && load_captions(r) < 0)
		return -1;
	if (r->meta.kind == SHARD_PAIRS && load_pairs(r) < 0)
		return -1;
	if (load_objects(r) < 0)
		return -1;
	/* Room for whole chunks even past n: direct reads inflate full chunks. */
	size_t cap = r->n < r->block_images ? (r->n + r->chunk_images - 1) / r->chunk_images * r->chunk_images
					      : r->block_images;
	r->block = malloc(cap * r->img_bytes + 1);
	if (!r->block)
		return nb_error("cannot open shard '%s': out of memory for the read-ahead block", r->path);
	if (r->unchecked[0] || r->old_format)
		warn_unchecked(r);
	return 0;
}

static shard_reader *reader_new(const char *name)
{
	if (shard_zstd_register() < 0)
		return NULL;
	shard_reader *r = nb_xcalloc(1, sizeof *r);
	r->path = nb_xstrdup(name);
	r->file = r->images = -1;
	r->fd = -1;
	return r;
}

shard_reader *shard_open(const char *path)
{
	if (!path) {
		nb_error("cannot open shard: no path given");
		return NULL;
	}
	shard_reader *r = reader_new(path);
	/* Default access properties: HDF5 refuses a second open of the same
	 * file with a different close degree, and tools (inspect) reopen it. */
	if (r && (check_file(r) < 0 || open_file(r, path, H5P_DEFAULT, 0) < 0 || validate(r) < 0)) {
		/* shard_close would overwrite nothing, but keep our message. */
		shard_close(r);
		return NULL;
	}
	return r;
}

shard_reader *shard_open_image(const void *image, size_t size, const char *name)
{
	if (!image || !size || !name) {
		nb_error("cannot open shard '%s': empty file image", name ? name : "(image)");
		return NULL;
	}
	shard_reader *r = reader_new(name);
	if (!r)
		return NULL;
	/* The core driver serves the file from a copy of the image. It first
	 * checks that no file of the given name exists, so the name HDF5 sees
	 * is one that cannot exist; messages use `name`. */
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	int rc = fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
			 H5Pset_file_image(fapl, (void *)image, size) >= 0
		 ? 0
		 : nb_error("cannot open shard '%s': cannot set up an in-memory file", name);
	if (rc == 0)
		rc = open_file(r, "/dev/null/nboost-file-image.h5", fapl, size);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (rc < 0 || validate(r) < 0) {
		shard_close(r);
		return NULL;
	}
	return r;
}

int shard_has_checksums(const shard_reader *r)
{
	return r->unchecked[0] == '\0' && !r->old_format;
}

const shard_meta *shard_reader_meta(const shard_reader *r)
{
	return &r->meta;
}

size_t shard_count(const shard_reader *r)
{
	return r->n;
}

const char *shard_path(const shard_reader *r)
{
	return r->path;
}

/* Reads `count` images from `start` (one chunk or less) through HDF5's
 * pipeline into dst. */
static int read_images_h5(shard_reader *r, size_t start, size_t count, uint8_t *dst, char *cause, size_t n)
{
	hsize_t fstart[4] = {start, 0, 0, 0};
	hsize_t fcount[4] = {count, (hsize_t)r->meta.height, (hsize_t)r->meta.width, 3};
	hid_t fspace = H5Dget_space(r->images);
	hid_t mspace = H5Screate_simple(4, fcount, NULL);
	herr_t rc = -1;
	if (fspace >= 0 && mspace >= 0 &&
	    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, fstart, NULL, fcount, NULL) >= 0)
		rc = H5Dread(r->images, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, dst);
	if (rc < 0) {
		h5u_cause(cause, n);
		if (strstr(cause, "checksum")) {
			size_t len = strlen(cause);
			snprintf(cause + len, n - len, " (the chunk is corrupt)");
		}
	}
	if (fspace >= 0)
		H5Sclose(fspace);
	if (mspace >= 0)
		H5Sclose(mspace);
	return rc < 0 ? -1 : 0;
}

/* Reads the stored chunk at image `first`, verifies its checksum and
 * inflates it into dst (one whole chunk). Every size is checked against the
 * chunk shape, so a corrupt chunk is an error, never an overflow. */
static int read_chunk_direct(shard_reader *r, size_t first, uint8_t *dst, char *cause, size_t n)
{
	size_t chunk_bytes = r->chunk_images * r->img_bytes;
	size_t tail = r->fletcher ? 4 : 0;
	hsize_t offset[4] = {first, 0, 0, 0};
	hsize_t stored = 0;
	haddr_t addr = HADDR_UNDEF;
	unsigned mask = 0;
	/* Where the chunk lies and how long it is, then read by us: the
	 * length bounds the read (H5Dread_chunk takes no buffer size, and on a
	 * damaged chunk index it was seen to write past the size that
	 * H5Dget_chunk_storage_size gave for the same chunk). */
	if (H5Dget_chunk_info_by_coord(r->images, offset, &mask, &addr, &stored) < 0 || stored == 0 ||
	    addr == HADDR_UNDEF) {
		H5Eclear2(H5E_DEFAULT);
		snprintf(cause, n, "the chunk is missing");
		return -1;
	}
	if (stored > (r->zstd ? ZSTD_compressBound(chunk_bytes) : chunk_bytes) + tail || stored < tail) {
		snprintf(cause, n, "the chunk is corrupt (%llu bytes stored for %zu)", (unsigned long long)stored,
			 chunk_bytes);
		return -1;
	}
	if (addr > r->file_size || stored > r->file_size - addr) {
		snprintf(cause, n, "the chunk index is corrupt (bytes %llu..%llu of a %llu-byte file)",
			 (unsigned long long)addr, (unsigned long long)(addr + stored),
			 (unsigned long long)r->file_size);
		return -1;
	}
	if (stored > r->zcap) {
		free(r->zbuf);
		r->zbuf = malloc(stored);
		r->zcap = r->zbuf ? stored : 0;
		if (!r->zbuf) {
			snprintf(cause, n, "out of memory");
			return -1;
		}
	}
	if (read_at(r, addr, r->zbuf, (size_t)stored) < 0) {
		snprintf(cause, n, "cannot read the chunk: %s",
			 errno ? strerror(errno) : "the file is shorter than its index says");
		return -1;
	}
	unsigned fletcher_bit = r->zstd ? 2u : 1u;
	if (r->fletcher && (mask & fletcher_bit)) {
		snprintf(cause, n, "the chunk is stored without its checksum (filter mask 0x%x): corrupt", (unsigned)mask);
		return -1;
	}
	if (r->fletcher && !h5u_fletcher32_ok(r->zbuf, (size_t)stored)) {
		snprintf(cause, n, "checksum mismatch (Fletcher-32): the chunk is corrupt");
		return -1;
	}
	size_t len = (size_t)stored - tail;
	if (!r->zstd || (mask & 1)) {
		if (len != chunk_bytes) {
			snprintf(cause, n, "the chunk has %zu bytes (expected %zu)", len, chunk_bytes);
			return -1;
		}
		memcpy(dst, r->zbuf, chunk_bytes);
		return 0;
	}
	unsigned long long want = ZSTD_getFrameContentSize(r->zbuf, len);
	if (want != chunk_bytes) {
		snprintf(cause, n, "the chunk is corrupt (zstd frame header unreadable or of the wrong size)");
		return -1;
	}
	/* A frame with a content checksum is verified here too. */
	size_t got = ZSTD_decompressDCtx(r->dctx, dst, chunk_bytes, r->zbuf, len);
	if (ZSTD_isError(got) || got != chunk_bytes) {
		snprintf(cause, n, "the chunk is corrupt (zstd: %s)", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
		return -1;
	}
	return 0;
}

/* Reads images [start, start+count) chunk by chunk into the block; a
 * failing chunk is named by its samples. */
static int read_images(shard_reader *r, size_t start, size_t count)
{
	char cause[256];
	if (r->direct && !r->dctx && !(r->dctx = ZSTD_createDCtx()))
		NB_BUG("ZSTD_createDCtx failed");
	for (size_t c = 0; c < count; c += r->chunk_images) {
		uint8_t *dst = r->block + c * r->img_bytes;
		size_t m = count - c < r->chunk_images ? count - c : r->chunk_images;
		int rc = r->direct ? read_chunk_direct(r, start + c, dst, cause, sizeof cause)
				   : read_images_h5(r, start + c, m, dst, cause, sizeof cause);
		if (rc < 0) {
			r->block_len = 0;
			size_t last = start + c + r->chunk_images < r->n ? start + c + r->chunk_images : r->n;
			return nb_error("cannot read shard '%s': dataset '/images' samples %zu..%zu: %s", r->path,
					start + c, last - 1, cause);
		}
	}
	r->block_start = start;
	r->block_len = count;
	return 0;
}

static void fill_sample(const shard_reader *r, size_t i, shard_sample *out)
{
	memset(out, 0, sizeof *out);
	out->id = r->ids[i];
	out->image = r->block + (i - r->block_start) * r->img_bytes;
	out->source = r->sources + r->source_offsets[i] + i;
	if (r->meta.kind != SHARD_IMAGES) {
		out->tokens = r->tokens + r->offsets[i];
		out->ntokens = (int)(r->offsets[i + 1] - r->offsets[i]);
		out->score = r->score[i];
	}
	if (r->meta.kind == SHARD_PAIRS) {
		out->rejected = r->rtokens + r->roffsets[i];
		out->nrejected = (int)(r->roffsets[i + 1] - r->roffsets[i]);
		out->pair_kind = r->kinds[i];
	}
	out->objects = r->objects ? r->objects + i * SCENE_CELLS : NULL;
}

/* Makes image i cached: when it is not, reads up to `span` images from the
 * start of its chunk (a long block for sequential reading, one chunk for
 * random access). */
static int cache_image(shard_reader *r, size_t i, size_t span)
{
	if (r->block_len && i >= r->block_start && i < r->block_start + r->block_len)
		return 0;
	size_t start = i / r->chunk_images * r->chunk_images;
	size_t count = r->n - start < span ? r->n - start : span;
	return read_images(r, start, count);
}

int shard_next(shard_reader *r, shard_sample *out)
{
	if (r->pos >= r->n)
		return 0;
	size_t i = r->pos;
	if (cache_image(r, i, r->block_images) < 0)
		return -1;
	fill_sample(r, i, out);
	r->pos++;
	return 1;
}

int shard_get(shard_reader *r, size_t index, shard_sample *out)
{
	if (index >= r->n)
		return nb_error("cannot read shard '%s': index %zu out of range (%zu samples)", r->path, index, r->n);
	if (cache_image(r, index, r->chunk_images) < 0)
		return -1;
	fill_sample(r, index, out);
	return 0;
}

int shard_verify(shard_reader *r)
{
	/* Everything but /images was read and verified by shard_open. */
	for (size_t i = 0; i < r->n; i += r->block_images)
		if (cache_image(r, i, r->block_images) < 0)
			return -1;
	return 0;
}

void shard_rewind(shard_reader *r)
{
	r->pos = 0;
}

void shard_close(shard_reader *r)
{
	if (!r)
		return;
	if (r->images >= 0)
		H5Dclose(r->images);
	if (r->file >= 0)
		H5Fclose(r->file);
	H5Eclear2(H5E_DEFAULT);
	free(r->path);
	free(r->block);
	free(r->zbuf);
	ZSTD_freeDCtx(r->dctx);
	free(r->ids);
	free(r->sources);
	free(r->source_offsets);
	free(r->tokens);
	free(r->offsets);
	free(r->score);
	free(r->rtokens);
	free(r->roffsets);
	free(r->kinds);
	free(r->objects);
	free(r);
}
