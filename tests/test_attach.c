/* test_attach.c — a group's side of the protocol (trainer/attach.c) against the coordinator
 * served in-process (inproc://, the embedded mode's path), with a lease TTL of 0.3 s: the
 * group's heartbeat thread must keep its leases alive while the training thread leases and
 * reports units, queues metrics and commits, pausing longer than the TTL between units. Two
 * threads of the group and three of the coordinator (its loop, log writer and ledger syncer) run
 * side by side: what the thread sanitizer stage watches. Then the group leaves: another one
 * starts from its checkpoint and gets the unit it held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/attach.h"
#include "cotrain/client.h"
#include "cotrain/comm.h"
#include "cotrain/coord.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"

enum { N = 6 };
static const double TTL = 0.3;
static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[] = "/tmp/ct_test_attach_XXXXXX";

/* The cursor at the start of unit `pos` of epoch 0 (the plan's order: no change). */
static ct_data_cursor_t cursor_at(const int64_t *order, int64_t pos) {
    ct_data_cursor_t c = {.seed = 5, .epoch = 0, .shard_pos = pos, .samples = pos * 10};
    snprintf(c.shard_id, sizeof c.shard_id, "%s", g_shards[order[pos]].id);
    return c;
}

/* How many units group g1 holds, asked by an admin's `status` (a connection and name of its own:
 * a request of g1 would count as a sign of life); -1 when g1 is not listed. */
static int64_t g1_leased(ct_client_t *admin, long long req) {
    char text[128], *reply = NULL;
    ct_err_t e = {0};
    ct_msg_t m = {0};
    int64_t r, v = -1;
    ct_proto_error_t code;
    snprintf(text, sizeof text, "{\"v\":1,\"type\":\"status\",\"req\":%lld,\"group\":\"admin\"}",
             req);
    CHECK_EQ_INT(ct_client_request(admin, text, req, 10000, &reply, NULL, &e), 0);
    CHECK_EQ_INT(ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &e), 0);
    free(reply);
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(m.root, "groups")) {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(g, "group")), "g1"))
            v = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(g, "leased"));
    }
    ct_msg_clear(&m);
    return v;
}

int main(int argc, char **argv) {
    CHECK(mkdtemp(g_dir) != NULL);
    ct_err_t e = {0};
    ct_log_t lg = {.level = CT_LOG_WARN, .role = "test", .rank = -1};
    g_man.n_shards = N;
    g_man.shards = g_shards;
    for (int i = 0; i < N; i++) {
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-s%d", i, i);
        g_shards[i].n_tokens = 1000;
    }
    const char *manifest = "{\"format\":\"a manifest for this test\"}";
    CHECK_EQ_INT(ct_path_join(g_man.path, sizeof g_man.path, g_dir, "manifest.json", &e), 0);
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, manifest, strlen(manifest), &e), 0);
    ct_sha256_hex(manifest, strlen(manifest), g_man.sha256);
    char run[CT_PATH_MAX];
    CHECK_EQ_INT(ct_path_join(run, sizeof run, g_dir, "run", &e), 0);
    CHECK_EQ_INT(ct_mkdirs(run, &e), 0);

    ct_coord_t *c = NULL;
    const ct_coord_opts_t o = {.run_dir = run,
                               .config_json = "{\"train\":{\"steps\":10}}",
                               .m = &g_man,
                               .seed = 5,
                               .bind = "inproc://test_attach",
                               .lease_ttl = TTL};
    CHECK_EQ_INT(ct_coord_open(&c, &o, &lg, &e), 0);
    CHECK_EQ_INT(ct_coord_start(c, &e), 0);

    ct_client_t *admin = NULL;
    CHECK_EQ_INT(
        ct_client_create_shared(&admin, ct_coord_zmq_context(c), ct_coord_endpoint(c), &e), 0);
    ct_comm_t *comm = NULL;
    CHECK_EQ_INT(ct_comm_create(&comm, &argc, &argv, &e), 0);
    ct_attach_t *a = NULL;
    const ct_attach_opts_t ao = {.endpoint = ct_coord_endpoint(c),
                                 .group = "g1",
                                 .zmq_ctx = ct_coord_zmq_context(c)};
    char *config = NULL, head[CT_SHA256_HEX];
    int64_t head_step = -1;
    CHECK_EQ_INT(ct_attach_open(&a, comm, &ao, &config, head, &head_step, &lg, &e), 0);
    CHECK(strstr(config, "\"steps\":10") != NULL);
    CHECK_EQ_STR(head, "");
    CHECK_EQ_INT(ct_attach_data(a, &g_man, 0, 5, &e), 0);

    /* the units in the plan's order, each held for 2 TTLs: only the heartbeats keep the leases */
    int64_t order[N];
    ct_data_shard_order(5, 0, N, order);
    for (int64_t pos = 0; pos < N; pos++) {
        ct_data_cursor_t cur = cursor_at(order, pos);
        CHECK_EQ_INT(ct_attach_follow(a, &cur, &e), 0);
        char line[128];
        snprintf(line, sizeof line, "{\"step\":%lld,\"loss\":2.5}", (long long)pos + 1);
        CHECK_EQ_INT(ct_attach_metrics(a, line, &e), 0);
        usleep((useconds_t)(2 * TTL * 1e6));
        CHECK_EQ_INT(g1_leased(admin, pos + 1), 1);
    }
    /* a checkpoint at the last unit commits the five before it */
    ct_data_cursor_t cur = cursor_at(order, N - 1);
    char id[CT_SHA256_HEX];
    ct_sha256_hex("checkpoint 1", 12, id);
    CHECK_EQ_INT(ct_attach_commit(a, 6, id, &cur, &e), 0);
    ct_msg_t m = {0};
    CHECK_EQ_INT(ct_attach_request(a, CT_MSG_LATEST_CHECKPOINT, NULL, &m, NULL, &e), 0);
    CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.root, "id")), id);
    ct_msg_clear(&m);

    /* g1 leaves (its pulse stops first): a new group starts from its checkpoint and gets the
       unit g1 held */
    CHECK_EQ_INT(ct_attach_leave(a, "paused", &e), 0);
    ct_attach_close(&a);
    free(config);
    config = NULL;
    CHECK_EQ_INT(g1_leased(admin, 100), -1);
    const ct_attach_opts_t bo = {.endpoint = ct_coord_endpoint(c),
                                 .group = "g2",
                                 .zmq_ctx = ct_coord_zmq_context(c)};
    CHECK_EQ_INT(ct_attach_open(&a, comm, &bo, &config, head, &head_step, &lg, &e), 0);
    CHECK_EQ_STR(head, id);
    CHECK_EQ_INT(head_step, 6);
    CHECK_EQ_INT(ct_attach_data(a, &g_man, 0, 5, &e), 0);
    CHECK_EQ_INT(ct_attach_follow(a, &cur, &e), 0);
    ct_attach_close(&a);
    free(config);

    ct_client_destroy(&admin);
    CHECK_EQ_INT(ct_coord_stop(c, &e), 0);
    ct_coord_close(&c);
    ct_comm_destroy(&comm);
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
