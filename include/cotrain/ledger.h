/* ledger.h — the coordinator's source of truth: which data went where, which checkpoints are
 * real (DESIGN.md, invariants 1 and 2), kept in SQLite (WAL, synchronous=FULL).
 *
 * Data is handed out as units: one shard in one epoch. A unit is available -> leased (to a group,
 * with a fencing token and an expiry) -> done (the group reported it trained on it) ->
 * committed (a checkpoint that consumed it was committed). An expired lease (a group that went
 * silent: heartbeats renew leases), a group that restarts from the head checkpoint, or a commit by
 * another group (what others finished on top of the old head can never be committed) returns units
 * to available; a report that carries a stale token is refused. Units are offered in a fixed order:
 * epoch e takes the manifest's shards in ct_data_shard_order(seed, e) (the loader's order), and a
 * unit that comes back takes its place in that order again, so a run through the coordinator sees
 * the data a run without one sees. A checkpoint commits the units its group finished since the
 * parent, and only on top of the current head: every unit ends up in the committed lineage at most
 * once.
 *
 * Every call that changes the ledger is one transaction, committed (and fsync'd, unless the
 * owner took the syncing on itself: ct_ledger_defer_sync) before the call returns: whatever a
 * caller acknowledged survives a kill -9 and a power cut. */
#ifndef COTRAIN_LEDGER_H
#define COTRAIN_LEDGER_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/manifest.h"
#include "cotrain/plan.h"

typedef struct ct_ledger ct_ledger_t;

enum { CT_GROUP_MAX = 96 };

/* A unit as the ledger hands it out. */
typedef struct ct_lease {
    int shard; /* index into the manifest */
    char shard_id[CT_SHARD_ID_MAX];
    int64_t epoch;
    int64_t fence; /* the token a report must carry */
    double expiry; /* ct_now_s() clock of the caller */
} ct_lease_t;

/* A unit a checkpoint consumed. */
typedef struct ct_unit {
    char shard_id[CT_SHARD_ID_MAX];
    int64_t epoch;
} ct_unit_t;

/* Opens (creating) the ledger at `path` for the shards of m and `seed`, leaving out the manifest's
 * last `held_out` shards (data.eval_shards: held out for evaluation, never leased). A new ledger
 * records the manifest's sha256, seed, held_out and shards, and logs run_started with them and
 * config_sha256; an existing one must have been made
 * for the same. Errors: CT_EIO (SQLite could not open or write: naming the file), CT_ECORRUPT
 * (not a ledger, or one of another format), CT_EINVAL (made for another manifest, seed or
 * held_out, saying which; held_out not below the shard count), CT_ENOMEM. *out is owned by the
 * caller. */
int ct_ledger_open(ct_ledger_t **out, const char *path, const ct_manifest_t *m, uint64_t seed,
                   int held_out, const char *config_sha256, ct_err_t *e);

/* With on, a commit no longer waits for the disk (synchronous=NORMAL): it survives a kill -9 at
 * once, a power cut only after the next ct_ledger_sync, so nothing it changed may be acknowledged
 * before that. Off again syncs first. Errors: CT_EIO. */
int ct_ledger_defer_sync(ct_ledger_t *l, int on, ct_err_t *e);

/* Makes every transaction committed so far durable (an fdatasync of the WAL file). It touches no
 * SQLite state, so one thread may call it while another goes on with the ledger (one caller at a
 * time). Errors: CT_EIO (the commits since the last sync may be lost to a power cut). */
int ct_ledger_sync(ct_ledger_t *l, ct_err_t *e);

/* The seq of the last record in the log table (0: none). Errors: CT_EIO. */
int ct_ledger_log_head(ct_ledger_t *l, int64_t *seq, ct_err_t *e);

/* A second connection to the ledger at `path` (made by ct_ledger_open), for reading only: the
 * calls that read (records, metrics, checkpoints, groups, counts, head) work on it, those that
 * change the ledger fail. SQLite's WAL lets it read beside the writer, in another thread, seeing
 * each transaction once it is committed. Errors: CT_EIO. */
int ct_ledger_open_reader(ct_ledger_t **out, const char *path, ct_err_t *e);

/* Closes the ledger and sets *self_p to NULL; NULL-safe. */
void ct_ledger_close(ct_ledger_t **self_p);

/* Leases the first available unit in order to `group` until now + ttl. Errors: CT_EIO. */
int ct_ledger_lease(ct_ledger_t *l, const char *group, double now, double ttl, ct_lease_t *out,
                    ct_err_t *e);

