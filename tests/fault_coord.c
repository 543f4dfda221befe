/* fault_coord.c — the coordinator under fault injection (fault.h), the SQLite way: every call of
 * a kind fails in turn, N = 1, 2, ... until a run injects nothing.
 *   - a coordinator transaction (a report, a checkpoint commit and the stored reply, then the
 *     ledger's sync), each write, sync or allocation failing once, or every one from the Nth on
 *     (a full disk): the call gives a clear error, and the ledger reopens intact (SQLite's
 *     integrity check) holding either the whole transaction — always when it was acknowledged —
 *     or none of it, and goes on;
 *   - a public-log append (ct_public_open deriving log.jsonl from the ledger, from nothing and
 *     from half a file): the failure is reported or logged, and the next open writes the log
 *     byte for byte as a run without faults did, every line checking (chain, signature);
 *   - data changes taking effect at a commit (plan.h), each write, sync or allocation failing
 *     once or from the Nth on: both changes in effect or both pending after reopening, and the
 *     plan the failed call left in memory the tables' (a rolled-back change leaves none);
 *   - message sends (the client's and the server's), during hello, leases, a report, a heartbeat
 *     and a leave over inproc:// with the real server: a lost request or reply is retried with the
 *     same number and answered (the stored reply), never applied twice, and the coordinator stays
 *     up. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "cotrain/client.h"
#include "cotrain/coord.h"
#include "cotrain/data.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/ledger.h"
#include "cotrain/proto.h"
#include "cotrain/public.h"
#include "cotrain/publog.h"

enum { N = 5, SWEEP_MAX = 4000 };
#define SEED 77u
#define CFG_SHA "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"

static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[64]; /* mkdtemp: in /dev/shm, or /tmp without it */
static ct_log_t g_quiet = {.level = CT_LOG_ERROR, .role = "coordinator", .rank = -1};
static char g_id1[CT_SHA256_HEX], g_id2[CT_SHA256_HEX];

static void path_in(char *out, const char *name) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_path_join(out, CT_PATH_MAX, g_dir, name, &e), 0);
}

static void remove_db(const char *db) {
    char p[CT_PATH_MAX + 8];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
}

static ct_unit_t unit_of(const ct_lease_t *x) {
    ct_unit_t u = {.epoch = x->epoch};
    snprintf(u.shard_id, sizeof u.shard_id, "%s", x->shard_id);
    return u;
}

/* ---- a coordinator transaction ---- */

/* The ledger before the transaction: g1 leased units a and b, a done and committed by
 * checkpoint 1; b is leased (its lease in *b). */
static void make_before(const char *db, void *ctx) {
    ct_lease_t *b = ctx;
    ct_ledger_t *l = NULL;
    ct_err_t e = {0};
    ct_lease_t a;
    remove_db(db);
    CHECK_EQ_INT(ct_ledger_open(&l, db, &g_man, SEED, 0, CFG_SHA, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 1e9, &a, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 1e9, b, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", a.shard_id, a.epoch, a.fence, &e), 0);
    ct_unit_t ua = unit_of(&a);
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 1, 1.0, g_id1, "", &ua, 1, &e), 0);
    ct_ledger_close(&l);
}

/* The transaction under test, as the server makes one: b reported, checkpoint 2 committed with
 * it, the reply stored, then the WAL synced before the reply would go out. */
static int transaction(ct_ledger_t *l, void *ctx, ct_err_t *e) {
    const ct_lease_t *b = ctx;
    ct_unit_t ub = unit_of(b);
    int rc = ct_ledger_begin(l, e);
    if (rc == 0 && (rc = ct_ledger_done(l, "g1", b->shard_id, b->epoch, b->fence, e)) == 0 &&
        (rc = ct_ledger_commit(l, "g1", 2, 2.0, g_id2, g_id1, &ub, 1, e)) == 0)
        rc = ct_ledger_reply_put(l, "g1", 7, "{\"ok\":2}", e);
    if (rc != 0) {
        ct_err_t ignored = {0};
        ct_ledger_end(l, 0, &ignored);
        return rc;
    }
    CT_TRY(ct_ledger_end(l, 1, e));
    return ct_ledger_sync(l, e);
}

