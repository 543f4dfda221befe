/* ledger.c — the ledger in SQLite (see ledger.h for the rules): its plumbing, opening it,
 * leases, groups, records and metrics; the checkpoint registry is in ledger_ckpt.c, volunteer
 * mode in ledger_outer.c, their shared parts in ledger_db.h.
 *
 * Why SQLite: the ledger must never lose what it acknowledged and must never be seen half
 * changed, through kill -9 and power loss; SQLite in WAL mode with synchronous=FULL gives exactly
 * that per transaction, and it is the most tested storage engine there is. Every public call
 * that writes is one BEGIN IMMEDIATE ... COMMIT (the write lock is taken up front, so a
 * transaction never fails half-way for want of it), rolled back on any error.
 *
 * Why ct_ledger_defer_sync: with synchronous=FULL the thread that commits also waits for the
 * disk (~0.8 ms a commit here, a third of a busy coordinator's time). With it, commits switch to
 * synchronous=NORMAL (WAL: consistent after any crash, but the last commits may be lost to a power
 * cut) and the caller makes them durable with ct_ledger_sync, an fdatasync of the WAL file that
 * another thread may run while the next transaction is built; it acknowledges nothing before.
 *
 * Tables: meta (format, manifest sha256, seed, held-out shards, the last fencing token and done
 * sequence), shards (manifest index -> id, the shards trained on), units (one row per (epoch,
 * position in that epoch's order): shard, state, lease holder, token, expiry; an epoch's rows are
 * made when the previous epoch has no available unit left), checkpoints (the committed lineage, in
 * commit order), replies (each group's last request number and the reply it got, stored in the
 * request's own transaction, so a retried request after a lost reply gets the same answer), log
 * (the public log's records, each written in the transaction of the change it records:
 * public/log.jsonl is derived from it), metrics (the groups' metrics lines, as they sent them:
 * public/metrics.jsonl is derived from it; meta's metrics_gen counts the times lines were dropped,
 * so the file is written anew), deltas (volunteer mode: each group's delta waiting for the next
 * outer step). */
#include "ledger_db.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/data.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS shards(idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS units(epoch INTEGER NOT NULL, pos INTEGER NOT NULL,"
    " shard INTEGER NOT NULL REFERENCES shards(idx), state INTEGER NOT NULL DEFAULT 0,"
    " grp TEXT, fence INTEGER, expiry REAL, done_seq INTEGER, ckpt TEXT,"
    " PRIMARY KEY(epoch, pos), UNIQUE(epoch, shard));"
    "CREATE INDEX IF NOT EXISTS units_state ON units(state, epoch, pos);"
    "CREATE TABLE IF NOT EXISTS checkpoints(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE, step INTEGER NOT NULL, parent TEXT NOT NULL, grp TEXT NOT NULL,"
    " at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS groups(grp TEXT PRIMARY KEY, last_seen REAL NOT NULL, "
    "standby INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS replies(grp TEXT PRIMARY KEY, req INTEGER NOT NULL,"
    " reply TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY, at REAL NOT NULL, type TEXT NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS metrics(seq INTEGER PRIMARY KEY, step INTEGER NOT NULL,"
    " grp TEXT NOT NULL, line TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS metrics_step ON metrics(step);"
    "CREATE TABLE IF NOT EXISTS deltas(grp TEXT PRIMARY KEY, key TEXT NOT NULL, base INTEGER NOT "
    "NULL, tokens INTEGER NOT NULL, steps INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT "
    "NOT "
    "NULL, loss TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, request TEXT NOT "
    "NULL, state INTEGER NOT NULL DEFAULT 0, plan TEXT, note TEXT, at REAL NOT NULL);";

/* ---- SQLite plumbing ---- */

static int db_err(const ct_ledger_t *l, const char *what, ct_err_t *e) {
    return CT_ERR(e, CT_EIO, "ledger %s: %s failed: %s (is the disk full or the file damaged?)",
                  l->path, what, sqlite3_errmsg(l->db));
}