/* Records that `group` finished the unit it leased with token `fence`. Errors: CT_ESTATE (no
 * such lease: expired and handed out again, or never this group's; the message says which),
 * CT_EIO. */
int ct_ledger_done(ct_ledger_t *l, const char *group, const char *shard_id, int64_t epoch,
                   int64_t fence, ct_err_t *e);

/* Extends every lease of `group` to now + ttl (a heartbeat). Errors: CT_EIO. */
int ct_ledger_heartbeat(ct_ledger_t *l, const char *group, double now, double ttl, ct_err_t *e);

/* Returns the units of expired leases to available; *n (may be NULL) gets how many. A group
 * whose leases all lapsed has left: logged as group_left {why: "silent"} (a hello brings it
 * back). */
int ct_ledger_expire(ct_ledger_t *l, double now, int *n, ct_err_t *e);

/* `group` leaves the run, saying `why` ("finished", "stopped", "paused"): its leased units go back
 * to available (its done ones stay: a commit or a restart settles them), and group_left {group,
 * why} is logged when it was in the run. *n (may be NULL) gets how many units went back. Errors:
 * CT_EIO. */
int ct_ledger_leave(ct_ledger_t *l, const char *group, const char *why, int *n, ct_err_t *e);

/* `group` (re)starts from the head checkpoint: logged as group_joined with the peer's CURVE key
 * id `key` (NULL: none, a loopback peer), and its leased and done units go back to available, in
 * their places. *n (may be NULL) gets how many. Errors: CT_EIO. */
int ct_ledger_restart(ct_ledger_t *l, const char *group, const char *key, int *n, ct_err_t *e);

/* Commits checkpoint `id` of `step` by `group` at time `now` on top of `parent` ("" for the first
 * one), which must be the head; units[0..n_units) are the units it consumed since then, each done
 * by this group and listed once; units other groups have done but not committed go back to
 * available. Errors: CT_ESTATE (parent is not the head; a unit not done by this
 * group, already committed, or listed twice: naming it), CT_EINVAL (a malformed id), CT_EIO. */
int ct_ledger_commit(ct_ledger_t *l, const char *group, int64_t step, double now, const char *id,
                     const char *parent, const ct_unit_t *units, int n_units, ct_err_t *e);

/* The head checkpoint: its id (64 hex, or "" when none was committed) and step (-1). */
int ct_ledger_head(ct_ledger_t *l, char id[CT_SHA256_HEX], int64_t *step, ct_err_t *e);

/* 1 when checkpoint `id` is in the committed lineage (its step in *step, may be NULL), 0 when
 * not. Errors: CT_EIO. */
int ct_ledger_find(ct_ledger_t *l, const char *id, int64_t *step, ct_err_t *e);

/* The run goes back to checkpoint `id` (committed): the checkpoints committed after it leave the
 * lineage, and their units and every unit leased or done (taken on top of the old head) return
 * to available, in their places, so a run resumed from `id` trains on them again. *returned and
 * *dropped (may be NULL) get how many units and checkpoints. Errors: CT_ESTATE (id is not in the
 * lineage), CT_EIO. */
int ct_ledger_rollback(ct_ledger_t *l, const char *id, int *returned, int *dropped, ct_err_t *e);

/* A ledger without checkpoints takes checkpoint `id` of `step` (made without this ledger: an
 * older run directory, or one whose ledger was lost) as the root of its lineage, by `group` at
 * `now`: the units before the checkpoint's data cursor (unit `pos` of epoch `epoch`, the one its
 * next step reads) are committed by it, every other unit is available. *committed (may be NULL)
 * gets how many. Errors: CT_ESTATE (the ledger has a lineage), CT_EINVAL (a malformed id, pos
 * not a shard trained on), CT_EIO. */
int ct_ledger_adopt(ct_ledger_t *l, const char *group, int64_t step, double now, const char *id,
                    int64_t epoch, int64_t pos, int *committed, ct_err_t *e);

/* An explicit transaction around several calls (a request, its state change and its stored
 * reply; or a batch of requests, one fsync for all). They nest: the outermost level is the
 * transaction, inner levels savepoints. ct_ledger_end keeps (commits, or releases the savepoint)
 * or undoes its level. A call that fails inside a level may have changed part of what it was to
 * change: end that level undoing it (keep 0). Errors: CT_ESTATE (end without begin), CT_EIO. */
int ct_ledger_begin(ct_ledger_t *l, ct_err_t *e);
int ct_ledger_end(ct_ledger_t *l, int keep, ct_err_t *e);