/* SQLite's own check of the file: "ok". */
static void check_integrity(const char *db) {
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

/* The reopened ledger holds all of the transaction or none of it (all when `acked`), then
 * takes another transaction. */
static void check_after(const char *db, int acked, int in_memory, const char *what) {
    (void)in_memory; /* no plan change here */
    ct_ledger_t *l = NULL;
    ct_err_t e = {0};
    check_integrity(db);
    CHECK_EQ_INT(ct_ledger_open(&l, db, &g_man, SEED, 0, CFG_SHA, &e), 0);
    if (!l) {
        fprintf(stderr, "  %s: the ledger does not reopen: %s\n", what, e.msg);
        return;
    }
    char head[CT_SHA256_HEX], *reply = NULL;
    int64_t step, req;
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_head(l, head, &step, &e), 0);
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(ct_ledger_reply_get(l, "g1", &req, &reply, &e), 0);
    int all = step == 2 && !strcmp(head, g_id2) && c.committed == 2 && c.leased == 0 && req == 7 &&
              reply && !strcmp(reply, "{\"ok\":2}");
    int none = step == 1 && !strcmp(head, g_id1) && c.committed == 1 && c.leased == 1 &&
               c.done == 0 && req == -1 && !reply;
    if (!(all || (none && !acked))) {
        fprintf(stderr,
                "  %s (%s): head step %lld, committed %lld, leased %lld, done %lld, reply %lld\n",
                what, acked ? "acknowledged" : "failed", (long long)step, (long long)c.committed,
                (long long)c.leased, (long long)c.done, (long long)req);
        CHECK(0);
    }
    free(reply);
    ct_lease_t x;
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 3, 60, &x, &e), 0);
    ct_ledger_close(&l);
}

/* ---- data changes taking effect ---- */

static ct_manifest_t *g_base;    /* a manifest file of N shards (fixture.h), for the requests */
static char g_more[CT_PATH_MAX]; /* a second one, added */

/* The ledger before: checkpoint 1 committed with unit 0 at a cursor in unit 1 (leased), and two
 * changes pending: the shard at unit 3 excluded, g_more's 3 shards added. */
static void make_changes_before(const char *db, void *ctx) {
    (void)ctx;
    ct_ledger_t *l = NULL;
    ct_err_t e = {0};
    ct_lease_t a, b;
    remove_db(db);
    CHECK_EQ_INT(ct_ledger_open(&l, db, g_base, SEED, 0, CFG_SHA, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 1e9, &a, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 1e9, &b, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", a.shard_id, a.epoch, a.fence, &e), 0);
    ct_unit_t ua = unit_of(&a);
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 1, 1.0, g_id1, "", &ua, 1, &e), 0);
    ct_ledger_close(&l);
    int64_t order[N];
    ct_data_shard_order(SEED, 0, N, order);
    cJSON *ex = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(ex, "shards");
    cJSON_AddStringToObject(ex, "kind", "exclude");
    cJSON_AddItemToArray(ids, cJSON_CreateString(g_base->shards[order[3]].id));
    cJSON_AddNumberToObject(ex, "docs", 0);
    cJSON_AddStringToObject(ex, "reason", "test");
    ct_manifest_t *m = NULL;
    CHECK_EQ_INT(ct_manifest_load(&m, g_more, &e), 0);
    cJSON *add = cJSON_CreateObject();
    cJSON_AddStringToObject(add, "kind", "add");
    cJSON_AddStringToObject(add, "manifest", g_more);
    cJSON_AddStringToObject(add, "sha256", m->sha256);
    cJSON_AddNumberToObject(add, "shards", m->n_shards);
    cJSON_AddNumberToObject(add, "tokens", 3000);
    cJSON_AddNumberToObject(add, "docs", 3);
    cJSON_AddStringToObject(add, "reason", "test");
    CHECK_EQ_INT(ct_ledger_request_change(db, ex, NULL, &e), 0);
    CHECK_EQ_INT(ct_ledger_request_change(db, add, NULL, &e), 0);
    cJSON_Delete(ex);
    cJSON_Delete(add);
    ct_manifest_destroy(&m);
}

/* The transaction under test: the changes take effect (a commit's cursor in unit 1), synced. */
static int changes_tx(ct_ledger_t *l, void *ctx, ct_err_t *e) {
    (void)ctx;
    int n = 0;
    CT_TRY(ct_ledger_take_effect(l, 0, 1, &n, e));
    return ct_ledger_sync(l, e);
}

