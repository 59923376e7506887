/* Learning-rate schedule: linear warmup, then cosine decay to 0.
 *
 * step is the 0-based index of the update about to be made:
 *   step < warmup:            lr = base * (step + 1) / warmup
 *   warmup <= step < total:   lr = base * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2
 *   step >= total:            lr = 0
 * So the first update uses base/warmup, the peak base is reached at the last
 * warmup step, and the last update (step total-1) is small but not zero.
 * Pure function; no state. */
#ifndef NB_LR_SCHEDULE_H
#define NB_LR_SCHEDULE_H

typedef struct {
	double base;   /* peak learning rate (1e-3) */
	long warmup;   /* linear warmup updates (200); 0 = none */
	long total;    /* total updates, train.steps (4000) */
} lr_schedule;

double lr_schedule_at(const lr_schedule *s, long step);

#endif
