/* test_ledger.c — the coordinator's ledger (coordinator/ledger.c) against the rules of
 * DESIGN.md's invariants 1 and 2:
 *   - leases follow ct_data_shard_order epoch after epoch; a unit that comes back (expiry,
 *     restart) is leased again in its place, before later ones
 *   - fencing: a report with a stale or foreign token is refused and changes nothing
 *   - the registry: a commit only on top of the head, only of units done by the group, each once
 *   - a random mix of thousands of operations against a straight model of the rules: the same
 *     states, and no unit ever committed twice
 *   - durability: closed and reopened, and kill -9'd in the middle of transactions many times,
 *     the ledger holds every acknowledged change and is consistent
 *   - a ledger refuses another run's manifest, seed or held-out count
 *   - held-out shards (data.eval_shards) are never leased; the order is over the others
 *   - going back to a committed checkpoint returns the units after it, in their places; a
 *     ledger without a lineage adopts a checkpoint with the units before its cursor
 *   - every change logs its public-log record, in order, with the fields DESIGN names
 *   - data changes (plan.h): asked for, checked, pending until a commit's cursor; then the units
 *     follow the plan (added ones at the epoch's end, excluded ones gone after the point, later
 *     epochs by the new order), logged; one that must wait waits, one whose data went is
 *     refused; a reopened ledger has the same plan */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "cotrain/clock.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/ledger.h"

enum { N = 7 };
#define SEED 1234u
#define CFG_SHA "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"

static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[] = "/tmp/ct_test_ledger_XXXXXX";

static void make_manifest(void) {
    g_man.n_shards = N;
    g_man.shards = g_shards;
    memset(g_man.sha256, 'a', 64);
    for (int i = 0; i < N; i++)
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-s%d", i, i);
}

static ct_ledger_t *open_ledger(const char *name) {
    char path[CT_PATH_MAX];
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, name, &e), 0);
    ct_ledger_t *l = NULL;
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, 0, CFG_SHA, &e), 0);
    if (e.code) fprintf(stderr, "%s\n", e.msg);
    return l;
}

static void hex(char out[CT_SHA256_HEX], int k) {
    char s[32];
    snprintf(s, sizeof s, "ckpt-%d", k);
    ct_sha256_hex(s, strlen(s), out);
}

/* Leases follow the epochs' orders; expiry and stale reports. */
static void test_order_and_fencing(void) {
    ct_ledger_t *l = open_ledger("order.db");
    ct_err_t e = {0};
    int64_t order[N];
    ct_lease_t ls[2 * N];
    for (int ep = 0; ep < 2; ep++) {
        ct_data_shard_order(SEED, ep, N, order);
        for (int p = 0; p < N; p++) {
            ct_lease_t *x = &ls[ep * N + p];
            CHECK_EQ_INT(ct_ledger_lease(l, "g1", 100.0, 10.0, x, &e), 0);
            CHECK_EQ_INT(x->epoch, ep);
            CHECK_EQ_INT(x->shard, order[p]);
            CHECK_EQ_STR(x->shard_id, g_shards[order[p]].id);
        }
    }
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(c.leased, 2 * N);
    CHECK_EQ_INT(c.epochs, 2);
    /* a report from another group, or with another token, is refused */
    CHECK_EQ_INT(ct_ledger_done(l, "g2", ls[0].shard_id, 0, ls[0].fence, &e), CT_ESTATE);
    CHECK_CONTAINS(e.msg, "is not leased to g2");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", ls[0].shard_id, 0, ls[0].fence + 1, &e), CT_ESTATE);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", ls[0].shard_id, 0, ls[0].fence, &e), 0);
    /* a second report of the same unit is refused (it is done, not leased) */
    CHECK_EQ_INT(ct_ledger_done(l, "g1", ls[0].shard_id, 0, ls[0].fence, &e), CT_ESTATE);
    ct_err_clear(&e);
    /* the heartbeat keeps unit 1 alive; the others expire and come back in their places */
    CHECK_EQ_INT(ct_ledger_heartbeat(l, "g1", 105.0, 100.0, &e), 0);
    int n = -1;
    CHECK_EQ_INT(ct_ledger_expire(l, 150.0, &n, &e), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ct_ledger_expire(l, 300.0, &n, &e), 0);
    CHECK_EQ_INT(n, 2 * N - 1);
    /* the stale token of an expired lease is refused */
    CHECK_EQ_INT(ct_ledger_done(l, "g1", ls[1].shard_id, 0, ls[1].fence, &e), CT_ESTATE);
    ct_err_clear(&e);
    /* epoch 0's units come back first, in their order (position 0 is done) */
    ct_data_shard_order(SEED, 0, N, order);
    ct_lease_t x;
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 300.0, 10.0, &x, &e), 0);
    CHECK_EQ_INT(x.epoch, 0);
    CHECK_EQ_INT(x.shard, order[1]);
    CHECK(x.fence > ls[2 * N - 1].fence);
    ct_ledger_close(&l);
}

