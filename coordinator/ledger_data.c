/* ledger_data.c — data added to or excluded from a run while it goes on (see ledger.h and
 * plan.h): asked for by `cotrain add-data` / `cotrain exclude` (pending), made to take effect at
 * the next checkpoint a group commits (in effect), and the plan rebuilt from them.
 *
 * Why at a commit: a group trains on the order its loader computes and leases each unit as its
 * cursor enters it, so the coordinator knows exactly where a group is only when it commits a
 * checkpoint (the commit names the unit its cursor is in, and the group replans its loader there
 * on the reply). An add then appends to that epoch, an exclusion skips from the next unit on:
 * nothing the group has read changes, the lineage stays once per (shard, epoch), and a run that
 * resumes from any checkpoint, before or after, sees the same data in the same order.
 *
 * The changes table keeps each request as asked (request), its state (PENDING, IN_EFFECT,
 * REFUSED: its manifest was gone or changed when it was to take effect; note says why) and, once
 * in effect, the plan change it became (plan.h's JSON): the plan is those, in order. */
#include "ledger_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/json.h"

enum { PENDING = 0, IN_EFFECT = 1, REFUSED = 2 };

/* The plan's JSON may travel in a welcome with the config, under the header limit (64 KiB). */
enum { PLAN_JSON_MAX = 48 << 10 };

/* Appends to arr, in order, the changes in `state`: as asked for (as_requests) or as the plan
 * changes they became. */
static int changes_of(ct_ledger_t *l, int state, int as_requests, cJSON *arr, ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e,
                       as_requests ? "SELECT request FROM changes WHERE state = ? ORDER BY seq"
                                   : "SELECT plan FROM changes WHERE state = ? ORDER BY seq",
                       "i", (int64_t)state));
    int r, rc = 0;
    while (rc == 0 && (r = ldb_step_row(l, st, "reading the data changes", e)) == 1) {
        cJSON *c = cJSON_Parse((const char *)sqlite3_column_text(st, 0));
        if (!c || !cJSON_AddItemToArray(arr, c)) {
            cJSON_Delete(c);
            rc = CT_ERR(e, CT_ECORRUPT, "ledger %s: a data change that is not JSON", l->path);
        }
    }
    ldb_done(l, st);
    return rc == 0 && r < 0 ? r : rc;
}

int ldb_plan_load(ct_ledger_t *l, ct_err_t *e) {
    ct_plan_t *p = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return CT_ERR(e, CT_ENOMEM, "out of memory reading the data changes");
    int rc = ct_plan_create(&p, l->m, l->held_out, l->seed, e);
    if (rc == 0) rc = changes_of(l, IN_EFFECT, 0, arr, e);
    if (rc == 0) rc = ct_plan_apply(p, arr, NULL, e);
    cJSON_Delete(arr);
    if (rc != 0) {
        ct_plan_destroy(&p);
        return rc;
    }
    ct_plan_destroy(&l->plan);
    l->plan = p;
    return 0;
}

int ct_ledger_read_changes(const char *path, char **text, ct_err_t *e) {
    *text = NULL;
    if (access(path, F_OK) != 0) return 0; /* a new run */
    ct_ledger_t *l = NULL;
    CT_TRY(ldb_open_conn(&l, path, 0, e));
    int64_t have = 0;
    cJSON *arr = cJSON_CreateArray();
    int rc = arr ? ldb_int64(l, &have, e,
                             "SELECT COUNT(*) FROM sqlite_master WHERE name = 'changes'", "")
                 : CT_ERR(e, CT_ENOMEM, "out of memory");
    if (rc == 0 && have) rc = changes_of(l, IN_EFFECT, 0, arr, e);
    if (rc == 0 && cJSON_GetArraySize(arr) > 0 && !(*text = cJSON_PrintUnformatted(arr)))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    cJSON_Delete(arr);
    ct_ledger_close(&l);
    return rc;
}

const ct_plan_t *ct_ledger_plan(const ct_ledger_t *l) {
    return l->plan;
}

/* ---- asking ---- */

/* The plan change a request becomes at (epoch, pos): an add appends to epoch, an exclusion
 * starts after unit pos (the one the group's cursor is in). */
