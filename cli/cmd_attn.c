/* nboost attn: where the decoder's caption positions look, per layer
 * (labeler/attn.h, docs/metrics.md "Attention shares"): the share of
 * attention on the visual tokens, on the caption read so far, and on the
 * single most-attended token, over all caption positions and over those of
 * correct and hallucinated statements. */
#include <stdio.h>
#include <stdlib.h>

#include "common/nb_error.h"
#include "labeler/attn.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "cli/cli_args.h"
#include "cli/commands.h"

typedef struct {
	const char *model, *shards;
	long batch, max_images;
	int json;
} attn_cli;

static const char *const group_name[ATTN_GROUPS] = {"all", "correct", "hallucinated"};

static void print_table(const attn_result *r, const char *dir)
{
	printf("shards               %s\n", dir);
	printf("images               %ld\n", r->images);
	printf("decoder              %d layers, %d heads, %d visual tokens\n", r->layers, r->heads, r->nv);
	printf("statements           %ld valid (%ld correct, %ld hallucinated), %ld malformed\n",
	       r->statements[ATTN_ALL], r->statements[ATTN_CORRECT], r->statements[ATTN_HALLUCINATED], r->malformed);
	printf("query positions      %ld (%ld correct, %ld hallucinated)\n", r->positions[ATTN_ALL],
	       r->positions[ATTN_CORRECT], r->positions[ATTN_HALLUCINATED]);
	printf("\nshare of attention per layer: visual = on the image tokens, text = on bos and the\n"
	       "caption so far, max = on the single most-attended token (docs/metrics.md)\n\n");
	printf("%-5s", "layer");
	for (int g = 0; g < ATTN_GROUPS; g++)
		printf("   %-*s", g + 1 < ATTN_GROUPS ? 20 : 0, group_name[g]);
	printf("\n%-5s", "");
	for (int g = 0; g < ATTN_GROUPS; g++)
		printf("   %6s %6s %6s", "visual", "text", "max");
	printf("\n");
	for (int l = 0; l < r->layers; l++) {
		printf("%-5d", l);
		for (int g = 0; g < ATTN_GROUPS; g++) {
			const attn_share *s = &r->share[g][l];
			if (r->positions[g])
				printf("   %6.4f %6.4f %6.4f", s->visual, s->text, s->max);
			else
				printf("   %6s %6s %6s", "-", "-", "-");
		}
		printf("\n");
	}
}

static void print_list(const attn_result *r, int g, int which)
{
	printf("[");
	for (int l = 0; l < r->layers; l++) {
		const attn_share *s = &r->share[g][l];
		printf("%s%.9g", l ? "," : "", which == 0 ? s->visual : which == 1 ? s->text : s->max);
	}
	printf("]");
}

static void print_json(const attn_result *r)
{
	printf("{\"images\":%ld,\"layers\":%d,\"heads\":%d,\"visual_tokens\":%d,\"malformed\":%ld", r->images,
	       r->layers, r->heads, r->nv, r->malformed);
	for (int g = 0; g < ATTN_GROUPS; g++) {
		printf(",\"%s\":{\"positions\":%ld,\"statements\":%ld,\"visual\":", group_name[g], r->positions[g],
		       r->statements[g]);
		print_list(r, g, 0);
		printf(",\"text\":");
		print_list(r, g, 1);
		printf(",\"max\":");
		print_list(r, g, 2);
		printf("}");
	}
	printf("}\n");
}

/* Returns -1 to go on, else the exit status (0 after --help, 2 after a
 * usage error, both printed). */
static int parse_args(int argc, char **argv, attn_cli *o)
{
	const cli_option opts[] = {
		CLI_OPT_REQUIRED("model", &o->model, "CKPT", "the checkpoint whose attention is measured"),
		CLI_OPT_REQUIRED("shards", &o->shards, "DIR",
				 "image or caption shards with /objects (e.g. a split of nboost synth)"),
		CLI_OPT_LONG("batch", &o->batch, 1, 4096, "N",
			     "images decoded and teacher-forced together (default " CLI_STR(ATTN_BATCH) ")"),
		CLI_OPT_LONG("max-images", &o->max_images, 1, 1000000000L, "N",
			     "measure only the first N images, in shard order (default: all)"),
		CLI_OPT_FLAG("json", 0, &o->json, "also print the figures as one JSON line"),
		CLI_OPT_END,
	};
	const cli_command cmd = {
		.name = "attn",
		.synopsis = "usage: nboost attn --model CKPT --shards DIR [--json] [--batch N] [--max-images N]\n",
		.about = "Decodes every image greedily (clean), teacher-forces bos + its caption and\n"
			 "reports, per decoder layer, the share of the caption positions' attention on\n"
			 "the visual tokens, on the caption so far, and on the single most-attended\n"
			 "token: over all positions, and over the positions that predict correct and\n"
			 "hallucinated statements (CHAIR_i's definition). docs/metrics.md defines each.\n",
		.opts = opts,
	};
	int npos;
	return cli_parse(&cmd, argc, argv, &npos);
}

int cmd_attn(int argc, char **argv)
{
	attn_cli o = {.batch = ATTN_BATCH};
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	vlm_model *m = ckpt_load_model(o.model, (int)o.batch);
	if (!m)
		nb_die("%s", nb_errmsg());
	attn_opts ao = {.batch = (int)o.batch, .max_images = o.max_images, .progress = "attn"};
	attn_result r;
	if (attn_shards(m, o.shards, &ao, &r) < 0)
		nb_die("%s", nb_errmsg());
	vlm_free(m);
	print_table(&r, o.shards);
	if (o.json)
		print_json(&r);
	return 0;
}
