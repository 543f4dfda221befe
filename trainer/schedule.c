/* schedule.c — warmup + cosine/linear/constant learning-rate schedule (see schedule.h). */
#include "cotrain/schedule.h"

#include <math.h>

double ct_lr_at(const ct_config_t *cfg, int64_t step) {
    double lr = cfg->train.lr, min_lr = cfg->train.min_lr;
    int64_t warmup = cfg->train.warmup_steps;
    if (step < warmup) return lr * (double)(step + 1) / (double)warmup;
    int64_t span = cfg->train.steps - warmup;
    double p = (double)(step - warmup) / (double)(span > 1 ? span : 1);
    if (p > 1.0) p = 1.0;
    switch (cfg->train.schedule) {
    case CT_SCHED_COSINE: return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * p));
    case CT_SCHED_LINEAR: return lr + (min_lr - lr) * p;
    case CT_SCHED_CONSTANT: return lr;
    }
    return lr;
}
