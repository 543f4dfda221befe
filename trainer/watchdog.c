/* watchdog.c — a thread that compares the time spent in the current step (or slow section) with
 * its limit (see watchdog.h). */
#include "cotrain/clock.h"
#include "cotrain/thread.h"
#include "cotrain/watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { HISTORY = 128 };

struct ct_watchdog {
    ct_watchdog_limits_t lim;
    ct_watchdog_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    int stop;
    /* The current step: fast_spent seconds before its open slow section (or before fast_start,
       when none is open). */
    double fast_start, fast_spent, slow_start;
    const char *slow; /* the open slow section, or NULL */
    int beats;        /* beats so far: the first step is not a sample */
    double times[HISTORY], p99, limit;
    int n_times, next;
    long long step;
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p99 of the recorded step times and the step limit; caller holds mu. */
static void update_limit(ct_watchdog_t *w) {
    double sorted[HISTORY];
    memcpy(sorted, w->times, (size_t)w->n_times * sizeof *sorted);
    qsort(sorted, (size_t)w->n_times, sizeof *sorted, cmp_double);
    w->p99 = sorted[(w->n_times * 99) / 100];
    double by_p99 = w->lim.factor * w->p99;
    w->limit = by_p99 > w->lim.min_s ? by_p99 : w->lim.min_s;
}

/* How long the current step or slow section has run, and its bound; caller holds mu. */
static void elapsed(const ct_watchdog_t *w, double now, double *spent, double *limit) {
    if (w->slow) {
        *spent = now - w->slow_start;
        *limit = w->lim.slow_s;
    } else {
        *spent = w->fast_spent + (now - w->fast_start);
        *limit = w->limit;
    }
}

static void *watch(void *arg) {
    ct_watchdog_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        double spent, limit;
        elapsed(w, ct_now_s(), &spent, &limit);
        if (spent > limit) {
            const char *what = w->slow ? w->slow : w->n_times ? NULL : "start-up";
            ct_watchdog_stall_t st = {
                .waited = spent, .limit = limit, .p99 = w->p99, .step = w->step, .what = what};
            pthread_mutex_unlock(&w->mu);
            w->fn(&st, w->arg);
            return NULL;
        }
        /* look again just past the bound (or in 250 ms, or at a beat): a stall is reported as
           it passes, not up to a polling interval later */
        double nap = limit - spent < 0.25 ? limit - spent : 0.25;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)(nap * 1e9) + 100000L;
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&w->wake, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ct_watchdog_create(ct_watchdog_t **out, const ct_watchdog_limits_t *lim, ct_watchdog_fn fn,
                       void *arg, ct_err_t *e) {
    int rc = 0;
    ct_watchdog_t *w = NULL;
    *out = NULL;
    if (!(lim->factor >= 1 && lim->min_s > 0 && lim->slow_s > 0))
        return CT_ERR(e, CT_EINVAL,
                      "watchdog limits: factor %g must be >= 1, min_s %g and slow_s %g > 0",
                      lim->factor, lim->min_s, lim->slow_s);
    CT_ALLOC(e, w, 1, fail);
    w->lim = *lim;
    w->fn = fn;
    w->arg = arg;
    w->fast_start = ct_now_s();
    w->limit = lim->slow_s; /* start-up */
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

void ct_watchdog_beat(ct_watchdog_t *w, long long step) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    double now = ct_now_s(), spent = w->fast_spent + (w->slow ? 0.0 : now - w->fast_start);
    if (w->beats++ > 0) {
        w->times[w->next] = spent;
        w->next = (w->next + 1) % HISTORY;
        if (w->n_times < HISTORY) w->n_times++;
        update_limit(w);
    }
    w->step = step;
    w->slow = NULL;
    w->fast_spent = 0.0;
    w->fast_start = now;
    pthread_cond_signal(&w->wake); /* the limit may have shrunk: look at it now */
    pthread_mutex_unlock(&w->mu);
}

void ct_watchdog_slow(ct_watchdog_t *w, const char *what) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    double now = ct_now_s();
    if (!w->slow) w->fast_spent += now - w->fast_start;
    w->slow = what;
    w->slow_start = now;
    pthread_mutex_unlock(&w->mu);
}

void ct_watchdog_fast(ct_watchdog_t *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    if (w->slow) {
        w->slow = NULL;
        w->fast_start = ct_now_s();
    }
    pthread_mutex_unlock(&w->mu);
}

double ct_watchdog_limit(ct_watchdog_t *w) {
    pthread_mutex_lock(&w->mu);
    double limit = w->limit;
    pthread_mutex_unlock(&w->mu);
    return limit;
}