/* The reopened ledger holds both changes in effect (always when `acked`) or both pending, its
 * units as the plan says; the plan the failed call left in memory was the tables' (`in_memory`
 * changes); then the changes take effect. */
static void check_changes_after(const char *db, int acked, int in_memory, const char *what) {
    ct_ledger_t *l = NULL;
    ct_err_t e = {0};
    check_integrity(db);
    CHECK_EQ_INT(ct_ledger_open(&l, db, g_base, SEED, 0, CFG_SHA, &e), 0);
    if (!l) {
        fprintf(stderr, "  %s: the ledger does not reopen: %s\n", what, e.msg);
        return;
    }
    int64_t pending = -1;
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_changes_pending(l, &pending, &e), 0);
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    int in_effect = ct_plan_count(ct_ledger_plan(l));
    int64_t units = c.available + c.leased + c.done + c.committed;
    int all = in_effect == 2 && pending == 0 && units == N - 1 + 3;
    int none = in_effect == 0 && pending == 2 && units == N;
    if (!(all || (none && !acked)) || in_memory != in_effect) {
        fprintf(stderr, "  %s (%s): %d in effect (%d in memory), %lld pending, %lld units\n", what,
                acked ? "acknowledged" : "failed", in_effect, in_memory, (long long)pending,
                (long long)units);
        CHECK(0);
    }
    int n = 0;
    CHECK_EQ_INT(ct_ledger_take_effect(l, 0, 1, &n, &e), 0);
    CHECK_EQ_INT(ct_plan_count(ct_ledger_plan(l)), 2);
    ct_ledger_close(&l);
}

/* A transaction to sweep: its ledger made as before it (before), the transaction with its sync
 * (tx), the checks after reopening (after: `acked` when the call returned 0, `in_memory` the
 * plan's changes the failed call left in memory). */
typedef struct sweep_case {
    const char *name, *file;
    void (*before)(const char *db, void *ctx);
    int (*tx)(ct_ledger_t *l, void *ctx, ct_err_t *e);
    void (*after)(const char *db, int acked, int in_memory, const char *what);
    int any_code; /* any error with a message passes (else CT_EIO or CT_ENOMEM) */
} sweep_case_t;

/* The ledger file `from` (its WAL too, if any) copied to `to`, replacing it. */
static void copy_db(const char *from, const char *to) {
    ct_err_t e = {0};
    char src[CT_PATH_MAX + 16], dst[CT_PATH_MAX + 16];
    remove_db(to);
    for (int k = 0; k < 2; k++) {
        snprintf(src, sizeof src, "%s%s", from, k ? "-wal" : "");
        snprintf(dst, sizeof dst, "%s%s", to, k ? "-wal" : "");
        char *buf = NULL;
        size_t len = 0;
        if (k && access(src, F_OK) != 0) break;
        CHECK_EQ_INT(ct_read_file(src, &buf, &len, &e), 0);
        CHECK_EQ_INT(ct_write_file_atomic(dst, buf, len, &e), 0);
        free(buf);
    }
}

/* Sweeps the Nth call of `kind` (every call from the Nth on when persistent) in case c, on a
 * ledger of manifest m; each try starts from a copy of the ledger c->before made once. */
static void sweep(const sweep_case_t *c, const ct_manifest_t *m, void *ctx, ct_fault_kind_t kind,
                  int persistent) {
    char db[CT_PATH_MAX], made[CT_PATH_MAX + 8], what[64];
    path_in(db, c->file);
    snprintf(made, sizeof made, "%s.made", db);
    c->before(made, ctx);
    int failures = 0, n;
    for (n = 1; n < SWEEP_MAX; n++) {
        copy_db(made, db);
        ct_ledger_t *l = NULL;
        ct_err_t e = {0};
        CHECK_EQ_INT(ct_ledger_open(&l, db, m, SEED, 0, CFG_SHA, &e), 0);
        ct_fault_arm(kind, n, persistent);
        int rc = c->tx(l, ctx, &e);
        long fired = ct_fault_fired();
        ct_fault_disarm();
        int in_memory = ct_plan_count(ct_ledger_plan(l));
        ct_ledger_close(&l);
        snprintf(what, sizeof what, "%s:%d%s", ct_fault_kind_name(kind), n, persistent ? "+" : "");
        if (!fired || rc == 0) { /* nothing injected, or SQLite got past it (it retries some) */
            CHECK_EQ_INT(rc, 0);
            c->after(db, 1, in_memory, what);
            if (!fired) break;
            continue;
        }
        failures++;
        if (!(c->any_code || rc == CT_EIO || rc == CT_ENOMEM) || !e.msg[0]) {
            fprintf(stderr, "  %s: error %d \"%s\"\n", what, rc, e.msg);
            CHECK(0);
        }
        c->after(db, 0, in_memory, what);
    }
    printf("%s, %s%s: %d calls swept, %d failed cleanly\n", c->name, ct_fault_kind_name(kind),
           persistent ? " (persistent)" : "", n - 1, failures);
    CHECK(n < SWEEP_MAX);
    CHECK(failures > 0);
}