static cJSON *plan_change(const cJSON *req, int64_t epoch, int64_t pos) {
    const char *kind = ct_json_get_string(req, "kind");
    cJSON *c = cJSON_CreateObject();
    int add = kind && !strcmp(kind, "add");
    int ok = c && kind && cJSON_AddStringToObject(c, "kind", kind) &&
             cJSON_AddNumberToObject(c, "epoch", (double)epoch);
    if (ok && add)
        ok = ct_json_add_owned(c, "manifest",
                               cJSON_Duplicate(cJSON_GetObjectItem(req, "manifest"), 0)) &&
             ct_json_add_owned(c, "sha256",
                               cJSON_Duplicate(cJSON_GetObjectItem(req, "sha256"), 0)) &&
             ct_json_add_owned(c, "shards", cJSON_Duplicate(cJSON_GetObjectItem(req, "shards"), 0));
    else if (ok)
        ok = cJSON_AddNumberToObject(c, "pos", (double)pos + 1) &&
             ct_json_add_owned(c, "shards", cJSON_Duplicate(cJSON_GetObjectItem(req, "shards"), 1));
    if (!ok) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* A plan of the base, the changes in effect, the pending ones and `extra` (a request, may be
 * NULL), the pending ones placed anywhere (plan.h checks every manifest and shard the same
 * wherever they take effect); *all (may be NULL) gets its changes' JSON. */
static int plan_with_pending(ct_ledger_t *l, const cJSON *extra, ct_plan_t **out, cJSON **all_out,
                             ct_err_t *e) {
    cJSON *all = cJSON_CreateArray(), *pending = cJSON_CreateArray(), *c;
    int rc = all && pending ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory");
    *out = NULL;
    if (rc == 0) rc = changes_of(l, IN_EFFECT, 0, all, e);
    if (rc == 0) rc = changes_of(l, PENDING, 1, pending, e);
    if (rc == 0 && extra && !cJSON_AddItemReferenceToArray(pending, (cJSON *)extra))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    cJSON_ArrayForEach(c, pending) {
        cJSON *pc = rc == 0 ? plan_change(c, 0, 0) : NULL;
        if (rc == 0 && (!pc || !cJSON_AddItemToArray(all, pc))) {
            cJSON_Delete(pc);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory");
        }
    }
    if (rc == 0) rc = ct_plan_create(out, l->m, l->held_out, l->seed, e);
    if (rc == 0) rc = ct_plan_apply(*out, all, NULL, e);
    if (rc != 0) ct_plan_destroy(out);
    cJSON_Delete(pending);
    if (rc == 0 && all_out)
        *all_out = all;
    else
        cJSON_Delete(all);
    return rc;
}

/* Checks request `req` against the run: the plan with it must build, and its JSON fit in a
 * welcome. */
static int check_request(ct_ledger_t *l, const cJSON *req, ct_err_t *e) {
    ct_plan_t *p = NULL;
    cJSON *all = NULL;
    CT_TRY(plan_with_pending(l, req, &p, &all, e));
    ct_plan_destroy(&p);
    char *text = cJSON_PrintUnformatted(all);
    cJSON_Delete(all);
    int rc = 0;
    if (!text || strlen(text) > PLAN_JSON_MAX)
        rc = text ? CT_ERR(e, CT_EINVAL,
                           "the run's data changes would take %zu bytes, more than the %d a "
                           "welcome carries: add the data as fewer, larger manifests, or "
                           "exclude fewer shards at a time",
                           strlen(text), PLAN_JSON_MAX)
                  : CT_ERR(e, CT_ENOMEM, "out of memory");
    free(text);
    return rc;
}

typedef struct request_args {
    const cJSON *req;
    int64_t seq;
} request_args_t;

static int request_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    request_args_t *a = arg;
    CT_TRY(check_request(l, a->req, e));
    char *text = cJSON_PrintUnformatted(a->req);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory");
    int rc = ldb_run(l, NULL, e, "INSERT INTO changes(request, at) VALUES(?, ?)", "td", text,
                     ct_wall_s());
    free(text);
    a->seq = sqlite3_last_insert_rowid(l->db);
    return rc;
}

/* A connection to the ledger at `path` made to know the run's data: its manifest (loaded into
 * *m, checked against the run's sha256), seed and held-out shards, as the coordinator has them. */
