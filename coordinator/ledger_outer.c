/* ledger_outer.c — volunteer mode in the ledger (see ledger.h): the deltas waiting for the next
 * outer step, and the outer step's commit (the global checkpoint, the units of the deltas it
 * merged, those of the ones it refused returned, the outer_step record) in one transaction. */
#include "ledger_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/json.h"

static int delta_add_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    const ct_delta_entry_t *d = arg;
    int changed = 0;
    CT_TRY(
        ldb_run(l, &changed, e,
                "INSERT OR IGNORE INTO deltas(grp, key, base, tokens, steps, bytes, sha256, loss, "
                "at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "ttiiiittd", d->group, d->key, d->base, d->tokens, d->steps, d->bytes, d->sha256,
                d->loss, d->at));
    if (changed != 1)
        return CT_ERR(e, CT_ESTATE,
                      "%s already has a delta waiting for the next outer step: send the next one "
                      "once that step is made (latest_checkpoint)",
                      d->group);
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "group", d->group) ||
        (d->key[0] && !cJSON_AddStringToObject(f, "key", d->key)) ||
        !cJSON_AddNumberToObject(f, "base", (double)d->base) ||
        !cJSON_AddNumberToObject(f, "tokens", (double)d->tokens) ||
        !cJSON_AddNumberToObject(f, "steps", (double)d->steps) ||
        !cJSON_AddNumberToObject(f, "bytes", (double)d->bytes) ||
        !cJSON_AddStringToObject(f, "sha256", d->sha256)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging a delta");
    }
    return ldb_record(l, "delta_received", f, e);
}

int ct_ledger_delta_add(ct_ledger_t *l, const ct_delta_entry_t *d, ct_err_t *e) {
    return ldb_transaction(l, delta_add_tx, (void *)d, e);
}

int ct_ledger_deltas(ct_ledger_t *l, ct_delta_entry_t **out, int *n, ct_err_t *e) {
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT grp, key, base, tokens, steps, bytes, sha256, loss, at FROM deltas "
                       "ORDER BY grp",
                       ""));
    int r, cap = 0, rc = 0;
    while ((r = ldb_step_row(l, st, "listing deltas", e)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            ct_delta_entry_t *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                rc = CT_ERR(e, CT_ENOMEM, "out of memory listing deltas");
                break;
            }
            *out = p;
        }
        ct_delta_entry_t *d = &(*out)[(*n)++];
        snprintf(d->group, sizeof d->group, "%s", sqlite3_column_text(st, 0));
        snprintf(d->key, sizeof d->key, "%s", sqlite3_column_text(st, 1));
        d->base = sqlite3_column_int64(st, 2);
        d->tokens = sqlite3_column_int64(st, 3);
        d->steps = sqlite3_column_int64(st, 4);
        d->bytes = sqlite3_column_int64(st, 5);
        snprintf(d->sha256, sizeof d->sha256, "%s", sqlite3_column_text(st, 6));
        snprintf(d->loss, sizeof d->loss, "%s", sqlite3_column_text(st, 7));
        d->at = sqlite3_column_double(st, 8);
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

typedef struct outer_args {
    int64_t step;
    double now;
    const char *id, *parent;
    const ct_outer_verdict_t *v;
    int n;
    cJSON *extra;
} outer_args_t;

/* One contributor or rejected delta as outer_step names it. */
static cJSON *verdict_json(const ct_outer_verdict_t *v) {
    const ct_delta_entry_t *d = &v->d;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "group", d->group) ||
        (d->key[0] && !cJSON_AddStringToObject(o, "key", d->key)) ||
        !cJSON_AddNumberToObject(o, "base", (double)d->base) ||
        !cJSON_AddNumberToObject(o, "tokens", (double)d->tokens) ||
        !cJSON_AddNumberToObject(o, "steps", (double)d->steps) ||
        !cJSON_AddStringToObject(o, v->accepted ? "weight" : "why",
                                 v->accepted ? v->weight : v->why)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int outer_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    outer_args_t *a = arg;
    char h[CT_SHA256_HEX];
    int64_t hstep;
    CT_TRY(ldb_head(l, h, &hstep, e));
    if (strcmp(h, a->parent) != 0)
        return CT_ERR(e, CT_ESTATE,
                      "outer step %lld names parent %.16s..., but the head is "
                      "%.16s...",
                      (long long)a->step, a->parent, h[0] ? h : "(none)");
    cJSON *f = a->extra, *c = cJSON_CreateObject(), *shards = cJSON_AddArrayToObject(c, "shards");
    cJSON *contrib = cJSON_AddArrayToObject(f, "contributors");
    cJSON *rejected = cJSON_AddArrayToObject(f, "rejected");
    a->extra = NULL;
    int rc = c && shards && contrib && rejected &&
                     cJSON_AddNumberToObject(f, "step", (double)a->step) &&
                     cJSON_AddStringToObject(f, "id", a->id) &&
                     cJSON_AddStringToObject(f, "parent", a->parent) &&
                     cJSON_AddStringToObject(c, "group", CT_LEDGER_OUTER_GROUP) &&
                     cJSON_AddNumberToObject(c, "step", (double)a->step) &&
                     cJSON_AddStringToObject(c, "id", a->id) &&
                     cJSON_AddStringToObject(c, "parent", a->parent)
                 ? 0
                 : CT_ERR(e, CT_ENOMEM, "out of memory logging an outer step");
    for (int i = 0; i < a->n && rc == 0; i++) {
        const ct_outer_verdict_t *v = &a->v[i];
        cJSON *o = verdict_json(v);
        if (!o || !cJSON_AddItemToArray(v->accepted ? contrib : rejected, o)) {
            cJSON_Delete(o);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory logging an outer step");
            break;
        }
        int count = 0;
        if (v->accepted)
            rc = ldb_units_of(l, shards, &count, e,
                              "UPDATE units SET state = 3, ckpt = ? WHERE state = 2 AND grp = ? "
                              "RETURNING shard, epoch",
                              "tt", a->id, v->d.group);
        else
            rc = ldb_return_units(l, NULL, "rejected", e,
                                  "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = "
                                  "NULL, done_seq = NULL WHERE state = 2 AND grp = ? "
                                  "RETURNING shard, epoch",
                                  "t", v->d.group);
        if (rc == 0) rc = ldb_run(l, NULL, e, "DELETE FROM deltas WHERE grp = ?", "t", v->d.group);
    }
    if (rc == 0)
        rc = ldb_run(l, NULL, e,
                     "INSERT INTO checkpoints(id, step, parent, grp, at) VALUES(?, ?, ?, ?, ?)",
                     "tittd", a->id, a->step, a->parent, CT_LEDGER_OUTER_GROUP, a->now);
    if (rc == 0) {
        rc = ldb_record(l, "outer_step", f, e);
        f = NULL;
    }
    if (rc == 0) {
        rc = ldb_record(l, "checkpoint_committed", c, e);
        c = NULL;
    }
    cJSON_Delete(f);
    cJSON_Delete(c);
    return rc;
}

int ct_ledger_outer_commit(ct_ledger_t *l, int64_t step, double now, const char *id,
                           const char *parent, const ct_outer_verdict_t *v, int n, cJSON *extra,
                           ct_err_t *e) {
    outer_args_t a = {
        .step = step, .now = now, .id = id, .parent = parent, .v = v, .n = n, .extra = extra};
    int rc = ldb_transaction(l, outer_tx, &a, e);
    cJSON_Delete(a.extra);
    return rc;
}
