/* thread.h — the helper threads' two needs: to start without taking the process's signals, and
 * to say how much CPU they used.
 *
 * Why signals stay away from them: the workers and the coordinator read SIGTERM, SIGINT and
 * SIGUSR1 in their main loops (a flag set by a handler, looked at between steps or polls). A
 * signal delivered to a helper thread would interrupt a call there instead, and the loop that
 * acts on it might not look for a while; with every signal blocked in the helpers, the kernel
 * delivers them to the threads that read them. */
#ifndef COTRAIN_THREAD_H
#define COTRAIN_THREAD_H

#include <pthread.h>

#include "cotrain/err.h"

/* pthread_create with every signal blocked in the new thread; `what` names it in the error.
 * Errors: CT_ENOMEM (no thread). */
int ct_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *what, ct_err_t *e);

/* The CPU seconds thread t has used (0 when it cannot be read). */
double ct_thread_cpu_s(pthread_t t);

#endif
