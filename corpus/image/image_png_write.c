/* image_write_png: RGB8 to a PNG file with libpng, atomically. The file is
 * written under nb_tmp_name(), flushed and published with nb_publish(), so
 * a reader (ingest, a manifest consumer) never sees a half-written image,
 * even if the writer is killed. It is not fsynced (nb_publish's durable is
 * 0): one fsync per small image cost ~5 ms, 20x the encoding. Callers that need durability across a power loss sync
 * once for a batch (synth calls syncfs before it records a shard's PNGs). */
#include "corpus/image/image_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"

/* libpng reports errors through a callback that must not return; the
 * message is kept here for the nb_error() after the longjmp. */
typedef struct {
	jmp_buf jmp;
	char msg[200];
} png_err_ctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
	png_err_ctx *ctx = png_get_error_ptr(png);
	snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
	longjmp(ctx->jmp, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* The libpng part, isolated so that no local variable lives across setjmp. */
static int encode(FILE *f, const uint8_t *rgb, int width, int height, png_err_ctx *ctx)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
	if (!png) {
		snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
		return -1;
	}
	png_infop info = png_create_info_struct(png);
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
		return -1;
	}
	if (setjmp(ctx->jmp)) {
		png_destroy_write_struct(&png, &info);
		return -1;
	}
	png_init_io(png, f);
	/* Small synthetic images: fast compression costs little size. */
	png_set_compression_level(png, 3);
	png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < height; y++)
		png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return 0;
}

int image_write_png(const char *path, const uint8_t *rgb, int width, int height)
{
	char tmp[4200];
	if (width <= 0 || height <= 0 || width > 1 << 20 || height > 1 << 20)
		return nb_error("cannot write png '%s': bad dimensions %dx%d", path, width, height);
	if (nb_tmp_name(tmp, sizeof tmp, path) < 0)
		return -1;
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return nb_error("cannot write png '%s': %s", tmp, strerror(errno));

	png_err_ctx ctx;
	ctx.msg[0] = '\0';
	if (encode(f, rgb, width, height, &ctx)) {
		fclose(f);
		unlink(tmp);
		return nb_error("cannot write png '%s': libpng: %s", path, ctx.msg);
	}
	/* fclose flushes, and fails when the flush does. */
	if (fclose(f)) {
		int e = errno;
		unlink(tmp);
		return nb_error("cannot write png '%s': %s", tmp, strerror(e));
	}
	/* Not durable, see the top of this file. */
	return nb_publish(tmp, path, 0);
}
