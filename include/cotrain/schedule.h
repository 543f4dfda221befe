/* schedule.h — the learning-rate schedule: linear warmup, then cosine or linear decay to
 * train.min_lr over the rest of train.steps, or constant. */
#ifndef COTRAIN_SCHEDULE_H
#define COTRAIN_SCHEDULE_H

#include <stdint.h>

#include "cotrain/config.h"

/* Learning rate for optimizer step `step` (0-based): lr*(step+1)/warmup during warmup; then
 * with p = (step - warmup) / max(1, steps - warmup): cosine min_lr + (lr-min_lr)(1+cos(pi p))/2,
 * linear lr + (min_lr - lr) p, constant lr. */
double ct_lr_at(const ct_config_t *cfg, int64_t step);

#endif
