/* attach.h — a worker group attached to a coordinator (cluster mode: `cotrain-worker
 * --coordinator ENDPOINT`). Rank 0 talks to the coordinator; every rank learns the outcome.
 *
 * The group trains exactly as it would alone: the loader keeps its own deterministic order, and
 * the coordinator leases units (one shard in one epoch) in that same order (ct_data_shard_order),
 * so the group leases each unit as its loader reaches it, checks that the grant is the unit it
 * expected, reports it done once the loader has passed it, and commits each checkpoint with the
 * units done since the previous one. A (re)started group resumes from the coordinator's head
 * checkpoint; the coordinator then returns its uncommitted units, which the group leases again
 * as its loader meets them again. */
#ifndef COTRAIN_ATTACH_H
#define COTRAIN_ATTACH_H

#include <stdint.h>

#include "cotrain/comm.h"
#include "cotrain/data.h"
#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/log.h"
#include "cotrain/manifest.h"
#include "cotrain/proto.h"

typedef struct ct_attach ct_attach_t;

/* Where and how a group attaches. */
typedef struct ct_attach_opts {
    const char *endpoint;   /* the coordinator, e.g. tcp://10.0.0.5:5555 */
    const char *group;      /* this group's name there */
    int standby;            /* wait while another group trains, then take over */
    const char *server_key; /* CURVE: the coordinator's public key (Z85 or a .pub file), or NULL */
    const char *key_file;   /* with server_key: this group's key pair (cotrain keygen) */
    void *zmq_ctx;          /* the embedded coordinator's ZeroMQ context (inproc://), or NULL */
} ct_attach_opts_t;

/* Says hello to the coordinator (rank 0 alone connects; all ranks call it together) and hands
 * every rank the welcome; with o->standby, first waits (asking again) while another group is
 * training, and takes over once it has fallen silent. The welcome is: the run's resolved config
 * as JSON (*config_json, malloc'd) and the head checkpoint (head: 64 hex or "", *head_step).
 * Errors: CT_ETIMEDOUT (no coordinator answers, or it refused the key: saying where it asked),
 * CT_EPROTO (it refused: its message), CT_ENOENT/CT_ECORRUPT/CT_EINVAL (a key file), CT_ECOMM,
 * CT_ENOMEM. */
int ct_attach_open(ct_attach_t **out, ct_comm_t *comm, const ct_attach_opts_t *o,
                   char **config_json, char head[CT_SHA256_HEX], int64_t *head_step,
                   const ct_log_t *lg, ct_err_t *e);

/* The loader's data: the manifest (borrowed: it must outlive the group), how many of its last
 * shards are held out (data.eval_shards) and the seed; with the welcome's data changes, the
 * run's plan (plan.h), by which units are leased and reported. Errors: as ct_plan_apply. */
int ct_attach_data(ct_attach_t *a, const ct_manifest_t *m, int held_out, uint64_t seed,
                   ct_err_t *e);

/* The run's data changes (plan.h) as the welcome, or since then a commit reply, gave them (NULL:
 * none): what the loader opens with. Owned by the attach. */
const cJSON *ct_attach_changes(const ct_attach_t *a);

/* Brings the coordinator up to the loader's position `cur` (after a step, or at the start):
 * leases every unit up to the current one, reports those passed, and heartbeats when due.
 * Errors: CT_ESTATE (the coordinator granted another unit than the loader's next: another group
 * took data, or the head and the checkpoint disagree), those of the requests. All ranks agree. */
int ct_attach_follow(ct_attach_t *a, const ct_data_cursor_t *cur, ct_err_t *e);

/* Queues one metrics line (ct_metrics_format) for the coordinator (rank 0; elsewhere a no-op):
 * the queue goes out with the next ct_attach_follow or ct_attach_commit. Errors: CT_ENOMEM. */
int ct_attach_metrics(ct_attach_t *a, const char *line, ct_err_t *e);

/* Commits checkpoint `id` of `step` (on rank 0; the caller shares the outcome) with the units
 * reported done since the previous commit, after the metrics lines queued; `cur` is the data
 * cursor at the checkpoint (pending data changes take effect there). Errors: CT_ESTATE
 * (refused: the coordinator's message), those of the requests. */
int ct_attach_commit(ct_attach_t *a, int64_t step, const char *id, const ct_data_cursor_t *cur,
                     ct_err_t *e);

/* After a commit (collective): when its reply brought data changes the group did not have
 * (`cotrain add-data`, `cotrain exclude`: they take effect at the data cursor the commit named,
 * `cur` there), every rank's loader `d` and the group's plan follow them, and rank 0 logs what
 * changed. Errors: as ct_data_replan; all ranks agree. */
int ct_attach_replan(ct_attach_t *a, ct_data_t *d, ct_err_t *e);

/* Rank 0 only: one request of `type` with fields f (consumed; may be NULL), sent and retried as
 * every request of the group is; the reply in *m (the caller clears it) and its binary frame in
 * *frame (may be NULL; the caller frees it). Errors: CT_ETIMEDOUT (no answer), CT_EPROTO /
 * CT_ESTATE (an error reply: its message), CT_ECOMM, CT_ENOMEM; CT_ESTATE on another rank. */
int ct_attach_request(ct_attach_t *a, ct_msg_type_t type, cJSON *f, ct_msg_t *m, ct_frame_t *frame,
                      ct_err_t *e);

/* Same, with the binary frame `body` (may be NULL) after the header (a delta's chunk). */
int ct_attach_send(ct_attach_t *a, ct_msg_type_t type, cJSON *f, const ct_frame_t *body,
                   ct_msg_t *m, ct_frame_t *frame, ct_err_t *e);

/* Shares rank 0's outcome rc with every rank (collective): all return the same code; a non-zero
 * one on rank 0 comes with its message, elsewhere with a pointer to rank 0's log. */
int ct_attach_agree(ct_attach_t *a, int rc, ct_err_t *e);

/* Rank 0 only (elsewhere a no-op): tells the coordinator the group leaves, saying why
 * ("finished", "stopped", "paused"), after its last commit: its leases go back at once and the
 * public log says so (group_left). Waits at most 10 s for the answer. Errors: those of the
 * requests (the caller only logs them: unanswered, the leases expire anyway). */
int ct_attach_leave(ct_attach_t *a, const char *why, ct_err_t *e);

/* Rank 0 only (elsewhere a no-op): says hello again, so the group starts over from the head: its
 * leased units go back (a volunteer group whose delta was refused). Errors: those of the
 * requests. */
int ct_attach_rejoin(ct_attach_t *a, ct_err_t *e);

/* Closes the connection and frees the group's state; sets *self_p to NULL; NULL-safe. */
void ct_attach_close(ct_attach_t **self_p);

#endif
