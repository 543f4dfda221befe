/* test_server.c — the coordinator served in-process (ct_coord over inproc://, the embedded
 * mode's path): replies go out only once their transaction is on disk. With every sync of the
 * ledger failing (injected), a lease gets an `internal` error, never a grant, and the serving
 * thread stops with the error; unfailing, the grant comes and the public log shows its record
 * once it is on disk. Also the ledger's reader connection and log head. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/client.h"
#include "cotrain/coord.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/proto.h"

enum { N = 3 };
static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[] = "/tmp/ct_test_server_XXXXXX";

static ct_msg_t ask(ct_client_t *c, const char *text, long long req) {
    char *reply = NULL;
    ct_err_t e = {0};
    ct_msg_t m = {0};
    int64_t r;
    ct_proto_error_t code;
    CHECK_EQ_INT(ct_client_request(c, text, req, 10000, &reply, NULL, &e), 0);
    CHECK_EQ_INT(ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &e), 0);
    free(reply);
    return m;
}

/* Opens the coordinator of run directory `run` and starts it on its thread. */
static ct_coord_t *serve(const char *run, ct_log_t *lg) {
    ct_coord_t *c = NULL;
    ct_err_t e = {0};
    const ct_coord_opts_t o = {.run_dir = run,
                               .config_json = "{\"train\":{\"steps\":10}}",
                               .m = &g_man,
                               .seed = 5,
                               .bind = "inproc://test_server",
                               .lease_ttl = 30.0};
    CHECK_EQ_INT(ct_coord_open(&c, &o, lg, &e), 0);
    CHECK_EQ_INT(ct_coord_start(c, &e), 0);
    return c;
}

/* 1 when RUN/public/log.jsonl has a line holding `what` within 5 s. */
static int log_shows(const char *run, const char *what) {
    char path[CT_PATH_MAX];
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_path_fmt(path, sizeof path, &e, "%s/public/log.jsonl", run), 0);
    for (int i = 0; i < 500; i++) {
        char *text = NULL;
        size_t len = 0;
        int found = ct_read_file(path, &text, &len, &e) == 0 && strstr(text, what);
        free(text);
        if (found) return 1;
        usleep(10000);
    }
    return 0;
}