static int exec(ct_ledger_t *l, const char *sql, ct_err_t *e) {
    if (sqlite3_exec(l->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_err(l, sql, e);
    return 0;
}

/* The statement for sql, prepared once and kept: every SQL text here is a literal, so its address
 * names it (compiling a statement costs more than running one of these). */
static int cached(ct_ledger_t *l, const char *sql, sqlite3_stmt **st, ct_err_t *e) {
    for (int i = 0; i < l->n_cache; i++)
        if (l->cache[i].sql == sql) {
            *st = l->cache[i].st;
            return 0;
        }
    if (sqlite3_prepare_v2(l->db, sql, -1, st, NULL) != SQLITE_OK) return db_err(l, sql, e);
    if (l->n_cache < CACHE_MAX) l->cache[l->n_cache++] = (stmt_t){sql, *st};
    return 0;
}

/* Done with a statement: reset for its next use (kept), or finalized when not cached. */
void ldb_done(ct_ledger_t *l, sqlite3_stmt *st) {
    for (int i = 0; i < l->n_cache; i++)
        if (l->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

/* Prepares sql and binds the arguments given by `types`: 'i' int64, 'd' double, 't' text. */
static int prepare_va(ct_ledger_t *l, sqlite3_stmt **st, ct_err_t *e, const char *sql,
                      const char *types, va_list ap) {
    CT_TRY(cached(l, sql, st, e));
    int rc = SQLITE_OK;
    for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
        if (types[i] == 'i')
            rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
        else if (types[i] == 'd')
            rc = sqlite3_bind_double(*st, i + 1, va_arg(ap, double));
        else
            rc = sqlite3_bind_text(*st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
    }
    if (rc == SQLITE_OK) return 0;
    ldb_done(l, *st);
    *st = NULL;
    return db_err(l, sql, e);
}

int ldb_prepare(ct_ledger_t *l, sqlite3_stmt **st, ct_err_t *e, const char *sql, const char *types,
                ...) {
    va_list ap;
    va_start(ap, types);
    int rc = prepare_va(l, st, e, sql, types, ap);
    va_end(ap);
    return rc;
}

/* Runs a statement that returns no rows; *changes (may be NULL) gets the rows it changed. */
int ldb_run(ct_ledger_t *l, int *changes, ct_err_t *e, const char *sql, const char *types, ...) {
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = prepare_va(l, &st, e, sql, types, ap);
    va_end(ap);
    CT_TRY(rc);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(l, sql, e);
    if (changes) *changes = sqlite3_changes(l->db);
    ldb_done(l, st);
    return rc;
}

/* A query's one number: the first column of its first row (0 when there is no row). */
int ldb_int64(ct_ledger_t *l, int64_t *out, ct_err_t *e, const char *sql, const char *types, ...) {
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = prepare_va(l, &st, e, sql, types, ap);
    va_end(ap);
    CT_TRY(rc);
    int r = ldb_step_row(l, st, sql, e);
    *out = r == 1 ? sqlite3_column_int64(st, 0) : 0;
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

/* Steps a query: 1 with a row, 0 at the end, or an error. */
int ldb_step_row(ct_ledger_t *l, sqlite3_stmt *st, const char *what, ct_err_t *e) {
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) return 1;
    if (r == SQLITE_DONE) return 0;
    return db_err(l, what, e);
}

/* The plan as it was before this transaction changed it: back after a rollback of the level it
 * was kept at (or an outer one), or dropped once the transaction commits. Nothing here can fail:
 * the copy was made before the change (ldb_plan_keep). */
static void plan_back(ct_ledger_t *l, int level) {
    if (!l->plan_before || l->plan_level < level) return;
    ct_plan_destroy(&l->plan);
    l->plan = l->plan_before;
    l->plan_before = NULL;
}

static void plan_kept(ct_ledger_t *l) {
    ct_plan_destroy(&l->plan_before);
}

int ldb_plan_keep(ct_ledger_t *l, ct_err_t *e) {
    if (l->plan_before) return 0;
    ct_plan_t *p = NULL;
    cJSON *changes = ct_plan_changes_json(l->plan);
    int rc = changes ? ct_plan_create(&p, l->m, l->held_out, l->seed, e)
                     : CT_ERR(e, CT_ENOMEM, "out of memory");
    if (rc == 0) rc = ct_plan_apply(p, changes, NULL, e);
    cJSON_Delete(changes);
    if (rc != 0) {
        ct_plan_destroy(&p);
        return rc;
    }
    l->plan_before = p;
    l->plan_level = l->in_tx;
    return 0;
}

/* After a ROLLBACK of the outermost level: the plan in memory goes back with the tables. */
static void rolled_back(ct_ledger_t *l) {
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    plan_back(l, 0);
}

/* A transaction or savepoint statement, prepared once (they run several times a request). */
static int control(ct_ledger_t *l, const char *sql, ct_err_t *e) {
    return ldb_run(l, NULL, e, sql, "");
}

/* One transaction around body(l, arg, e): committed when it returns 0, else rolled back. Inside
 * the caller's ct_ledger_begin, part of the caller's level, which the caller undoes when a call
 * failed (a savepoint per call would cost two statements a call, several times a request). */
int ldb_transaction(ct_ledger_t *l, int (*body)(ct_ledger_t *, void *, ct_err_t *), void *arg,
                    ct_err_t *e) {
    if (l->in_tx) return body(l, arg, e);
    CT_TRY(control(l, "BEGIN IMMEDIATE", e));
    int rc = body(l, arg, e);
    if (rc == 0) rc = control(l, "COMMIT", e);
    if (rc != 0)
        rolled_back(l);
    else
        plan_kept(l);
    return rc;
}

int ct_ledger_begin(ct_ledger_t *l, ct_err_t *e) {
    /* the outermost level is the transaction; inner ones are savepoints */
    CT_TRY(control(l, l->in_tx ? "SAVEPOINT nest" : "BEGIN IMMEDIATE", e));
    l->in_tx++;
    return 0;
}

int ct_ledger_end(ct_ledger_t *l, int keep, ct_err_t *e) {
    if (!l->in_tx) return CT_ERR(e, CT_ESTATE, "ledger %s: no transaction is open", l->path);
    int level = l->in_tx--, outer = l->in_tx == 0, rc = 0;
    if (keep && (rc = control(l, outer ? "COMMIT" : "RELEASE nest", e)) == 0) {
        if (outer)
            plan_kept(l);
        else if (l->plan_before && l->plan_level > l->in_tx)
            l->plan_level = l->in_tx; /* now the enclosing level's change */
        return 0;
    }
    if (outer) {
        rolled_back(l);
    } else {
        sqlite3_exec(l->db, "ROLLBACK TO nest", NULL, NULL, NULL);
        sqlite3_exec(l->db, "RELEASE nest", NULL, NULL, NULL);
        plan_back(l, level);
    }
    return rc;
}

int ct_ledger_reply_get(ct_ledger_t *l, const char *group, int64_t *req, char **text, ct_err_t *e) {
    sqlite3_stmt *st;
    *req = -1;
    *text = NULL;
    CT_TRY(ldb_prepare(l, &st, e, "SELECT req, reply FROM replies WHERE grp = ?", "t", group));
    int r = ldb_step_row(l, st, "reading a stored reply", e);
    if (r == 1) {
        *req = sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        *text = strdup(t ? t : "");
        if (!*text) r = CT_ERR(e, CT_ENOMEM, "out of memory reading a stored reply");
    }
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

int ct_ledger_reply_put(ct_ledger_t *l, const char *group, int64_t req, const char *text,
                        ct_err_t *e) {
    return ldb_run(l, NULL, e, "INSERT OR REPLACE INTO replies(grp, req, reply) VALUES(?, ?, ?)",
                   "tit", group, req, text);
}

/* meta's `key` into buf ("" when absent). */
int ldb_meta_text(ct_ledger_t *l, const char *key, char *buf, size_t cap, ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e, "SELECT value FROM meta WHERE key = ?", "t", key));
    int r = ldb_step_row(l, st, "reading meta", e);
    const unsigned char *v = r == 1 ? sqlite3_column_text(st, 0) : NULL;
    snprintf(buf, cap, "%s", v ? (const char *)v : "");
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

/* meta's integer `key`, or def when absent. */
static int meta_int(ct_ledger_t *l, const char *key, int64_t def, int64_t *out, ct_err_t *e) {
    char v[24];
    CT_TRY(ldb_meta_text(l, key, v, sizeof v, e));
    *out = v[0] ? strtoll(v, NULL, 10) : def;
    return 0;
}

int ldb_set_meta(ct_ledger_t *l, const char *key, const char *value, ct_err_t *e) {
    return ldb_run(l, NULL, e, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", "tt", key,
                   value);
}

/* Appends the public log's record of `type` with canonical fields `body` to the log table. */
static int record_text(ct_ledger_t *l, const char *type, const char *body, ct_err_t *e) {
    return ldb_run(l, NULL, e, "INSERT INTO log(at, type, body) VALUES(?, ?, ?)", "dtt",
                   ct_wall_s(), type, body);
}

/* The same with fields f (consumed). */
int ldb_record(ct_ledger_t *l, const char *type, cJSON *f, ct_err_t *e) {
    char *body = f ? ct_json_canonical(f, e) : NULL;
    cJSON_Delete(f);
    if (!body) return e->code ? e->code : CT_ERR(e, CT_ENOMEM, "out of memory logging %s", type);
    int rc = record_text(l, type, body, e);
    free(body);
    return rc;
}

/* 1 when canonical JSON writes s as it is (nothing to escape): then a record of the hot paths
 * (a lease, a report: every request of a busy coordinator) is written without building JSON. */
static int plain(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* shard_leased / shard_done: {epoch, fence (leases), group, shard}, members in canonical order. */
static int record_unit(ct_ledger_t *l, const char *type, const char *group, const char *shard,
                       int64_t epoch, int64_t fence, ct_err_t *e) {
    if (plain(group) && plain(shard)) {
        char body[CT_GROUP_MAX + CT_SHARD_ID_MAX + 96], f[40] = "";
        if (fence >= 0) snprintf(f, sizeof f, "\"fence\":%lld,", (long long)fence);
        snprintf(body, sizeof body, "{\"epoch\":%lld,%s\"group\":\"%s\",\"shard\":\"%s\"}",
                 (long long)epoch, f, group, shard);
        return record_text(l, type, body, e);
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "group", group) ||
        !cJSON_AddStringToObject(o, "shard", shard) ||
        !cJSON_AddNumberToObject(o, "epoch", (double)epoch) ||
        (fence >= 0 && !cJSON_AddNumberToObject(o, "fence", (double)fence))) {
        cJSON_Delete(o);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging %s", type);
    }
    return ldb_record(l, type, o, e);
}

/* "<shard id>:<epoch>", as records name units. */
cJSON *ldb_unit_name(const char *shard_id, int64_t epoch) {
    char s[CT_SHARD_ID_MAX + 24];
    snprintf(s, sizeof s, "%s:%lld", shard_id, (long long)epoch);
    return cJSON_CreateString(s);
}

/* Runs `sql`, an UPDATE ... RETURNING shard, epoch, and appends the units it returns to arr as
 * "<shard id>:<epoch>"; *n gets how many. */
static int units_of_va(ct_ledger_t *l, cJSON *arr, int *n, ct_err_t *e, const char *sql,
                       const char *types, va_list ap) {
    sqlite3_stmt *st = NULL;
    CT_TRY(prepare_va(l, &st, e, sql, types, ap));
    int r = 0, rc = 0;
    *n = 0;
    while (rc == 0 && (r = ldb_step_row(l, st, "changing units", e)) == 1) {
        int64_t shard = sqlite3_column_int64(st, 0);
        cJSON *u = shard >= 0 && shard < ct_plan_shards(l->plan)
                       ? ldb_unit_name(ldb_shard_id(l, shard), sqlite3_column_int64(st, 1))
                       : NULL;
        if (!u || !cJSON_AddItemToArray(arr, u)) {
            cJSON_Delete(u);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory logging units");
        }
        ++*n;
    }
    ldb_done(l, st);
    return rc == 0 && r < 0 ? r : rc;
}

int ldb_units_of(ct_ledger_t *l, cJSON *arr, int *n, ct_err_t *e, const char *sql,
                 const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int rc = units_of_va(l, arr, n, e, sql, types, ap);
    va_end(ap);
    return rc;
}

/* Returns to available the units that `sql` (an UPDATE ... RETURNING shard, epoch) sets back,
 * logging them as one shards_returned record saying why; *n (may be NULL) gets how many. */
int ldb_return_units(ct_ledger_t *l, int *n, const char *why, ct_err_t *e, const char *sql,
                     const char *types, ...) {
    cJSON *f = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(f, "shards");
    int count = 0, rc = f && arr && cJSON_AddStringToObject(f, "why", why)
                            ? 0
                            : CT_ERR(e, CT_ENOMEM, "out of memory logging returned units");
    if (rc == 0) {
        va_list ap;
        va_start(ap, types);
        rc = units_of_va(l, arr, &count, e, sql, types, ap);
        va_end(ap);
    }
    if (n) *n = count;
    if (rc != 0 || count == 0) {
        cJSON_Delete(f);
        return rc;
    }
    return ldb_record(l, "shards_returned", f, e);
}

/* Logs group_left {group, why[, successor]} for each group the statement st (a DELETE FROM
 * groups ... RETURNING grp, prepared) takes out of the groups table, and finishes st. */
static int groups_left(ct_ledger_t *l, sqlite3_stmt *st, const char *why, const char *successor,
                       ct_err_t *e) {
    int r, rc = 0;
    while (rc == 0 && (r = ldb_step_row(l, st, "taking groups out", e)) == 1) {
        cJSON *f = cJSON_CreateObject();
        if (!f || !cJSON_AddStringToObject(f, "group", (const char *)sqlite3_column_text(st, 0)) ||
            !cJSON_AddStringToObject(f, "why", why) ||
            (successor && !cJSON_AddStringToObject(f, "successor", successor))) {
            cJSON_Delete(f);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory logging a group");
        } else {
            rc = ldb_record(l, "group_left", f, e);
        }
    }
    ldb_done(l, st);
    return rc == 0 && r < 0 ? r : rc;
}

/* The next value (1, 2, ...) of the counter *c, meta's `key`. */
static int next_counter(ct_ledger_t *l, const char *key, int64_t *c, int64_t *out, ct_err_t *e) {
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)(*c + 1));
    CT_TRY(ldb_set_meta(l, key, v, e));
    *out = ++*c;
    return 0;
}

/* ---- open ---- */

typedef struct open_args {
    const ct_manifest_t *m;
    int held_out;
    const char *config_sha256;
} open_args_t;

/* meta's manifest_path: where `cotrain add-data` and `cotrain exclude` find the run's data. */
static int manifest_path(ct_ledger_t *l, const ct_manifest_t *m, ct_err_t *e) {
    char *abs = realpath(m->path, NULL);
    int rc = ldb_set_meta(l, "manifest_path", abs ? abs : m->path, e);
    free(abs);
    return rc;
}

/* A new ledger: its identity and the shards trained on; an existing one: checked against them. */
static int init(ct_ledger_t *l, void *arg, ct_err_t *e) {
    const open_args_t *a = arg;
    const ct_manifest_t *m = a->m;
    char seed[24], held[24], fmt[64], sha[CT_SHA256_HEX], old_seed[24], old_held[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)l->seed);
    snprintf(held, sizeof held, "%d", a->held_out);
    CT_TRY(ldb_meta_text(l, "format", fmt, sizeof fmt, e));
    if (fmt[0]) {
        if (strcmp(fmt, FORMAT) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "ledger %s has format \"%s\", this coordinator reads \"%s\" (a run "
                          "begun by another version of cotrain: finish it with that version)",
                          l->path, fmt, FORMAT);
        CT_TRY(ldb_meta_text(l, "manifest_sha256", sha, sizeof sha, e));
        CT_TRY(ldb_meta_text(l, "seed", old_seed, sizeof old_seed, e));
        CT_TRY(ldb_meta_text(l, "held_out", old_held, sizeof old_held, e));
        if (strcmp(sha, m->sha256) != 0 || strcmp(old_seed, seed) != 0)
            return CT_ERR(e, CT_EINVAL,
                          "ledger %s belongs to another run: made for manifest "
                          "%.16s... and seed %s, not %.16s... and seed %s; give the run's own "
                          "data and config, or a new run directory",
                          l->path, sha, old_seed, m->sha256, seed);
        if (strcmp(old_held, held) != 0)
            return CT_ERR(e, CT_EINVAL,
                          "ledger %s holds out the manifest's last %s shard(s) for "
                          "evaluation, the config says data.eval_shards = %s: keep the run's "
                          "value",
                          l->path, old_held, held);
        return manifest_path(l, m, e);
    }
    CT_TRY(manifest_path(l, m, e));
    CT_TRY(ldb_set_meta(l, "format", FORMAT, e));
    CT_TRY(ldb_set_meta(l, "manifest_sha256", m->sha256, e));
    CT_TRY(ldb_set_meta(l, "seed", seed, e));
    CT_TRY(ldb_set_meta(l, "held_out", held, e));
    for (int i = 0; i < l->n_shards; i++)
        CT_TRY(ldb_run(l, NULL, e, "INSERT INTO shards(idx, id) VALUES(?, ?)", "it", (int64_t)i,
                       m->shards[i].id));
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "config_sha256", a->config_sha256) ||
        !cJSON_AddStringToObject(f, "data_sha256", m->sha256) ||
        !cJSON_AddStringToObject(f, "seed", seed) ||
        !cJSON_AddNumberToObject(f, "held_out", a->held_out) ||
        !cJSON_AddNumberToObject(f, "shards", l->n_shards)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging the run's start");
    }
    return ldb_record(l, "run_started", f, e);
}