/* ---- a public-log append ---- */

typedef struct log_case {
    char run[CT_PATH_MAX], db[CT_PATH_MAX], log[CT_PATH_MAX];
    char *want; /* log.jsonl as written without faults */
    size_t want_len;
} log_case_t;

static int open_close_public(log_case_t *lc, ct_err_t *e) {
    static const char cfg[] = "{\"train\":{\"steps\":10}}";
    const ct_public_opts_t o = {.run_dir = lc->run, .config_json = cfg, .m = &g_man};
    ct_public_t *p = NULL;
    CT_TRY(ct_public_open(&p, &o, lc->db, &g_quiet, e));
    ct_public_close(&p);
    return 0;
}

/* Every line of text checks as the record after the one before, signed by the run's key. */
static void check_chain(log_case_t *lc) {
    char key[CT_PATH_MAX], prev[CT_SHA256_HEX] = "";
    ct_publog_key_t k;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_path_join(key, sizeof key, lc->run, "coordinator.key", &e), 0);
    CHECK_EQ_INT(ct_publog_key_open(key, &k, NULL, &e), 0);
    int64_t seq = 0;
    for (char *line = lc->want, *nl; (nl = strchr(line, '\n')); line = nl + 1)
        CHECK_EQ_INT(ct_publog_check(line, (size_t)(nl - line), k.pk, &seq, prev, NULL, &e), 0);
    CHECK(seq >= 6);
}

/* The file starts as `start` (its first `keep` bytes of the good log, or none); the Nth call of
 * `kind` fails while the log is derived; unfailing, the next open gives the good log. */
static void sweep_log(log_case_t *lc, ct_fault_kind_t kind, size_t keep) {
    int n, failed = 0;
    for (n = 1; n < SWEEP_MAX; n++) {
        ct_err_t e = {0};
        CHECK_EQ_INT(ct_write_file_atomic(lc->log, lc->want, keep, &e), 0);
        ct_fault_arm(kind, n, 0);
        int rc = open_close_public(lc, &e);
        long fired = ct_fault_fired();
        ct_fault_disarm();
        if (rc != 0) {
            failed++;
            CHECK(e.msg[0] != '\0');
        }
        ct_err_t e2 = {0};
        CHECK_EQ_INT(open_close_public(lc, &e2), 0);
        char *got = NULL;
        size_t len = 0;
        CHECK_EQ_INT(ct_read_file(lc->log, &got, &len, &e2), 0);
        if (len != lc->want_len || memcmp(got, lc->want, len) != 0) {
            fprintf(stderr, "  log %s:%d from %zu bytes: %zu bytes, not the %zu expected\n",
                    ct_fault_kind_name(kind), n, keep, len, lc->want_len);
            CHECK(0);
        }
        free(got);
        if (!fired) break;
    }
    printf("log append from %zu bytes, %s: %d calls swept, %d opens failed\n", keep,
           ct_fault_kind_name(kind), n - 1, failed);
    CHECK(n < SWEEP_MAX);
}