/* The last reply stored for `group`: its request number (-1 when none) and text (malloc'd, the
 * caller frees; NULL when none). Errors: CT_EIO, CT_ENOMEM. */
int ct_ledger_reply_get(ct_ledger_t *l, const char *group, int64_t *req, char **text, ct_err_t *e);

/* Stores `text` as the reply to `group`'s request `req` (replacing the one before). Errors:
 * CT_EIO. */
int ct_ledger_reply_put(ct_ledger_t *l, const char *group, int64_t req, const char *text,
                        ct_err_t *e);

/* `group`, in the run, was heard from at `now`: *member gets 1, or 0 when it is not in the run
 * (it left, or went silent and its leases lapsed: only a hello brings it back). Errors: CT_EIO. */
int ct_ledger_touch(ct_ledger_t *l, const char *group, double now, int *member, ct_err_t *e);

/* Every lease lives at least until `until`: a coordinator starting again gives its groups a
 * lease TTL to reach it (they could not heartbeat while it was down). Errors: CT_EIO. */
int ct_ledger_grace(ct_ledger_t *l, double until, ct_err_t *e);

/* Records that `group` was heard from at `now`, taking it into the run (hello). Errors: CT_EIO. */
int ct_ledger_seen(ct_ledger_t *l, const char *group, double now, ct_err_t *e);

/* The groups heard from: name, when last, units leased now. */
/* Standby: `group` waits to take over the run. If another group that is not waiting was heard
 * from within `ttl` of `now`, names it in active[] and records `group` as waiting; otherwise
 * `group` becomes the active one, the silent groups that trained leave the run (group_left; a
 * hello brings one back), and every other group's leased and finished (uncommitted) units go
 * back to available (*reclaimed of them): the new active group resumes from the head. Errors:
 * CT_EIO. */
int ct_ledger_standby(ct_ledger_t *l, const char *group, double now, double ttl,
                      char active[CT_GROUP_MAX], int *reclaimed, ct_err_t *e);

typedef struct ct_group_info {
    char name[CT_GROUP_MAX];
    double last_seen;
    int64_t leased;
    int standby; /* waiting to take over */
} ct_group_info_t;

/* Lists the groups into *out (malloc'd, *n entries, by name; the caller frees): all of them, or
 * with max > 0 the max heard from last. Errors: CT_EIO, CT_ENOMEM. */
int ct_ledger_groups(ct_ledger_t *l, int max, ct_group_info_t **out, int *n, ct_err_t *e);

/* The first and the head checkpoints' steps and commit times (steps -1 when none): the pace of
 * the run, for an ETA. Errors: CT_EIO. */
int ct_ledger_progress(ct_ledger_t *l, int64_t *first_step, double *first_at, int64_t *head_step,
                       double *head_at, ct_err_t *e);

/* Counts of units by state (over the epochs begun so far), for status and tests. */
typedef struct ct_ledger_counts {
    int64_t available, leased, done, committed;
    int64_t epochs; /* epochs begun */
} ct_ledger_counts_t;
int ct_ledger_counts(ct_ledger_t *l, ct_ledger_counts_t *c, ct_err_t *e);

/* A checkpoint of the lineage. */
typedef struct ct_ckpt_entry {
    char id[CT_SHA256_HEX];
    int64_t step;
    char group[CT_GROUP_MAX];
    double at;     /* committed at (wall-clock seconds) */
    int64_t units; /* units of data it committed */
} ct_ckpt_entry_t;

/* The lineage, first to head, into *out (malloc'd, *n entries; the caller frees). Errors: CT_EIO,
 * CT_ENOMEM. */
int ct_ledger_checkpoints(ct_ledger_t *l, ct_ckpt_entry_t **out, int *n, ct_err_t *e);

/* Every group's credit for the lineage, as a JSON array [{group, commits, steps, tokens, key?}],
 * most steps first: the checkpoints of the lineage it committed, the optimizer steps they added
 * (a checkpoint's step minus its parent's; an adopted root counts from 0) and the tokens those
 * steps trained (steps x train.global_batch x model.seq_len of the run's config; 0 when it lacks
 * them); in volunteer mode (the config's volunteer.enabled) the deltas of the group that outer
 * steps accepted (commits), their inner steps and tokens, and its CURVE key id. The caller owns the
 * array. NULL on an error (CT_EIO, CT_ENOMEM in e). */