const char *ldb_shard_id(const ct_ledger_t *l, int64_t idx) {
    return ct_plan_shard(l->plan, idx)->id;
}

/* What the ledger keeps in memory: the data plan (the shards table must match it) and the
 * counters. */
static int load(ct_ledger_t *l, ct_err_t *e) {
    CT_TRY(ldb_plan_load(l, e));
    sqlite3_stmt *st;
    int r;
    int64_t n = 0, want = ct_plan_shards(l->plan);
    CT_TRY(ldb_prepare(l, &st, e, "SELECT idx, id FROM shards ORDER BY idx", ""));
    while ((r = ldb_step_row(l, st, "reading the shards", e)) == 1 && n < want &&
           sqlite3_column_int64(st, 0) == n &&
           !strcmp((const char *)sqlite3_column_text(st, 1), ldb_shard_id(l, n)))
        n++;
    ldb_done(l, st);
    CT_TRY(r < 0 ? r : 0);
    if (n != want)
        return CT_ERR(e, CT_ECORRUPT,
                      "ledger %s lists %lld of its %lld shards as its data says: it is damaged",
                      l->path, (long long)n, (long long)want);
    CT_TRY(meta_int(l, "fence", 0, &l->fence, e));
    CT_TRY(meta_int(l, "metrics_gen", 0, &l->metrics_gen, e));
    return meta_int(l, "done_seq", 0, &l->done_seq, e);
}

