/* watchdog.c — a thread that compares the time since the last beat with a limit derived from
 * the recent step times (see watchdog.h). */
#include "cotrain/clock.h"
#include "cotrain/thread.h"
#include "cotrain/watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { HISTORY = 128 };

struct ct_watchdog {
    double factor, min_s;
    ct_watchdog_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    int stop;
    double last_beat, times[HISTORY], limit;
    int n_times, next;
    long long step;
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* max(min_s, factor x p99 of the recorded step times); caller holds mu. */
static void update_limit(ct_watchdog_t *w) {
    double sorted[HISTORY];
    memcpy(sorted, w->times, (size_t)w->n_times * sizeof *sorted);
    qsort(sorted, (size_t)w->n_times, sizeof *sorted, cmp_double);
    double p99 = w->n_times ? sorted[(w->n_times * 99) / 100] : 0.0;
    w->limit = w->factor * p99 > w->min_s ? w->factor * p99 : w->min_s;
}

static void *watch(void *arg) {
    ct_watchdog_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        double waited = ct_now_s() - w->last_beat;
        if (waited > w->limit) {
            double limit = w->limit;
            long long step = w->step;
            pthread_mutex_unlock(&w->mu);
            w->fn(waited, limit, step, w->arg);
            return NULL;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ct_watchdog_create(ct_watchdog_t **out, double factor, double min_s, ct_watchdog_fn fn,
                       void *arg, ct_err_t *e) {
    int rc = 0;
    ct_watchdog_t *w = NULL;
    *out = NULL;
    CT_ALLOC(e, w, 1, fail);
    w->factor = factor;
    w->min_s = min_s;
    w->fn = fn;
    w->arg = arg;
    w->last_beat = ct_now_s();
    w->limit = min_s;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (ct_thread_start(&w->thread, watch, w, "the watchdog thread", e) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        free(w);
        return e->code;
    }
    *out = w;
    return 0;
fail:
    return rc;
}

void ct_watchdog_destroy(ct_watchdog_t **self_p) {
    ct_watchdog_t *w = *self_p;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    free(w);
    *self_p = NULL;
}

void ct_watchdog_beat(ct_watchdog_t *w, long long step, double step_s) {
    pthread_mutex_lock(&w->mu);
    w->last_beat = ct_now_s();
    w->step = step;
    if (step_s >= 0) {
        w->times[w->next] = step_s;
        w->next = (w->next + 1) % HISTORY;
        if (w->n_times < HISTORY) w->n_times++;
        update_limit(w);
    }
    pthread_mutex_unlock(&w->mu);
}

double ct_watchdog_limit(ct_watchdog_t *w) {
    pthread_mutex_lock(&w->mu);
    double limit = w->limit;
    pthread_mutex_unlock(&w->mu);
    return limit;
}