static int open_for_data(const char *path, ct_ledger_t **out, ct_manifest_t **m, ct_err_t *e) {
    ct_ledger_t *l = NULL;
    *m = NULL;
    CT_TRY(ldb_open_conn(&l, path, 1, e));
    char fmt[64] = "", mpath[CT_PATH_MAX] = "", sha[CT_SHA256_HEX] = "", seed[24] = "",
         held[24] = "";
    int rc = ldb_meta_text(l, "format", fmt, sizeof fmt, e);
    if (rc == 0) rc = ldb_meta_text(l, "manifest_path", mpath, sizeof mpath, e);
    if (rc == 0) rc = ldb_meta_text(l, "manifest_sha256", sha, sizeof sha, e);
    if (rc == 0) rc = ldb_meta_text(l, "seed", seed, sizeof seed, e);
    if (rc == 0) rc = ldb_meta_text(l, "held_out", held, sizeof held, e);
    if (rc == 0 && strcmp(fmt, FORMAT) != 0)
        rc = CT_ERR(e, CT_EINVAL,
                    "%s is not a ledger this version of cotrain can change (format \"%s\", "
                    "not \"%s\")",
                    path, fmt, FORMAT);
    else if (rc == 0 && !mpath[0])
        rc = CT_ERR(e, CT_EINVAL,
                    "%s does not say where the run's data is (made by an older cotrain): "
                    "start the coordinator on it once, then ask again",
                    path);
    if (rc == 0) rc = ct_manifest_load(m, mpath, e);
    if (rc == 0 && strcmp((*m)->sha256, sha) != 0)
        rc = CT_ERR(e, CT_ECORRUPT,
                    "the run's data %s has changed since the run began (sha256 %.16s..., the "
                    "run's is %.16s...): put it back first",
                    mpath, (*m)->sha256, sha);
    if (rc != 0) {
        ct_manifest_destroy(m);
        ct_ledger_close(&l);
        return rc;
    }
    l->m = *m;
    l->seed = strtoull(seed, NULL, 10);
    l->held_out = atoi(held);
    *out = l;
    return 0;
}

int ct_ledger_request_change(const char *path, const cJSON *request, int64_t *seq, ct_err_t *e) {
    ct_ledger_t *l = NULL;
    ct_manifest_t *m = NULL;
    CT_TRY(open_for_data(path, &l, &m, e));
    request_args_t a = {request, 0};
    int rc = ldb_transaction(l, request_tx, &a, e);
    if (rc == 0 && seq) *seq = a.seq;
    ct_ledger_close(&l);
    ct_manifest_destroy(&m);
    return rc;
}

int ct_ledger_open_plan(const char *path, ct_plan_t **plan, ct_manifest_t **base, ct_err_t *e) {
    ct_ledger_t *l = NULL;
    *plan = NULL;
    CT_TRY(open_for_data(path, &l, base, e));
    int rc = plan_with_pending(l, NULL, plan, NULL, e);
    ct_ledger_close(&l);
    if (rc != 0) ct_manifest_destroy(base);
    return rc;
}

/* ---- taking effect ---- */

/* 1 when a change can take effect at (epoch, pos): no unit of a later epoch is out (those epochs
 * are made anew by the new plan) and, for an exclusion, none of the excluded shards' units after
 * pos is. */
static int can_take_effect(ct_ledger_t *l, const cJSON *pc, int64_t epoch, int64_t pos,
                           ct_err_t *e) {
    int64_t out_later;
    CT_TRY(ldb_int64(l, &out_later, e, "SELECT COUNT(*) FROM units WHERE epoch > ? AND state != 0",
                     "i", epoch));
    const cJSON *id;
    if (out_later || strcmp(ct_json_get_string(pc, "kind"), "exclude") != 0) return !out_later;
    cJSON_ArrayForEach(id, cJSON_GetObjectItem(pc, "shards")) {
        int64_t out_excluded;
        CT_TRY(ldb_int64(l, &out_excluded, e,
                         "SELECT COUNT(*) FROM units WHERE epoch = ? AND pos > ? AND state != 0 "
                         "AND shard = (SELECT idx FROM shards WHERE id = ?)",
                         "iit", epoch, pos, id->valuestring));
        if (out_excluded) return 0;
    }
    return 1;
}

/* The tables follow the plan's new change pc (just applied; the epoch had `before` units):
 * added shards join the shards table and, when the epoch's units are made, its end; excluded
 * units still available after pos go; later epochs (all available) go, to be made anew. */
