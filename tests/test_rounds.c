/* test_rounds.c — volunteer mode's outer steps (coordinator/rounds.c) through the handler, without
 * a network: version 0 is the initial weights (or, with --init, a safetensors file's, of the
 * model's shapes only); bad deltas (another codec or size, a version from
 * the future or too old, more tokens than a round trains, bytes that do not match their hash, a
 * unit not leased to the group, a second delta while one waits) get an error reply and change
 * nothing; an upload in chunks goes on from what the coordinator holds (a chunk sent again is not
 * appended twice); the outer step waits for its quorum, and its weights are those of the
 * Nesterov step recomputed here (the vocabulary's padding rows never move); the update served is
 * the file written; a delta whose norm is far above the others' is refused with its reason in the
 * signed record; the last version ends the run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/ckpt.h"
#include "cotrain/delta.h"
#include "cotrain/fsutil.h"
#include "cotrain/handler.h"
#include "cotrain/hash.h"
#include "cotrain/layout.h"
#include "cotrain/rounds.h"
#include "cotrain/safetensors.h"

enum { N = 3 };
static ct_manifest_t g_man;
static ct_manifest_shard_t g_shards[N];
static char g_dir[] = "/tmp/ct_test_rounds_XXXXXX";
static ct_handler_t *g_h;
static ct_ledger_t *g_l;
static ct_rounds_t *g_r;
static ct_layout_t g_lay;
static long long g_req[4]; /* per group g0..g3 */

static const char *SETS[] = {"model.n_layer=1",
                             "model.n_head=1",
                             "model.d_model=8",
                             "model.seq_len=4",
                             "model.vocab_size=16",
                             "train.steps=3",
                             "train.warmup_steps=0",
                             "train.global_batch=2",
                             "train.micro_batch=2",
                             "volunteer.enabled=true",
                             "volunteer.inner_steps=2",
                             "volunteer.quorum=2",
                             "volunteer.aggregate=mean",
                             "volunteer.compress=f32",
                             "volunteer.error_feedback=false",
                             "volunteer.outer_lr=0.5",
                             "volunteer.outer_momentum=0.9"};

/* A request of group `g` ("g<g>") with the fields in `fmt` and the frame body (may be NULL): the
 * parsed reply (caller clears). */
static ct_msg_t ask(int g, const ct_frame_t *body, const char *type, const char *fields) {
    char text[2048], *reply = NULL;
    snprintf(text, sizeof text, "{\"v\":1,\"type\":\"%s\",\"req\":%lld,\"group\":\"g%d\"%s%s}",
             type, ++g_req[g], g, fields[0] ? "," : "", fields);
    ct_frame_t f = {0};
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_handler_request(g_h, text, strlen(text), body ? 1 : 0, body, NULL, 100.0,
                                    &reply, &f, &e),
                 0);
    free(f.data);
    ct_msg_t m = {0};
    int64_t req;
    ct_proto_error_t code;
    CHECK(reply != NULL);
    if (reply) CHECK_EQ_INT(ct_msg_parse(reply, strlen(reply), 0, &m, &req, &code, &e), 0);
    free(reply);
    return m;
}

static const char *str(const ct_msg_t *m, const char *key) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->root, key));
    return s ? s : "";
}

static double num(const ct_msg_t *m, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int waiting(void) {
    ct_delta_entry_t *d = NULL;
    int n = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ledger_deltas(g_l, &d, &n, &e), 0);
    free(d);
    return n;
}

/* A delta of group g from version `base` (bytes b, len, sha), chunk [off, off+len) with the
 * extra fields: the reply. */
static ct_msg_t send(int g, int64_t base, const void *b, size_t total, const char *sha, size_t off,
                     size_t len, int64_t tokens, const char *units) {
    char f[1024];
    snprintf(f, sizeof f,
             "\"base\":%lld,\"codec\":\"f32\",\"n\":%zu,\"bytes\":%zu,\"sha256\":\"%s\","
             "\"offset\":%zu,\"tokens\":%lld,\"steps\":2,\"loss\":\"3.5\",\"units\":[%s]",
             (long long)base, g_lay.n_params, total, sha, off, (long long)tokens, units);
    const ct_frame_t body = {(char *)b + off, len};
    return ask(g, &body, "delta", f);
}

