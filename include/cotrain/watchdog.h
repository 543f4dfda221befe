/* watchdog.h — notices a training step that takes far longer than steps usually do (a rank that
 * died or hangs leaves the others waiting inside a collective forever) and calls back, from its
 * own thread, so the process can report it and end instead of hanging.
 *
 * The limit is max(min_s, factor x the 99th percentile of recent step times); time spent on
 * purpose elsewhere (checkpoints) is excluded by beating after it. */
#ifndef COTRAIN_WATCHDOG_H
#define COTRAIN_WATCHDOG_H

#include "cotrain/err.h"

typedef struct ct_watchdog ct_watchdog_t;

/* Called once from the watchdog's thread when the limit passes: `waited` seconds since the last
 * beat, `limit` the bound, `step` the step last beaten. It should report and end the process. */
typedef void (*ct_watchdog_fn)(double waited, double limit, long long step, void *arg);

/* Starts watching (the clock starts now). factor >= 1, min_s > 0. Errors: CT_ENOMEM (also when
 * the thread cannot start). *out is owned by the caller. */
int ct_watchdog_create(ct_watchdog_t **out, double factor, double min_s, ct_watchdog_fn fn,
                       void *arg, ct_err_t *e);

/* Stops the thread and frees the watchdog; sets *self_p to NULL; NULL-safe. */
void ct_watchdog_destroy(ct_watchdog_t **self_p);

/* Records that step `step` finished, taking `step_s` seconds (its time joins the percentile;
 * pass a negative step_s for a beat after other work, which only restarts the clock). */
void ct_watchdog_beat(ct_watchdog_t *self, long long step, double step_s);

/* The current limit in seconds. */
double ct_watchdog_limit(ct_watchdog_t *self);

#endif