/* The registry: commits on the head only, of this group's done units, each once. */
static void test_commits(void) {
    ct_ledger_t *l = open_ledger("commit.db");
    ct_err_t e = {0};
    char id1[CT_SHA256_HEX], id2[CT_SHA256_HEX], h[CT_SHA256_HEX];
    hex(id1, 1), hex(id2, 2);
    ct_lease_t a, b, c;
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 60, &a, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 60, &b, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 0, 60, &c, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", a.shard_id, a.epoch, a.fence, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g2", c.shard_id, c.epoch, c.fence, &e), 0);
    ct_unit_t ua = {.epoch = a.epoch}, ub = {.epoch = b.epoch}, uc = {.epoch = c.epoch};
    snprintf(ua.shard_id, sizeof ua.shard_id, "%s", a.shard_id);
    snprintf(ub.shard_id, sizeof ub.shard_id, "%s", b.shard_id);
    snprintf(uc.shard_id, sizeof uc.shard_id, "%s", c.shard_id);
    int64_t step;
    CHECK_EQ_INT(ct_ledger_head(l, h, &step, &e), 0);
    CHECK_EQ_STR(h, "");
    CHECK_EQ_INT(step, -1);
    /* a parent that is not the head */
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, id1, id2, &ua, 1, &e), CT_ESTATE);
    CHECK_CONTAINS(e.msg, "the head is (none)");
    ct_err_clear(&e);
    /* a unit leased but not done, another group's unit, one listed twice */
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, id1, "", &ub, 1, &e), CT_ESTATE);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, id1, "", &uc, 1, &e), CT_ESTATE);
    ct_err_clear(&e);
    ct_unit_t twice[2] = {ua, ua};
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, id1, "", twice, 2, &e), CT_ESTATE);
    CHECK_CONTAINS(e.msg, "listed twice");
    ct_err_clear(&e);
    /* a refused commit changed nothing */
    ct_ledger_counts_t k;
    CHECK_EQ_INT(ct_ledger_counts(l, &k, &e), 0);
    CHECK_EQ_INT(k.committed, 0);
    CHECK_EQ_INT(k.done, 2);
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, "not-a-hash", "", &ua, 1, &e), CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 10, 0.0, id1, "", &ua, 1, &e), 0);
    CHECK_EQ_INT(ct_ledger_head(l, h, &step, &e), 0);
    CHECK_EQ_STR(h, id1);
    CHECK_EQ_INT(step, 10);
    /* g2 finished c on top of no checkpoint, which is no longer the head: c went back and is
     * the next unit handed out */
    CHECK_EQ_INT(ct_ledger_counts(l, &k, &e), 0);
    CHECK_EQ_INT(k.done, 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g2", c.shard_id, c.epoch, c.fence, &e), CT_ESTATE);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 0, 60, &c, &e), 0);
    CHECK_EQ_STR(c.shard_id, uc.shard_id);
    CHECK_EQ_INT(ct_ledger_done(l, "g2", c.shard_id, c.epoch, c.fence, &e), 0);
    /* committed once: not again, not by the next checkpoint */
    CHECK_EQ_INT(ct_ledger_commit(l, "g1", 20, 0.0, id2, id1, &ua, 1, &e), CT_ESTATE);
    ct_err_clear(&e);
    /* the same id twice is refused by the registry */
    CHECK_EQ_INT(ct_ledger_commit(l, "g2", 20, 0.0, id1, id1, &uc, 1, &e), CT_EIO);
    ct_err_clear(&e);
    /* g1 finishes b on top of id1, but g2 commits first: b goes back to the pool */
    CHECK_EQ_INT(ct_ledger_done(l, "g1", b.shard_id, b.epoch, b.fence, &e), 0);
    CHECK_EQ_INT(ct_ledger_commit(l, "g2", 20, 0.0, id2, id1, &uc, 1, &e), 0);
    CHECK_EQ_INT(ct_ledger_counts(l, &k, &e), 0);
    CHECK_EQ_INT(k.committed, 2);
    CHECK_EQ_INT(k.done, 0);
    CHECK_EQ_INT(k.leased, 0);
    /* g1 restarts from the head: nothing of its is left to give back, committed a stays */
    int n = -1;
    CHECK_EQ_INT(ct_ledger_restart(l, "g1", NULL, &n, &e), 0);
    CHECK_EQ_INT(n, 0);
    ct_lease_t again;
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 0, 60, &again, &e), 0);
    CHECK_EQ_STR(again.shard_id, b.shard_id);
    ct_ledger_close(&l);
    /* reopened: everything is still there */
    l = open_ledger("commit.db");
    CHECK_EQ_INT(ct_ledger_head(l, h, &step, &e), 0);
    CHECK_EQ_STR(h, id2);
    CHECK_EQ_INT(ct_ledger_counts(l, &k, &e), 0);
    CHECK_EQ_INT(k.committed, 2);
    CHECK_EQ_INT(k.leased, 1);
    ct_ledger_close(&l);
    /* another run's seed or manifest is refused */
    char path[CT_PATH_MAX];
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "commit.db", &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED + 1, 0, CFG_SHA, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "belongs to another run");
    ct_err_clear(&e);
    g_man.sha256[0] = 'b';
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, 0, CFG_SHA, &e), CT_EINVAL);
    g_man.sha256[0] = 'a';
    CHECK(l == NULL);
}

/* A standby group waits while another was heard within the TTL, then takes over: the silent
 * group's leased and finished units go back, and its late reports are refused. */
static int collect(void *arg, int64_t seq, double at, const char *type, const char *body,
                   ct_err_t *e);