int ct_ledger_open(ct_ledger_t **out, const char *path, const ct_manifest_t *m, uint64_t seed,
                   int held_out, const char *config_sha256, ct_err_t *e) {
    int rc = 0;
    ct_ledger_t *l = NULL;
    *out = NULL;
    if (held_out < 0 || held_out >= m->n_shards)
        return CT_ERR(e, CT_EINVAL,
                      "data.eval_shards = %d holds out %s of the %d shard(s) of %s: at least "
                      "one must be left to train on",
                      held_out, held_out < 0 ? "a negative number" : "all", m->n_shards, m->path);
    CT_ALLOC(e, l, 1, fail);
    l->wal_fd = -1;
    CT_TRY_GOTO(ct_path_fmt(l->path, sizeof l->path, e, "%s", path), fail);
    l->n_shards = m->n_shards - held_out;
    l->seed = seed;
    l->m = m;
    l->held_out = held_out;
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ldb_vfs()) !=
        SQLITE_OK) {
        rc = CT_ERR(e, CT_EIO, "cannot open the ledger %s: %s", path,
                    l->db ? sqlite3_errmsg(l->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(l->db, 10000);
    /* durability first: a reply goes out only after its transaction reached the disk */
    CT_TRY_GOTO(exec(l, "PRAGMA journal_mode=WAL", e), fail);
    CT_TRY_GOTO(exec(l, "PRAGMA synchronous=FULL", e), fail);
    CT_TRY_GOTO(exec(l, "PRAGMA foreign_keys=ON", e), fail);
    if (sqlite3_exec(l->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s is not a cotrain ledger (or is damaged): %s", path,
                    sqlite3_errmsg(l->db));
        goto fail;
    }
    open_args_t args = {.m = m, .held_out = held_out, .config_sha256 = config_sha256};
    CT_TRY_GOTO(ldb_transaction(l, init, &args, e), fail);
    CT_TRY_GOTO(load(l, e), fail);
    *out = l;
    return 0;
fail:
    ct_ledger_close(&l);
    return rc;
}

int ldb_open_conn(ct_ledger_t **out, const char *path, int writable, ct_err_t *e) {
    int rc = 0;
    ct_ledger_t *l = NULL;
    *out = NULL;
    CT_ALLOC(e, l, 1, fail);
    l->wal_fd = -1;
    CT_TRY_GOTO(ct_path_fmt(l->path, sizeof l->path, e, "%s", path), fail);
    if (sqlite3_open_v2(path, &l->db, writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY,
                        ldb_vfs()) != SQLITE_OK) {
        rc = CT_ERR(e, CT_EIO, "cannot open the ledger %s%s: %s", path, writable ? "" : " to read",
                    l->db ? sqlite3_errmsg(l->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(l->db, 10000);
    *out = l;
    return 0;
fail:
    ct_ledger_close(&l);
    return rc;
}

int ct_ledger_open_reader(ct_ledger_t **out, const char *path, ct_err_t *e) {
    return ldb_open_conn(out, path, 0, e);
}

void ct_ledger_close(ct_ledger_t **self_p) {
    ct_ledger_t *l = *self_p;
    if (!l) return;
    for (int i = 0; i < l->n_cache; i++)
        sqlite3_finalize(l->cache[i].st);
    if (l->db) sqlite3_close(l->db);
    if (l->wal_fd >= 0) close(l->wal_fd);
    free(l->order);
    ct_plan_destroy(&l->plan);
    ct_plan_destroy(&l->plan_before);
    free(l);
    *self_p = NULL;
}

int ct_ledger_defer_sync(ct_ledger_t *l, int on, ct_err_t *e) {
    if (!on && l->deferred) CT_TRY(ct_ledger_sync(l, e));
    CT_TRY(exec(l, on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", e));
    l->deferred = on;
    return 0;
}

int ct_ledger_sync(ct_ledger_t *l, ct_err_t *e) {
    char wal[CT_PATH_MAX];
    struct stat now, held;
    CT_TRY(ct_path_fmt(wal, sizeof wal, e, "%s-wal", l->path));
    if (stat(wal, &now) != 0) {
        if (errno == ENOENT) return 0; /* no WAL: every commit is in the database file */
        return CT_ERR(e, CT_EIO, "cannot look at %s: %s", wal, strerror(errno));
    }
    /* SQLite keeps its WAL file while a connection is open; should it ever be made anew, the
       new one is synced, not the old */
    if (l->wal_fd >= 0 &&
        (fstat(l->wal_fd, &held) != 0 || held.st_ino != now.st_ino || held.st_dev != now.st_dev)) {
        close(l->wal_fd);
        l->wal_fd = -1;
    }
    if (l->wal_fd < 0 && (l->wal_fd = open(wal, O_RDONLY | O_CLOEXEC)) < 0)
        return CT_ERR(e, CT_EIO, "cannot open %s: %s", wal, strerror(errno));
    int injected = ct_fault_hit(CT_FAULT_FSYNC);
    if (injected || fdatasync(l->wal_fd) != 0)
        return CT_ERR(e, CT_EIO,
                      "cannot sync %s: %s (the ledger's last changes may not be on disk: the "
                      "coordinator stops; restart it once the disk is fixed)",
                      wal, ct_fault_strerror(injected, errno));
    return 0;
}

int ct_ledger_log_head(ct_ledger_t *l, int64_t *seq, ct_err_t *e) {
    return ldb_int64(l, seq, e, "SELECT COALESCE(MAX(seq), 0) FROM log", "");
}

/* ---- leases ---- */

typedef struct lease_args {
    const char *group;
    double now, ttl;
    ct_lease_t *out;
} lease_args_t;

/* The epoch the next begin_epoch makes (how many there are). */
int ldb_next_epoch(ct_ledger_t *l, int64_t *next, ct_err_t *e) {
    return ldb_int64(l, next, e, "SELECT COALESCE(MAX(epoch) + 1, 0) FROM units", "");
}

/* Begins the next epoch: its units, available, in the plan's order (ct_data_shard_order until
 * data is added); excluded units are not made. */
int ldb_begin_epoch(ct_ledger_t *l, ct_err_t *e) {
    int64_t next, n = ct_plan_shards(l->plan);
    CT_TRY(ldb_next_epoch(l, &next, e));
    if (n > l->order_cap) {
        int64_t *o = realloc(l->order, (size_t)n * sizeof *o);
        if (!o) return CT_ERR(e, CT_ENOMEM, "out of memory ordering %lld shards", (long long)n);
        l->order = o;
        l->order_cap = n;
    }
    int64_t len = ct_plan_epoch_len(l->plan, next);
    ct_plan_order(l->plan, next, l->order);
    for (int64_t p = 0; p < len; p++)
        if (!ct_plan_excluded(l->plan, next, p, l->order[p]))
            CT_TRY(ldb_run(l, NULL, e, "INSERT INTO units(epoch, pos, shard) VALUES(?, ?, ?)",
                           "iii", next, p, l->order[p]));
    return 0;
}

/* The first available unit in order into *epoch, *pos, *shard: 1, or 0 when none. */
static int first_available(ct_ledger_t *l, int64_t *epoch, int64_t *pos, int64_t *shard,
                           ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT epoch, pos, shard FROM units WHERE state = 0 "
                       "ORDER BY epoch, pos LIMIT 1",
                       ""));
    int r = ldb_step_row(l, st, "finding an available unit", e);
    if (r == 1) {
        *epoch = sqlite3_column_int64(st, 0);
        *pos = sqlite3_column_int64(st, 1);
        *shard = sqlite3_column_int64(st, 2);
    }
    ldb_done(l, st);
    return r;
}

static int lease_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    lease_args_t *a = arg;
    int64_t epoch = 0, pos = 0, shard = 0, fence;
    int r = first_available(l, &epoch, &pos, &shard, e);
    if (r == 0) {
        CT_TRY(ldb_begin_epoch(l, e));
        r = first_available(l, &epoch, &pos, &shard, e);
    }
    if (r < 0) return r;
    if (r == 0) return CT_ERR(e, CT_ESTATE, "ledger %s has no shards to lease", l->path);
    CT_TRY(next_counter(l, "fence", &l->fence, &fence, e));
    double expiry = a->now + a->ttl;
    CT_TRY(ldb_run(l, NULL, e,
                   "UPDATE units SET state = 1, grp = ?, fence = ?, expiry = ? "
                   "WHERE epoch = ? AND pos = ?",
                   "tidii", a->group, fence, expiry, epoch, pos));
    ct_lease_t *o = a->out;
    memset(o, 0, sizeof *o);
    o->shard = (int)shard;
    o->epoch = epoch;
    o->fence = fence;
    o->expiry = expiry;
    snprintf(o->shard_id, sizeof o->shard_id, "%s", ldb_shard_id(l, shard));
    return record_unit(l, "shard_leased", a->group, o->shard_id, epoch, fence, e);
}

int ct_ledger_lease(ct_ledger_t *l, const char *group, double now, double ttl, ct_lease_t *out,
                    ct_err_t *e) {
    lease_args_t a = {.group = group, .now = now, .ttl = ttl, .out = out};
    return ldb_transaction(l, lease_tx, &a, e);
}

typedef struct done_args {
    const char *group, *shard_id;
    int64_t epoch, fence;
} done_args_t;

static int done_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    done_args_t *a = arg;
    int64_t seq;
    int changed = 0;
    CT_TRY(next_counter(l, "done_seq", &l->done_seq, &seq, e));
    CT_TRY(ldb_run(l, &changed, e,
                   "UPDATE units SET state = 2, done_seq = ? WHERE state = 1 AND "
                   "epoch = ? AND grp = ? AND fence = ? AND "
                   "shard = (SELECT idx FROM shards WHERE id = ?)",
                   "iitit", seq, a->epoch, a->group, a->fence, a->shard_id));
    if (changed == 1) return record_unit(l, "shard_done", a->group, a->shard_id, a->epoch, -1, e);
    return CT_ERR(e, CT_ESTATE,
                  "shard %s of epoch %lld is not leased to %s with token %lld (the "
                  "lease expired and was handed out again, or it was never this group's): the "
                  "report is refused",
                  a->shard_id, (long long)a->epoch, a->group, (long long)a->fence);
}

int ct_ledger_done(ct_ledger_t *l, const char *group, const char *shard_id, int64_t epoch,
                   int64_t fence, ct_err_t *e) {
    done_args_t a = {.group = group, .shard_id = shard_id, .epoch = epoch, .fence = fence};
    return ldb_transaction(l, done_tx, &a, e);
}

typedef struct update_args {
    const char *group, *key;
    double t;
    int changed;
} update_args_t;

static int heartbeat_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    update_args_t *a = arg;
    return ldb_run(l, NULL, e, "UPDATE units SET expiry = ? WHERE state = 1 AND grp = ?", "dt",
                   a->t, a->group);
}

int ct_ledger_heartbeat(ct_ledger_t *l, const char *group, double now, double ttl, ct_err_t *e) {
    update_args_t a = {.group = group, .t = now + ttl};
    return ldb_transaction(l, heartbeat_tx, &a, e);
}

static int expire_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    update_args_t *a = arg;
    sqlite3_stmt *st;
    /* a group whose leases all lapsed went silent: it has left (a hello brings it back) */
    CT_TRY(ldb_prepare(l, &st, e,
                       "DELETE FROM groups WHERE grp IN (SELECT grp FROM units WHERE state = 1 AND "
                       "expiry < ?) AND grp NOT IN (SELECT grp FROM units WHERE state = 1 AND "
                       "expiry >= ?) RETURNING grp",
                       "dd", a->t, a->t));
    CT_TRY(groups_left(l, st, "silent", NULL, e));
    return ldb_return_units(l, &a->changed, "expired", e,
                            "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL "
                            "WHERE state = 1 AND expiry < ? RETURNING shard, epoch",
                            "d", a->t);
}

static int leave_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    update_args_t *a = arg;
    sqlite3_stmt *st;
    CT_TRY(ldb_return_units(l, &a->changed, "left", e,
                            "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL "
                            "WHERE state = 1 AND grp = ? RETURNING shard, epoch",
                            "t", a->group));
    CT_TRY(ldb_prepare(l, &st, e, "DELETE FROM groups WHERE grp = ? RETURNING grp", "t", a->group));
    return groups_left(l, st, a->key, NULL, e);
}

