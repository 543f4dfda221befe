/* join.h — a volunteer group (`cotrain-worker --join ENDPOINT`; DESIGN.md, "Volunteer mode"):
 * DiLoCo's inner loop. The group holds version v of the global model, trains
 * volunteer.inner_steps steps on units of data it leases (its own AdamW, kept from round to
 * round), sends its delta θ_v − θ (encoded by volunteer.compress, with error feedback when
 * volunteer.error_feedback) tagged with v, and waits for version v + 1, which it gets as the
 * encoded update (θ_{v+1} = θ_v + decode(update), checked against the coordinator's hash of
 * θ_{v+1}; a group a few versions behind takes each update in turn) or, when the coordinator
 * no longer keeps them or a hash differs, as the whole checkpoint. The run's last version is not
 * fetched: the group leaves once it is out.
 *
 * Inside a group every step is synchronous data parallel as in cluster mode: rank 0 leases and
 * talks, every rank reads its slice of each batch from the same unit. The learning rate follows
 * the schedule over train.steps × inner_steps inner steps, at v × inner_steps + i in round v.
 * A unit the group finishes is reported with the delta that trained on it; one it is inside of
 * stays leased into the next round. */
#ifndef COTRAIN_JOIN_H
#define COTRAIN_JOIN_H

#include <signal.h>
#include <stdint.h>

#include "cotrain/attach.h"
#include "cotrain/comm.h"
#include "cotrain/config.h"
#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/log.h"

typedef struct ct_join_opts {
    ct_attach_t *a; /* attached (the welcome said volunteer.enabled) */
    ct_comm_t *comm;
    const ct_config_t *cfg; /* the run's config, model.vocab_size resolved */
    const char *data;       /* the run's manifest, on storage every rank reads */
    const char *out;        /* RUN_DIR: checkpoints/ and updates/ from the coordinator */
    const char *head;       /* the version the welcome named: its id ... */
    int64_t head_step;      /* ... and step, in RUN_DIR/checkpoints already */
    const ct_log_t *lg;
    const volatile sig_atomic_t *stop; /* set (SIGTERM): leave after the current step */
} ct_join_opts_t;

/* Runs the group until the run's last version is out (leaving `finished`) or *stop (leaving
 * `stopped`: the round under way is given up, its leases go back). Collective. Errors: those of
 * the requests and the checkpoints (every rank returns the same code), CT_ENUMERIC (a loss that
 * is not finite, without train.spike_guard). */
int ct_join_run(const ct_join_opts_t *o, ct_err_t *e);

#endif
