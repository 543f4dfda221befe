/* test_plan.c — the data plan: the base order is the loader's, an add appends to its epoch and
 * joins the shuffle after it, an exclusion skips from its point on, changes round-trip through
 * JSON, a plan only grows, and added data that does not fit the run is refused, leaving the plan
 * as it was. The manifests are written here; plan.h reads no shard file for any of this. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/plan.h"

static char dir[] = "/tmp/ct_test_plan_XXXXXX";

/* A manifest of n shards `<prefix>-<i>` at dir/<name>/manifest.json; its sha256 in sha. */
static void write_manifest(const char *name, const char *prefix, int n, const char *tokenizer,
                           char *path, size_t cap, char sha[CT_SHA256_HEX]) {
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/%s", dir, name);
    fixture_manifest(sub, prefix, n, tokenizer, 50257, path, cap, sha);
}

static cJSON *add_change(int64_t epoch, const char *path, const char *sha, int n) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "kind", "add");
    cJSON_AddNumberToObject(c, "epoch", (double)epoch);
    cJSON_AddStringToObject(c, "manifest", path);
    cJSON_AddStringToObject(c, "sha256", sha);
    cJSON_AddNumberToObject(c, "shards", n);
    return c;
}

static cJSON *exclude_change(int64_t epoch, int64_t pos, const char *a, const char *b) {
    cJSON *c = cJSON_CreateObject(), *ids;
    cJSON_AddStringToObject(c, "kind", "exclude");
    cJSON_AddNumberToObject(c, "epoch", (double)epoch);
    cJSON_AddNumberToObject(c, "pos", (double)pos);
    ids = cJSON_AddArrayToObject(c, "shards");
    cJSON_AddItemToArray(ids, cJSON_CreateString(a));
    if (b) cJSON_AddItemToArray(ids, cJSON_CreateString(b));
    return c;
}

enum { N = 7, HELD = 2, N0 = N - HELD, ADDED = 3 };

