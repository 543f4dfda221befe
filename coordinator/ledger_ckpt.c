/* ledger_ckpt.c — the checkpoint registry of the ledger (see ledger.h): commits on top of the
 * head, the lineage and going back along it, adopting a checkpoint made without a ledger, the
 * run's pace, and each group's credit. */
#include "ledger_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/json.h"

int ldb_head(ct_ledger_t *l, char id[CT_SHA256_HEX], int64_t *step, ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(
        ldb_prepare(l, &st, e, "SELECT id, step FROM checkpoints ORDER BY seq DESC LIMIT 1", ""));
    int r = ldb_step_row(l, st, "reading the head checkpoint", e);
    id[0] = '\0';
    *step = -1;
    if (r == 1) {
        snprintf(id, CT_SHA256_HEX, "%s", sqlite3_column_text(st, 0));
        *step = sqlite3_column_int64(st, 1);
    }
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

int ct_ledger_head(ct_ledger_t *l, char id[CT_SHA256_HEX], int64_t *step, ct_err_t *e) {
    return ldb_head(l, id, step, e);
}

typedef struct commit_args {
    const char *group, *id, *parent;
    int64_t step;
    double now;
    const ct_unit_t *units;
    int n;
} commit_args_t;

static int commit_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    commit_args_t *a = arg;
    char h[CT_SHA256_HEX];
    int64_t hstep;
    CT_TRY(ldb_head(l, h, &hstep, e));
    if (strcmp(h, a->parent) != 0)
        return CT_ERR(e, CT_ESTATE,
                      "checkpoint %.16s... of step %lld names parent %.16s..., but "
                      "the head is %.16s...%s: a group commits only on top of the head; resume "
                      "from it (latest_checkpoint)",
                      a->id, (long long)a->step, a->parent[0] ? a->parent : "(none)",
                      h[0] ? h : "(none)", h[0] ? "" : " (no checkpoint yet)");
    cJSON *f = cJSON_CreateObject(), *shards = cJSON_AddArrayToObject(f, "shards");
    if (!f || !shards || !cJSON_AddStringToObject(f, "group", a->group) ||
        !cJSON_AddNumberToObject(f, "step", (double)a->step) ||
        !cJSON_AddStringToObject(f, "id", a->id) ||
        !cJSON_AddStringToObject(f, "parent", a->parent)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging a commit");
    }
    for (int i = 0; i < a->n; i++) {
        const ct_unit_t *u = &a->units[i];
        cJSON *name = ldb_unit_name(u->shard_id, u->epoch);
        if (!name || !cJSON_AddItemToArray(shards, name)) {
            cJSON_Delete(name);
            cJSON_Delete(f);
            return CT_ERR(e, CT_ENOMEM, "out of memory logging a commit");
        }
    }
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        const ct_unit_t *u = &a->units[i];
        int changed = 0;
        rc = ldb_run(l, &changed, e,
                     "UPDATE units SET state = 3, ckpt = ? WHERE state = 2 AND "
                     "grp = ? AND epoch = ? AND "
                     "shard = (SELECT idx FROM shards WHERE id = ?)",
                     "ttit", a->id, a->group, u->epoch, u->shard_id);
        if (rc == 0 && changed != 1)
            rc = CT_ERR(e, CT_ESTATE,
                        "checkpoint %.16s... lists shard %s of epoch %lld, which "
                        "%s has not reported done since the head (not leased to it, not "
                        "finished, already committed, or listed twice): the commit is refused",
                        a->id, u->shard_id, (long long)u->epoch, a->group);
    }
    if (rc == 0)
        rc = ldb_run(l, NULL, e,
                     "INSERT INTO checkpoints(id, step, parent, grp, at) "
                     "VALUES(?, ?, ?, ?, ?)",
                     "tittd", a->id, a->step, a->parent, a->group, a->now);
    if (rc != 0) {
        cJSON_Delete(f);
        return rc;
    }
    CT_TRY(ldb_record(l, "checkpoint_committed", f, e));
    /* what other groups finished on top of the old head can never be committed now (their
     * parent is gone): those units go back to the pool, so a dead group's work is redone */
    return ldb_return_units(l, NULL, "superseded", e,
                            "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL, "
                            "done_seq = NULL WHERE state = 2 AND grp != ? RETURNING shard, epoch",
                            "t", a->group);
}