static int follow(ct_ledger_t *l, const cJSON *pc, int64_t epoch, int64_t pos, int64_t first,
                  int64_t before, ct_err_t *e) {
    int64_t next;
    CT_TRY(ldb_next_epoch(l, &next, e));
    CT_TRY(ldb_run(l, NULL, e, "DELETE FROM units WHERE epoch > ?", "i", epoch));
    if (!strcmp(ct_json_get_string(pc, "kind"), "add")) {
        for (int64_t s = first; s < ct_plan_shards(l->plan); s++) {
            CT_TRY(ldb_run(l, NULL, e, "INSERT INTO shards(idx, id) VALUES(?, ?)", "it", s,
                           ldb_shard_id(l, s)));
            if (next > epoch)
                CT_TRY(ldb_run(l, NULL, e, "INSERT INTO units(epoch, pos, shard) VALUES(?, ?, ?)",
                               "iii", epoch, before + (s - first), s));
        }
        return 0;
    }
    const cJSON *id;
    cJSON_ArrayForEach(id, cJSON_GetObjectItem(pc, "shards"))
        CT_TRY(ldb_run(l, NULL, e,
                       "DELETE FROM units WHERE epoch = ? AND pos > ? AND state = 0 AND "
                       "shard = (SELECT idx FROM shards WHERE id = ?)",
                       "iit", epoch, pos, id->valuestring));
    return 0;
}

/* The public record of request `req` (change `seq`) in effect as pc. */
static int record_change(ct_ledger_t *l, int64_t seq, const cJSON *req, const cJSON *pc,
                         int64_t first, ct_err_t *e) {
    int add = !strcmp(ct_json_get_string(pc, "kind"), "add");
    cJSON *f = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(f, "shards");
    const char *reason = ct_json_get_string(req, "reason");
    int ok = f && ids && cJSON_AddNumberToObject(f, "change", (double)seq) &&
             cJSON_AddStringToObject(f, "reason", reason ? reason : "") &&
             ct_json_add_owned(f, "epoch", cJSON_Duplicate(cJSON_GetObjectItem(pc, "epoch"), 0));
    if (ok && add) {
        ok = ct_json_add_owned(f, "data_sha256",
                               cJSON_Duplicate(cJSON_GetObjectItem(req, "sha256"), 0)) &&
             ct_json_add_owned(f, "tokens",
                               cJSON_Duplicate(cJSON_GetObjectItem(req, "tokens"), 0)) &&
             ct_json_add_owned(f, "docs", cJSON_Duplicate(cJSON_GetObjectItem(req, "docs"), 0));
        int64_t k = 0;
        ct_json_get_uint53(pc, "shards", &k);
        for (int64_t s = first; ok && s < first + k; s++)
            ok = cJSON_AddItemToArray(ids, cJSON_CreateString(ldb_shard_id(l, s)));
    } else if (ok) {
        ok = ct_json_add_owned(f, "from_pos", cJSON_Duplicate(cJSON_GetObjectItem(pc, "pos"), 0)) &&
             ct_json_add_owned(f, "docs", cJSON_Duplicate(cJSON_GetObjectItem(req, "docs"), 0));
        cJSON_Delete(cJSON_DetachItemViaPointer(f, ids));
        ok = ok &&
             ct_json_add_owned(f, "shards", cJSON_Duplicate(cJSON_GetObjectItem(pc, "shards"), 1));
    }
    if (!ok) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging a data change");
    }
    return ldb_record(l, add ? "data_added" : "data_excluded", f, e);
}

/* 1 (why saying so) when an add's manifest is no longer what was asked for: missing, or its
 * bytes another sha256 (the request was checked when it was made, so nothing else can make it
 * fail but a passing fault, which fails the call instead), else 0 or an error. */
static int data_gone(const cJSON *req, ct_err_t *why, ct_err_t *e) {
    const char *path = ct_json_get_string(req, "manifest"),
               *sha = ct_json_get_string(req, "sha256");
    if (!path || !sha) return 0; /* an exclusion */
    char *buf = NULL, hex[CT_SHA256_HEX];
    size_t len = 0;
    int rc = ct_read_file(path, &buf, &len, why);
    if (rc == CT_ENOENT) return 1;
    if (rc != 0) {
        *e = *why;
        return rc;
    }
    ct_sha256_hex(buf, len, hex);
    free(buf);
    if (strcmp(hex, sha) == 0) return 0;
    CT_ERR(why, CT_ECORRUPT, "%s has changed since it was added (sha256 %.16s..., not %.16s...)",
           path, hex, sha);
    return 1;
}

