/* nboost caption: greedy captions for PNG/JPEG files with a trained model.
 * Prints "path<TAB>caption" per image, in the order given. A file that
 * cannot be read or decoded gets an error line on stderr and the others go
 * on; the exit status is then 1. With --shards DIR it captions every image
 * of the committed image or caption shards in DIR instead, printing
 * "id<TAB>source<TAB>caption" (for example web shards from nboost ingest). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "model/decode.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "common/vocab.h"
#include "cli/commands.h"
#include "corpus/image/image_io.h"
#include "store/shard_store.h"

#define DEF_BATCH 16
#define DEF_MAX_PIXELS 40000000L

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nboost caption --model CKPT [options] IMAGE...\n"
		"       nboost caption --model CKPT --shards DIR [options]\n\n"
		"Captions PNG/JPEG images with a trained checkpoint (greedy, clean stream).\n"
		"Each image is center-cropped and resized to the model's input size.\n"
		"Prints one line per image: path<TAB>caption.\n\n"
		"options:\n"
		"  --model CKPT        checkpoint (.h5) to load (required)\n"
		"  --shards DIR        caption every image in DIR's shards; prints id<TAB>source<TAB>caption\n"
		"  --batch N           images decoded together (default %d)\n"
		"  --max-pixels N      refuse images larger than N pixels (default %ld)\n"
		"  --max-tokens N      cap on words per caption (default: the model's max_text - 1)\n"
		"  -h, --help          this help\n",
		DEF_BATCH, DEF_MAX_PIXELS);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void print_batch(int n, const uint64_t *ids, char **sources, const uint16_t *tok, const int *lens,
			int max_tokens, char *text)
{
	for (int k = 0; k < n; k++) {
		vocab_decode(tok + (size_t)k * max_tokens, lens[k], text, 16 * max_tokens + 16);
		printf("%llu\t%s\t%s\n", (unsigned long long)ids[k], sources[k], text);
		free(sources[k]);
	}
	fflush(stdout);
}

/* Captions every sample of the committed shards in dir, in shard order. */
static int caption_shards(const char *dir, decoder *d, int S, int batch, const decode_opts *o, uint8_t *pix,
			  uint64_t *ids, uint16_t *tok, int *lens, char *text)
{
	char **paths = NULL;
	int nshards = shard_list(dir, &paths);
	if (nshards < 0)
		nb_die("%s", nb_errmsg());
	if (nshards == 0)
		nb_die("no committed shards in '%s'", dir);
	size_t isz = (size_t)S * S * 3;
	char **sources = nb_xcalloc((size_t)batch, sizeof(char *));
	int n = 0;
	long total = 0;
	for (int si = 0; si < nshards; si++) {
		shard_reader *r = shard_open(paths[si]);
		if (!r)
			nb_die("%s", nb_errmsg());
		const shard_meta *meta = shard_reader_meta(r);
		shard_sample smp;
		int st;
		while ((st = shard_next(r, &smp)) == 1) {
			nb_image img = {meta->width, meta->height, (uint8_t *)smp.image};
			if (meta->width == S && meta->height == S)
				memcpy(pix + (size_t)n * isz, smp.image, isz);
			else
				image_resize(&img, S, S, RESIZE_CENTER_CROP, pix + (size_t)n * isz);
			ids[n] = smp.id;
			sources[n] = nb_xstrdup(smp.source ? smp.source : "");
			if (++n == batch) {
				if (decode_greedy(d, pix, ids, n, o, tok, lens) < 0)
					nb_die("%s", nb_errmsg());
				print_batch(n, ids, sources, tok, lens, o->max_tokens, text);
				total += n;
				n = 0;
			}
		}
		if (st < 0)
			nb_die("%s", nb_errmsg());
		shard_close(r);
	}
	if (n) {
		if (decode_greedy(d, pix, ids, n, o, tok, lens) < 0)
			nb_die("%s", nb_errmsg());
		print_batch(n, ids, sources, tok, lens, o->max_tokens, text);
		total += n;
	}
	fprintf(stderr, "nboost caption: %ld images from %d shard(s) in '%s'\n", total, nshards, dir);
	free(sources);
	shard_list_free(paths, nshards);
	return 0;
}

