/* AdamW, the LR schedule and gradient clipping against values computed by
 * hand from their formulas (and checked against torch.optim.AdamW 1.13). */
#include <math.h>
#include <string.h>

#include "test/test_util.h"
#include "trainer/adamw.h"
#include "trainer/grad_clip.h"
#include "trainer/lr_schedule.h"

static void test_adamw_two_steps(void)
{
	adamw_hparams h = adamw_defaults();
	CHECK(h.beta1 == 0.9 && h.beta2 == 0.999 && h.eps == 1e-8 && h.weight_decay == 0.05);
	/* p0 = 1, lr 0.1, grads 0.5 then -0.25. With decay:
	 * step 1: p = 0.995 - 0.1 * 0.5 / (0.5 + 1e-8)             = 0.895000002
	 * step 2: m = 0.02, v = 0.00031225, mhat = 0.02 / 0.19,
	 *         vhat = 0.00031225 / 0.001999 -> p = 0.8638912987 */
	float p[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0};
	float g1[2] = {0.5f, 0.5f}, g2[2] = {-0.25f, -0.25f};
	adamw_update(p, g1, m, v, 1, &h, 0.1, 1, 1);
	adamw_update(p + 1, g1 + 1, m + 1, v + 1, 1, &h, 0.1, 1, 0);
	CHECK_NEAR(p[0], 0.895000002, 1e-6);
	CHECK_NEAR(p[1], 0.900000002, 1e-6);
	CHECK_NEAR(m[0], 0.05, 1e-7);
	CHECK_NEAR(v[0], 0.00025, 1e-9);
	adamw_update(p, g2, m, v, 1, &h, 0.1, 2, 1);
	adamw_update(p + 1, g2 + 1, m + 1, v + 1, 1, &h, 0.1, 2, 0);
	CHECK_NEAR(p[0], 0.8638912987, 1e-6);
	CHECK_NEAR(p[1], 0.8733662987, 1e-6);
	CHECK_NEAR(m[0], 0.02, 1e-7);
	CHECK_NEAR(v[0], 0.00031225, 1e-9);
	/* A zero gradient with zero moments leaves a non-decayed parameter alone. */
	float q = 2.0f, z = 0.0f, mq = 0.0f, vq = 0.0f;
	adamw_update(&q, &z, &mq, &vq, 1, &h, 0.1, 1, 0);
	CHECK(q == 2.0f);
	/* ...and decay alone shrinks a decayed one by lr * wd. */
	adamw_update(&q, &z, &mq, &vq, 1, &h, 0.1, 2, 1);
	CHECK_NEAR(q, 2.0 * (1.0 - 0.1 * 0.05), 1e-7);
}

static void test_lr_schedule(void)
{
	lr_schedule s = {.base = 1e-3, .warmup = 200, .total = 4000};
	CHECK_NEAR(lr_schedule_at(&s, 0), 5e-6, 1e-12);
	CHECK_NEAR(lr_schedule_at(&s, 99), 5e-4, 1e-12);
	CHECK_NEAR(lr_schedule_at(&s, 199), 1e-3, 1e-12);
	CHECK_NEAR(lr_schedule_at(&s, 200), 1e-3, 1e-12);
	/* halfway through the cosine part: (1 + cos(pi/2)) / 2 = 0.5 */
	CHECK_NEAR(lr_schedule_at(&s, 2100), 5e-4, 1e-12);
	CHECK_NEAR(lr_schedule_at(&s, 1150), 1e-3 * 0.5 * (1 + cos(M_PI * 0.25)), 1e-12);
	CHECK(lr_schedule_at(&s, 3999) > 0.0 && lr_schedule_at(&s, 3999) < 1e-9);
	CHECK(lr_schedule_at(&s, 4000) == 0.0);
	CHECK(lr_schedule_at(&s, -1) == 0.0);
	/* monotone down after warmup */
	int mono = 1;
	for (long t = 201; t < 4000; t++)
		if (lr_schedule_at(&s, t) > lr_schedule_at(&s, t - 1))
			mono = 0;
	CHECK(mono);
	lr_schedule nw = {.base = 0.5, .warmup = 0, .total = 10};
	CHECK_NEAR(lr_schedule_at(&nw, 0), 0.5, 1e-12);
	CHECK_NEAR(lr_schedule_at(&nw, 5), 0.25, 1e-12);
	/* warmup longer than the run: linear ramp only */
	lr_schedule lw = {.base = 1.0, .warmup = 100, .total = 10};
	CHECK_NEAR(lr_schedule_at(&lw, 9), 0.1, 1e-12);
}

static void test_clip(void)
{
	float g[3] = {3.0f, 4.0f, 0.0f};
	CHECK_NEAR(grad_global_norm(g, 3), 5.0, 1e-12);
	double n = grad_clip_global(g, 3, 1.0);
	CHECK_NEAR(n, 5.0, 1e-12);
	CHECK_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
	CHECK_NEAR(g[1], 4.0 / (5.0 + 1e-6), 1e-7);
	CHECK(g[2] == 0.0f);
	CHECK_NEAR(grad_global_norm(g, 3), 1.0, 1e-6);
	/* under the limit: untouched */
	float h[2] = {0.3f, 0.4f};
	CHECK_NEAR(grad_clip_global(h, 2, 1.0), 0.5, 1e-7);
	CHECK(h[0] == 0.3f && h[1] == 0.4f);
	/* max_norm 0 = off */
	float k[1] = {100.0f};
	grad_clip_global(k, 1, 0.0);
	CHECK(k[0] == 100.0f);
}

int main(void)
{
	test_adamw_two_steps();
	test_lr_schedule();
	test_clip();
	return test_summary("test_trainer_optim");
}