int ct_ledger_commit(ct_ledger_t *l, const char *group, int64_t step, double now, const char *id,
                     const char *parent, const ct_unit_t *units, int n_units, ct_err_t *e) {
    if (!ct_sha256_hex_valid(id) || (parent[0] && !ct_sha256_hex_valid(parent)))
        return CT_ERR(e, CT_EINVAL,
                      "a checkpoint id is 64 lowercase hex digits (the sha256 of "
                      "its MANIFEST); got \"%.80s\" with parent \"%.80s\"",
                      id, parent);
    commit_args_t a = {.group = group,
                       .id = id,
                       .parent = parent,
                       .step = step,
                       .now = now,
                       .units = units,
                       .n = n_units};
    return ldb_transaction(l, commit_tx, &a, e);
}

/* Checkpoint id's place in the lineage: 1 with its seq and step, 0 when it is not there. */
static int find_ckpt(ct_ledger_t *l, const char *id, int64_t *seq, int64_t *step, ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e, "SELECT seq, step FROM checkpoints WHERE id = ?", "t", id));
    int r = ldb_step_row(l, st, "looking up a checkpoint", e);
    if (r == 1) {
        if (seq) *seq = sqlite3_column_int64(st, 0);
        if (step) *step = sqlite3_column_int64(st, 1);
    }
    ldb_done(l, st);
    return r;
}

int ct_ledger_find(ct_ledger_t *l, const char *id, int64_t *step, ct_err_t *e) {
    return find_ckpt(l, id, NULL, step, e);
}

typedef struct rollback_args {
    const char *id;
    int returned, dropped;
} rollback_args_t;

static int rollback_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    rollback_args_t *a = arg;
    int64_t seq = 0, step = 0;
    int r = find_ckpt(l, a->id, &seq, &step, e);
    if (r < 0) return r;
    if (r == 0)
        return CT_ERR(e, CT_ESTATE,
                      "checkpoint %.16s... is not in the committed lineage of %s: only a "
                      "committed checkpoint can become the head again",
                      a->id, l->path);
    /* the record names the checkpoints that leave the lineage, in order */
    cJSON *f = cJSON_CreateObject(), *dropped = cJSON_AddArrayToObject(f, "dropped");
    int ok = f && dropped && cJSON_AddStringToObject(f, "to", a->id) &&
             cJSON_AddNumberToObject(f, "step", (double)step);
    sqlite3_stmt *st = NULL;
    int rc = ok ? ldb_prepare(l, &st, e, "SELECT id FROM checkpoints WHERE seq > ? ORDER BY seq",
                              "i", seq)
                : CT_ERR(e, CT_ENOMEM, "out of memory logging a revert");
    while (rc == 0 && (r = ldb_step_row(l, st, "listing checkpoints", e)) == 1) {
        cJSON *id = cJSON_CreateString((const char *)sqlite3_column_text(st, 0));
        if (!id || !cJSON_AddItemToArray(dropped, id)) {
            cJSON_Delete(id);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory logging a revert");
        }
    }
    if (st) ldb_done(l, st);
    if (rc == 0 && r < 0) rc = r;
    if (rc != 0) {
        cJSON_Delete(f);
        return rc;
    }
    CT_TRY(ldb_record(l, "checkpoints_reverted", f, e));
    /* everything after it: the units its successors committed, and every unit in flight (it
     * was taken on top of a head that is gone) */
    CT_TRY(ldb_return_units(
        l, &a->returned, "reverted", e,
        "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL, "
        "done_seq = NULL, ckpt = NULL WHERE state IN (1, 2) OR (state = 3 AND "
        "ckpt IN (SELECT id FROM checkpoints WHERE seq > ?)) RETURNING shard, epoch",
        "i", seq));
    return ldb_run(l, &a->dropped, e, "DELETE FROM checkpoints WHERE seq > ?", "i", seq);
}

int ct_ledger_rollback(ct_ledger_t *l, const char *id, int *returned, int *dropped, ct_err_t *e) {
    rollback_args_t a = {.id = id};
    int rc = ldb_transaction(l, rollback_tx, &a, e);
    if (returned) *returned = a.returned;
    if (dropped) *dropped = a.dropped;
    return rc;
}