int cmd_caption(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},   {"batch", required_argument, NULL, 'b'},
		{"max-pixels", required_argument, NULL, 'p'}, {"max-tokens", required_argument, NULL, 't'},
		{"shards", required_argument, NULL, 's'},  {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *model = NULL, *shards = NULL;
	long batch = DEF_BATCH, max_pixels = DEF_MAX_PIXELS, max_tokens = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 'b':
			if (parse_long(optarg, 1, 4096, &batch) < 0) {
				fprintf(stderr, "nboost caption: --batch '%s' is not an integer in 1..4096\n\n", optarg);
				usage(stderr);
				return 2;
			}
			break;
		case 'p':
			if (parse_long(optarg, 1, 1L << 40, &max_pixels) < 0) {
				fprintf(stderr, "nboost caption: --max-pixels '%s' is not a positive integer\n\n", optarg);
				usage(stderr);
				return 2;
			}
			break;
		case 't':
			if (parse_long(optarg, 1, 4095, &max_tokens) < 0) {
				fprintf(stderr, "nboost caption: --max-tokens '%s' is not an integer in 1..4095\n\n", optarg);
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			shards = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!model || (optind >= argc) == !shards) {
		fprintf(stderr, "nboost caption: %s\n\n",
			!model ? "--model is required"
			       : shards ? "give either --shards or image files, not both" : "no images given");
		usage(stderr);
		return 2;
	}
	vlm_model *m = ckpt_load_model(model, (int)batch);
	if (!m)
		nb_die("%s", nb_errmsg());
	const vlm_config *cfg = vlm_get_config(m);
	if (max_tokens == 0 || max_tokens > cfg->max_text - 1)
		max_tokens = cfg->max_text - 1;
	decoder *d = decoder_create(m, (int)batch, 0);
	if (!d)
		nb_die("%s", nb_errmsg());
	int S = cfg->image_size;
	size_t isz = (size_t)S * S * 3;
	uint8_t *pix = nb_xmalloc(isz * (size_t)batch);
	uint64_t *keys = nb_xcalloc((size_t)batch, sizeof(uint64_t));
	const char **paths = nb_xcalloc((size_t)batch, sizeof(char *));
	uint16_t *tok = nb_xmalloc(sizeof(uint16_t) * (size_t)batch * (size_t)max_tokens);
	int *lens = nb_xmalloc(sizeof(int) * (size_t)batch);
	decode_opts o = {0, 0.0f, 0, (int)max_tokens};
	int failed = 0;
	char *text = nb_xmalloc(16 * (size_t)max_tokens + 16);
	if (shards) {
		int rc = caption_shards(shards, d, S, (int)batch, &o, pix, keys, tok, lens, text);
		free(text), free(pix), free(keys), free(paths), free(tok), free(lens);
		decoder_free(d);
		vlm_free(m);
		return rc;
	}
	for (int i = optind; i < argc;) {
		int n = 0;
		for (; i < argc && n < batch; i++) {
			nb_image img;
			if (image_load(argv[i], (size_t)max_pixels, &img) != IMG_OK) {
				fprintf(stderr, "nboost: error: %s\n", nb_errmsg());
				failed++;
				continue;
			}
			image_resize(&img, S, S, RESIZE_CENTER_CROP, pix + (size_t)n * isz);
			image_free(&img);
			paths[n++] = argv[i];
		}
		if (!n)
			continue;
		if (decode_greedy(d, pix, keys, n, &o, tok, lens) < 0)
			nb_die("%s", nb_errmsg());
		for (int k = 0; k < n; k++) {
			vocab_decode(tok + (size_t)k * max_tokens, lens[k], text, 16 * (int)max_tokens + 16);
			printf("%s\t%s\n", paths[k], text);
		}
		fflush(stdout);
	}
	free(text), free(pix), free(keys), free(paths), free(tok), free(lens);
	decoder_free(d);
	vlm_free(m);
	if (failed)
		fprintf(stderr, "nboost caption: %d of %d images failed\n", failed, argc - optind);
	return failed ? 1 : 0;
}