int ct_ledger_leave(ct_ledger_t *l, const char *group, const char *why, int *n, ct_err_t *e) {
    update_args_t a = {.group = group, .key = why};
    int rc = ldb_transaction(l, leave_tx, &a, e);
    if (n) *n = a.changed;
    return rc;
}

int ct_ledger_expire(ct_ledger_t *l, double now, int *n, ct_err_t *e) {
    update_args_t a = {.t = now};
    int rc = ldb_transaction(l, expire_tx, &a, e);
    if (n) *n = a.changed;
    return rc;
}

static int restart_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    update_args_t *a = arg;
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "group", a->group) ||
        (a->key && !cJSON_AddStringToObject(f, "key", a->key))) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging a group");
    }
    CT_TRY(ldb_record(l, "group_joined", f, e));
    return ldb_return_units(l, &a->changed, "restart", e,
                            "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL, "
                            "done_seq = NULL WHERE grp = ? AND (state = 1 OR (state = 2 AND NOT "
                            "EXISTS (SELECT 1 FROM deltas d WHERE d.grp = units.grp))) "
                            "RETURNING shard, epoch",
                            "t", a->group);
}

int ct_ledger_restart(ct_ledger_t *l, const char *group, const char *key, int *n, ct_err_t *e) {
    update_args_t a = {.group = group, .key = key};
    int rc = ldb_transaction(l, restart_tx, &a, e);
    if (n) *n = a.changed;
    return rc;
}