int main(void) {
    CHECK(mkdtemp(g_dir) != NULL);
    ct_err_t e = {0};
    ct_log_t lg = {.level = CT_LOG_WARN, .role = "coordinator", .rank = -1};
    g_man.n_shards = N;
    g_man.shards = g_shards;
    for (int i = 0; i < N; i++)
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-s%d", i, i);
    const char *manifest = "{\"format\":\"a manifest for this test\"}";
    CHECK_EQ_INT(ct_path_join(g_man.path, sizeof g_man.path, g_dir, "manifest.json", &e), 0);
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, manifest, strlen(manifest), &e), 0);
    ct_sha256_hex(manifest, strlen(manifest), g_man.sha256);
    char run[CT_PATH_MAX], db[CT_PATH_MAX];
    CHECK_EQ_INT(ct_path_join(run, sizeof run, g_dir, "run", &e), 0);
    CHECK_EQ_INT(ct_mkdirs(run, &e), 0);
    CHECK_EQ_INT(ct_path_join(db, sizeof db, run, CT_COORD_DB, &e), 0);

    /* served normally: the grant, and its record in the public log once on disk */
    ct_coord_t *c = serve(run, &lg);
    ct_client_t *cl = NULL;
    CHECK_EQ_INT(ct_client_create_shared(&cl, ct_coord_zmq_context(c), ct_coord_endpoint(c), &e),
                 0);
    ct_msg_t m = ask(cl, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g1\"}", 1);
    CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
    ct_msg_clear(&m);
    m = ask(cl, "{\"v\":1,\"type\":\"lease\",\"req\":2,\"group\":\"g1\"}", 2);
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    ct_msg_clear(&m);
    CHECK(log_shows(run, "\"type\":\"shard_leased\""));
    /* a burst of leases and reports while the log's writer and the syncer run beside the
       loop (what the thread sanitizer stage watches): every record reaches the log */
    long long req = 3;
    for (int i = 0; i < 60; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"v\":1,\"type\":\"lease\",\"req\":%lld,\"group\":\"g1\"}",
                 req);
        m = ask(cl, text, req++);
        CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
        snprintf(text, sizeof text,
                 "{\"v\":1,\"type\":\"shard_done\",\"req\":%lld,\"group\":\"g1\",\"shard\":"
                 "\"%s\",\"epoch\":%d,\"fence\":%d}",
                 req, cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "shard")),
                 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m.root, "epoch")),
                 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m.root, "fence")));
        ct_msg_clear(&m);
        m = ask(cl, text, req++);
        CHECK_EQ_INT(m.type, CT_MSG_OK);
        ct_msg_clear(&m);
    }
    /* a reader connection sees what the writer committed; it cannot write */
    ct_ledger_t *r = NULL;
    int64_t head = 0, seen = 0;
    char want[64];
    CHECK_EQ_INT(ct_ledger_open_reader(&r, db, &e), 0);
    CHECK_EQ_INT(ct_ledger_log_head(r, &head, &e), 0);
    CHECK(head >= 123); /* run_started, group_joined, 1 + 60 x 2 leases and reports */
    snprintf(want, sizeof want, "\"seq\":%lld,", (long long)head);
    CHECK(log_shows(run, want));

    CHECK(ct_ledger_record(r, "run_finished", NULL, &e) != 0);
    ct_err_clear(&e);

    /* a peer that sends garbage again and again is throttled: 20 bad requests are answered,
       then even a good one gets `busy` unread; another peer is served as before */
    ct_client_t *junk = NULL;
    CHECK_EQ_INT(
        ct_client_create_shared(&junk, ct_coord_zmq_context(c), ct_coord_endpoint(c), &e), 0);
    for (int i = 1; i <= 20; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"v\":1,\"type\":\"nonsense\",\"req\":%d,\"group\":\"x\"}", i);
        m = ask(junk, text, i);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "code")), "unknown_type");
        ct_msg_clear(&m);
    }
    m = ask(junk, "{\"v\":1,\"type\":\"status\",\"req\":21,\"group\":\"x\"}", 21);
    CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "code")), "busy");
    CHECK(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "message")), "bad requests"));
    ct_msg_clear(&m);
    ct_client_destroy(&junk);
    snprintf(want, sizeof want, "{\"v\":1,\"type\":\"status\",\"req\":%lld,\"group\":\"g1\"}", req);
    m = ask(cl, want, req++);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);

    /* every sync of the ledger fails from now on: the lease is committed, but its grant must not
       go out (a power cut could still take it); the peer is told, the server stops */
    ct_fault_arm(CT_FAULT_FSYNC, 1, 1);
    char last[128];
    snprintf(last, sizeof last, "{\"v\":1,\"type\":\"lease\",\"req\":%lld,\"group\":\"g1\"}", req);
    m = ask(cl, last, req);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "message"));
    CHECK(msg && strstr(msg, "injected") != NULL);
    ct_msg_clear(&m);
    CHECK_EQ_INT(ct_coord_stop(c, &e), CT_EIO);
    CHECK(strstr(e.msg, "sync") != NULL);
    ct_err_clear(&e);
    ct_fault_disarm();
    ct_client_destroy(&cl);
    ct_coord_close(&c);

    /* after the restart the retried request gets its stored grant: it was committed */
    c = serve(run, &lg);
    CHECK_EQ_INT(ct_client_create_shared(&cl, ct_coord_zmq_context(c), ct_coord_endpoint(c), &e),
                 0);
    m = ask(cl, last, req);
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    ct_msg_clear(&m);
    CHECK_EQ_INT(ct_ledger_log_head(r, &seen, &e), 0);
    CHECK(seen == head + 1);
    ct_client_destroy(&cl);
    CHECK_EQ_INT(ct_coord_stop(c, &e), 0);
    ct_coord_close(&c);
    ct_ledger_close(&r);
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