typedef struct adopt_args {
    const char *group, *id;
    int64_t step, epoch, pos;
    double now;
    int committed;
} adopt_args_t;

static int adopt_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    adopt_args_t *a = arg;
    char h[CT_SHA256_HEX];
    int64_t hstep, epochs;
    CT_TRY(ldb_head(l, h, &hstep, e));
    if (h[0])
        return CT_ERR(e, CT_ESTATE,
                      "ledger %s already has a lineage (head %.16s..., step %lld): only a "
                      "ledger without checkpoints adopts one",
                      l->path, h, (long long)hstep);
    /* the units of every epoch the cursor has begun exist, as the loader ordered them */
    CT_TRY(ldb_next_epoch(l, &epochs, e));
    for (; epochs <= a->epoch; epochs++)
        CT_TRY(ldb_begin_epoch(l, e));
    CT_TRY(ldb_return_units(l, NULL, "adopted", e,
                            "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL, "
                            "done_seq = NULL WHERE state IN (1, 2) RETURNING shard, epoch",
                            ""));
    cJSON *f = cJSON_CreateObject(), *shards = cJSON_AddArrayToObject(f, "shards");
    int rc = f && shards && cJSON_AddStringToObject(f, "group", a->group) &&
                     cJSON_AddNumberToObject(f, "step", (double)a->step) &&
                     cJSON_AddStringToObject(f, "id", a->id) &&
                     cJSON_AddStringToObject(f, "parent", "") && cJSON_AddTrueToObject(f, "adopted")
                 ? 0
                 : CT_ERR(e, CT_ENOMEM, "out of memory logging an adoption");
    if (rc == 0)
        rc = ldb_units_of(l, shards, &a->committed, e,
                          "UPDATE units SET state = 3, grp = ?, ckpt = ? WHERE epoch < ? OR "
                          "(epoch = ? AND pos < ?) RETURNING shard, epoch",
                          "ttiii", a->group, a->id, a->epoch, a->epoch, a->pos);
    if (rc == 0)
        rc = ldb_run(l, NULL, e,
                     "INSERT INTO checkpoints(id, step, parent, grp, at) VALUES(?, ?, '', ?, ?)",
                     "titd", a->id, a->step, a->group, a->now);
    if (rc != 0) {
        cJSON_Delete(f);
        return rc;
    }
    return ldb_record(l, "checkpoint_committed", f, e);
}

int ct_ledger_adopt(ct_ledger_t *l, const char *group, int64_t step, double now, const char *id,
                    int64_t epoch, int64_t pos, int *committed, ct_err_t *e) {
    if (!ct_sha256_hex_valid(id) || epoch < 0 || pos < 0 ||
        pos >= ct_plan_epoch_len(l->plan, epoch))
        return CT_ERR(e, CT_EINVAL,
                      "cannot adopt checkpoint \"%.80s\" at unit %lld of epoch %lld: the id "
                      "is 64 lowercase hex digits and the unit one of the %d shards trained on",
                      id, (long long)pos, (long long)epoch, l->n_shards);
    adopt_args_t a = {group, id, step, epoch, pos, now, 0};
    int rc = ldb_transaction(l, adopt_tx, &a, e);
    if (committed) *committed = a.committed;
    return rc;
}

int ct_ledger_progress(ct_ledger_t *l, int64_t *first_step, double *first_at, int64_t *head_step,
                       double *head_at, ct_err_t *e) {
    sqlite3_stmt *st;
    *first_step = *head_step = -1;
    *first_at = *head_at = 0;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT (SELECT step FROM checkpoints ORDER BY seq LIMIT 1), "
                       "(SELECT at FROM checkpoints ORDER BY seq LIMIT 1), "
                       "(SELECT step FROM checkpoints ORDER BY seq DESC LIMIT 1), "
                       "(SELECT at FROM checkpoints ORDER BY seq DESC LIMIT 1)",
                       ""));
    int r = ldb_step_row(l, st, "reading the progress", e);
    if (r == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *first_step = sqlite3_column_int64(st, 0);
        *first_at = sqlite3_column_double(st, 1);
        *head_step = sqlite3_column_int64(st, 2);
        *head_at = sqlite3_column_double(st, 3);
    }
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

