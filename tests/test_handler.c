/* test_handler.c — the coordinator's requests (coordinator/handler.c) without a network: hello,
 * lease, shard_done, checkpoint_commit, latest_checkpoint, status; a retried request gets the
 * stored reply (also after the ledger is closed and reopened, as after a crash), an older one
 * `replayed`; bad requests get an error reply and change nothing; data_manifest and shard_fetch
 * send the files' bytes (compared with the files), a manifest changed on disk is not sent, and
 * out-of-range fetches are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/handler.h"
#include "cotrain/hash.h"
#include "cotrain/proto.h"

enum { N = 4 };
static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[] = "/tmp/ct_test_handler_XXXXXX";
static char g_path[CT_PATH_MAX];
static const char g_cfg_sha[] = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

static void open_all(ct_ledger_t **l, ct_handler_t **h) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ledger_open(l, g_path, &g_man, 5, 0, g_cfg_sha, &e), 0);
    CHECK_EQ_INT(ct_handler_create(h, *l, &g_man, "{\"train\":{\"steps\":10}}", 30.0, &e), 0);
}

/* Sends text, returns the parsed reply (caller clears), its raw text in *raw and its frame in
 * *frame (each may be NULL; the caller frees what it asked for). */
static ct_msg_t ask_frame(ct_handler_t *h, const char *text, char **raw, ct_frame_t *frame) {
    char *reply = NULL;
    ct_err_t e = {0};
    ct_frame_t f;
    CHECK_EQ_INT(ct_handler_request(h, text, strlen(text), 0, NULL, NULL, 100.0, &reply, &f, &e), 0);
    if (frame)
        *frame = f;
    else
        free(f.data);
    ct_msg_t m = {0};
    int64_t req;
    ct_proto_error_t code;
    CHECK(reply != NULL);
    if (reply) CHECK_EQ_INT(ct_msg_parse(reply, strlen(reply), 0, &m, &req, &code, &e), 0);
    if (raw)
        *raw = reply;
    else
        free(reply);
    return m;
}

static ct_msg_t ask(ct_handler_t *h, const char *text, char **raw) {
    return ask_frame(h, text, raw, NULL);
}

