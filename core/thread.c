/* thread.c — helper threads (see thread.h). */
#include "cotrain/thread.h"

#include <signal.h>
#include <string.h>
#include <time.h>

int ct_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *what, ct_err_t *e) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits the mask */
    int r = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) return CT_ERR(e, CT_ENOMEM, "cannot start %s: %s", what, strerror(r));
    return 0;
}

double ct_thread_cpu_s(pthread_t t) {
    clockid_t id;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