typedef struct pending {
    int64_t seq;
    cJSON *req;
} pending_t;

/* Change `seq` (request req) takes effect at (epoch, pos) if it can: *stop set when it must wait
 * (and the ones after it with it). A change whose data no longer fits is refused, noted. */
static int take_effect(ct_ledger_t *l, const pending_t *pd, int64_t epoch, int64_t pos, int *stop,
                       int *n, ct_err_t *e) {
    cJSON *pc = plan_change(pd->req, epoch, pos), *all = ct_plan_changes_json(l->plan);
    int rc = pc && all ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory");
    int r = rc == 0 ? can_take_effect(l, pc, epoch, pos, e) : rc;
    if (r <= 0) {
        *stop = r == 0;
        cJSON_Delete(pc);
        cJSON_Delete(all);
        return r;
    }
    int64_t first = ct_plan_shards(l->plan), before = ct_plan_epoch_len(l->plan, epoch);
    cJSON *added = cJSON_Duplicate(pc, 1);
    ct_err_t why = {0};
    int applied;
    if (!added || !cJSON_AddItemToArray(all, added)) {
        cJSON_Delete(added);
        rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    }
    int gone = rc == 0 ? data_gone(pd->req, &why, e) : 0;
    if (gone < 0) rc = gone;
    if (rc == 0 && !gone) rc = ldb_plan_keep(l, e);
    if (rc == 0 && !gone && (applied = ct_plan_apply(l->plan, all, NULL, e)) != 0) rc = applied;
    if (rc == 0 && gone) { /* its data is gone or changed: refused for good */
        rc = ldb_run(l, NULL, e, "UPDATE changes SET state = ?, note = ? WHERE seq = ?", "iti",
                     (int64_t)REFUSED, why.msg, pd->seq);
    } else if (rc == 0) {
        char *text = cJSON_PrintUnformatted(pc);
        rc = text ? follow(l, pc, epoch, pos, first, before, e)
                  : CT_ERR(e, CT_ENOMEM, "out of memory");
        if (rc == 0)
            rc = ldb_run(l, NULL, e, "UPDATE changes SET state = ?, plan = ? WHERE seq = ?", "iti",
                         (int64_t)IN_EFFECT, text, pd->seq);
        if (rc == 0) rc = record_change(l, pd->seq, pd->req, pc, first, e);
        if (rc == 0) ++*n;
        free(text);
    }
    cJSON_Delete(pc);
    cJSON_Delete(all);
    return rc;
}

typedef struct effect_args {
    int64_t epoch, pos;
    int n;
} effect_args_t;

static int effect_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    effect_args_t *a = arg;
    sqlite3_stmt *st;
    pending_t pd[16];
    int k = 0, r, rc = 0, stop = 0;
    /* a few at a time: a request is short, and the rest take effect at the next commit */
    CT_TRY(ldb_prepare(l, &st, e, "SELECT seq, request FROM changes WHERE state = ? ORDER BY seq",
                       "i", (int64_t)PENDING));
    while (k < 16 && (r = ldb_step_row(l, st, "reading the data changes", e)) == 1) {
        pd[k].seq = sqlite3_column_int64(st, 0);
        if (!(pd[k].req = cJSON_Parse((const char *)sqlite3_column_text(st, 1)))) {
            rc = CT_ERR(e, CT_ENOMEM, "out of memory reading data change %lld",
                        (long long)pd[k].seq);
            break;
        }
        k++;
    }
    ldb_done(l, st);
    if (r < 0 && rc == 0) rc = r;
    for (int i = 0; rc == 0 && !stop && i < k; i++)
        rc = take_effect(l, &pd[i], a->epoch, a->pos, &stop, &a->n, e);
    for (int i = 0; i < k; i++)
        cJSON_Delete(pd[i].req);
    return rc;
}