static void test_log(void) {
    log_case_t lc;
    ct_err_t e = {0};
    ct_lease_t b;
    path_in(lc.run, "logrun");
    CHECK_EQ_INT(ct_mkdirs(lc.run, &e), 0);
    CHECK_EQ_INT(ct_path_join(lc.db, sizeof lc.db, lc.run, CT_COORD_DB, &e), 0);
    CHECK_EQ_INT(ct_path_fmt(lc.log, sizeof lc.log, &e, "%s/public/log.jsonl", lc.run), 0);
    make_before(lc.db, &b);
    ct_ledger_t *l = NULL;
    CHECK_EQ_INT(ct_ledger_open(&l, lc.db, &g_man, SEED, 0, CFG_SHA, &e), 0);
    CHECK_EQ_INT(transaction(l, &b, &e), 0);
    ct_ledger_close(&l);
    CHECK_EQ_INT(open_close_public(&lc, &e), 0);
    CHECK_EQ_INT(ct_read_file(lc.log, &lc.want, &lc.want_len, &e), 0);
    check_chain(&lc);
    static const ct_fault_kind_t kinds[] = {CT_FAULT_WRITE, CT_FAULT_FSYNC, CT_FAULT_RENAME,
                                            CT_FAULT_ALLOC};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sweep_log(&lc, kinds[k], 0);
        sweep_log(&lc, kinds[k], lc.want_len / 2); /* a cut line at the end too */
    }
    free(lc.want);
}

/* ---- message sends ---- */

/* Sends `text` as request req until an answer comes (a lost request or reply is sent again with
 * the same number); the answer's type into *type. *retries counts the resends. */
static char *ask_until(ct_client_t *cl, const char *text, long long req, int *retries) {
    for (int i = 0; i < 50; i++) {
        char *reply = NULL;
        ct_err_t e = {0};
        int rc = ct_client_request(cl, text, req, 100, &reply, NULL, &e);
        if (rc == 0) return reply;
        CHECK(rc == CT_ECOMM || rc == CT_ETIMEDOUT);
        if (rc == CT_ECOMM) CHECK_CONTAINS(e.msg, "injected");
        (*retries)++;
    }
    CHECK(0);
    return NULL;
}

static ct_msg_t parse(const char *reply) {
    ct_msg_t m = {0};
    int64_t r;
    ct_proto_error_t code;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &e), 0);
    return m;
}

/* One group's short life with the Nth send failing: returns the sends injected. */
static long run_sends(const char *run, long n, int *retries) {
    ct_coord_t *c = NULL;
    ct_client_t *cl = NULL;
    ct_err_t e = {0};
    const ct_coord_opts_t o = {.run_dir = run,
                               .config_json = "{\"train\":{\"steps\":10}}",
                               .m = &g_man,
                               .seed = SEED,
                               .bind = "inproc://fault_coord",
                               .lease_ttl = 60.0};
    CHECK_EQ_INT(ct_coord_open(&c, &o, &g_quiet, &e), 0);
    CHECK_EQ_INT(ct_coord_start(c, &e), 0);
    CHECK_EQ_INT(ct_client_create_shared(&cl, ct_coord_zmq_context(c), ct_coord_endpoint(c), &e),
                 0);
    ct_fault_arm(CT_FAULT_SEND, n, 0);
    char text[512], *reply;
    reply = ask_until(cl, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g1\"}", 1, retries);
    ct_msg_t m = parse(reply);
    CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
    ct_msg_clear(&m);
    free(reply);
    reply = ask_until(cl, "{\"v\":1,\"type\":\"lease\",\"req\":2,\"group\":\"g1\"}", 2, retries);
    m = parse(reply);
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"shard_done\",\"req\":3,\"group\":\"g1\",\"shard\":\"%s\","
             "\"epoch\":%d,\"fence\":%d}",
             cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "shard")),
             (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m.root, "epoch")),
             (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m.root, "fence")));
    ct_msg_clear(&m);
    free(reply);
    static const char *const rest[] = {
        NULL, /* the report above */
        "{\"v\":1,\"type\":\"lease\",\"req\":4,\"group\":\"g1\"}",
        "{\"v\":1,\"type\":\"heartbeat\",\"req\":5,\"group\":\"g1\"}",
        "{\"v\":1,\"type\":\"leave\",\"req\":6,\"group\":\"g1\",\"why\":\"stopped\"}"};
    for (int i = 0; i < 4; i++) {
        reply = ask_until(cl, rest[i] ? rest[i] : text, 3 + i, retries);
        m = parse(reply);
        if (m.type == CT_MSG_ERROR)
            fprintf(stderr, "  send:%ld: request %d: %s\n", n, 3 + i, reply);
        CHECK(m.type != CT_MSG_ERROR);
        ct_msg_clear(&m);
        free(reply);
    }
    long fired = ct_fault_fired();
    ct_fault_disarm();
    /* still serving */
    reply = ask_until(cl, "{\"v\":1,\"type\":\"status\",\"req\":7,\"group\":\"g1\"}", 7, retries);
    m = parse(reply);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);
    free(reply);
    ct_client_destroy(&cl);
    CHECK_EQ_INT(ct_coord_stop(c, &e), 0);
    ct_coord_close(&c);
    return fired;
}