int ct_ledger_counts(ct_ledger_t *l, ct_ledger_counts_t *c, ct_err_t *e) {
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e, "SELECT state, COUNT(*) FROM units GROUP BY state", ""));
    int r;
    while ((r = ldb_step_row(l, st, "counting units", e)) == 1) {
        int64_t n = sqlite3_column_int64(st, 1);
        switch (sqlite3_column_int(st, 0)) {
        case AVAILABLE: c->available = n; break;
        case LEASED: c->leased = n; break;
        case DONE: c->done = n; break;
        default: c->committed = n; break;
        }
    }
    ldb_done(l, st);
    CT_TRY(r);
    CT_TRY(ldb_prepare(l, &st, e, "SELECT COUNT(DISTINCT epoch) FROM units", ""));
    if ((r = ldb_step_row(l, st, "counting epochs", e)) == 1)
        c->epochs = sqlite3_column_int64(st, 0);
    ldb_done(l, st);
    return r < 0 ? r : 0;
}

static int seen(ct_ledger_t *l, const char *group, double now, int standby, ct_err_t *e) {
    return ldb_run(l, NULL, e,
                   "INSERT OR REPLACE INTO groups(grp, last_seen, standby) VALUES(?, ?, ?)", "tdi",
                   group, now, (int64_t)standby);
}

