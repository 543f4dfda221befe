/* syncer.c — the ledger's syncs on a thread of their own (see syncer.h). */
#include "cotrain/syncer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cotrain/thread.h"

struct ct_syncer {
    ct_ledger_t *l;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t asked;
    int64_t wanted, synced; /* generations asked for and on disk */
    int quit, failed;
    ct_err_t err; /* the first failure */
    int fd;       /* an eventfd: written after each sync */
};

static void *run(void *arg) {
    ct_syncer_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->quit && s->wanted == s->synced)
            pthread_cond_wait(&s->asked, &s->mu);
        if (s->wanted == s->synced) break; /* quitting, nothing left */
        int64_t gen = s->wanted;
        pthread_mutex_unlock(&s->mu);
        ct_err_t why = {0};
        int rc = ct_ledger_sync(s->l, &why);
        pthread_mutex_lock(&s->mu);
        if (rc != 0 && !s->failed) {
            s->failed = 1;
            s->err = why;
        }
        s->synced = gen;
        uint64_t one = 1;
        ssize_t w = write(s->fd, &one, sizeof one); /* fails only with 2^64-2 wakes pending */
        (void)w;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int ct_syncer_start(ct_syncer_t **out, ct_ledger_t *l, ct_err_t *e) {
    int rc = 0;
    ct_syncer_t *s = NULL;
    *out = NULL;
    CT_ALLOC(e, s, 1, fail);
    s->l = l;
    s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->fd < 0) {
        rc = CT_ERR(e, CT_ENOMEM, "cannot make the ledger syncer's eventfd: %s", strerror(errno));
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->asked, NULL);
    rc = ct_thread_start(&s->thread, run, s, "the ledger syncer's thread", e);
    if (rc != 0) {
        pthread_cond_destroy(&s->asked);
        pthread_mutex_destroy(&s->mu);
        close(s->fd);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
fail:
    return rc;
}

int64_t ct_syncer_request(ct_syncer_t *s) {
    pthread_mutex_lock(&s->mu);
    int64_t gen = ++s->wanted;
    pthread_cond_signal(&s->asked);
    pthread_mutex_unlock(&s->mu);
    return gen;
}

int ct_syncer_fd(const ct_syncer_t *s) {
    return s->fd;
}

int ct_syncer_done(ct_syncer_t *s, int64_t *gen, ct_err_t *e) {
    uint64_t n;
    ssize_t r = read(s->fd, &n, sizeof n); /* EAGAIN: no news, and *gen is still right */
    (void)r;
    pthread_mutex_lock(&s->mu);
    *gen = s->synced;
    int failed = s->failed;
    if (failed) *e = s->err;
    pthread_mutex_unlock(&s->mu);
    return failed ? e->code : 0;
}

void ct_syncer_stop(ct_syncer_t **self_p) {
    ct_syncer_t *s = *self_p;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_signal(&s->asked);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->asked);
    pthread_mutex_destroy(&s->mu);
    close(s->fd);
    free(s);
    *self_p = NULL;
}
