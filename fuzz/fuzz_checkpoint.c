/* libFuzzer target: the checkpoint reader (model/checkpoint.c) on an HDF5
 * file image. The input is opened with ckpt_open_image (HDF5's core driver,
 * as ckpt_open does on a path: header, attribute checksums, the refusal of
 * external storage, virtual datasets and non-hard links); when it opens
 * and its model is small, the parameters, the optimizer state and the
 * trainer's /state items are read too. Every outcome must be a clean error
 * or success: no crash, no sanitizer report, no leak, no huge allocation.
 * Seeds: fuzz/corpus/fuzz_checkpoint/ (tiny training checkpoints). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <hdf5.h>

#include "common/nb_error.h"
#include "model/checkpoint.h"
#include "model/vlm.h"

/* Models beyond this are skipped after the header: their tensors would
 * only make the fuzzer slow, the reading code is the same. */
static int small(const vlm_config *c)
{
	return c->image_size <= 32 && c->enc_dim <= 32 && c->dec_dim <= 32 && c->enc_layers <= 2 &&
	       c->dec_layers <= 2 && c->mlp_ratio <= 4 && c->max_text <= 64 && c->vocab <= 512;
}

static void read_state(ckpt_file *f)
{
	static const char *const u64_items[] = {"data_order", "data_position", "shard_steps", "shard_counts"};
	for (size_t i = 0; i < sizeof u64_items / sizeof u64_items[0]; i++) {
		uint64_t *v = NULL;
		size_t n = 0;
		if (ckpt_read_u64(f, u64_items[i], &v, &n) == 0)
			free(v);
	}
	char *text = NULL;
	if (ckpt_read_text(f, "shard_paths", &text) == 0)
		free(text);
}

/* HDF5 1.10.8 leaks an object header (allocated in its metadata cache,
 * H5C_protect) when decoding a corrupt one fails. The library is built
 * without frame pointers, so the leak's stack shows only libhdf5: leaks
 * allocated inside it are suppressed, and what nboost could leak there
 * instead (an id left open) is checked after every input below. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

/* A corrupt length in the file makes HDF5 ask malloc for petabytes, which
 * it handles when malloc fails (as it does outside ASan): let it fail here
 * too instead of stopping the fuzzer. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* HDF5 keeps freed blocks on its own free lists for reuse, where the leak
 * checker that libFuzzer runs between inputs can take them for leaks: no
 * free lists, every block goes back to malloc. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	H5set_free_list_limits(0, 0, 0, 0, 0, 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_file *f = ckpt_open_image(data, size, "fuzz.h5", NULL);
	if (!f) {
		if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
			abort(); /* a refused file must be closed */
		return 0;
	}
	const vlm_config *c = ckpt_config(f);
	(void)ckpt_step(f);
	(void)ckpt_job_config(f);
	if (small(c)) {
		vlm_model *m = vlm_create(c, 1);
		if (m && ckpt_read_params(f, m) == 0 && ckpt_has_adam(f)) {
			size_t n = vlm_nparams(m);
			float *am = calloc(n, sizeof(float)), *av = calloc(n, sizeof(float));
			if (am && av)
				(void)ckpt_read_adam(f, m, am, av);
			free(am);
			free(av);
		}
		vlm_free(m);
	}
	read_state(f);
	ckpt_close(f);
	nb_errclear();
	if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
		abort(); /* the reader left an HDF5 file or object open */
	return 0;
}