static void test_standby(void) {
    ct_ledger_t *l = open_ledger("standby.db");
    ct_err_t e = {0};
    char active[CT_GROUP_MAX];
    ct_lease_t a, b;
    int n = -1;
    CHECK_EQ_INT(ct_ledger_seen(l, "g1", 100, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 100, 10, &a, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 100, 10, &b, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", a.shard_id, a.epoch, a.fence, &e), 0);
    CHECK_EQ_INT(ct_ledger_standby(l, "g2", 105, 10, active, &n, &e), 0);
    CHECK_EQ_STR(active, "g1");
    CHECK_EQ_INT(n, 0);
    /* a second standby waits for g1 too, not for g2 */
    CHECK_EQ_INT(ct_ledger_standby(l, "g3", 106, 10, active, &n, &e), 0);
    CHECK_EQ_STR(active, "g1");
    ct_group_info_t *g = NULL;
    int ng = 0;
    CHECK_EQ_INT(ct_ledger_groups(l, 0, &g, &ng, &e), 0);
    CHECK_EQ_INT(ng, 3);
    if (ng == 3) {
        CHECK_EQ_INT(g[0].standby, 0);
        CHECK_EQ_INT(g[0].leased, 1);
        CHECK_EQ_INT(g[1].standby, 1);
    }
    free(g);
    /* g1 silent for longer than the TTL: g2 takes over, g3 now waits for g2 */
    CHECK_EQ_INT(ct_ledger_standby(l, "g2", 111, 10, active, &n, &e), 0);
    CHECK_EQ_STR(active, "");
    CHECK_EQ_INT(n, 2);
    /* g1 left the run (logged), the waiting g3 did not */
    CHECK_EQ_INT(ct_ledger_groups(l, 0, &g, &ng, &e), 0);
    CHECK_EQ_INT(ng, 2);
    if (ng == 2) CHECK_EQ_STR(g[0].name, "g2");
    free(g);
    char logged[8192] = "";
    CHECK_EQ_INT(ct_ledger_records(l, 0, 100, collect, logged, &e), 0);
    CHECK_CONTAINS(logged, "group_left {\"group\":\"g1\",\"successor\":\"g2\",\"why\":\"silent\"}\n"
                           "shards_returned {");
    CHECK_EQ_INT(ct_ledger_standby(l, "g3", 112, 10, active, &n, &e), 0);
    CHECK_EQ_STR(active, "g2");
    CHECK_EQ_INT(ct_ledger_done(l, "g1", b.shard_id, b.epoch, b.fence, &e), CT_ESTATE);
    ct_err_clear(&e);
    ct_lease_t again;
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 112, 10, &again, &e), 0);
    CHECK_EQ_STR(again.shard_id, a.shard_id);
    ct_ledger_close(&l);
}

/* The model the ledger is held to: per (epoch, pos) unit its state, group and token. */
typedef struct munit {
    int state, group;
    int64_t fence;
    double expiry;
} munit_t;

/* Random operations by three groups against a straight model of the rules. */
/* A group that leaves gives its leases back at once (its done units stay) and is logged as
 * gone; one whose leases all lapse has left too ("silent"); one heartbeating stays. */
