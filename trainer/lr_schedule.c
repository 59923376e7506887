#include "trainer/lr_schedule.h"

#include <math.h>

double lr_schedule_at(const lr_schedule *s, long step)
{
	if (step < 0 || step >= s->total)
		return 0.0;
	if (step < s->warmup)
		return s->base * (double)(step + 1) / (double)s->warmup;
	long span = s->total - s->warmup;
	double progress = (double)(step - s->warmup) / (double)span;
	return s->base * 0.5 * (1.0 + cos(M_PI * progress));
}
