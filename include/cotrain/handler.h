/* handler.h — the coordinator's answer to one request: header in, reply header out, the ledger
 * changed in between (DESIGN.md, "Protocol"). No sockets here (server.c moves the bytes), so
 * every rule is testable without a network.
 *
 * Requests (all carry the requesting "group", a name of printable ASCII, and its sequence "req",
 * counted per "session": a random name a group takes each time it starts; optional):
 *
 *   hello               (re)starts the group from the head: its leases go back
 *                       -> welcome {config (the run's resolved config), head, head_step}
 *                       {standby: true}: while another group is alive -> welcome {active, ttl_s}
 *   lease               the next unit -> lease_grant {shard, epoch, fence, ttl_s}
 *   heartbeat           keeps the group's leases alive -> ok
 *   shard_done          {shard, epoch, fence}: the group trained on it -> ok
 *   checkpoint_commit   {step, id, parent, units [{shard, epoch}...]} -> ok
 *   latest_checkpoint   where a (re)starting group resumes -> ok {id, step}
 *   status              units by state, the head, progress, the groups -> ok {...}
 *   data_manifest       the run's manifest.json -> ok {sha256, bytes} + its bytes as a frame
 *   shard_fetch         {shard, offset, length <= CT_PROTO_CHUNK_MAX}
 *                       -> ok {shard, offset, length, size} + those bytes as a frame
 *   delta               volunteer mode: a chunk of the group's delta (rounds.h) -> ok {have,
 *                       complete, version}
 *   model_update        volunteer mode: a chunk of an update (rounds.h) -> ok {...} + frame
 *
 * A request that changes the ledger is answered once: the change and its reply are one
 * transaction, so the same req again (a retry after a lost reply) gets the stored reply, an older
 * one `replayed`; the reading ones (the last four) are answered as they come. A bad request gets
 * an error reply and changes nothing. */
#ifndef COTRAIN_HANDLER_H
#define COTRAIN_HANDLER_H

#include <stddef.h>

#include "cotrain/err.h"
#include "cotrain/ledger.h"
#include "cotrain/manifest.h"
#include "cotrain/proto.h"
#include "cotrain/rounds.h"

typedef struct ct_handler ct_handler_t;

/* A handler over the ledger l and the run's data m (both borrowed), for the run whose canonical
 * config is config_json (copied), handing out leases of lease_ttl seconds. Errors: CT_EINVAL
 * (config_json is not a JSON object), CT_ENOMEM. */
int ct_handler_create(ct_handler_t **out, ct_ledger_t *l, const ct_manifest_t *m,
                      const char *config_json, double lease_ttl, ct_err_t *e);

/* Frees the handler and sets *self_p to NULL; NULL-safe. */
void ct_handler_destroy(ct_handler_t **self_p);

/* Volunteer mode: the outer steps r (borrowed) take `delta` and `model_update` requests and the
 * ticks; a handler without them refuses those and serves cluster mode. */
void ct_handler_set_rounds(ct_handler_t *h, ct_rounds_t *r);

/* Answers the request hdr[0..len) with n_frames binary frames, the first of them `in` (NULL: none
 * kept), from `peer` (its CURVE key id, or
 * NULL: a loopback peer; the public log names groups by it), at time `now` (wall-clock
 * seconds: lease expiries are kept in the ledger across restarts):
 * *reply gets the reply header (malloc'd), *frame the reply's binary frame (malloc'd; none for
 * most types). Bad input never fails the call (it gets an error
 * reply). Errors: CT_EIO / CT_ENOMEM when the ledger could not record the answer; *reply is then
 * an `internal` error reply (or NULL when out of memory) and nothing changed. */
int ct_handler_request(ct_handler_t *h, const void *hdr, size_t len, int n_frames,
                       const ct_frame_t *in, const char *peer, double now, char **reply,
                       ct_frame_t *frame, ct_err_t *e);

/* The folder of the lineage's checkpoints (RUN_DIR/checkpoints) model_fetch serves from; without
 * it model_fetch is refused. Errors: CT_EINVAL (a path too long). */
int ct_handler_set_checkpoints(ct_handler_t *h, const char *dir, ct_err_t *e);

/* A batch of requests answered in one transaction (group commit: one fsync for all of them).
 * The replies of the requests answered between begin and end may be sent only after end kept
 * the batch (keep 1, returned 0); undone (keep 0) or failed, nothing of the batch happened:
 * reply `internal` to all. Errors: CT_EIO, CT_ESTATE (end without begin). */
int ct_handler_batch_begin(ct_handler_t *h, ct_err_t *e);
int ct_handler_batch_end(ct_handler_t *h, int keep, ct_err_t *e);

/* Time passes: expired leases go back to available (*expired, may be NULL, gets how many), and in
 * volunteer mode an outer step is made when due (*stepped gets 1). Errors: CT_EIO, CT_ENOMEM. */
int ct_handler_tick(ct_handler_t *h, double now, int *expired, int *stepped, ct_err_t *e);

/* 1 once a volunteer run is over: its last version made and its groups gone (or a minute
 * passed since); the server then stops. Cluster mode: always 0 (its coordinator serves until
 * told to stop). */
int ct_handler_done(const ct_handler_t *h);

#endif