/* Sends delta x (n floats) whole from group g: 1 when complete. */
static int send_all(int g, int64_t base, const float *x, const char *units) {
    size_t len = g_lay.n_params * sizeof(float);
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(x, len, sha);
    ct_msg_t m = send(g, base, x, len, sha, 0, len, 16, units);
    int ok = m.type == CT_MSG_OK && cJSON_IsTrue(cJSON_GetObjectItem(m.root, "complete"));
    if (!ok) fprintf(stderr, "send_all g%d: %s\n", g, str(&m, "message"));
    ct_msg_clear(&m);
    return ok;
}

/* Version `step` of the run in run_dir. */
static void restore(const char *run_dir, int64_t step, float *params) {
    char dir[CT_PATH_MAX];
    ct_err_t e = {0};
    snprintf(dir, sizeof dir, "%s/checkpoints/ckpt-%08lld", run_dir, (long long)step);
    float *m = calloc(g_lay.n_params, sizeof *m), *v = calloc(g_lay.n_params, sizeof *v);
    ct_ckpt_body_t b = {.tensors = g_lay.tensors,
                        .n_tensors = g_lay.n_tensors,
                        .params = params,
                        .adam_m = m,
                        .adam_v = v};
    ct_ckpt_info_t info;
    CHECK_EQ_INT(ct_ckpt_restore(dir, &b, &info, &e), 0);
    CHECK_EQ_INT(info.step, step);
    free(m);
    free(v);
}

static int tick(void) {
    int stepped = 0, expired = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_handler_tick(g_h, 200.0, &expired, &stepped, &e), 0);
    return stepped;
}

/* The public log's record of `type` last logged, as its canonical body (caller frees; NULL: none).
 */
typedef struct last_of {
    const char *type;
    char *body;
} last_of_t;

static int keep_last(void *arg, int64_t seq, double at, const char *type, const char *body,
                     ct_err_t *e) {
    last_of_t *l = arg;
    (void)seq, (void)at, (void)e;
    if (!strcmp(type, l->type)) {
        free(l->body);
        l->body = strdup(body);
    }
    return 0;
}

static char *last_record(const char *type) {
    last_of_t l = {type, NULL};
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ledger_records(g_l, 0, 1000000, keep_last, &l, &e), 0);
    return l.body;
}

