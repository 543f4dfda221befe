/* spike.h — the spike guard: decides whether a step's loss or gradient norm is an outlier
 * (z-score above a threshold) of the recent window of accepted steps, so its update is skipped. */
#ifndef COTRAIN_SPIKE_H
#define COTRAIN_SPIKE_H

#include "cotrain/err.h"

typedef struct ct_spike ct_spike_t;

/* A guard over the last `window` accepted steps, skipping at z > `zscore`. Returns 0 or
 * CT_ENOMEM. */
int ct_spike_create(ct_spike_t **out, int window, double zscore, ct_err_t *e);
/* Frees the guard and sets *self_p to NULL; NULL-safe. */
void ct_spike_destroy(ct_spike_t **self_p);

/* Returns 1 if the step should be skipped: loss or norm not finite, or (once at least 5 steps
 * are in the window) either exceeds the window's mean by more than zscore standard deviations.
 * A step that is not skipped enters the window. */
int ct_spike_check(ct_spike_t *s, double loss, double grad_norm);

/* The guard's history as a checkpoint keeps it: its *window, *count accepted steps (at most the
 * window) in ring order, the next write position *head, and the ring arrays (window entries
 * each; entries past count are unused). Restore checks the sizes: CT_EINVAL when they do not fit
 * the window. */
void ct_spike_state(const ct_spike_t *s, int *window, int *count, int *head, const double **loss,
                    const double **norm);
int ct_spike_restore(ct_spike_t *s, int count, int head, const double *loss, const double *norm,
                     ct_err_t *e);

#endif
