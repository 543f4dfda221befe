/* coord.h — a whole coordinator in one object: the ledger (RUN_DIR/coordinator.db), the handler
 * and the server socket. `cotrain-coordinator` serves it in the foreground; a worker started
 * without --coordinator serves one on a thread of its rank 0 (the embedded coordinator, over
 * inproc://: nothing outside the process can reach it), so every run, even a single mpirun,
 * goes through leases and the checkpoint registry with the same code.
 *
 * The embedded coordinator also settles where a run resumes: the checkpoint must be in the
 * registry's lineage (a checkpoint saved but never committed, e.g. a crash in between, is not
 * part of the run), and the registry follows the run back to it (ct_coord_settle). */
#ifndef COTRAIN_COORD_H
#define COTRAIN_COORD_H

#include <stdatomic.h>
#include <stdint.h>

#include "cotrain/ckpt.h"
#include "cotrain/curve.h"
#include "cotrain/err.h"
#include "cotrain/ledger.h"
#include "cotrain/log.h"
#include "cotrain/manifest.h"

typedef struct ct_coord ct_coord_t;

/* What a coordinator serves. Pointers are borrowed and must outlive it. */
typedef struct ct_coord_opts {
    const char *run_dir;     /* holds coordinator.db (created when absent) */
    const char *config_json; /* the run's canonical config: sent in every welcome */
    const ct_manifest_t *m;  /* the run's data */
    uint64_t seed;           /* train.seed: the order of every epoch */
    int held_out;            /* data.eval_shards: the manifest's last shards, never leased */
    const char *bind;        /* the endpoint (loopback or inproc:// without a key) */
    double lease_ttl;        /* seconds a lease lives without a heartbeat */
    const ct_keypair_t *key; /* CURVE: the coordinator's pair, or NULL */
    const ct_allow_t *allow; /* with key: the keys admitted; NULL: any key (open join) */
    double rate;             /* requests a second per peer, bursts of as many; 0: no limit */
    const char *init;        /* volunteer mode: version 0 from DIR/model.safetensors, or NULL */
} ct_coord_opts_t;

/* The file name of the ledger in a run directory. */
#define CT_COORD_DB "coordinator.db"

/* Opens the ledger, makes the handler and binds the socket. Errors: those of ct_ledger_open
 * (a ledger of another run: saying which), ct_server_create (the endpoint), CT_ENOMEM. */
int ct_coord_open(ct_coord_t **out, const ct_coord_opts_t *o, const ct_log_t *lg, ct_err_t *e);

/* The ledger, for the owner's own calls while the coordinator is not serving. */
ct_ledger_t *ct_coord_ledger(ct_coord_t *c);

/* The endpoint bound (with the port ZeroMQ chose for tcp://...:0). */
const char *ct_coord_endpoint(const ct_coord_t *c);

/* The ZeroMQ context of the socket: an inproc:// endpoint is reachable only from it
 * (ct_client_create_shared). */
void *ct_coord_zmq_context(const ct_coord_t *c);

/* Serves in the calling thread until *stop is set (see ct_server_run for the errors). */
int ct_coord_serve(ct_coord_t *c, const atomic_int *stop, ct_err_t *e);

/* Serves on a thread of its own (signals stay with the caller's threads); a failure there is
 * logged at once, and the request that met it gets an `internal` error. Errors: CT_ESTATE
 * (already serving), CT_ENOMEM (no thread). */
int ct_coord_start(ct_coord_t *c, ct_err_t *e);

/* The CPU seconds the thread of ct_coord_start (when serving) and the public log's writer have
 * used: what the coordinator costs the process it shares. */
double ct_coord_cpu_s(const ct_coord_t *c);

/* Stops the thread of ct_coord_start and waits for it; returns its error, if it failed. A
 * coordinator not serving returns 0. */
int ct_coord_stop(ct_coord_t *c, ct_err_t *e);

/* Stops serving (when started), closes everything and sets *self_p to NULL; NULL-safe. */
void ct_coord_close(ct_coord_t **self_p);

/* Where a run resumes: the newest checkpoint under RUN_DIR/checkpoints below step `before`
 * that passes ct_ckpt_check_small and is in the registry's lineage; newer ones outside it are
 * passed over (logged: saved but never committed). A registry without a lineage takes the newest
 * that verifies (a run directory made before its ledger). Writes the path into dir[n] and the
 * state into *info. Errors: CT_ENOENT (none: the message says why), CT_EIO, CT_EINVAL. */
int ct_coord_find_resume(ct_coord_t *c, const char *run_dir, int64_t before, char *dir, size_t n,
                         ct_ckpt_info_t *info, const ct_log_t *lg, ct_err_t *e);

/* Makes the registry's head the checkpoint a run resumes from (info; NULL: a fresh run, which a
 * registry with a lineage refuses): nothing to do when it is the head already; a checkpoint of
 * the lineage becomes the head again (ct_ledger_rollback); a registry without a lineage adopts it
 * for `group` (ct_ledger_adopt). Each change is logged. Errors: CT_EINVAL (a fresh run on a
 * registry with checkpoints, or a checkpoint outside the lineage: saying what to do), CT_EIO. */
int ct_coord_settle(ct_coord_t *c, const char *group, const ct_ckpt_info_t *info,
                    const ct_log_t *lg, ct_err_t *e);

#endif