static const char *str(const ct_msg_t *m, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->root, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const ct_msg_t *m, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Writes len bytes of a pattern (seeded by k) to path; returns them (malloc'd). */
static unsigned char *write_pattern(const char *path, size_t len, int k) {
    unsigned char *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(i * 31 + (size_t)k * 7 + i / 251);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_write_file_atomic(path, b, len, &e), 0);
    return b;
}

/* data_manifest and shard_fetch: the bytes of the files, in range, never stored. */
static void test_fetch(ct_handler_t *h, unsigned char *shard0, size_t len0) {
    ct_frame_t f;
    char *text = NULL;
    size_t len = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_read_file(g_man.path, &text, &len, &e), 0);
    ct_msg_t m =
        ask_frame(h, "{\"v\":1,\"type\":\"data_manifest\",\"req\":1,\"group\":\"v\"}", NULL, &f);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    CHECK_EQ_STR(str(&m, "sha256"), g_man.sha256);
    CHECK_EQ_INT((long long)num(&m, "bytes"), (long long)len);
    CHECK(f.data && f.len == len && !memcmp(f.data, text, len));
    ct_msg_clear(&m);
    free(f.data);
    /* the same req again is answered again (a reading request is not stored) */
    m = ask_frame(h, "{\"v\":1,\"type\":\"data_manifest\",\"req\":1,\"group\":\"v\"}", NULL, &f);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);
    free(f.data);
    /* pieces of shard 0: all of it, a middle piece, its end; the last bytes */
    struct {
        long long off, want, got;
    } ok[] = {{0, 1 << 20, (long long)len0},
              {1000, 500, 500},
              {(long long)len0, 10, 0},
              {(long long)len0 - 3, 10, 3}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "{\"v\":1,\"type\":\"shard_fetch\",\"req\":2,\"group\":\"v\",\"shard\":"
                 "\"%s\",\"offset\":%lld,\"length\":%lld}",
                 g_shards[0].id, ok[i].off, ok[i].want);
        m = ask_frame(h, req, NULL, &f);
        CHECK_EQ_INT(m.type, CT_MSG_OK);
        CHECK_EQ_INT((long long)num(&m, "length"), ok[i].got);
        CHECK_EQ_INT((long long)num(&m, "size"), (long long)len0);
        CHECK_EQ_INT((long long)f.len, ok[i].got);
        CHECK(ok[i].got == 0 || !memcmp(f.data, shard0 + ok[i].off, (size_t)ok[i].got));
        ct_msg_clear(&m);
        free(f.data);
    }
    /* refused: past the end, no length, too long, an unknown shard, no fields */
    char bad[5][256];
    snprintf(bad[0], sizeof bad[0], "\"shard\":\"%s\",\"offset\":%zu,\"length\":1", g_shards[0].id,
             len0 + 1);
    snprintf(bad[1], sizeof bad[1], "\"shard\":\"%s\",\"offset\":0,\"length\":0", g_shards[0].id);
    snprintf(bad[2], sizeof bad[2], "\"shard\":\"%s\",\"offset\":0,\"length\":%d", g_shards[0].id,
             CT_PROTO_CHUNK_MAX + 1);
    snprintf(bad[3], sizeof bad[3], "\"shard\":\"nope\",\"offset\":0,\"length\":1");
    snprintf(bad[4], sizeof bad[4], "\"shard\":\"%s\"", g_shards[0].id);
    for (int i = 0; i < 5; i++) {
        char req[sizeof bad + 128];
        snprintf(req, sizeof req, "{\"v\":1,\"type\":\"shard_fetch\",\"req\":3,\"group\":\"v\",%s}",
                 bad[i]);
        m = ask_frame(h, req, NULL, &f);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        CHECK_EQ_STR(str(&m, "code"), "malformed");
        CHECK(f.data == NULL);
        ct_msg_clear(&m);
    }
    /* a manifest changed on disk since the start is not sent */
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, "{}", 2, &e), 0);
    m = ask_frame(h, "{\"v\":1,\"type\":\"data_manifest\",\"req\":4,\"group\":\"v\"}", NULL, &f);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    CHECK_CONTAINS(str(&m, "message"), "changed on disk");
    CHECK(f.data == NULL);
    ct_msg_clear(&m);
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, text, len, &e), 0);
    free(text);
}

static int collect_metrics(void *arg, int64_t seq, const char *line, ct_err_t *e) {
    (void)seq, (void)e;
    size_t n = strlen(arg);
    snprintf((char *)arg + n, 256 - n, "%s\n", line);
    return 0;
}

static void counts(ct_ledger_t *l, ct_ledger_counts_t *c) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ledger_counts(l, c, &e), 0);
}