int main(void) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    CHECK(mkdtemp(dir) != NULL);
    char base_path[4300], more_path[4300], other_path[4300], dup_path[4300];
    char base_sha[CT_SHA256_HEX], more_sha[CT_SHA256_HEX], other_sha[CT_SHA256_HEX],
        dup_sha[CT_SHA256_HEX];
    write_manifest("base", "a", N, "gpt2", base_path, sizeof base_path, base_sha);
    write_manifest("more", "b", ADDED, "gpt2", more_path, sizeof more_path, more_sha);
    write_manifest("other", "c", 2, "bytes", other_path, sizeof other_path, other_sha);
    write_manifest("dup", "a", 1, "gpt2", dup_path, sizeof dup_path, dup_sha);
    ct_manifest_t *base = NULL;
    CHECK_EQ_INT(ct_manifest_load(&base, base_path, &e), 0);
    ct_plan_t *p = NULL;
    CHECK_EQ_INT(ct_plan_create(&p, base, N, 9, &e), CT_EINVAL); /* nothing left to train on */
    CHECK_EQ_INT(ct_plan_create(&p, base, HELD, 9, &e), 0);

    /* the base: the loader's order over the shards not held out */
    int64_t order[16], want[16];
    CHECK_EQ_INT(ct_plan_shards(p), N0);
    for (int64_t ep = 0; ep < 4; ep++) {
        CHECK_EQ_INT(ct_plan_epoch_len(p, ep), N0);
        ct_plan_order(p, ep, order);
        ct_data_shard_order(9, ep, N0, want);
        CHECK(memcmp(order, want, sizeof(int64_t) * N0) == 0);
    }
    CHECK_EQ_INT(ct_plan_find(p, "a-4"), 4);
    CHECK_EQ_INT(ct_plan_find(p, "a-5"), -1); /* held out */

    /* an add in epoch 1 and an exclusion from position 3 of epoch 1 */
    cJSON *changes = cJSON_CreateArray();
    cJSON_AddItemToArray(changes, add_change(1, more_path, more_sha, ADDED));
    cJSON_AddItemToArray(changes, exclude_change(1, 3, "a-2", "b-1"));
    int applied = -1;
    CHECK_EQ_INT(ct_plan_apply(p, changes, &applied, &e), 0);
    CHECK_EQ_INT(applied, 2);
    CHECK_EQ_INT(ct_plan_count(p), 2);
    CHECK_EQ_INT(ct_plan_shards(p), N0 + ADDED);
    CHECK_EQ_STR(ct_plan_shard(p, N0 + 1)->id, "b-1");
    CHECK_EQ_INT(ct_plan_epoch_len(p, 0), N0);
    CHECK_EQ_INT(ct_plan_epoch_len(p, 1), N0 + ADDED);
    CHECK_EQ_INT(ct_plan_epoch_len(p, 2), N0 + ADDED);
    ct_plan_order(p, 0, order);
    ct_data_shard_order(9, 0, N0, want);
    CHECK(memcmp(order, want, sizeof(int64_t) * N0) == 0); /* epoch 0 as before */
    ct_plan_order(p, 1, order);
    ct_data_shard_order(9, 1, N0, want);
    CHECK(memcmp(order, want, sizeof(int64_t) * N0) == 0); /* the visited part as before ... */
    for (int j = 0; j < ADDED; j++)
        CHECK_EQ_INT(order[N0 + j], N0 + j); /* ... then the new */
    ct_plan_order(p, 2, order);
    ct_data_shard_order(9, 2, N0 + ADDED, want);
    CHECK(memcmp(order, want, sizeof(int64_t) * (N0 + ADDED)) == 0); /* all shuffled */
    int64_t a2 = ct_plan_find(p, "a-2"), b1 = ct_plan_find(p, "b-1"), a3 = ct_plan_find(p, "a-3");
    CHECK(!ct_plan_excluded(p, 0, 6, a2));
    CHECK(!ct_plan_excluded(p, 1, 2, a2));
    CHECK(ct_plan_excluded(p, 1, 3, a2));
    CHECK(ct_plan_excluded(p, 1, 7, b1));
    CHECK(ct_plan_excluded(p, 2, 0, a2));
    CHECK(ct_plan_excluded(p, 5, 1, b1));
    CHECK(!ct_plan_excluded(p, 2, 4, a3));

    /* JSON round trip: a second plan built from the first one's changes agrees */
    cJSON *back = ct_plan_changes_json(p);
    char *t1 = cJSON_PrintUnformatted(changes), *t2 = cJSON_PrintUnformatted(back);
    CHECK_EQ_STR(t1, t2);
    free(t1);
    free(t2);
    ct_plan_t *q = NULL;
    CHECK_EQ_INT(ct_plan_create(&q, base, HELD, 9, &e), 0);
    CHECK_EQ_INT(ct_plan_apply(q, back, NULL, &e), 0);
    int64_t o2[16];
    for (int64_t ep = 0; ep < 3; ep++) {
        ct_plan_order(p, ep, order);
        ct_plan_order(q, ep, o2);
        CHECK(memcmp(order, o2, sizeof(int64_t) * (size_t)ct_plan_epoch_len(p, ep)) == 0);
    }
    ct_plan_destroy(&q);
    cJSON_Delete(back);

    /* the same changes again: nothing new; fewer or different ones: refused */
    CHECK_EQ_INT(ct_plan_apply(p, changes, &applied, &e), 0);
    CHECK_EQ_INT(applied, 0);
    cJSON *fewer = cJSON_CreateArray();
    cJSON_AddItemToArray(fewer, add_change(1, more_path, more_sha, ADDED));
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_plan_apply(p, fewer, NULL, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "only grows");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(changes, 1), "pos", cJSON_CreateNumber(4));
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_plan_apply(p, changes, NULL, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "change 1 differs");
    cJSON_Delete(fewer);

    /* added data that does not fit: refused, naming why; the plan stays as it was, even when
       a good change came first in the same list */
    struct {
        cJSON *change;
        int code;
        const char *says;
    } bad[] = {
        {add_change(2, other_path, other_sha, 2), CT_EINVAL, "tokenizer"},
        {add_change(2, dup_path, dup_sha, 1), CT_EINVAL, "already in this run"},
        {add_change(2, more_path, other_sha, ADDED), CT_ECORRUPT, "sha256"},
        {add_change(2, "/nonexistent/manifest.json", more_sha, 1), CT_ENOENT, "cotrain prep"},
        {exclude_change(2, 0, "a-5", NULL), CT_EINVAL, "does not have"},
        {cJSON_Parse("{\"kind\":\"drop\",\"epoch\":1}"), CT_ECORRUPT, "change 3"},
    };
    char extra_path[4300], extra_sha[CT_SHA256_HEX];
    write_manifest("extra", "d", 2, "gpt2", extra_path, sizeof extra_path, extra_sha);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *list = ct_plan_changes_json(p);
        cJSON_AddItemToArray(list, add_change(2, extra_path, extra_sha, 2));
        cJSON_AddItemToArray(list, bad[i].change);
        ct_err_clear(&e);
        CHECK_EQ_INT(ct_plan_apply(p, list, &applied, &e), bad[i].code);
        CHECK_CONTAINS(e.msg, bad[i].says);
        CHECK_EQ_INT(ct_plan_count(p), 2);
        CHECK_EQ_INT(ct_plan_shards(p), N0 + ADDED);
        CHECK_EQ_INT(ct_plan_find(p, "d-0"), -1);
        CHECK_EQ_INT(ct_plan_epoch_len(p, 2), N0 + ADDED);
        cJSON_Delete(list);
    }
    /* an exclusion of a shard added in the same list is known by then */
    cJSON *list = ct_plan_changes_json(p);
    cJSON_AddItemToArray(list, add_change(2, extra_path, extra_sha, 2));
    cJSON_AddItemToArray(list, exclude_change(2, 9, "d-1", "a-0"));
    CHECK_EQ_INT(ct_plan_apply(p, list, &applied, &e), 0);
    CHECK_EQ_INT(applied, 2);
    CHECK(ct_plan_excluded(p, 2, 9, ct_plan_find(p, "d-1")));
    CHECK(!ct_plan_excluded(p, 2, 8, ct_plan_find(p, "a-0")));
    CHECK_EQ_INT(ct_plan_epoch_len(p, 2), N0 + ADDED + 2);
    cJSON_Delete(list);

    /* changes that took effect out of epoch order (a run gone back to an earlier checkpoint
       takes the next change at an earlier epoch): each epoch still visits each unit once, the
       earlier-epoch add shuffled in from the epoch after it (found by fuzz_plan) */
    ct_plan_t *r = NULL;
    CHECK_EQ_INT(ct_plan_create(&r, base, HELD, 9, &e), 0);
    cJSON *late = cJSON_CreateArray();
    cJSON_AddItemToArray(late, add_change(2, extra_path, extra_sha, 2));
    cJSON_AddItemToArray(late, add_change(1, more_path, more_sha, ADDED));
    CHECK_EQ_INT(ct_plan_apply(r, late, NULL, &e), 0);
    for (int64_t ep = 0; ep < 4; ep++) {
        int64_t len = ct_plan_epoch_len(r, ep), o[16];
        char seen[16] = {0};
        CHECK_EQ_INT(len, N0 + (ep >= 1 ? ADDED : 0) + (ep >= 2 ? 2 : 0));
        ct_plan_order(r, ep, o);
        for (int64_t i = 0; i < len; i++) {
            CHECK(o[i] >= 0 && o[i] < ct_plan_shards(r) && !seen[o[i]]);
            if (o[i] >= 0 && o[i] < 16) seen[o[i]] = 1;
        }
    }
    ct_plan_destroy(&r);
    cJSON_Delete(late);

    cJSON_Delete(changes);
    ct_plan_destroy(&p);
    ct_plan_destroy(&p); /* NULL-safe */
    ct_manifest_destroy(&base);
    check_rm_tree(dir);
    return CHECK_RESULT();
}