static void test_leave(void) {
    ct_ledger_t *l = open_ledger("leave.db");
    ct_err_t e = {0};
    ct_lease_t a, b, c;
    int n = -1;
    CHECK_EQ_INT(ct_ledger_seen(l, "g1", 100, &e), 0);
    CHECK_EQ_INT(ct_ledger_seen(l, "g2", 100, &e), 0);
    CHECK_EQ_INT(ct_ledger_seen(l, "g3", 100, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 100, 10, &a, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g1", 100, 10, &b, &e), 0);
    CHECK_EQ_INT(ct_ledger_done(l, "g1", a.shard_id, a.epoch, a.fence, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g2", 100, 10, &c, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l, "g3", 100, 10, &c, &e), 0);
    CHECK_EQ_INT(ct_ledger_leave(l, "g1", "stopped", &n, &e), 0);
    CHECK_EQ_INT(n, 1);
    ct_ledger_counts_t k;
    CHECK_EQ_INT(ct_ledger_counts(l, &k, &e), 0);
    CHECK_EQ_INT(k.done, 1);
    CHECK_EQ_INT(k.leased, 2);
    /* leaving again changes nothing and logs nothing */
    CHECK_EQ_INT(ct_ledger_leave(l, "g1", "stopped", &n, &e), 0);
    CHECK_EQ_INT(n, 0);
    /* g3 heartbeats, g2 does not: at 115 g2's lease has lapsed and g2 has left */
    CHECK_EQ_INT(ct_ledger_heartbeat(l, "g3", 108, 10, &e), 0);
    CHECK_EQ_INT(ct_ledger_expire(l, 115, &n, &e), 0);
    CHECK_EQ_INT(n, 1);
    ct_group_info_t *g = NULL;
    int ng = 0;
    CHECK_EQ_INT(ct_ledger_groups(l, 0, &g, &ng, &e), 0);
    CHECK_EQ_INT(ng, 1);
    if (ng == 1) CHECK_EQ_STR(g[0].name, "g3");
    free(g);
    char logged[8192] = "";
    CHECK_EQ_INT(ct_ledger_records(l, 0, 100, collect, logged, &e), 0);
    CHECK_CONTAINS(logged, "shards_returned {\"shards\":[\"");
    CHECK_CONTAINS(logged,
                   "\"why\":\"left\"}\ngroup_left {\"group\":\"g1\",\"why\":\"stopped\"}\n");
    CHECK_CONTAINS(logged, "group_left {\"group\":\"g2\",\"why\":\"silent\"}\nshards_returned {");
    CHECK(strstr(strstr(logged, "group_left {\"group\":\"g1\"") + 1,
                 "group_left {\"group\":\"g1\"") == NULL);
    CHECK(strstr(logged, "\"group\":\"g3\",\"why\"") == NULL);
    ct_ledger_close(&l);
}

static void test_random(void) {
    enum { OPS = 3000, EPOCHS_MAX = 256, G = 3 };
    static munit_t m[EPOCHS_MAX][N];
    int64_t order[EPOCHS_MAX][N];
    for (int ep = 0; ep < EPOCHS_MAX; ep++)
        ct_data_shard_order(SEED, ep, N, order[ep]);
    memset(m, 0, sizeof m);
    int epochs = 0, commits = 0;
    char head[CT_SHA256_HEX] = "";
    const char *names[G] = {"ga", "gb", "gc"};
    ct_ledger_t *l = open_ledger("random.db");
    ct_err_t e = {0};
    srand(7);
    double now = 0;
    for (int op = 0; op < OPS; op++) {
        int g = rand() % G, kind = rand() % 10;
        now += 1.0;
        if (kind < 4) { /* lease: the model's first available, in order */
            int fe = -1, fp = -1;
            for (int ep = 0; ep < epochs && fe < 0; ep++)
                for (int p = 0; p < N && fe < 0; p++)
                    if (m[ep][p].state == 0) fe = ep, fp = p;
            if (fe < 0) {
                if (epochs == EPOCHS_MAX) break;
                fe = epochs++, fp = 0;
            }
            ct_lease_t x;
            CHECK_EQ_INT(ct_ledger_lease(l, names[g], now, 5.0 + rand() % 10, &x, &e), 0);
            CHECK_EQ_INT(x.epoch, fe);
            CHECK_EQ_INT(x.shard, order[fe][fp]);
            m[fe][fp] = (munit_t){.state = 1, .group = g, .fence = x.fence, .expiry = x.expiry};
        } else if (kind < 7) { /* done: a real lease of g, or a stale one */
            int ep = epochs ? rand() % epochs : 0, p = rand() % N;
            if (!epochs) continue;
            /* mostly one of g's own leases, so that work gets done; else any unit (stale) */
            for (int t = 0, mine = rand() % 10 < 7; mine && t < epochs * N; t++) {
                int q = (ep * N + p + t) % (epochs * N);
                if (m[q / N][q % N].state == 1 && m[q / N][q % N].group == g) {
                    ep = q / N, p = q % N;
                    break;
                }
            }
            munit_t *u = &m[ep][p];
            int64_t fence = u->fence ? u->fence : 1;
            int ok = u->state == 1 && u->group == g;
            int rc = ct_ledger_done(l, names[g], g_shards[order[ep][p]].id, ep, fence, &e);
            ct_err_clear(&e);
            CHECK_EQ_INT(rc, ok ? 0 : CT_ESTATE);
            if (ok) u->state = 2;
        } else if (kind == 7) { /* expiry */
            int n = -1, want = 0;
            CHECK_EQ_INT(ct_ledger_expire(l, now, &n, &e), 0);
            for (int ep = 0; ep < epochs; ep++)
                for (int p = 0; p < N; p++)
                    if (m[ep][p].state == 1 && m[ep][p].expiry < now) {
                        m[ep][p] = (munit_t){0};
                        want++;
                    }
            CHECK_EQ_INT(n, want);
        } else if (kind == 8) { /* g commits everything it has done */
            ct_unit_t units[EPOCHS_MAX * N];
            int n = 0;
            for (int ep = 0; ep < epochs; ep++)
                for (int p = 0; p < N; p++)
                    if (m[ep][p].state == 2 && m[ep][p].group == g) {
                        snprintf(units[n].shard_id, sizeof units[n].shard_id, "%s",
                                 g_shards[order[ep][p]].id);
                        units[n++].epoch = ep;
                    }
            char id[CT_SHA256_HEX];
            hex(id, 1000 + commits);
            CHECK_EQ_INT(ct_ledger_commit(l, names[g], op, 0.0, id, head, units, n, &e), 0);
            if (e.code) fprintf(stderr, "%s\n", e.msg);
            for (int ep = 0; ep < epochs; ep++)
                for (int p = 0; p < N; p++)
                    if (m[ep][p].state == 2) {
                        if (m[ep][p].group == g)
                            m[ep][p].state = 3;
                        else
                            m[ep][p] = (munit_t){0}; /* done on top of the old head */
                    }
            memcpy(head, id, sizeof head);
            commits++;
        } else { /* g restarts from the head */
            int n = -1, want = 0;
            CHECK_EQ_INT(ct_ledger_restart(l, names[g], NULL, &n, &e), 0);
            for (int ep = 0; ep < epochs; ep++)
                for (int p = 0; p < N; p++)
                    if ((m[ep][p].state == 1 || m[ep][p].state == 2) && m[ep][p].group == g) {
                        m[ep][p] = (munit_t){0};
                        want++;
                    }
            CHECK_EQ_INT(n, want);
        }
    }
    int64_t want[4] = {0};
    for (int ep = 0; ep < epochs; ep++)
        for (int p = 0; p < N; p++)
            want[m[ep][p].state]++;
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(c.available, want[0]);
    CHECK_EQ_INT(c.leased, want[1]);
    CHECK_EQ_INT(c.done, want[2]);
    CHECK_EQ_INT(c.committed, want[3]);
    CHECK_EQ_INT(c.epochs, epochs);
    if (!(commits > 50 && want[3] > 100))
        fprintf(stderr, "only %d commits of %lld units\n", commits, (long long)want[3]);
    CHECK(commits > 50 && want[3] > 100);
    ct_ledger_close(&l);
}

/* kill -9 in the middle of transactions: each child leases and reports in a loop, telling the
 * parent (through a pipe) every change that returned; after the kill the reopened ledger holds at
 * least every acknowledged change and its counts add up. */
static void test_kills(void) {
    enum { KILLS = 25 };
    int64_t acked_leases = 0, acked_done = 0;
    for (int k = 0; k < KILLS; k++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            ct_ledger_t *l = open_ledger("kills.db");
            ct_err_t e = {0};
            for (;;) {
                ct_lease_t x;
                if (ct_ledger_lease(l, "g", ct_now_s(), 1e9, &x, &e) != 0) _exit(3);
                if (write(fds[1], "L", 1) != 1) _exit(4);
                if (ct_ledger_done(l, "g", x.shard_id, x.epoch, x.fence, &e) != 0) _exit(5);
                if (write(fds[1], "D", 1) != 1) _exit(4);
            }
        }
        close(fds[1]);
        usleep(20000 + (useconds_t)(rand() % 80000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        char buf[4096];
        for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) > 0;)
            for (ssize_t i = 0; i < r; i++)
                buf[i] == 'L' ? acked_leases++ : acked_done++;
        close(fds[0]);
        ct_ledger_t *l = open_ledger("kills.db");
        ct_ledger_counts_t c;
        ct_err_t e = {0};
        CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
        /* every acknowledged lease is leased or done; every acknowledged report is done */
        CHECK(c.leased + c.done >= acked_leases);
        CHECK(c.done >= acked_done);
        CHECK_EQ_INT(c.available + c.leased + c.done + c.committed, c.epochs * N);
        /* the next child starts clean: the leases of the killed one go back */
        int n;
        CHECK_EQ_INT(ct_ledger_expire(l, 2e9, &n, &e), 0);
        acked_leases -= n;
        ct_ledger_close(&l);
    }
    CHECK(acked_done > KILLS);
}

/* Held-out shards are never leased; the epochs' orders are over the shards trained on. */
static void test_held_out(void) {
    char path[CT_PATH_MAX];
    ct_err_t e = {0};
    ct_ledger_t *l = NULL;
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "held.db", &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, N, CFG_SHA, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "at least one must be left");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, 2, CFG_SHA, &e), 0);
    int64_t order[N];
    for (int ep = 0; ep < 3; ep++) {
        ct_data_shard_order(SEED, ep, N - 2, order);
        for (int p = 0; p < N - 2; p++) {
            ct_lease_t x;
            CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &x, &e), 0);
            CHECK_EQ_INT(x.epoch, ep);
            CHECK_EQ_INT(x.shard, order[p]);
        }
    }
    ct_ledger_close(&l);
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, 0, CFG_SHA, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "holds out the manifest's last 2 shard(s)");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_open(&l, path, &g_man, SEED, 2, CFG_SHA, &e), 0);
    ct_ledger_close(&l);
}