int main(void) {
    CHECK(mkdtemp(g_dir) != NULL);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    g_man.n_shards = N;
    g_man.shards = g_shards;
    g_man.vocab_size = 16;
    snprintf(g_man.tokenizer, sizeof g_man.tokenizer, "bytes");
    for (int i = 0; i < N; i++)
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "%05d-s%d", i, i);
    memset(g_man.sha256, 'a', 64);
    ct_config_t cfg;
    CHECK_EQ_INT(ct_config_load(&cfg, NULL, NULL, SETS, sizeof SETS / sizeof SETS[0], &e), 0);
    char *json = ct_config_canonical(&cfg, &e), db[CT_PATH_MAX], sha[CT_SHA256_HEX];
    ct_sha256_hex(json, strlen(json), sha);
    CHECK_EQ_INT(ct_path_join(db, sizeof db, g_dir, "coordinator.db", &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&g_l, db, &g_man, cfg.train.seed, 0, sha, &e), 0);
    CHECK_EQ_INT(ct_handler_create(&g_h, g_l, &g_man, json, 30.0, &e), 0);
    ct_log_t lg = {.level = CT_LOG_ERROR, .role = "coordinator", .rank = -1};
    const ct_rounds_opts_t ro = {
        .run_dir = g_dir, .cfg = &cfg, .config_json = json, .m = &g_man, .l = g_l, .lg = &lg};
    CHECK_EQ_INT(ct_rounds_open(&g_r, &ro, &e), 0);
    ct_handler_set_rounds(g_h, g_r);
    CHECK_EQ_INT(ct_layout_build(&g_lay, 1, 8, 4, 16, &e), 0);
    size_t n = g_lay.n_params, len = n * sizeof(float);

    /* version 0: the initial weights of the seed */
    float *theta0 = malloc(len), *want = malloc(len), *got = malloc(len), *mom = malloc(len);
    ct_layout_init_weights(&g_lay, want, cfg.train.seed);
    restore(g_dir, 0, theta0);
    CHECK(memcmp(theta0, want, len) == 0);

    ct_msg_t m;
    for (int g = 0; g < 4; g++) {
        m = ask(g, NULL, "hello", "");
        CHECK_EQ_INT(m.type, CT_MSG_WELCOME);
        ct_msg_clear(&m);
    }
    m = ask(1, NULL, "lease", "");
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    char unit[256], unit_name[128];
    snprintf(unit, sizeof unit, "{\"shard\":\"%s\",\"epoch\":%.0f,\"fence\":%.0f}",
             str(&m, "shard"), num(&m, "epoch"), num(&m, "fence"));
    snprintf(unit_name, sizeof unit_name, "\"%s:%.0f\"", str(&m, "shard"), num(&m, "epoch"));
    ct_msg_clear(&m);

    float *d1 = malloc(len), *d2 = malloc(len), *d3 = malloc(len);
    for (size_t i = 0; i < n; i++) {
        d1[i] = 0.01f * sinf((float)i);
        d2[i] = 0.02f * cosf((float)i * 0.5f);
        d3[i] = -0.015f * sinf((float)i * 0.25f);
    }
    char s1[CT_SHA256_HEX];
    ct_sha256_hex(d1, len, s1);

    /* refusals: each an error reply, nothing waiting afterwards */
    const struct {
        int64_t base, tokens;
        const char *sha, *code, *what;
    } bad[] = {
        {1, 16, s1, "stale", "it starts from version 1"},
        {0, 17, s1, "refused", "claims 17 tokens"},
        {0, 16, "0000000000000000000000000000000000000000000000000000000000000000", "malformed",
         "hash to"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        m = send(1, bad[k].base, d1, len, bad[k].sha, 0, len, bad[k].tokens, unit);
        CHECK_EQ_INT(m.type, CT_MSG_ERROR);
        CHECK_EQ_STR(str(&m, "code"), bad[k].code);
        CHECK(strstr(str(&m, "message"), bad[k].what) != NULL);
        ct_msg_clear(&m);
        CHECK_EQ_INT(waiting(), 0);
    }
    m = ask(1, NULL, "delta",
            "\"base\":0,\"codec\":\"int8\",\"n\":3,\"bytes\":9,\"sha256\":\"00\",\"offset\":0,"
            "\"tokens\":1,\"steps\":1,\"units\":[]");
    CHECK_EQ_INT(m.type, CT_MSG_ERROR); /* a malformed sha256 */
    ct_msg_clear(&m);
    char other[256];
    snprintf(other, sizeof other, "{\"shard\":\"%s\",\"epoch\":0,\"fence\":999}", g_shards[2].id);
    m = send(1, 0, d1, len, s1, 0, len, 16, other);
    CHECK_EQ_STR(str(&m, "code"), "stale"); /* a unit not leased to it */
    ct_msg_clear(&m);
    CHECK_EQ_INT(waiting(), 0);

    /* an upload in two chunks; the first sent again is not appended twice (other bytes than the
       refused upload's, whose whole .part is still there: sent again, it completes at once) */
    d1[0] += 0.5f;
    ct_sha256_hex(d1, len, s1);
    size_t half = len / 2;
    for (int k = 0; k < 2; k++) {
        m = send(1, 0, d1, len, s1, 0, half, 16, unit);
        CHECK_EQ_INT(m.type, CT_MSG_OK);
        CHECK_EQ_INT((long long)num(&m, "have"), (long long)half);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItem(m.root, "complete")));
        ct_msg_clear(&m);
    }
    m = send(1, 0, d1, len, s1, half, len - half, 16, unit);
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(m.root, "complete")));
    ct_msg_clear(&m);
    CHECK_EQ_INT(waiting(), 1);
    m = send(1, 0, d1, len, s1, 0, len, 16, "");
    CHECK_EQ_STR(str(&m, "code"), "stale"); /* one waits already */
    CHECK(strstr(str(&m, "message"), "already has a delta waiting") != NULL);
    ct_msg_clear(&m);

    /* the quorum (2) is not there yet: no step; g2's delta makes it */
    CHECK_EQ_INT(tick(), 0);
    CHECK(send_all(2, 0, d2, ""));
    CHECK_EQ_INT(tick(), 1);
    /* θ1 = θ0 + (θ' - θ0), θ' = θ0 - lr (g + mu mom), mom = g = (d1 + d2) / 2 (equal tokens) */
    size_t pad0 = 16 * 8, pad1 = 64 * 8; /* wte's padding rows (16..63): never moved */
    for (size_t i = 0; i < n; i++) {
        float g =
            i >= pad0 && i < pad1 ? 0.0f : (float)(((double)d1[i] * 16 + (double)d2[i] * 16) / 32);
        mom[i] = 0.9f * 0.0f + g;
        float t = theta0[i] - 0.5f * (g + 0.9f * mom[i]);
        want[i] = theta0[i] + (t - theta0[i]);
    }
    restore(g_dir, 1, got);
    /* (-ffp-contract may fuse differently here and there: the outer optimizer itself is held to
       PyTorch by oracle_outer) */
    CHECK_CLOSE(got, want, n, 1e-6);
    char *rec = last_record("outer_step");
    CHECK(rec && strstr(rec, "\"group\":\"g1\"") && strstr(rec, "\"weight\":\"0.500000\""));
    free(rec);
    rec = last_record("checkpoint_committed"); /* with the unit g1's delta trained on */
    CHECK(rec && strstr(rec, unit_name) && strstr(rec, "\"group\":\"coordinator\""));
    free(rec);

    /* model_update from version 0: the bytes of updates/update-00000001.bin */
    m = ask(0, NULL, "model_update", "\"from\":0,\"offset\":0,\"length\":1048576");
    CHECK_EQ_INT(m.type, CT_MSG_OK);
    CHECK_EQ_INT((long long)num(&m, "bytes"), (long long)len);
    ct_msg_clear(&m);

    /* version 1 -> 2: g2's delta a thousand times the others': refused by its norm */
    for (size_t i = 0; i < n; i++)
        d2[i] *= 1000.0f;
    CHECK(send_all(1, 1, d1, ""));
    CHECK(send_all(3, 1, d3, ""));
    CHECK(send_all(2, 1, d2, ""));
    CHECK_EQ_INT(tick(), 1);
    rec = last_record("outer_step");
    CHECK(rec && strstr(rec, "\"rejected\":[{") && strstr(rec, "its norm"));
    free(rec);
    for (size_t i = 0; i < n; i++) /* the outer momentum after version 2: d1 and d3 merged */
        mom[i] = 0.9f * mom[i] +
                 (i >= pad0 && i < pad1 ? 0.0f : (float)(((double)d1[i] + (double)d3[i]) / 2));

    /* too old: version 0 is two behind version 2 (max_staleness 1) */
    m = send(0, 0, d1, len, s1, 0, len, 16, "");
    CHECK_EQ_STR(str(&m, "code"), "stale");
    ct_msg_clear(&m);

    /* the last version ends the run; g0's delta, from version 1, is merged at half its size */
    CHECK(send_all(1, 2, d1, ""));
    CHECK(send_all(0, 1, d3, ""));
    CHECK_EQ_INT(tick(), 1);
    CHECK(ct_rounds_finished(g_r));
    restore(g_dir, 2, theta0);
    for (size_t i = 0; i < n; i++) {
        float g = i >= pad0 && i < pad1
                      ? 0.0f
                      : (float)(((double)d1[i] * 16 + (double)(d3[i] * 0.5f) * 16) / 32);
        mom[i] = 0.9f * mom[i] + g;
        float t = theta0[i] - 0.5f * (g + 0.9f * mom[i]);
        want[i] = theta0[i] + (t - theta0[i]);
    }
    restore(g_dir, 3, got);
    CHECK_CLOSE(got, want, n, 1e-6);
    rec = last_record("outer_step");
    CHECK(rec &&
          strstr(rec, "\"base\":1,\"group\":\"g0\",\"steps\":2,\"tokens\":16,"
                      "\"weight\":\"0.250000\"") &&
          strstr(rec, "\"base\":2,\"group\":\"g1\",\"steps\":2,\"tokens\":16,"
                      "\"weight\":\"0.500000\""));
    free(rec);
    rec = last_record("run_finished");
    CHECK(rec != NULL);
    free(rec);
    /* a delta within max_staleness of the last version would never be merged now: refused, not
     * acknowledged (volunteer_crash_e2e found one acknowledged and lost under ASan's slowness) */
    m = send(2, 2, d1, len, s1, 0, len, 16, "");
    CHECK_EQ_STR(str(&m, "code"), "stale");
    CHECK(strstr(str(&m, "message"), "the run finished at version 3") != NULL);
    ct_msg_clear(&m);
    CHECK_EQ_INT(waiting(), 0);

    ct_handler_destroy(&g_h);
    ct_rounds_close(&g_r);
    ct_ledger_close(&g_l);

    /* --init: version 0 of another run is the weights of a safetensors file (half the seed's) */
    char run2[CT_PATH_MAX], init[CT_PATH_MAX], file[CT_PATH_MAX];
    CHECK_EQ_INT(ct_path_join(run2, sizeof run2, g_dir, "run2", &e), 0);
    CHECK_EQ_INT(ct_path_join(init, sizeof init, g_dir, "init", &e), 0);
    CHECK_EQ_INT(ct_path_join(file, sizeof file, init, "model.safetensors", &e), 0);
    CHECK_EQ_INT(ct_path_join(db, sizeof db, run2, "coordinator.db", &e), 0);
    CHECK_EQ_INT(ct_mkdirs(init, &e), 0);
    CHECK_EQ_INT(ct_mkdirs(run2, &e), 0);
    for (size_t i = 0; i < n; i++)
        want[i] *= 0.5f;
    CHECK_EQ_INT(ct_safetensors_write(file, g_lay.tensors, g_lay.n_tensors, want, &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&g_l, db, &g_man, cfg.train.seed, 0, sha, &e), 0);
    ct_rounds_opts_t ro2 = ro;
    ro2.run_dir = run2;
    ro2.l = g_l;
    ro2.init = init;
    CHECK_EQ_INT(ct_rounds_open(&g_r, &ro2, &e), 0);
    restore(run2, 0, theta0);
    CHECK(memcmp(theta0, want, len) == 0);
    ct_rounds_close(&g_r);
    /* a file of other shapes is refused, naming what differs */
    ct_ledger_close(&g_l);
    check_rm_tree(run2);
    CHECK_EQ_INT(ct_mkdirs(run2, &e), 0);
    CHECK_EQ_INT(ct_ledger_open(&g_l, db, &g_man, cfg.train.seed, 0, sha, &e), 0);
    ct_layout_t wider;
    CHECK_EQ_INT(ct_layout_build(&wider, 1, 16, 4, 16, &e), 0);
    float *big = calloc(wider.n_params, sizeof *big);
    CHECK_EQ_INT(ct_safetensors_write(file, wider.tensors, wider.n_tensors, big, &e), 0);
    ro2.l = g_l;
    CHECK_EQ_INT(ct_rounds_open(&g_r, &ro2, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "model.safetensors");
    ct_err_clear(&e);
    free(big);
    ct_layout_free(&wider);
    ct_ledger_close(&g_l);
    ct_layout_free(&g_lay);
    free(json);
    free(theta0);
    free(want);
    free(got);
    free(mom);
    free(d1);
    free(d2);
    free(d3);
    char cmd[CT_PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return CHECK_RESULT();
}
