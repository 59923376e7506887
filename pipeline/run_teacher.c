/* A teacher rank: receives the round's model from the master, asks for
 * units, decodes 1 clean + K noisy captions per image and sends each unit's
 * captions (with its images) to the unit's filter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nb_error.h"
#include "model/decode.h"
#include "model/vlm.h"
#include "pipeline/run_internal.h"
#include "store/shard_store.h"

typedef struct {
	run_ctx *c;
	vlm_model *m;
	decoder *dec;
	int round, K1, maxtok, S;
	char digest[17];
	shard_reader *rd;            /* the last shard read, kept open */
	int rd_index;
	/* The last unit's message, in flight to its filter while the next unit
	 * decodes: a blocking send held the teacher until the filter took the
	 * message (about 5% of its time, docs/performance.md). */
	MPI_Request send_req;
	nb_buf send_buf;
} teacher;

NB_NORETURN static void teacher_die(const teacher *t, const char *what)
{
	fprintf(stderr, "nboost: fatal: teacher rank %d: %s: %s\n", t->c->rank, what, nb_errmsg());
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

/* TAG_MODEL: model_hdr, then the parameters as floats in messages of at
 * most 2^28 floats. */
static void receive_model(teacher *t)
{
	model_hdr h;
	MPI_Recv(&h, sizeof h, MPI_BYTE, 0, TAG_MODEL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	const int32_t *f = h.cfg;
	vlm_config cfg = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]};
	t->round = h.round;
	memcpy(t->digest, h.digest, sizeof t->digest);
	if (!t->m || !vlm_config_equal(vlm_get_config(t->m), &cfg)) {
		decoder_free(t->dec);
		vlm_free(t->m);
		t->m = vlm_create(&cfg, t->c->job->batch * (1 + t->c->job->K));
		if (!t->m)
			teacher_die(t, "cannot create the teacher model");
		t->dec = decoder_create(t->m, t->c->job->batch, t->c->job->K);
		if (!t->dec)
			teacher_die(t, "cannot create the decoder");
	}
	size_t n = vlm_nparams(t->m);
	float *p = vlm_params(t->m);
	for (size_t off = 0; off < n;) {
		int k = n - off > (1u << 28) ? (1 << 28) : (int)(n - off);
		MPI_Recv(p + off, k, MPI_FLOAT, 0, TAG_MODEL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		off += (size_t)k;
	}
	t->K1 = 1 + t->c->job->K;
	t->maxtok = cfg.max_text - 1;
	t->S = cfg.image_size;
}

/* Waits for the message in flight, if any, and frees its buffer. */
static void finish_send(teacher *t)
{
	if (t->send_req != MPI_REQUEST_NULL)
		MPI_Wait(&t->send_req, MPI_STATUS_IGNORE);
	free(t->send_buf.data);
	t->send_buf = (nb_buf){0};
}

static shard_reader *open_shard(teacher *t, int index)
{
	if (t->rd && t->rd_index == index)
		return t->rd;
	if (t->rd)
		shard_close(t->rd);
	t->rd = shard_open(t->c->unlabeled[index]);
	t->rd_index = index;
	if (!t->rd)
		teacher_die(t, "cannot read an unlabeled shard");
	const shard_meta *m = shard_reader_meta(t->rd);
	if (m->height != t->S || m->width != t->S) {
		nb_error("shard '%s' holds %dx%d images but the teacher model takes %dx%d", t->c->unlabeled[index],
			 m->height, m->width, t->S, t->S);
		teacher_die(t, "wrong image size");
	}
	return t->rd;
}

/* Decodes one unit and sends it to its filter. The message (bytes):
 * caps_hdr, ids u64[n], lens i32[n*K1], tokens u16[n*K1*maxtok],
 * images u8[n*S*S*3], objects u8[n*SCENE_CELLS] (when has_objects),
 * sources (n NUL-terminated strings). */
static void label_unit(teacher *t, const unit_msg *u)
{
	size_t n = (size_t)u->count, img = (size_t)t->S * t->S * 3;
	shard_reader *rd = open_shard(t, u->shard);
	int has_obj = shard_reader_meta(rd)->has_objects;
	caps_hdr h = {u->round, (int32_t)n, t->K1, t->maxtok, t->S, has_obj, 0, u->unit, {0}};
	memcpy(h.digest, t->digest, sizeof h.digest);
	uint64_t *ids = nb_xmalloc(n * sizeof *ids);
	int32_t *lens = nb_xmalloc(n * (size_t)t->K1 * sizeof *lens);
	uint16_t *toks = nb_xcalloc(n * (size_t)t->K1 * (size_t)t->maxtok, sizeof *toks);
	uint8_t *images = nb_xmalloc(n * img), *objects = nb_xcalloc(n, SCENE_CELLS);
	nb_buf src = {0};
	for (size_t i = 0; i < n; i++) {
		shard_sample s;
		if (shard_get(rd, (size_t)u->start + i, &s) < 0)
			teacher_die(t, "cannot read an image");
		ids[i] = s.id;
		memcpy(images + i * img, s.image, img);
		if (has_obj)
			memcpy(objects + i * SCENE_CELLS, s.objects, SCENE_CELLS);
		nb_buf_add(&src, s.source ? s.source : "", strlen(s.source ? s.source : "") + 1);
	}
	h.src_bytes = (int32_t)src.len;
	decode_opts o = {t->c->job->K, (float)t->c->job->sigma, run_teacher_seed(t->c, u->round), t->maxtok};
	int bmax = t->c->job->batch, *blens = nb_xmalloc((size_t)bmax * (size_t)t->K1 * sizeof(int));
	for (size_t i = 0; i < n; i += (size_t)bmax) {
		int b = (int)(n - i < (size_t)bmax ? n - i : (size_t)bmax);
		if (decode_greedy(t->dec, images + i * img, ids + i, b, &o, toks + i * (size_t)t->K1 * (size_t)t->maxtok,
				  blens) < 0)
			teacher_die(t, "decoding failed");
		for (int k = 0; k < b * t->K1; k++)
			lens[i * (size_t)t->K1 + (size_t)k] = blens[k];
		/* Lets MPI move the previous unit's message along between batches
		 * (without shared-memory single copy it only progresses in calls). */
		if (t->send_req != MPI_REQUEST_NULL) {
			int done;
			MPI_Test(&t->send_req, &done, MPI_STATUS_IGNORE);
		}
	}
	free(blens);
	nb_buf msg = {0};
	nb_buf_add(&msg, &h, sizeof h);
	nb_buf_add(&msg, ids, n * sizeof *ids);
	nb_buf_add(&msg, lens, n * (size_t)t->K1 * sizeof *lens);
	nb_buf_add(&msg, toks, n * (size_t)t->K1 * (size_t)t->maxtok * sizeof *toks);
	nb_buf_add(&msg, images, n * img);
	if (has_obj)
		nb_buf_add(&msg, objects, n * SCENE_CELLS);
	nb_buf_add(&msg, src.data, src.len);
	int filter = t->c->first_filter + (int)(u->unit % t->c->job->filters);
	finish_send(t);
	t->send_buf = msg;
	MPI_Isend(msg.data, (int)msg.len, MPI_BYTE, filter, TAG_CAPS, MPI_COMM_WORLD, &t->send_req);
	free(src.data), free(ids), free(lens), free(toks), free(images), free(objects);
}

static void tell_master(int tag, int round)
{
	int32_t r = round;
	MPI_Send(&r, 1, MPI_INT32_T, 0, tag, MPI_COMM_WORLD);
}

/* One round: in_flight requests out at once; one more per unit finished
 * until the master says there is no more work. Ends with TAG_IDLE, after
 * which no request of this teacher is in flight. Returns 1 on TAG_STOP. */
static int label_round(teacher *t)
{
	int outstanding = 0, no_more = 0, qn = 0, qcap = 0;
	unit_msg *q = NULL;
	for (; outstanding < t->c->job->in_flight; outstanding++)
		tell_master(TAG_REQ, t->round);
	while (outstanding > 0 || qn > 0) {
		MPI_Status st;
		/* Take every reply that is already here, then work. */
		while (outstanding > 0 && (qn == 0 ? run_wait(0, MPI_ANY_TAG, -1, &st)
						   : run_wait(0, MPI_ANY_TAG, 0, &st))) {
			if (st.MPI_TAG == TAG_UNIT) {
				NB_GROW(q, qcap, qn + 1, 4);
				MPI_Recv(&q[qn++], sizeof *q, MPI_BYTE, 0, TAG_UNIT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else if (st.MPI_TAG == TAG_NOWORK) {
				int32_t r;
				MPI_Recv(&r, 1, MPI_INT32_T, 0, TAG_NOWORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				no_more = 1;
			} else if (st.MPI_TAG == TAG_STOP) {
				finish_send(t);
				free(q);
				return 1;
			} else {
				NB_BUG("teacher: unexpected tag %d from the master during a round", st.MPI_TAG);
			}
			outstanding--;
		}
		if (qn == 0)
			continue;
		unit_msg u = q[0];
		memmove(q, q + 1, (size_t)--qn * sizeof *q);
		label_unit(t, &u);
		if (!no_more) {
			tell_master(TAG_REQ, t->round);
			outstanding++;
		}
	}
	free(q);
	finish_send(t);
	tell_master(TAG_IDLE, t->round);
	return 0;
}

void run_teacher(run_ctx *c)
{
	teacher t = {.c = c, .rd_index = -1, .send_req = MPI_REQUEST_NULL};
	for (;;) {
		MPI_Status st;
		run_wait(0, MPI_ANY_TAG, -1, &st);
		if (st.MPI_TAG == TAG_STOP) {
			int32_t x;
			MPI_Recv(&x, 1, MPI_INT32_T, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			break;
		}
		if (st.MPI_TAG != TAG_MODEL)
			NB_BUG("teacher: unexpected tag %d from the master between rounds", st.MPI_TAG);
		receive_model(&t);
		if (label_round(&t))
			break;
	}
	if (t.rd)
		shard_close(t.rd);
	decoder_free(t.dec);
	vlm_free(t.m);
}