static void test_sends(void) {
    char run[CT_PATH_MAX], db[CT_PATH_MAX];
    ct_err_t e = {0};
    int retries = 0;
    long n;
    for (n = 1; n < 200; n++) {
        path_in(run, "sendrun");
        check_rm_tree(run);
        CHECK_EQ_INT(ct_mkdirs(run, &e), 0);
        long fired = run_sends(run, n, &retries);
        /* exactly one unit done, none leased (the leave gave the second back), once each */
        ct_ledger_t *l = NULL;
        ct_ledger_counts_t c;
        CHECK_EQ_INT(ct_path_join(db, sizeof db, run, CT_COORD_DB, &e), 0);
        CHECK_EQ_INT(ct_ledger_open_reader(&l, db, &e), 0);
        CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
        if (c.done != 1 || c.leased != 0) {
            fprintf(stderr, "  send:%ld: done %lld, leased %lld\n", n, (long long)c.done,
                    (long long)c.leased);
            CHECK(0);
        }
        ct_ledger_close(&l);
        if (!fired) break;
    }
    printf("sends: %ld swept, %d resends answered\n", n - 1, retries);
    CHECK(n < 200);
    CHECK(retries >= n - 1);
}

/* Every sweep runs in /dev/shm where there is one: tmpfs, where an fsync costs nothing, so the
 * ~2,900 ledgers made and checked take seconds, not a minute. The shim fails the calls all the
 * same (fault.h), and the durability of a real disk is coord_crash_e2e's. */
int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/ct_fault_coord_XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    CHECK(mkdtemp(g_dir) != NULL);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    g_man.n_shards = N;
    g_man.shards = g_shards;
    for (int i = 0; i < N; i++)
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-s%d", i, i);
    const char *manifest = "{\"format\":\"a manifest for this test\"}";
    path_in(g_man.path, "manifest.json");
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, manifest, strlen(manifest), &e), 0);
    ct_sha256_hex(manifest, strlen(manifest), g_man.sha256);
    ct_sha256_hex("checkpoint 1", 12, g_id1);
    ct_sha256_hex("checkpoint 2", 12, g_id2);

    static const ct_fault_kind_t kinds[] = {CT_FAULT_WRITE, CT_FAULT_FSYNC, CT_FAULT_ALLOC};
    /* an allocation failing inside cJSON's parser reads as a manifest that is not JSON (cJSON
       cannot tell the two apart): for the data changes the state is what is checked */
    static const sweep_case_t tx = {"transaction", "tx.db",     make_before,
                                    transaction,   check_after, 0},
                              changes = {"data changes", "changes.db",        make_changes_before,
                                         changes_tx,     check_changes_after, 1};
    ct_lease_t b;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sweep(&tx, &g_man, &b, kinds[k], 0);
        sweep(&tx, &g_man, &b, kinds[k], 1);
    }
    char base_dir[CT_PATH_MAX - 64], more_dir[CT_PATH_MAX - 64], base_path[CT_PATH_MAX];
    snprintf(base_dir, sizeof base_dir, "%s/base", g_dir);
    snprintf(more_dir, sizeof more_dir, "%s/more", g_dir);
    fixture_manifest(base_dir, "b", N, "bytes", 256, base_path, sizeof base_path, NULL);
    fixture_manifest(more_dir, "m", 3, "bytes", 256, g_more, sizeof g_more, NULL);
    CHECK_EQ_INT(ct_manifest_load(&g_base, base_path, &e), 0);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sweep(&changes, g_base, NULL, kinds[k], 0);
        sweep(&changes, g_base, NULL, kinds[k], 1);
    }
    ct_manifest_destroy(&g_base);
    test_log();
    test_sends();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