int main(void) {
    CHECK(mkdtemp(g_dir) != NULL);
    g_man.n_shards = N;
    g_man.shards = g_shards;
    ct_err_t e = {0};
    char paths[N][CT_PATH_MAX];
    unsigned char *shard0 = NULL;
    size_t len0 = 3000;
    for (int i = 0; i < N; i++) {
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-x%d", i, i);
        CHECK_EQ_INT(ct_path_fmt(paths[i], sizeof paths[i], &e, "%s/s%d.h5", g_dir, i), 0);
        g_shards[i].path = paths[i];
        unsigned char *b = write_pattern(paths[i], len0 + (size_t)i, i);
        if (i == 0)
            shard0 = b;
        else
            free(b);
    }
    const char *manifest = "{\"format\":\"a manifest for this test\"}";
    CHECK_EQ_INT(ct_path_join(g_man.path, sizeof g_man.path, g_dir, "manifest.json", &e), 0);
    CHECK_EQ_INT(ct_write_file_atomic(g_man.path, manifest, strlen(manifest), &e), 0);
    ct_sha256_hex(manifest, strlen(manifest), g_man.sha256);
    CHECK_EQ_INT(ct_path_join(g_path, sizeof g_path, g_dir, "ledger.db", &e), 0);
    ct_ledger_t *l = NULL;
    ct_handler_t *h = NULL;
    open_all(&l, &h);

    ct_msg_t m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g1\"}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
    CHECK_EQ_STR(str(&m, "head"), "");
    const cJSON *train = cJSON_GetObjectItem(cJSON_GetObjectItem(m.root, "config"), "train");
    CHECK_EQ_INT(cJSON_GetObjectItem(train, "steps") ? cJSON_GetObjectItem(train, "steps")->valueint
                                                     : -1,
                 10);
    ct_msg_clear(&m);

    /* a lease, then the same request again: the same grant, no second lease */
    char *first = NULL, *again = NULL;
    m = ask(h, "{\"v\":1,\"type\":\"lease\",\"req\":2,\"group\":\"g1\"}", &first);
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    char shard[CT_SHARD_ID_MAX];
    snprintf(shard, sizeof shard, "%s", str(&m, "shard"));
    int64_t fence = (int64_t)num(&m, "fence");
    CHECK(fence > 0);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"lease\",\"req\":2,\"group\":\"g1\"}", &again);
    CHECK_EQ_STR(again, first);
    ct_msg_clear(&m);
    free(first), free(again);
    ct_ledger_counts_t c;
    counts(l, &c);
    CHECK_EQ_INT(c.leased, 1);
    m = ask(h, "{\"v\":1,\"type\":\"lease\",\"req\":1,\"group\":\"g1\"}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    CHECK_EQ_STR(str(&m, "code"), "replayed");
    ct_msg_clear(&m);

    /* a stale token: refused, nothing changed, and the retry gets the same refusal */
    char text[512];
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"shard_done\",\"req\":3,\"group\":\"g1\","
             "\"shard\":\"%s\",\"epoch\":0,\"fence\":%lld}",
             shard, (long long)fence + 5);
    m = ask(h, text, NULL);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    CHECK_EQ_STR(str(&m, "code"), "stale");
    CHECK_EQ_INT(m.req, 3);
    ct_msg_clear(&m);
    counts(l, &c);
    CHECK_EQ_INT(c.leased, 1);
    CHECK_EQ_INT(c.done, 0);
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"shard_done\",\"req\":4,\"group\":\"g1\","
             "\"shard\":\"%s\",\"epoch\":0,\"fence\":%lld}",
             shard, (long long)fence);
    m = ask(h, text, NULL);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);

    /* malformed requests: an error reply each, nothing changed */
    const char *bad[] = {
        "not json",
        "{\"v\":1,\"type\":\"lease\",\"req\":5}",                       /* no group */
        "{\"v\":1,\"type\":\"lease\",\"req\":5,\"group\":\"a b\"}",     /* bad group */
        "{\"v\":1,\"type\":\"welcome\",\"req\":5,\"group\":\"g1\"}",    /* a reply type */
        "{\"v\":1,\"type\":\"shard_done\",\"req\":6,\"group\":\"g1\"}", /* no fields */
        "{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":7,\"group\":\"g1\",\"step\":3,"
        "\"id\":\"zz\",\"parent\":\"\",\"units\":[]}", /* bad id */
        "{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":8,\"group\":\"g1\",\"step\":3,"
        "\"id\":\"x\",\"parent\":5,\"units\":[]}", /* bad parent */
        "{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":9,\"group\":\"g1\",\"step\":3,"
        "\"id\":\"x\",\"parent\":\"\",\"units\":[{\"shard\":1}]}",                   /* bad unit */
        "{\"v\":1,\"type\":\"leave\",\"req\":1,\"group\":\"g9\"}",                   /* no why */
        "{\"v\":1,\"type\":\"leave\",\"req\":2,\"group\":\"g9\",\"why\":\"bored\"}", /* bad why */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = ask(h, bad[i], NULL);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        ct_msg_clear(&m);
    }
    counts(l, &c);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(c.committed, 0);

    /* a checkpoint of the unit done */
    char id[CT_SHA256_HEX];
    ct_sha256_hex("ckpt", 4, id);
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":10,\"group\":"
             "\"g1\",\"step\":5,\"id\":\"%s\",\"parent\":\"\",\"units\":[{\"shard\":\"%s\","
             "\"epoch\":0}]}",
             id, shard);
    m = ask(h, text, NULL);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);
    /* closed and reopened (as after a crash): the stored reply is still the answer */
    ct_handler_destroy(&h);
    ct_ledger_close(&l);
    open_all(&l, &h);
    m = ask(h, text, NULL);
    CHECK_EQ_INT(m.type, CT_MSG_OK); /* not "stale": the commit is not applied twice */
    CHECK_EQ_INT(m.req, 10);
    ct_msg_clear(&m);
    counts(l, &c);
    CHECK_EQ_INT(c.committed, 1);
    m = ask(h, "{\"v\":1,\"type\":\"latest_checkpoint\",\"req\":11,\"group\":\"g1\"}", NULL);
    CHECK_EQ_STR(str(&m, "id"), id);
    CHECK_EQ_INT((int)num(&m, "step"), 5);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"status\",\"req\":1,\"group\":\"observer\"}", NULL);
    CHECK_EQ_INT((int)num(&m, "committed"), 1);
    CHECK_EQ_STR(str(&m, "head"), id);
    const cJSON *credit = cJSON_GetObjectItem(m.root, "credit");
    CHECK_EQ_INT(cJSON_GetArraySize(credit), 1);
    if (cJSON_GetArraySize(credit) == 1) {
        ct_msg_t one = {.root = cJSON_GetArrayItem(credit, 0)};
        CHECK_EQ_STR(str(&one, "group"), "g1");
        CHECK_EQ_INT((int)num(&one, "commits"), 1);
        CHECK_EQ_INT((int)num(&one, "steps"), 5);
    }
    ct_msg_clear(&m);

    /* model_fetch: refused without a checkpoint folder; then the committed checkpoint's files
       (here a MANIFEST of 4 bytes, "ckpt", whose sha256 is the id committed above): the listing,
       a chunk; unlisted files, other ids and a copy that is not the committed one are refused */
    m = ask(h, "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\"}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    ct_msg_clear(&m);
    char ckdir[CT_PATH_MAX], mpath[CT_PATH_MAX];
    ct_err_t fe = {0};
    CHECK_EQ_INT(ct_path_fmt(ckdir, sizeof ckdir, &fe, "%s/ckpts/ckpt-00000005", g_dir), 0);
    CHECK_EQ_INT(ct_mkdirs(ckdir, &fe), 0);
    CHECK_EQ_INT(ct_path_join(mpath, sizeof mpath, ckdir, "MANIFEST", &fe), 0);
    CHECK_EQ_INT(ct_write_file_atomic(mpath, "ckpt", 4, &fe), 0);
    CHECK_EQ_INT(ct_path_fmt(ckdir, sizeof ckdir, &fe, "%s/ckpts", g_dir), 0);
    CHECK_EQ_INT(ct_handler_set_checkpoints(h, ckdir, &fe), 0);
    m = ask(h, "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\"}", NULL);
    CHECK_EQ_STR(str(&m, "id"), id);
    CHECK_EQ_INT((int)num(&m, "step"), 5);
    const cJSON *lst = cJSON_GetObjectItem(m.root, "files");
    CHECK_EQ_INT(cJSON_GetArraySize(lst), 1);
    CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(lst, 0), "name")),
                 "MANIFEST");
    ct_msg_clear(&m);
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\",\"id\":\"%s\","
             "\"file\":\"MANIFEST\",\"offset\":1,\"length\":100}",
             id);
    ct_frame_t got = {0};
    m = ask_frame(h, text, NULL, &got);
    CHECK_EQ_INT((int)num(&m, "size"), 4);
    CHECK(got.len == 3 && !memcmp(got.data, "kpt", 3));
    free(got.data);
    ct_msg_clear(&m);
    const char *refused[] = {"\"file\":\"../ledger.db\",\"offset\":0,\"length\":10",
                             "\"file\":\"model.h5\",\"offset\":0,\"length\":10"};
    for (int i = 0; i < 2; i++) {
        snprintf(text, sizeof text,
                 "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\",\"id\":\"%s\",%s}",
                 id, refused[i]);
        m = ask(h, text, NULL);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        ct_msg_clear(&m);
    }
    char other[CT_SHA256_HEX];
    ct_sha256_hex("other", 5, other);
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\",\"id\":\"%s\"}", other);
    m = ask(h, text, NULL);
    CHECK_EQ_STR(str(&m, "code"), "stale");
    ct_msg_clear(&m);
    CHECK_EQ_INT(ct_write_file_atomic(mpath, "ckpX", 4, &fe), 0); /* not the committed bytes */
    m = ask(h, "{\"v\":1,\"type\":\"model_fetch\",\"req\":1,\"group\":\"v\"}", NULL);
    CHECK_EQ_STR(str(&m, "code"), "stale");
    CHECK(strstr(str(&m, "message"), "is not checkpoint") != NULL);
    ct_msg_clear(&m);

    /* a restarting group: hello returns its leases */
    m = ask(h, "{\"v\":1,\"type\":\"lease\",\"req\":12,\"group\":\"g1\"}", NULL);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":13,\"group\":\"g1\"}", NULL);
    CHECK_EQ_STR(str(&m, "head"), id);
    ct_msg_clear(&m);
    counts(l, &c);
    CHECK_EQ_INT(c.leased, 0);
    /* a new session of the same group numbers its requests from 1 again */
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g1\",\"session\":\"s2\"}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g1\"}", NULL);
    CHECK_EQ_STR(str(&m, "code"), "replayed"); /* the session-less sequence is at 13 */
    ct_msg_clear(&m);
    /* a standby group is told which group is active (g1, just heard) and gets no config */
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":1,\"group\":\"g2\",\"standby\":true}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
    CHECK_EQ_STR(str(&m, "active"), "g1");
    CHECK(cJSON_GetObjectItemCaseSensitive(m.root, "config") == NULL);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":2,\"group\":\"g2\",\"standby\":1}", NULL);
    CHECK_EQ_INT(m.type, CT_MSG_ERROR);
    ct_msg_clear(&m);
    m = ask(h, "{\"v\":1,\"type\":\"status\",\"req\":2,\"group\":\"observer\"}", NULL);
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(m.root, "groups");
    CHECK_EQ_INT(cJSON_GetArraySize(gs), 2);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(gs, 1), "standby")));
    ct_msg_clear(&m);
    test_fetch(h, shard0, len0);
    /* metrics lines: kept as sent; malformed ones refused; a hello drops those past the head */
    m = ask(h,
            "{\"v\":1,\"type\":\"metrics\",\"req\":20,\"group\":\"g1\",\"lines\":["
            "\"{\\\"step\\\":5,\\\"loss\\\":2}\",\"{\\\"step\\\":6,\\\"loss\\\":1.5}\"]}",
            NULL);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    ct_msg_clear(&m);
    const char *bad_metrics[] = {
        "{\"v\":1,\"type\":\"metrics\",\"req\":21,\"group\":\"g1\",\"lines\":[]}",
        "{\"v\":1,\"type\":\"metrics\",\"req\":22,\"group\":\"g1\",\"lines\":[\"[1]\"]}",
        "{\"v\":1,\"type\":\"metrics\",\"req\":23,\"group\":\"g1\",\"lines\":[\"{}\"]}",
        "{\"v\":1,\"type\":\"metrics\",\"req\":24,\"group\":\"g1\",\"lines\":[3]}",
    };
    for (size_t i = 0; i < sizeof bad_metrics / sizeof bad_metrics[0]; i++) {
        m = ask(h, bad_metrics[i], NULL);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        CHECK_EQ_STR(str(&m, "code"), "malformed");
        ct_msg_clear(&m);
    }
    char kept[256] = "";
    CHECK_EQ_INT(ct_ledger_metrics(l, 0, 10, collect_metrics, kept, &e), 0);
    CHECK_EQ_STR(kept, "{\"step\":5,\"loss\":2}\n{\"step\":6,\"loss\":1.5}\n");
    m = ask(h, "{\"v\":1,\"type\":\"hello\",\"req\":25,\"group\":\"g1\"}", NULL);
    ct_msg_clear(&m); /* the head is step 5 */
    kept[0] = '\0';
    CHECK_EQ_INT(ct_ledger_metrics(l, 0, 10, collect_metrics, kept, &e), 0);
    CHECK_EQ_STR(kept, "{\"step\":5,\"loss\":2}\n");
    free(shard0);
    ct_handler_destroy(&h);
    ct_ledger_close(&l);
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
