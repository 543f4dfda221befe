/* test_watchdog.c — the watchdog's two limits (watchdog.h) on a real clock: steady steps give a
 * tight step limit that slow sections neither inflate nor trip; a stalled step is reported as
 * max(min_s, factor x p99) passes (plus scheduling), a stalled slow section at slow_s with its
 * name, the first step at slow_s. The bounds allow 0.25 s of scheduling, so a loaded machine
 * passes. */
#include <pthread.h>
#include <time.h>

#include "check.h"
#include "cotrain/clock.h"
#include "cotrain/watchdog.h"

typedef struct {
    pthread_mutex_t mu;
    int fired;
    double at; /* ct_now_s() when it fired */
    ct_watchdog_stall_t st;
} seen_t;

static void on_stall(const ct_watchdog_stall_t *st, void *arg) {
    seen_t *s = arg;
    pthread_mutex_lock(&s->mu);
    s->fired++;
    s->at = ct_now_s();
    s->st = *st;
    pthread_mutex_unlock(&s->mu);
}

static int fired(seen_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->fired;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Waits up to `max_s` for the report. */
static int wait_fired(seen_t *s, double max_s) {
    for (double t0 = ct_now_s(); ct_now_s() - t0 < max_s; nap(0.002))
        if (fired(s)) return 1;
    return 0;
}

/* `n` steps of ~`step_s` each, beaten. */
static void steps(ct_watchdog_t *w, int n, double step_s, long long *step) {
    for (int i = 0; i < n; i++) {
        nap(step_s);
        ct_watchdog_beat(w, ++*step);
    }
}

/* A watchdog with these limits reporting into s (NULL when it could not start: a failed check). */
static ct_watchdog_t *start(seen_t *s, double factor, double min_s, double slow_s) {
    ct_watchdog_limits_t lim = {.factor = factor, .min_s = min_s, .slow_s = slow_s};
    ct_watchdog_t *w = NULL;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_watchdog_create(&w, &lim, on_stall, s, &e), 0);
    return w;
}

static void test_steady_steps_and_a_stall(void) {
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ct_watchdog_t *w = start(&s, 2, 0.6, 3);
    CHECK(ct_watchdog_limit(w) == 3); /* before the first beat: the first step's bound */
    long long step = 0;
    steps(w, 30, 0.01, &step);
    /* p99 of ~10 ms steps: 2 x p99 is far below the floor */
    CHECK(ct_watchdog_limit(w) == 0.6);
    /* slow work twice the step limit does not trip it, nor count as step time */
    for (int i = 0; i < 2; i++) {
        nap(0.005);
        ct_watchdog_slow(w, "a save");
        nap(1.2);
        ct_watchdog_fast(w);
        nap(0.005);
        ct_watchdog_beat(w, ++step);
    }
    CHECK_EQ_INT(fired(&s), 0);
    CHECK(ct_watchdog_limit(w) < 1.2); /* with the saves counted it would be >= 2.4 */
    /* fast time on both sides of a slow section adds up: 0.4 + 0.2 s reach the 0.6 s limit */
    nap(0.4);
    ct_watchdog_slow(w, "an evaluation");
    nap(0.1);
    ct_watchdog_fast(w);
    double t0 = ct_now_s();
    CHECK(wait_fired(&s, 5.0));
    CHECK(s.at - t0 >= 0.19 && s.at - t0 < 0.45); /* not 0.6 */
    CHECK(s.st.what == NULL);
    CHECK_EQ_INT(s.st.step, step);
    CHECK(s.st.limit == 0.6);
    CHECK(s.st.waited > 0.6 && s.st.waited < 0.6 + 0.25);
    CHECK(s.st.p99 > 0.009 && s.st.p99 < 0.3);
    ct_watchdog_destroy(&w);
    CHECK(w == NULL);
}

/* The step limit follows the steps' p99 once factor x p99 passes the floor. */
static void test_limit_from_p99(void) {
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ct_watchdog_t *w = start(&s, 3, 0.001, 5);
    long long step = 0;
    steps(w, 12, 0.05, &step);
    double limit = ct_watchdog_limit(w);
    CHECK(limit >= 3 * 0.05 && limit < 3 * 0.5);
    double t0 = ct_now_s();
    CHECK(wait_fired(&s, 5.0)); /* no more beats: a stall */
    CHECK(s.at - t0 >= limit * 0.95 && s.at - t0 < limit + 0.25);
    CHECK(s.st.limit == limit && s.st.p99 * 3 == limit);
    ct_watchdog_destroy(&w);
}

static void test_slow_section_stalls(void) {
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ct_watchdog_t *w = start(&s, 2, 0.05, 0.5);
    long long step = 0;
    steps(w, 3, 0.001, &step);
    double t0 = ct_now_s();
    ct_watchdog_slow(w, "a checkpoint save");
    CHECK(wait_fired(&s, 5.0));
    CHECK(s.at - t0 >= 0.5 && s.at - t0 < 0.5 + 0.25);
    CHECK(s.st.what && strcmp(s.st.what, "a checkpoint save") == 0);
    CHECK(s.st.limit == 0.5);
    CHECK_EQ_INT(s.st.step, 3);
    ct_watchdog_destroy(&w);
}

/* The first step (start-up: memory first touched, the peak measured) has slow_s. */
static void test_first_step(void) {
    seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    double t0 = ct_now_s();
    ct_watchdog_t *w = start(&s, 2, 0.02, 0.4);
    CHECK(wait_fired(&s, 5.0));
    CHECK(s.at - t0 >= 0.4);
    CHECK(s.st.what && !strcmp(s.st.what, "start-up") && s.st.step == 0 && s.st.p99 == 0);
    ct_watchdog_destroy(&w);
    /* and the first step is no sample: a slow first step leaves the limit at the floor */
    seen_t s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    w = start(&s2, 2, 0.2, 5);
    nap(0.3);
    ct_watchdog_beat(w, 1);
    ct_watchdog_beat(w, 2);
    CHECK(ct_watchdog_limit(w) == 0.2);
    ct_watchdog_destroy(&w);
    CHECK_EQ_INT(fired(&s2), 0);
}

static void test_bad_limits_and_null(void) {
    ct_watchdog_t *w = NULL;
    ct_err_t e = {0};
    ct_watchdog_limits_t bad[] = {{0.5, 1, 1}, {2, 0, 1}, {2, 1, 0}, {2, 1, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ_INT(ct_watchdog_create(&w, &bad[i], on_stall, NULL, &e), CT_EINVAL);
        CHECK(w == NULL);
        CHECK(strstr(e.msg, "watchdog limits") != NULL);
    }
    ct_watchdog_beat(NULL, 1);
    ct_watchdog_slow(NULL, "x");
    ct_watchdog_fast(NULL);
    ct_watchdog_destroy(&w);
}

int main(void) {
    test_steady_steps_and_a_stall();
    test_limit_from_p99();
    test_slow_section_stalls();
    test_first_step();
    test_bad_limits_and_null();
    return CHECK_RESULT();
}