int ct_ledger_touch(ct_ledger_t *l, const char *group, double now, int *member, ct_err_t *e) {
    int changed = 0;
    CT_TRY(
        ldb_run(l, &changed, e, "UPDATE groups SET last_seen = ? WHERE grp = ?", "dt", now, group));
    *member = changed == 1;
    return 0;
}

int ct_ledger_grace(ct_ledger_t *l, double until, ct_err_t *e) {
    return ldb_run(l, NULL, e, "UPDATE units SET expiry = ? WHERE state = 1 AND expiry < ?", "dd",
                   until, until);
}

int ct_ledger_seen(ct_ledger_t *l, const char *group, double now, ct_err_t *e) {
    return seen(l, group, now, 0, e);
}

typedef struct standby_args {
    const char *group;
    double now, ttl;
    char *active;
    int reclaimed;
} standby_args_t;

static int standby_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    standby_args_t *a = arg;
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT grp FROM groups WHERE grp != ? AND standby = 0 AND last_seen >= ? "
                       "ORDER BY last_seen DESC LIMIT 1",
                       "td", a->group, a->now - a->ttl));
    int r = ldb_step_row(l, st, "looking for the active group", e);
    if (r == 1) snprintf(a->active, CT_GROUP_MAX, "%s", sqlite3_column_text(st, 0));
    ldb_done(l, st);
    if (r < 0) return r;
    CT_TRY(seen(l, a->group, a->now, r == 1, e));
    if (r == 1) return 0;
    /* taking over: the groups that trained and fell silent have left (logged; a hello brings
       one back), and their leased and finished units go back, in their places */
    CT_TRY(ldb_prepare(l, &st, e, "DELETE FROM groups WHERE grp != ? AND standby = 0 RETURNING grp",
                       "t", a->group));
    CT_TRY(groups_left(l, st, "silent", a->group, e));
    return ldb_return_units(
        l, &a->reclaimed, "takeover", e,
        "UPDATE units SET state = 0, grp = NULL, fence = NULL, expiry = NULL, "
        "done_seq = NULL WHERE state IN (1, 2) AND grp != ? RETURNING shard, epoch",
        "t", a->group);
}

