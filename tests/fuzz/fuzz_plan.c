/* fuzz_plan.c — libFuzzer target: a run's data changes (plan.h), the JSON array a coordinator's
 * welcome and commit replies carry and a group applies to its plan. The base is 5 shards; an add
 * whose "manifest" is "0" or "1" names one of this target's two manifests (its sha256 filled in,
 * unless "sha256" is "keep"), any other path is replaced by a missing one, so the fuzzer explores
 * the changes rather than the file system. Checks: a list that applies gives orders that visit
 * each of an epoch's units once, and round-trips (its JSON builds the same plan again); applying
 * the same list again adds nothing; a list that fails leaves the plan as it was. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/hash.h"
#include "cotrain/plan.h"
#include "fuzz_file.h"

enum { BASE = 5, EPOCHS = 4 };

static ct_manifest_t g_base;
static ct_manifest_shard_t g_shards[BASE];
static char g_paths[2][512], g_sha[2][CT_SHA256_HEX];

/* Manifest k (prefix m or n, 3 or 2 shards) written once into the fuzz folder. */
static void setup(void) {
    if (g_base.n_shards) return;
    g_base.n_shards = BASE;
    g_base.shards = g_shards;
    g_base.vocab_size = 256;
    snprintf(g_base.tokenizer, sizeof g_base.tokenizer, "bytes");
    for (int i = 0; i < BASE; i++)
        snprintf(g_shards[i].id, sizeof g_shards[i].id, "b-%d", i);
    for (int k = 0; k < 2; k++) {
        char text[2048];
        int n = k ? 2 : 3,
            w = snprintf(text, sizeof text,
                         "{\"format\":\"cotrain-manifest/1\",\"tokenizer\":\"bytes\","
                         "\"vocab_size\":256,\"n_tokens\":%d,\"shards\":[",
                         100 * n);
        for (int i = 0; i < n; i++)
            w += snprintf(text + w, sizeof text - (size_t)w,
                          "%s{\"id\":\"%c-%d\",\"file\":\"%c-%d.h5\",\"n_tokens\":100,"
                          "\"n_docs\":1,\"sha256\":\"%064d\"}",
                          i ? "," : "", k ? 'n' : 'm', i, k ? 'n' : 'm', i, 0);
        w += snprintf(text + w, sizeof text - (size_t)w, "]}");
        const char *p = fuzz_file((const uint8_t *)text, (size_t)w, k ? "n.json" : "m.json");
        snprintf(g_paths[k], sizeof g_paths[k], "%s", p ? p : "/nonexistent");
        ct_sha256_hex(text, (size_t)w, g_sha[k]);
    }
}

/* o's `key` set to the string v (replaced, or added). */
static void set_string(cJSON *o, const char *key, const char *v) {
    cJSON *s = cJSON_CreateString(v);
    int ok = cJSON_GetObjectItemCaseSensitive(o, key)
                 ? cJSON_ReplaceItemInObjectCaseSensitive(o, key, s)
                 : cJSON_AddItemToObject(o, key, s);
    if (!ok) cJSON_Delete(s);
}

/* Points each add at this target's manifests (see the file's header). */
static void confine(cJSON *changes) {
    cJSON *c;
    cJSON_ArrayForEach(c, changes) {
        cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "manifest");
        if (!cJSON_IsString(m)) continue;
        int k = !strcmp(m->valuestring, "0") ? 0 : !strcmp(m->valuestring, "1") ? 1 : -1;
        set_string(c, "manifest", k >= 0 ? g_paths[k] : "/nonexistent/manifest.json");
        cJSON *sha = cJSON_GetObjectItemCaseSensitive(c, "sha256");
        if (k >= 0 && !(cJSON_IsString(sha) && !strcmp(sha->valuestring, "keep")))
            set_string(c, "sha256", g_sha[k]);
    }
}

/* Each epoch's order visits each of its units' shards once, all of them plan shards. */
static void check_orders(const ct_plan_t *p) {
    int64_t order[BASE + 64], n = ct_plan_shards(p);
    for (int64_t ep = 0; ep < EPOCHS; ep++) {
        int64_t len = ct_plan_epoch_len(p, ep);
        if (len > n || len > BASE + 64) __builtin_trap();
        ct_plan_order(p, ep, order);
        char seen[BASE + 64] = {0};
        for (int64_t i = 0; i < len; i++) {
            if (order[i] < 0 || order[i] >= n || seen[order[i]]) __builtin_trap();
            seen[order[i]] = 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    cJSON *changes = cJSON_ParseWithLength((const char *)data, size);
    if (!changes) return 0;
    confine(changes);
    ct_plan_t *p = NULL;
    ct_err_t e = {0};
    if (ct_plan_create(&p, &g_base, 0, 7, &e) != 0) __builtin_trap();
    int applied = -1;
    if (ct_plan_apply(p, changes, &applied, &e) == 0) {
        if (applied != ct_plan_count(p)) __builtin_trap();
        check_orders(p);
        int again = -1;
        if (ct_plan_apply(p, changes, &again, &e) != 0 || again != 0) __builtin_trap();
        cJSON *back = ct_plan_changes_json(p);
        ct_plan_t *q = NULL;
        if (!back || ct_plan_create(&q, &g_base, 0, 7, &e) != 0 ||
            ct_plan_apply(q, back, NULL, &e) != 0 || ct_plan_count(q) != ct_plan_count(p) ||
            ct_plan_shards(q) != ct_plan_shards(p))
            __builtin_trap();
        for (int64_t ep = 0; ep < EPOCHS; ep++) {
            int64_t a[BASE + 64], b[BASE + 64], len = ct_plan_epoch_len(p, ep);
            ct_plan_order(p, ep, a);
            ct_plan_order(q, ep, b);
            if (len != ct_plan_epoch_len(q, ep) || memcmp(a, b, (size_t)len * sizeof *a))
                __builtin_trap();
            for (int64_t i = 0; i < len; i++)
                if (ct_plan_excluded(p, ep, i, a[i]) != ct_plan_excluded(q, ep, i, b[i]))
                    __builtin_trap();
        }
        ct_plan_destroy(&q);
        cJSON_Delete(back);
    } else if (!e.msg[0] || ct_plan_count(p) != 0 || ct_plan_shards(p) != BASE) {
        __builtin_trap();
    }
    ct_plan_destroy(&p);
    cJSON_Delete(changes);
    return 0;
}
