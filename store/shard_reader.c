/* Shard reader: validates the whole file on open (attributes, datasets,
 * dtypes, shapes, offsets, object codes), keeps the small per-sample arrays
 * in memory and reads images in blocks of whole chunks. Chunks of files with
 * no filter or only zstd are fetched with H5Dread_chunk and inflated here
 * with a reused context straight into the block (no HDF5 pipeline copies);
 * any other filter pipeline goes through H5Dread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "common/nb_error.h"
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
	int direct;                    /* 0: H5Dread, 1: raw chunks, 2: zstd chunks */
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

/* Opens /name and checks its element type and rank; fills dims. */
static hid_t open_dataset(shard_reader *r, const char *name, const dtype_want *want, int rank, hsize_t *dims)
{
	if (H5Lexists(r->file, name, H5P_DEFAULT) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		fail(r, "dataset '/%s' is missing%s", name, "");
		return -1;
	}
	hid_t ds = H5Dopen2(r->file, name, H5P_DEFAULT);
	if (ds < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		nb_error("cannot open shard '%s': '/%s' is not a readable dataset: %s", r->path, name, cause);
		return -1;
	}
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

/* Reads a whole 1-D or 2-D dataset of `count` elements into a new buffer. */
static void *read_all(shard_reader *r, hid_t ds, const char *name, hid_t mtype, size_t elsize, size_t count)
{
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
		nb_error("cannot open shard '%s': cannot read '/%s': %s", r->path, name, cause);
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
	else
		return nb_error("cannot open shard '%s': wrong schema '%s' (expected %s or %s v%d)", r->path, schema,
				SHARD_SCHEMA_IMAGES, SHARD_SCHEMA_CAPTIONS, SHARD_VERSION);
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
	return 0;
}

/* 1 when /images has no filter, 2 when its only filter is zstd, else 0. */
static int direct_mode(hid_t images)
{
	hid_t dcpl = H5Dget_create_plist(images);
	if (dcpl < 0)
		return 0;
	int n = H5Pget_nfilters(dcpl), mode = 0;
	if (n == 0) {
		mode = 1;
	} else if (n == 1) {
		unsigned flags = 0, cd[8];
		size_t ncd = 8;
		char name[64];
		H5Z_filter_t id = H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof name, name, NULL);
		mode = id == H5ZSTD_FILTER_ID ? 2 : 0;
	}
	H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	return mode;
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
	r->direct = direct_mode(r->images);
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
	return r->score ? 0 : -1;
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

static int open_and_validate(shard_reader *r)
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
	/* Default access properties: HDF5 refuses a second open of the same
	 * file with a different close degree, and tools (inspect) reopen it. */
	r->file = H5Fopen(r->path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (r->file < 0) {
		char cause[256];
		h5u_cause(cause, sizeof cause);
		return nb_error("cannot open shard '%s': %s", r->path, cause);
	}
	if (read_attrs(r) < 0 || open_images(r) < 0)
		return -1;
	if (r->n > ((size_t)1 << 32))
		return nb_error("cannot open shard '%s': %zu samples is more than a shard may hold", r->path, r->n);
	r->ids = load_1d(r, "ids", &T_U64, H5T_NATIVE_UINT64, r->n, NULL);
	if (!r->ids || load_sources(r) < 0)
		return -1;
	if (r->meta.kind == SHARD_CAPTIONS && load_captions(r) < 0)
		return -1;
	if (load_objects(r) < 0)
		return -1;
	/* Room for whole chunks even past n: direct reads inflate full chunks. */
	size_t cap = r->n < r->block_images ? (r->n + r->chunk_images - 1) / r->chunk_images * r->chunk_images
					      : r->block_images;
	r->block = malloc(cap * r->img_bytes + 1);
	if (!r->block)
		return nb_error("cannot open shard '%s': out of memory for the read-ahead block", r->path);
	return 0;
}

shard_reader *shard_open(const char *path)
{
	if (!path) {
		nb_error("cannot open shard: no path given");
		return NULL;
	}
	if (shard_zstd_register() < 0)
		return NULL;
	shard_reader *r = nb_xcalloc(1, sizeof *r);
	r->path = nb_xstrdup(path);
	r->file = r->images = -1;
	if (open_and_validate(r) < 0) {
		/* shard_close would overwrite nothing, but keep our message. */
		shard_close(r);
		return NULL;
	}
	return r;
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

static int read_images_h5(shard_reader *r, size_t start, size_t count, char *cause, size_t n)
{
	hsize_t fstart[4] = {start, 0, 0, 0};
	hsize_t fcount[4] = {count, (hsize_t)r->meta.height, (hsize_t)r->meta.width, 3};
	hid_t fspace = H5Dget_space(r->images);
	hid_t mspace = H5Screate_simple(4, fcount, NULL);
	herr_t rc = -1;
	if (fspace >= 0 && mspace >= 0 &&
	    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, fstart, NULL, fcount, NULL) >= 0)
		rc = H5Dread(r->images, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, r->block);
	if (rc < 0)
		h5u_cause(cause, n);
	if (fspace >= 0)
		H5Sclose(fspace);
	if (mspace >= 0)
		H5Sclose(mspace);
	return rc < 0 ? -1 : 0;
}

/* Reads the stored chunk at image `first` and inflates it into dst (one
 * whole chunk). Every size is checked against the chunk shape, so a corrupt
 * chunk is an error, never an overflow. */
static int read_chunk_direct(shard_reader *r, size_t first, uint8_t *dst, char *cause, size_t n)
{
	size_t chunk_bytes = r->chunk_images * r->img_bytes;
	hsize_t offset[4] = {first, 0, 0, 0};
	hsize_t stored = 0;
	if (H5Dget_chunk_storage_size(r->images, offset, &stored) < 0 || stored == 0) {
		h5u_cause(cause, n);
		snprintf(cause, n, "chunk at image %zu is missing", first);
		return -1;
	}
	if (stored > ZSTD_compressBound(chunk_bytes)) {
		snprintf(cause, n, "chunk at image %zu is corrupt (%llu bytes stored for %zu)", first,
			 (unsigned long long)stored, chunk_bytes);
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
	uint32_t mask = 0;
	if (H5Dread_chunk(r->images, H5P_DEFAULT, offset, &mask, r->zbuf) < 0) {
		h5u_cause(cause, n);
		return -1;
	}
	if (r->direct == 1 || (mask & 1)) {
		if (stored != chunk_bytes) {
			snprintf(cause, n, "chunk at image %zu has %llu bytes (expected %zu)", first,
				 (unsigned long long)stored, chunk_bytes);
			return -1;
		}
		memcpy(dst, r->zbuf, chunk_bytes);
		return 0;
	}
	unsigned long long want = ZSTD_getFrameContentSize(r->zbuf, stored);
	if (want != chunk_bytes) {
		snprintf(cause, n, "chunk at image %zu is corrupt (zstd frame header unreadable or of the wrong size)",
			 first);
		return -1;
	}
	size_t got = ZSTD_decompressDCtx(r->dctx, dst, chunk_bytes, r->zbuf, stored);
	if (ZSTD_isError(got) || got != chunk_bytes) {
		snprintf(cause, n, "chunk at image %zu is corrupt (zstd: %s)", first,
			 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
		return -1;
	}
	return 0;
}

static int read_images(shard_reader *r, size_t start, size_t count)
{
	char cause[256];
	int rc = 0;
	if (r->direct && !r->dctx && !(r->dctx = ZSTD_createDCtx()))
		NB_BUG("ZSTD_createDCtx failed");
	if (!r->direct)
		rc = read_images_h5(r, start, count, cause, sizeof cause);
	for (size_t c = 0; r->direct && rc == 0 && c < count; c += r->chunk_images)
		rc = read_chunk_direct(r, start + c, r->block + c * r->img_bytes, cause, sizeof cause);
	if (rc < 0) {
		r->block_len = 0;
		return nb_error("cannot read shard '%s': images %zu..%zu: %s", r->path, start, start + count - 1, cause);
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
	if (r->meta.kind == SHARD_CAPTIONS) {
		out->tokens = r->tokens + r->offsets[i];
		out->ntokens = (int)(r->offsets[i + 1] - r->offsets[i]);
		out->score = r->score[i];
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
	free(r->objects);
	free(r);
}