cJSON *ct_ledger_credit(ct_ledger_t *l, const cJSON *config, ct_err_t *e) {
    sqlite3_stmt *st;
    int64_t batch = 0, seq_len = 0;
    ct_json_get_uint53(cJSON_GetObjectItemCaseSensitive(config, "train"), "global_batch", &batch);
    ct_json_get_uint53(cJSON_GetObjectItemCaseSensitive(config, "model"), "seq_len", &seq_len);
    int volunteer = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(config, "volunteer"), "enabled"));
    /* volunteer mode: the groups' accepted deltas (outer_step's contributors), their inner
     * steps and the tokens they trained; cluster mode: the checkpoints each group committed */
    if (volunteer
            ? ldb_prepare(
                  l, &st, e,
                  "SELECT json_extract(c.value, '$.group') AS g, COUNT(*), "
                  "SUM(json_extract(c.value, '$.steps')) AS steps, "
                  "SUM(json_extract(c.value, '$.tokens')), "
                  "MAX(COALESCE(json_extract(c.value, '$.key'), '')) FROM log, "
                  "json_each(log.body, '$.contributors') AS c WHERE log.type = 'outer_step' "
                  "GROUP BY g ORDER BY steps DESC, g",
                  "")
            : ldb_prepare(l, &st, e,
                          "SELECT grp, COUNT(*), SUM(step - COALESCE(parent_step, 0)) AS steps, "
                          "NULL, '' FROM (SELECT grp, step, LAG(step) OVER (ORDER BY seq) AS "
                          "parent_step FROM checkpoints) GROUP BY grp ORDER BY steps DESC, grp",
                          ""))
        return NULL;
    cJSON *arr = cJSON_CreateArray();
    int r = 0, ok = arr != NULL;
    while (ok && (r = ldb_step_row(l, st, "adding up the groups' credit", e)) == 1) {
        cJSON *o = cJSON_CreateObject();
        int64_t steps = sqlite3_column_int64(st, 2);
        if (!o || !cJSON_AddItemToArray(arr, o)) { /* once in the array, the array owns it */
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        int64_t tokens = volunteer ? sqlite3_column_int64(st, 3) : steps * batch * seq_len;
        const char *key = (const char *)sqlite3_column_text(st, 4);
        ok = cJSON_AddStringToObject(o, "group", (const char *)sqlite3_column_text(st, 0)) &&
             cJSON_AddNumberToObject(o, "commits", (double)sqlite3_column_int64(st, 1)) &&
             cJSON_AddNumberToObject(o, "steps", (double)steps) &&
             cJSON_AddNumberToObject(o, "tokens", (double)tokens) &&
             (!key || !key[0] || cJSON_AddStringToObject(o, "key", key));
    }
    ldb_done(l, st);
    if (!ok && !e->code) CT_ERR(e, CT_ENOMEM, "out of memory adding up credit");
    if (!ok || r < 0) {
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

int ct_ledger_checkpoints(ct_ledger_t *l, ct_ckpt_entry_t **out, int *n, ct_err_t *e) {
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT c.id, c.step, c.grp, c.at, (SELECT COUNT(*) FROM units u WHERE "
                       "u.state = 3 AND u.ckpt = c.id) FROM checkpoints c ORDER BY c.seq",
                       ""));
    int r, cap = 0, rc = 0;
    while ((r = ldb_step_row(l, st, "listing checkpoints", e)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            ct_ckpt_entry_t *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                rc = CT_ERR(e, CT_ENOMEM, "out of memory listing checkpoints");
                break;
            }
            *out = p;
        }
        ct_ckpt_entry_t *c = &(*out)[(*n)++];
        snprintf(c->id, sizeof c->id, "%s", sqlite3_column_text(st, 0));
        c->step = sqlite3_column_int64(st, 1);
        snprintf(c->group, sizeof c->group, "%s", sqlite3_column_text(st, 2));
        c->at = sqlite3_column_double(st, 3);
        c->units = sqlite3_column_int64(st, 4);
    }
    ldb_done(l, st);
    if (r < 0) rc = r;
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