/* Leases n units to g and reports them done; their units into u[]. */
static void lease_done(ct_ledger_t *l, const char *g, int n, ct_unit_t *u) {
    ct_err_t e = {0};
    for (int i = 0; i < n; i++) {
        ct_lease_t x;
        CHECK_EQ_INT(ct_ledger_lease(l, g, 0, 60, &x, &e), 0);
        CHECK_EQ_INT(ct_ledger_done(l, g, x.shard_id, x.epoch, x.fence, &e), 0);
        snprintf(u[i].shard_id, sizeof u[i].shard_id, "%s", x.shard_id);
        u[i].epoch = x.epoch;
    }
}

/* Back to a committed checkpoint: its successors leave the lineage, their units and those in
 * flight come back in their places; a dropped id may be committed again. */
static void test_rollback(void) {
    ct_ledger_t *l = open_ledger("rollback.db");
    ct_err_t e = {0};
    char id1[CT_SHA256_HEX], id2[CT_SHA256_HEX], id3[CT_SHA256_HEX], h[CT_SHA256_HEX];
    hex(id1, 11), hex(id2, 12), hex(id3, 13);
    ct_unit_t u1[3], u2[4], u3[2];
    lease_done(l, "g", 3, u1);
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 10, 1.0, id1, "", u1, 3, &e), 0);
    lease_done(l, "g", 4, u2);
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 20, 2.0, id2, id1, u2, 4, &e), 0);
    lease_done(l, "g", 2, u3); /* done, not committed */
    ct_lease_t x;
    CHECK_EQ_INT(ct_ledger_lease(l, "other", 0, 60, &x, &e), 0); /* in flight */
    int64_t step = -1;
    CHECK_EQ_INT(ct_ledger_find(l, id2, &step, &e), 1);
    CHECK_EQ_INT(step, 20);
    CHECK_EQ_INT(ct_ledger_find(l, id3, NULL, &e), 0);
    CHECK_EQ_INT(ct_ledger_rollback(l, id3, NULL, NULL, &e), CT_ESTATE);
    CHECK_CONTAINS(e.msg, "not in the committed lineage");
    ct_err_clear(&e);
    int returned = -1, dropped = -1;
    CHECK_EQ_INT(ct_ledger_rollback(l, id1, &returned, &dropped, &e), 0);
    CHECK_EQ_INT(returned, 4 + 2 + 1);
    CHECK_EQ_INT(dropped, 1);
    CHECK_EQ_INT(ct_ledger_head(l, h, &step, &e), 0);
    CHECK_EQ_STR(h, id1);
    CHECK_EQ_INT(step, 10);
    CHECK_EQ_INT(ct_ledger_find(l, id2, NULL, &e), 0);
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(c.committed, 3);
    CHECK_EQ_INT(c.leased + c.done, 0);
    /* the stale lease of the old head is refused; the units come back in order */
    CHECK_EQ_INT(ct_ledger_done(l, "other", x.shard_id, x.epoch, x.fence, &e), CT_ESTATE);
    ct_err_clear(&e);
    ct_unit_t again[4];
    lease_done(l, "g", 4, again);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_STR(again[i].shard_id, u2[i].shard_id);
        CHECK_EQ_INT(again[i].epoch, u2[i].epoch);
    }
    /* the same checkpoint again (a deterministic rerun) commits on top of id1 */
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 20, 3.0, id2, id1, again, 4, &e), 0);
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(c.committed, 7);
    ct_ledger_close(&l);
}

