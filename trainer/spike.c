/* spike.c — the spike guard's ring buffers and z-scores (see spike.h). */
#include "cotrain/spike.h"

#include <math.h>
#include <stdlib.h>

enum { MIN_HISTORY = 5 };

struct ct_spike {
    int window, count, head;
    double zscore;
    double *loss, *norm; /* ring buffers (window) */
};

int ct_spike_create(ct_spike_t **out, int window, double zscore, ct_err_t *e) {
    int rc = 0;
    ct_spike_t *s = NULL;
    *out = NULL;
    CT_ALLOC(e, s, 1, fail);
    s->window = window;
    s->zscore = zscore;
    CT_ALLOC(e, s->loss, window, fail);
    CT_ALLOC(e, s->norm, window, fail);
    *out = s;
    return 0;
fail:
    ct_spike_destroy(&s);
    return rc;
}

void ct_spike_destroy(ct_spike_t **self_p) {
    ct_spike_t *s = *self_p;
    if (!s) return;
    free(s->loss);
    free(s->norm);
    free(s);
    *self_p = NULL;
}

/* Is x more than z standard deviations above the mean of ring[0..n)? */
static int is_outlier(const double *ring, int n, double x, double z) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += ring[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (ring[i] - mean) * (ring[i] - mean);
    double sd = sqrt(var / n);
    return x - mean > z * sd + 1e-12 * fabs(mean);
}

int ct_spike_check(ct_spike_t *s, double loss, double grad_norm) {
    if (!isfinite(loss) || !isfinite(grad_norm)) return 1;
    if (s->count >= MIN_HISTORY && (is_outlier(s->loss, s->count, loss, s->zscore) ||
                                    is_outlier(s->norm, s->count, grad_norm, s->zscore)))
        return 1;
    s->loss[s->head] = loss;
    s->norm[s->head] = grad_norm;
    s->head = (s->head + 1) % s->window;
    if (s->count < s->window) s->count++;
    return 0;
}

void ct_spike_state(const ct_spike_t *s, int *window, int *count, int *head, const double **loss,
                    const double **norm) {
    *window = s->window;
    *count = s->count;
    *head = s->head;
    *loss = s->loss;
    *norm = s->norm;
}

int ct_spike_restore(ct_spike_t *s, int count, int head, const double *loss, const double *norm,
                     ct_err_t *e) {
    if (count < 0 || count > s->window || head < 0 || head >= s->window)
        return CT_ERR(e, CT_EINVAL, "spike guard state (count %d, head %d) does not fit a window "
                      "of %d", count, head, s->window);
    s->count = count;
    s->head = head;
    for (int i = 0; i < count; i++) {
        s->loss[i] = loss[i];
        s->norm[i] = norm[i];
    }
    return 0;
}