cJSON *ct_ledger_credit(ct_ledger_t *l, const cJSON *config, ct_err_t *e);

/* The public log's records (DESIGN.md, "Public log") are rows of the ledger, each written in the
 * transaction of the change it records: run_started (at creation), group_joined (a hello),
 * group_left ({group, why: finished, stopped, paused; or silent, with the successor when a
 * standby took over}), shard_leased, shard_done, shards_returned (why: expired, left, restart,
 * takeover, superseded, reverted, adopted),
 * checkpoint_committed ({group, step, id, parent, shards ["<id>:<epoch>"...]}, `adopted` for
 * ct_ledger_adopt), checkpoints_reverted ({to, step, dropped [ids]}); others come through
 * ct_ledger_record. */

/* Logs a record of `type` with fields f (consumed; integers and strings only), in the caller's
 * transaction or one of its own. Errors: CT_EINVAL (f holds what a record may not), CT_EIO,
 * CT_ENOMEM. */
int ct_ledger_record(ct_ledger_t *l, const char *type, cJSON *f, ct_err_t *e);

/* Calls fn for each record after seq `after`, at most max of them, in order: its seq, time
 * (wall-clock seconds), type and fields (canonical JSON). A non-zero return of fn stops and is
 * returned. Errors: CT_EIO, fn's. */
typedef int (*ct_ledger_record_fn)(void *arg, int64_t seq, double at, const char *type,
                                   const char *body, ct_err_t *e);
int ct_ledger_records(ct_ledger_t *l, int64_t after, int64_t max, ct_ledger_record_fn fn, void *arg,
                      ct_err_t *e);

/* The groups' metrics (DESIGN.md, "Metrics"): one line a logged step, kept as the group sent it.
 * ct_ledger_metrics_add adds one, dropping any of the same step or later first (a run gone back
 * to an earlier checkpoint logs those steps again); ct_ledger_metrics_rewind drops those past
 * `step` (a group resuming from the head: what was logged past it is not the lineage's). A drop
 * moves the generation on. Errors: CT_EIO. */
int ct_ledger_metrics_add(ct_ledger_t *l, const char *group, int64_t step, const char *line,
                          ct_err_t *e);
int ct_ledger_metrics_rewind(ct_ledger_t *l, int64_t step, ct_err_t *e);

/* Calls fn for each metrics line after seq `after`, at most max, in order. Errors: CT_EIO, fn's. */
typedef int (*ct_ledger_metrics_fn)(void *arg, int64_t seq, const char *line, ct_err_t *e);
int ct_ledger_metrics(ct_ledger_t *l, int64_t after, int64_t max, ct_ledger_metrics_fn fn,
                      void *arg, ct_err_t *e);

/* The metrics' generation into *gen: a reader that saw another one starts over from seq 0.
 * Errors: CT_EIO. */
int ct_ledger_metrics_gen(ct_ledger_t *l, int64_t *gen, ct_err_t *e);

/* ---- volunteer mode (DESIGN.md, "Volunteer mode") ----
 * A group's delta, once its bytes are whole and checked, waits in the ledger for the next outer
 * step, one per group; the units it trained on are done (reported in the same transaction). An
 * outer step commits the global checkpoint by CT_LEDGER_OUTER_GROUP with the units of the deltas
 * it applied, and returns those of the deltas it refused. A group that restarts keeps a waiting
 * delta and its units. */

#define CT_LEDGER_OUTER_GROUP "coordinator"

typedef struct ct_delta_entry {
    char group[CT_GROUP_MAX];
    char key[24];   /* the peer's CURVE key id ("" for a loopback peer) */
    int64_t base;   /* the version (outer step) it started from */
    int64_t tokens; /* tokens it trained on */
    int64_t steps;  /* inner steps it took */
    int64_t bytes;  /* encoded size */
    char sha256[CT_SHA256_HEX];
    char loss[32]; /* its last inner step's loss, as text ("" when not sent) */
    double at;     /* when it was received (wall-clock seconds) */
} ct_delta_entry_t;

/* Records delta d as waiting, logged as delta_received. Errors: CT_ESTATE (the group has one
 * waiting already), CT_EIO, CT_ENOMEM. */
int ct_ledger_delta_add(ct_ledger_t *l, const ct_delta_entry_t *d, ct_err_t *e);

/* The waiting deltas, by group, into *out (malloc'd, *n entries; the caller frees). Errors:
 * CT_EIO, CT_ENOMEM. */
int ct_ledger_deltas(ct_ledger_t *l, ct_delta_entry_t **out, int *n, ct_err_t *e);

