/* watchdog.h — notices a rank that waits far longer than its work should take (a rank that died
 * or hangs leaves the others waiting inside a collective forever) and calls back, from its own
 * thread, so the process can report it and end instead of hanging.
 *
 * Two limits, because two kinds of work. A training step (the forward and backward passes and
 * the gradients' all-reduce) takes about the same time every step, so it is bounded tightly:
 * max(min_s, factor x the 99th percentile of recent steps). Work that is slow by nature and
 * varies — checkpoint saves, evaluations, exchanges with the coordinator, and start-up (the first
 * two steps: memory first touched, the peak measured) — is bracketed by ct_watchdog_slow and
 * bounded by slow_s instead. A step's time is the time between beats less its slow sections, so a
 * save never inflates the percentile and a tight step limit never kills a long save. */
#ifndef COTRAIN_WATCHDOG_H
#define COTRAIN_WATCHDOG_H

#include "cotrain/err.h"

typedef struct ct_watchdog ct_watchdog_t;

typedef struct ct_watchdog_limits {
    double factor; /* >= 1: a step may take factor x p99 ... */
    double min_s;  /* > 0: ... but at least this long */
    double slow_s; /* > 0: the bound of a slow section and of start-up */
} ct_watchdog_limits_t;

/* What the watchdog saw when a limit passed. */
typedef struct ct_watchdog_stall {
    double waited;    /* seconds of the step (slow sections excluded), or of the slow section */
    double limit;     /* the bound that passed */
    double p99;       /* the recent steps' 99th percentile (0: no step yet) */
    long long step;   /* the step last beaten */
    const char *what; /* the slow section's name (ct_watchdog_slow); "start-up" in the first two
                         steps (no step time known yet: slow_s bounds them); NULL in a step */
} ct_watchdog_stall_t;

/* Called once from the watchdog's thread when a limit passes. It should report and end the
 * process. */
typedef void (*ct_watchdog_fn)(const ct_watchdog_stall_t *stall, void *arg);

/* Starts watching; the clock starts now, in start-up (bounded by slow_s). Errors:
 * CT_EINVAL for limits out of range, CT_ENOMEM (also when the thread cannot start). *out is owned
 * by the caller. */
int ct_watchdog_create(ct_watchdog_t **out, const ct_watchdog_limits_t *limits, ct_watchdog_fn fn,
                       void *arg, ct_err_t *e);

/* Stops the thread and frees the watchdog; sets *self_p to NULL; NULL-safe. */
void ct_watchdog_destroy(ct_watchdog_t **self_p);

/* Step `step` finished: its time since the last beat, less slow sections, joins the percentile
 * (unless it is the first, which start-up costs inflate). Ends a slow section that is open; the
 * next step's clock starts now. A NULL watchdog does nothing (so do the calls below). */
void ct_watchdog_beat(ct_watchdog_t *self, long long step);

/* Slow work starts (`what`, a string that outlives the section, names it in the report): the
 * step's clock stops and slow_s bounds the section from now. */
void ct_watchdog_slow(ct_watchdog_t *self, const char *what);

/* The slow work ended: the step's clock goes on. */
void ct_watchdog_fast(ct_watchdog_t *self);

/* The step limit now, in seconds: max(min_s, factor x p99), or slow_s in start-up. */
double ct_watchdog_limit(ct_watchdog_t *self);

#endif