/* A ledger without a lineage adopts a checkpoint: the units before its cursor are committed. */
static void test_adopt(void) {
    ct_ledger_t *l = open_ledger("adopt.db");
    ct_err_t e = {0};
    char id[CT_SHA256_HEX], h[CT_SHA256_HEX];
    hex(id, 21);
    ct_lease_t x;
    CHECK_EQ_INT(ct_ledger_lease(l, "old", 0, 60, &x, &e), 0); /* in flight: goes back */
    CHECK_EQ_INT(ct_ledger_adopt(l, "g", 30, 1.0, id, 1, N, NULL, &e), CT_EINVAL);
    ct_err_clear(&e);
    int n = -1;
    CHECK_EQ_INT(ct_ledger_adopt(l, "g", 30, 1.0, id, 1, 3, &n, &e), 0);
    CHECK_EQ_INT(n, N + 3);
    int64_t step;
    CHECK_EQ_INT(ct_ledger_head(l, h, &step, &e), 0);
    CHECK_EQ_STR(h, id);
    CHECK_EQ_INT(step, 30);
    ct_ledger_counts_t c;
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    CHECK_EQ_INT(c.committed, N + 3);
    CHECK_EQ_INT(c.leased, 0);
    CHECK_EQ_INT(c.epochs, 2);
    /* the next unit is the cursor's */
    int64_t order[N];
    ct_data_shard_order(SEED, 1, N, order);
    CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &x, &e), 0);
    CHECK_EQ_INT(x.epoch, 1);
    CHECK_EQ_INT(x.shard, order[3]);
    /* a ledger with a lineage adopts nothing */
    CHECK_EQ_INT(ct_ledger_adopt(l, "g", 40, 1.0, id, 1, 4, NULL, &e), CT_ESTATE);
    CHECK_CONTAINS(e.msg, "already has a lineage");
    ct_ledger_close(&l);
}

/* The public log's records: each change writes its record in its own transaction. */
static int collect(void *arg, int64_t seq, double at, const char *type, const char *body,
                   ct_err_t *e) {
    (void)seq, (void)at, (void)e;
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 8192 - n, "%s %s\n", type, body);
    return 0;
}

static void test_records(void) {
    ct_ledger_t *l = open_ledger("records.db");
    ct_err_t e = {0};
    char id1[CT_SHA256_HEX], id2[CT_SHA256_HEX], got[8192] = "", want[8192];
    hex(id1, 31), hex(id2, 32);
    ct_unit_t u[2];
    lease_done(l, "g", 2, u);
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 10, 1.0, id1, "", u, 2, &e), 0);
    ct_lease_t x;
    CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &x, &e), 0);
    CHECK_EQ_INT(ct_ledger_restart(l, "g", "k3yId", NULL, &e), 0);
    lease_done(l, "g", 1, u);
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 20, 2.0, id2, id1, u, 1, &e), 0);
    CHECK_EQ_INT(ct_ledger_rollback(l, id1, NULL, NULL, &e), 0);
    CHECK_EQ_INT(ct_ledger_records(l, 0, 100, collect, got, &e), 0);
    int64_t order[N];
    ct_data_shard_order(SEED, 0, N, order);
    const char *s0 = g_shards[order[0]].id, *s1 = g_shards[order[1]].id;
    const char *s2 = g_shards[order[2]].id;
    snprintf(want, sizeof want,
             "run_started {\"config_sha256\":\"%s\",\"data_sha256\":\"%.64s\",\"held_out\":0,"
             "\"seed\":\"1234\",\"shards\":%d}\n"
             "shard_leased {\"epoch\":0,\"fence\":1,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "shard_done {\"epoch\":0,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "shard_leased {\"epoch\":0,\"fence\":2,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "shard_done {\"epoch\":0,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "checkpoint_committed {\"group\":\"g\",\"id\":\"%s\",\"parent\":\"\","
             "\"shards\":[\"%s:0\",\"%s:0\"],\"step\":10}\n"
             "shard_leased {\"epoch\":0,\"fence\":3,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "group_joined {\"group\":\"g\",\"key\":\"k3yId\"}\n"
             "shards_returned {\"shards\":[\"%s:0\"],\"why\":\"restart\"}\n"
             "shard_leased {\"epoch\":0,\"fence\":4,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "shard_done {\"epoch\":0,\"group\":\"g\",\"shard\":\"%s\"}\n"
             "checkpoint_committed {\"group\":\"g\",\"id\":\"%s\",\"parent\":\"%s\","
             "\"shards\":[\"%s:0\"],\"step\":20}\n"
             "checkpoints_reverted {\"dropped\":[\"%s\"],\"step\":10,\"to\":\"%s\"}\n"
             "shards_returned {\"shards\":[\"%s:0\"],\"why\":\"reverted\"}\n",
             CFG_SHA, g_man.sha256, N, s0, s0, s1, s1, id1, s0, s1, s2, s2, s2, s2, id2, id1, s2,
             id2, id1, s2);
    CHECK_EQ_STR(got, want);
    /* a record of the caller's; a float is refused and logs nothing */
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "step", 20);
    CHECK_EQ_INT(ct_ledger_record(l, "run_finished", f, &e), 0);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "loss", 2.5);
    CHECK_EQ_INT(ct_ledger_record(l, "bad", f, &e), CT_EINVAL);
    got[0] = '\0';
    CHECK_EQ_INT(ct_ledger_records(l, 14, 100, collect, got, &e), 0);
    CHECK_EQ_STR(got, "run_finished {\"step\":20}\n");
    ct_ledger_close(&l);
}

/* A manifest file of n shards <prefix>-<i> (no shard files: the ledger reads none) in
 * g_dir/<name>; its path in path. */
static void write_manifest(const char *name, const char *prefix, int n, char *path, size_t cap) {
    char dir[CT_PATH_MAX - 64];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    fixture_manifest(dir, prefix, n, "bytes", 256, path, cap, NULL);
}

static cJSON *add_request(const char *path) {
    ct_manifest_t *m = NULL;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_manifest_load(&m, path, &e), 0);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "kind", "add");
    cJSON_AddStringToObject(r, "manifest", path);
    cJSON_AddStringToObject(r, "sha256", m ? m->sha256 : "");
    cJSON_AddNumberToObject(r, "shards", m ? m->n_shards : 0);
    cJSON_AddNumberToObject(r, "tokens", 3000);
    cJSON_AddNumberToObject(r, "docs", 3);
    cJSON_AddStringToObject(r, "reason", "more");
    ct_manifest_destroy(&m);
    return r;
}

static cJSON *exclude_request(const char *a, const char *b) {
    cJSON *r = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(r, "shards");
    cJSON_AddStringToObject(r, "kind", "exclude");
    cJSON_AddItemToArray(ids, cJSON_CreateString(a));
    if (b) cJSON_AddItemToArray(ids, cJSON_CreateString(b));
    cJSON_AddNumberToObject(r, "docs", 0);
    cJSON_AddStringToObject(r, "reason", "opt-out");
    return r;
}

/* Units in the ledger, whatever their state. */
static int count_units(ct_ledger_t *l) {
    ct_ledger_counts_t c;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ledger_counts(l, &c, &e), 0);
    return (int)(c.available + c.leased + c.done + c.committed);
}