/* What an outer step did with one waiting delta. */
typedef struct ct_outer_verdict {
    ct_delta_entry_t d;
    int accepted;
    char weight[32]; /* accepted: its weight in the aggregate, as text */
    char why[160];   /* refused: the reason */
} ct_outer_verdict_t;

/* Commits outer step `step` as checkpoint `id` on top of `parent` (the head): the units of each
 * accepted delta committed by it, those of each refused one returned (shards_returned why
 * rejected), the deltas taken out of the waiting list, logged as outer_step {step, id, parent,
 * contributors [{group, key, base, tokens, steps, weight}], rejected [{..., why}], the members of
 * extra} and checkpoint_committed {group: CT_LEDGER_OUTER_GROUP, ...}. extra (a JSON object of
 * integers and strings) is consumed. Errors: CT_ESTATE (parent is not the head), CT_EIO,
 * CT_ENOMEM. */
int ct_ledger_outer_commit(ct_ledger_t *l, int64_t step, double now, const char *id,
                           const char *parent, const ct_outer_verdict_t *v, int n, cJSON *extra,
                           ct_err_t *e);

/* ---- data added or excluded mid-run (plan.h; ledger_data.c) ---- */

/* Asks the run whose ledger is at `path` (the coordinator may be running on it, or not) for a
 * data change, taking effect at the next checkpoint a group commits: `request` is
 * {"kind":"add","manifest":ABSOLUTE PATH,"sha256":HEX,"shards":N,"tokens":T,"docs":D,
 * "reason":TEXT} or {"kind":"exclude","shards":[ID,...],"docs":D,"reason":TEXT} (D: documents
 * asked for, 0 when shards were named). It is checked first against the run's data, the changes
 * in effect and those pending (plan.h: the manifest must fit, shards must be the run's), then
 * stored pending in one transaction; *seq (may be NULL) gets its number. Errors: as
 * ct_plan_apply (saying what does not fit), CT_EINVAL (a ledger of another version, or too many
 * changes for a welcome), CT_EIO. */
int ct_ledger_request_change(const char *path, const cJSON *request, int64_t *seq, ct_err_t *e);

/* The data of the run whose ledger is at `path`, as it will be once the pending changes take
 * effect: *base (the run's manifest, checked against the run's sha256) and *plan (borrowing
 * *base), both the caller's; for finding what `cotrain exclude` names. Errors: as
 * ct_ledger_request_change's. */
int ct_ledger_open_plan(const char *path, ct_plan_t **plan, ct_manifest_t **base, ct_err_t *e);

/* The pending changes take effect for a group whose data cursor is in unit `pos` of epoch
 * `epoch` (it just committed a checkpoint there): an add appends its shards to that epoch, an
 * exclusion skips its shards from unit pos + 1 on; each is logged (data_added, data_excluded)
 * and joins the plan. One that must wait (units of a later epoch are out) waits with the ones
 * after it; one whose data no longer fits is refused (noted in the changes table). *n (may be
 * NULL) gets how many took effect. Errors: CT_EINVAL (a cursor outside the plan), CT_EIO. */
int ct_ledger_take_effect(ct_ledger_t *l, int64_t epoch, int64_t pos, int *n, ct_err_t *e);

/* The data changes in effect in the ledger at `path` (a JSON array as plan.h's, malloc'd in
 * *text; NULL when there are none or no ledger yet), read on a connection of its own: what a
 * worker's loader opens with before its embedded coordinator runs. Errors: CT_EIO. */
int ct_ledger_read_changes(const char *path, char **text, ct_err_t *e);

/* The run's data plan: the base and the changes in effect (owned by the ledger, valid until its
 * next call that changes it). */
const ct_plan_t *ct_ledger_plan(const ct_ledger_t *l);

/* A new run directory's ledger takes `changes` (plan.h's JSON: those of the run a checkpoint
 * came from, `cotrain-worker --data-changes`) as in effect, each logged: a worker resuming that
 * checkpoint here leases by the same plan. Changes the ledger has must be the first ones.
 * *n (may be NULL) gets how many were new. Errors: CT_ESTATE (the ledger hands out data
 * already), as ct_plan_apply, CT_EIO. */
int ct_ledger_import_changes(ct_ledger_t *l, const cJSON *changes, int *n, ct_err_t *e);

/* How many changes are pending. Errors: CT_EIO. */
int ct_ledger_changes_pending(ct_ledger_t *l, int64_t *n, ct_err_t *e);

#endif