int ct_ledger_standby(ct_ledger_t *l, const char *group, double now, double ttl,
                      char active[CT_GROUP_MAX], int *reclaimed, ct_err_t *e) {
    standby_args_t a = {group, now, ttl, active, 0};
    active[0] = '\0';
    int rc = ldb_transaction(l, standby_tx, &a, e);
    if (reclaimed) *reclaimed = a.reclaimed;
    return rc;
}

int ct_ledger_groups(ct_ledger_t *l, int max, ct_group_info_t **out, int *n, ct_err_t *e) {
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT * FROM (SELECT g.grp, g.last_seen, (SELECT COUNT(*) FROM units u "
                       "WHERE u.state = 1 AND u.grp = g.grp), g.standby FROM groups g "
                       "ORDER BY g.last_seen DESC LIMIT ?) ORDER BY 1",
                       "i", (int64_t)(max > 0 ? max : -1)));
    int r, cap = 0, rc = 0;
    while ((r = ldb_step_row(l, st, "listing groups", e)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            ct_group_info_t *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                rc = CT_ERR(e, CT_ENOMEM, "out of memory listing groups");
                break;
            }
            *out = p;
        }
        ct_group_info_t *g = &(*out)[(*n)++];
        snprintf(g->name, sizeof g->name, "%s", sqlite3_column_text(st, 0));
        g->last_seen = sqlite3_column_double(st, 1);
        g->leased = sqlite3_column_int64(st, 2);
        g->standby = sqlite3_column_int(st, 3);
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

typedef struct record_args {
    const char *type;
    cJSON *f;
} record_args_t;

static int record_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    record_args_t *a = arg;
    cJSON *f = a->f;
    a->f = NULL;
    return ldb_record(l, a->type, f, e);
}

int ct_ledger_record(ct_ledger_t *l, const char *type, cJSON *f, ct_err_t *e) {
    record_args_t a = {type, f};
    int rc = ldb_transaction(l, record_tx, &a, e);
    cJSON_Delete(a.f);
    return rc;
}

int ct_ledger_records(ct_ledger_t *l, int64_t after, int64_t max, ct_ledger_record_fn fn, void *arg,
                      ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT seq, at, type, body FROM log WHERE seq > ? ORDER BY seq "
                       "LIMIT ?",
                       "ii", after, max));
    int r, rc = 0;
    while (rc == 0 && (r = ldb_step_row(l, st, "reading the log", e)) == 1)
        rc = fn(arg, sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1),
                (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
                e);
    ldb_done(l, st);
    return rc == 0 && r < 0 ? r : rc;
}

/* Drops the metrics lines past step `keep` (a run gone back to an earlier checkpoint logs those
 * steps again); a drop moves the generation on. */
static int metrics_drop(ct_ledger_t *l, int64_t keep, ct_err_t *e) {
    int n = 0;
    int64_t gen;
    CT_TRY(ldb_run(l, &n, e, "DELETE FROM metrics WHERE step > ?", "i", keep));
    return n ? next_counter(l, "metrics_gen", &l->metrics_gen, &gen, e) : 0;
}

typedef struct metrics_args {
    const char *group, *line;
    int64_t step;
} metrics_args_t;

static int metrics_add_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    metrics_args_t *a = arg;
    CT_TRY(metrics_drop(l, a->step - 1, e));
    return ldb_run(l, NULL, e, "INSERT INTO metrics(step, grp, line) VALUES(?, ?, ?)", "itt",
                   a->step, a->group, a->line);
}

int ct_ledger_metrics_add(ct_ledger_t *l, const char *group, int64_t step, const char *line,
                          ct_err_t *e) {
    metrics_args_t a = {group, line, step};
    return ldb_transaction(l, metrics_add_tx, &a, e);
}

static int metrics_rewind_tx(ct_ledger_t *l, void *arg, ct_err_t *e) {
    return metrics_drop(l, *(int64_t *)arg, e);
}

int ct_ledger_metrics_rewind(ct_ledger_t *l, int64_t step, ct_err_t *e) {
    return ldb_transaction(l, metrics_rewind_tx, &step, e);
}

int ct_ledger_metrics_gen(ct_ledger_t *l, int64_t *gen, ct_err_t *e) {
    return meta_int(l, "metrics_gen", 0, gen, e);
}

int ct_ledger_metrics(ct_ledger_t *l, int64_t after, int64_t max, ct_ledger_metrics_fn fn,
                      void *arg, ct_err_t *e) {
    sqlite3_stmt *st;
    CT_TRY(ldb_prepare(l, &st, e,
                       "SELECT seq, line FROM metrics WHERE seq > ? ORDER BY seq LIMIT ?", "ii",
                       after, max));
    int r, rc = 0;
    while (rc == 0 && (r = ldb_step_row(l, st, "reading the metrics", e)) == 1)
        rc = fn(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1), e);
    ldb_done(l, st);
    return rc == 0 && r < 0 ? r : rc;
}
