/* syncer.h — the wait for the disk, off the coordinator's request loop: a thread that makes the
 * ledger's commits durable (ct_ledger_sync) while the loop builds the next transaction, and tells
 * the loop through a file descriptor it polls beside its sockets when a sync is done.
 *
 * Each request for a sync gets a generation number; a sync that starts after the request covers
 * it, so requests that arrive while a sync runs share the next one (group commit across batches).
 * The loop sends a batch's replies once its generation is durable. */
#ifndef COTRAIN_SYNCER_H
#define COTRAIN_SYNCER_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/ledger.h"

typedef struct ct_syncer ct_syncer_t;

/* Starts the thread for ledger l (borrowed; the caller turned ct_ledger_defer_sync on). Signals
 * stay with the caller's threads. Errors: CT_ENOMEM (no thread or eventfd). */
int ct_syncer_start(ct_syncer_t **out, ct_ledger_t *l, ct_err_t *e);

/* Asks for everything committed so far to reach the disk; returns the generation that covers it. */
int64_t ct_syncer_request(ct_syncer_t *s);

/* Readable (POLLIN) when a sync finished since the last ct_syncer_done. */
int ct_syncer_fd(const ct_syncer_t *s);

/* Takes the news: *gen gets the last generation on disk. Errors: CT_EIO (a sync failed: what it
 * covered may be lost to a power cut; the coordinator must stop rather than acknowledge it). */
int ct_syncer_done(ct_syncer_t *s, int64_t *gen, ct_err_t *e);

/* Finishes the syncs asked for, stops the thread, sets *self_p to NULL; NULL-safe. */
void ct_syncer_stop(ct_syncer_t **self_p);

#endif