int ct_ledger_take_effect(ct_ledger_t *l, int64_t epoch, int64_t pos, int *n, ct_err_t *e) {
    if (n) *n = 0;
    if (epoch < 0 || pos < 0 || pos >= ct_plan_epoch_len(l->plan, epoch))
        return CT_ERR(e, CT_EINVAL, "a data cursor at unit %lld of epoch %lld is not in the run",
                      (long long)pos, (long long)epoch);
    effect_args_t a = {epoch, pos, 0};
    int rc = ldb_transaction(l, effect_tx, &a, e);
    if (n) *n = a.n;
    return rc;
}

typedef struct import_args {
    const cJSON *changes;
    int n;
} import_args_t;

/* The request a change in effect stands for, as `cotrain add-data` / `exclude` would have made
 * it (for its record): its counts from the plan. */
static cJSON *imported_request(const ct_plan_t *p, const cJSON *pc, int64_t first) {
    cJSON *r = cJSON_Duplicate(pc, 1);
    int64_t tokens = 0, docs = 0, k = 0;
    ct_json_get_uint53(pc, "shards", &k); /* an add's count (an exclusion's is a list) */
    for (int64_t s = first; s < first + k; s++) {
        tokens += ct_plan_shard(p, s)->n_tokens;
        docs += ct_plan_shard(p, s)->n_docs;
    }
    int add = !strcmp(ct_json_get_string(pc, "kind"), "add");
    if (!r ||
        !cJSON_AddStringToObject(r, "reason", "imported with the checkpoint's data changes") ||
        (add && !cJSON_AddNumberToObject(r, "tokens", (double)tokens)) ||
        !cJSON_AddNumberToObject(r, "docs", add ? (double)docs : 0)) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

static int import_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    import_args_t *a = arg;
    int have = ct_plan_count(l->plan), n = cJSON_GetArraySize(a->changes);
    int64_t units;
    CT_TRY(ldb_int64(l, &units, e, "SELECT COUNT(*) FROM units", ""));
    if (n > have && units > 0)
        return CT_ERR(e, CT_ESTATE,
                      "ledger %s already hands out data: data changes can be given only to a new "
                      "run directory (cotrain add-data, cotrain exclude change a running one)",
                      l->path);
    CT_TRY(ldb_plan_keep(l, e));
    int64_t next = ct_plan_shards(l->plan); /* the first index the new adds take, in order */
    CT_TRY(ct_plan_apply(l->plan, a->changes, NULL, e)); /* checks the first `have` are these */
    for (int i = have; i < n; i++) {
        const cJSON *pc = cJSON_GetArrayItem(a->changes, i);
        int64_t first = next, at = 0;
        if (!strcmp(ct_json_get_string(pc, "kind"), "add")) { /* its shards, in the plan */
            int64_t k = 0;
            ct_json_get_uint53(pc, "shards", &k);
            next += k;
            for (int64_t s = first; s < first + k; s++)
                CT_TRY(ldb_run(l, NULL, e, "INSERT INTO shards(idx, id) VALUES(?, ?)", "it", s,
                               ldb_shard_id(l, s)));
        }
        cJSON *req = imported_request(l->plan, pc, first);
        char *rt = req ? cJSON_PrintUnformatted(req) : NULL, *pt = cJSON_PrintUnformatted(pc);
        int rc = rt && pt ? ldb_run(l, NULL, e,
                                    "INSERT INTO changes(request, state, plan, at) "
                                    "VALUES(?, ?, ?, ?)",
                                    "titd", rt, (int64_t)IN_EFFECT, pt, ct_wall_s())
                          : CT_ERR(e, CT_ENOMEM, "out of memory");
        at = sqlite3_last_insert_rowid(l->db);
        if (rc == 0) rc = record_change(l, at, req, pc, first, e);
        free(rt);
        free(pt);
        cJSON_Delete(req);
        CT_TRY(rc);
        a->n++;
    }
    return 0;
}

int ct_ledger_import_changes(ct_ledger_t *l, const cJSON *changes, int *n, ct_err_t *e) {
    import_args_t a = {changes, 0};
    int rc = ldb_transaction(l, import_tx, &a, e);
    if (n) *n = rc == 0 ? a.n : 0;
    return rc;
}

int ct_ledger_changes_pending(ct_ledger_t *l, int64_t *n, ct_err_t *e) {
    return ldb_int64(l, n, e, "SELECT COUNT(*) FROM changes WHERE state = ?", "i",
                     (int64_t)PENDING);
}