/* Appends each record's type to arg (a buffer of 8192). */
static int types(void *arg, int64_t seq, double at, const char *type, const char *body,
                 ct_err_t *e) {
    (void)seq, (void)at, (void)body, (void)e;
    char *b = arg;
    size_t n = strlen(b);
    snprintf(b + n, 8192 - n, "%s ", type);
    return 0;
}

static void test_data_changes(void) {
    ct_err_t e = {0};
    char base_path[CT_PATH_MAX], more_path[CT_PATH_MAX], gone_path[CT_PATH_MAX], db[CT_PATH_MAX];
    write_manifest("dc-base", "b", N, base_path, sizeof base_path);
    write_manifest("dc-more", "m", 3, more_path, sizeof more_path);
    write_manifest("dc-gone", "x", 1, gone_path, sizeof gone_path);
    ct_manifest_t *base = NULL;
    CHECK_EQ_INT(ct_manifest_load(&base, base_path, &e), 0);
    CHECK_EQ_INT(ct_path_join(db, sizeof db, g_dir, "changes.db", &e), 0);
    ct_ledger_t *l = NULL;
    CHECK_EQ_INT(ct_ledger_open(&l, db, base, SEED, 0, CFG_SHA, &e), 0);
    int64_t order[N + 3];
    ct_data_shard_order(SEED, 0, N, order);
    /* a group trains units 0..2 of epoch 0 and commits 0 and 1 at a cursor in unit 2 */
    ct_lease_t x[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &x[i], &e), 0);
    ct_unit_t u[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(ct_ledger_done(l, "g", x[i].shard_id, 0, x[i].fence, &e), 0);
        snprintf(u[i].shard_id, sizeof u[i].shard_id, "%s", x[i].shard_id);
        u[i].epoch = 0;
    }
    char id1[CT_SHA256_HEX];
    hex(id1, 71);
    CHECK_EQ_INT(ct_ledger_commit(l, "g", 5, 1.0, id1, "", u, 2, &e), 0);
    /* refused requests change nothing */
    char nope[] = "b-99";
    cJSON *bad = exclude_request(nope, NULL);
    CHECK_EQ_INT(ct_ledger_request_change(db, bad, NULL, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "b-99");
    cJSON_Delete(bad);
    bad = add_request(base_path);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ledger_request_change(db, bad, NULL, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "already in this run");
    cJSON_Delete(bad);
    /* exclude the unit at position 5 and the one at position 1 (committed before), add 3 */
    const char *at5 = base->shards[order[5]].id, *at1 = base->shards[order[1]].id;
    cJSON *ex = exclude_request(at5, at1), *add = add_request(more_path);
    int64_t seq = 0, pending = 0;
    CHECK_EQ_INT(ct_ledger_request_change(db, ex, &seq, &e), 0);
    CHECK_EQ_INT(seq, 1);
    CHECK_EQ_INT(ct_ledger_request_change(db, add, &seq, &e), 0);
    CHECK_EQ_INT(seq, 2);
    CHECK_EQ_INT(ct_ledger_changes_pending(l, &pending, &e), 0);
    CHECK_EQ_INT(pending, 2);
    CHECK_EQ_INT(ct_plan_count(ct_ledger_plan(l)), 0); /* nothing in effect before a commit */
    int n = -1, before = count_units(l);
    CHECK_EQ_INT(ct_ledger_take_effect(l, 0, 99, &n, &e), CT_EINVAL);
    CHECK_EQ_INT(ct_ledger_take_effect(l, 0, 2, &n, &e), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(count_units(l), before - 1 + 3); /* one gone, three at the end */
    const ct_plan_t *p = ct_ledger_plan(l);
    CHECK_EQ_INT(ct_plan_count(p), 2);
    CHECK_EQ_INT(ct_plan_epoch_len(p, 0), N + 3);
    CHECK(ct_plan_excluded(p, 0, 3, ct_plan_find(p, at5)));
    CHECK(!ct_plan_excluded(p, 0, 2, ct_plan_find(p, at1)));
    /* the rest of epoch 0 is leased in the plan's order, the excluded unit skipped; then epoch
       1 by the order over all 10, both excluded shards left out */
    int64_t want[2 * (N + 3)], k = 0;
    for (int64_t pos = 3; pos < N + 3; pos++)
        if (pos != 5) want[k++] = pos < N ? order[pos] : pos;
    int64_t o1[N + 3];
    ct_plan_order(p, 1, o1);
    for (int i = 0; i < N + 3; i++)
        if (o1[i] != ct_plan_find(p, at5) && o1[i] != ct_plan_find(p, at1)) want[k++] = o1[i];
    for (int64_t i = 0; i < k; i++) {
        ct_lease_t y;
        CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &y, &e), 0);
        CHECK_EQ_INT(y.shard, want[i]);
        CHECK_EQ_INT(y.epoch, i < N + 3 - 4 ? 0 : 1);
    }
    char got[8192] = "";
    CHECK_EQ_INT(ct_ledger_records(l, 0, 1000, types, got, &e), 0);
    CHECK_CONTAINS(got, "checkpoint_committed data_excluded data_added shard_leased");
    /* epoch 2's units are out (leased): a change must wait, and waits in the ledger */
    ct_lease_t y;
    CHECK_EQ_INT(ct_ledger_lease(l, "g", 0, 60, &y, &e), 0);
    CHECK_EQ_INT(y.epoch, 2);
    cJSON *gone = add_request(gone_path);
    CHECK_EQ_INT(ct_ledger_request_change(db, gone, NULL, &e), 0);
    CHECK_EQ_INT(ct_ledger_take_effect(l, 1, 0, &n, &e), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ct_ledger_changes_pending(l, &pending, &e), 0);
    CHECK_EQ_INT(pending, 1);
    /* its data gone when it can take effect: refused, the plan as it was */
    CHECK(unlink(gone_path) == 0);
    CHECK_EQ_INT(ct_ledger_take_effect(l, 2, 0, &n, &e), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ct_ledger_changes_pending(l, &pending, &e), 0);
    CHECK_EQ_INT(pending, 0);
    CHECK_EQ_INT(ct_plan_count(ct_ledger_plan(l)), 2);
    /* reopened: the same plan */
    ct_ledger_close(&l);
    CHECK_EQ_INT(ct_ledger_open(&l, db, base, SEED, 0, CFG_SHA, &e), 0);
    p = ct_ledger_plan(l);
    CHECK_EQ_INT(ct_plan_count(p), 2);
    int64_t again[N + 3];
    ct_plan_order(p, 1, again);
    CHECK(memcmp(again, o1, sizeof again) == 0);
    /* a new run directory's ledger takes the changes in (a checkpoint of this run resumed
       there): the same plan, logged; not into a ledger that hands out data already */
    char db2[CT_PATH_MAX];
    CHECK_EQ_INT(ct_path_join(db2, sizeof db2, g_dir, "imported.db", &e), 0);
    ct_ledger_t *l2 = NULL;
    CHECK_EQ_INT(ct_ledger_open(&l2, db2, base, SEED, 0, CFG_SHA, &e), 0);
    cJSON *changes = ct_plan_changes_json(p);
    CHECK_EQ_INT(ct_ledger_import_changes(l2, changes, &n, &e), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ct_ledger_import_changes(l2, changes, &n, &e), 0); /* again: nothing new */
    CHECK_EQ_INT(n, 0);
    int64_t o2[N + 3];
    ct_plan_order(ct_ledger_plan(l2), 1, o2);
    CHECK(memcmp(o2, o1, sizeof o2) == 0);
    got[0] = '\0';
    CHECK_EQ_INT(ct_ledger_records(l2, 0, 100, types, got, &e), 0);
    CHECK_EQ_STR(got, "run_started data_excluded data_added ");
    ct_ledger_close(&l2);
    CHECK_EQ_INT(ct_path_join(db2, sizeof db2, g_dir, "busy.db", &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&l2, db2, base, SEED, 0, CFG_SHA, &e), 0);
    CHECK_EQ_INT(ct_ledger_lease(l2, "g", 0, 60, &y, &e), 0);
    CHECK_EQ_INT(ct_ledger_import_changes(l2, changes, &n, &e), CT_ESTATE);
    CHECK_EQ_INT(ct_plan_count(ct_ledger_plan(l2)), 0);
    ct_ledger_close(&l2);
    cJSON_Delete(changes);
    char *text = NULL;
    CHECK_EQ_INT(ct_ledger_read_changes(db, &text, &e), 0);
    CHECK(text && strstr(text, "\"kind\":\"add\"") && strstr(text, "\"pos\":3"));
    free(text);
    ct_ledger_close(&l);
    cJSON_Delete(ex);
    cJSON_Delete(add);
    cJSON_Delete(gone);
    ct_manifest_destroy(&base);
}

int main(void) {
    CHECK(mkdtemp(g_dir) != NULL);
    make_manifest();
    test_order_and_fencing();
    test_commits();
    test_standby();
    test_leave();
    test_held_out();
    test_rollback();
    test_adopt();
    test_records();
    test_data_changes();
    test_random();
    test_kills();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
