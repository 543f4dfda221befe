/* test_data.c — the loader: order determined by seed and shards only, rank slices that add up to
 * the global batch, resume from a cursor, every window once per epoch, data added and excluded
 * mid-run (a replan gives what a loader that had the plan from the start gives), and shards
 * that are missing or corrupted.
 *
 * The shards are written here with ct_shard_write; every token is its position in the whole
 * dataset (vocabulary 1<<20, so uint32), so a row's first token says which window it is. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/shard.h"

enum { VOCAB = 1 << 20, T = 7, W = T + 1 };

/* Shard sizes in tokens: 100 windows of 8, a 5-token shard with no window, odd tails. */
static const int64_t sizes[] = {803, 5, 412, 96, 1201};
enum { N_SHARDS = sizeof sizes / sizeof sizes[0] };
static int64_t total_windows(void) {
    int64_t n = 0;
    for (int i = 0; i < N_SHARDS; i++)
        n += sizes[i] / W;
    return n;
}

/* Writes the shards (ids `<prefix>-<i>`, tokens counting up from `base`) and manifest.json into
 * dir; returns the manifest's path in `manifest`. */
static void make_dataset(const char *dir, const char *prefix, int64_t base, char *manifest,
                         size_t n) {
    ct_err_t e = {0};
    cJSON *m = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(m, "format", CT_MANIFEST_FORMAT);
    cJSON_AddStringToObject(m, "tokenizer", "test");
    cJSON_AddNumberToObject(m, "vocab_size", VOCAB);
    const int64_t first = base;
    for (int i = 0; i < N_SHARDS; i++) {
        ct_shard_t s = {.n_tokens = sizes[i], .n_docs = 1, .vocab_size = VOCAB};
        snprintf(s.tokenizer, sizeof s.tokenizer, "test");
        s.tokens = malloc((size_t)sizes[i] * sizeof *s.tokens);
        int64_t offsets[2] = {0, sizes[i]};
        char id0[] = "doc", *ids[1] = {id0};
        s.doc_offsets = offsets;
        s.doc_ids = ids;
        for (int64_t k = 0; k < sizes[i]; k++)
            s.tokens[k] = (uint32_t)(base + k);
        base += sizes[i];
        char path[4096], file[64], id[32], *bytes, sha[CT_SHA256_HEX];
        size_t len;
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        snprintf(file, sizeof file, "%s.h5", id);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        CHECK_EQ_INT(ct_shard_write(path, &s, &e), 0);
        free(s.tokens);
        CHECK_EQ_INT(ct_read_file(path, &bytes, &len, &e), 0);
        ct_sha256_hex(bytes, len, sha);
        free(bytes);
        cJSON *js = cJSON_CreateObject();
        cJSON_AddStringToObject(js, "id", id);
        cJSON_AddStringToObject(js, "file", file);
        cJSON_AddNumberToObject(js, "n_tokens", (double)sizes[i]);
        cJSON_AddNumberToObject(js, "n_docs", 1);
        cJSON_AddStringToObject(js, "sha256", sha);
        cJSON_AddItemToArray(arr, js);
    }
    cJSON_AddItemToObject(m, "shards", arr);
    cJSON_AddNumberToObject(m, "n_tokens", (double)(base - first));
    char *text = cJSON_Print(m);
    snprintf(manifest, n, "%s/manifest.json", dir);
    CHECK_EQ_INT(ct_write_file_atomic(manifest, text, strlen(text), &e), 0);
    free(text);
    cJSON_Delete(m);
}

static ct_data_t *open_loader(const char *manifest, uint64_t seed, int gb, int rank, int world,
                              const ct_data_cursor_t *start) {
    ct_err_t e = {0};
    ct_data_t *d = NULL;
    ct_data_opts_t o = {.seq_len = T,
                        .seed = seed,
                        .global_batch = gb,
                        .rank = rank,
                        .world = world,
                        .prefetch = 3,
                        .start = start};
    int rc = ct_data_open(&d, manifest, &o, &e);
    if (rc != 0) fprintf(stderr, "ct_data_open: %s\n", e.msg);
    CHECK_EQ_INT(rc, 0);
    return d;
}

/* Reads `steps` steps of this rank's rows into rows (steps, gb/world, W). */
static void read_steps(ct_data_t *d, int steps, int local, int *rows) {
    ct_err_t e = {0};
    if (!d) return;
    for (int s = 0; s < steps; s++)
        CHECK_EQ_INT(ct_data_next(d, rows + (size_t)s * local * W, &e), 0);
}

/* Every row is a window: W consecutive positions starting at a multiple of W in its shard. */
static void check_rows_are_windows(const int *rows, int n) {
    for (int r = 0; r < n; r++) {
        int64_t first = rows[r * W], base = 0;
        int i = 0;
        while (i < N_SHARDS && first >= base + sizes[i])
            base += sizes[i++];
        CHECK(i < N_SHARDS && (first - base) % W == 0 && first - base + W <= sizes[i]);
        for (int k = 1; k < W; k++)
            CHECK_EQ_INT(rows[r * W + k], first + k);
    }
}

static void test_same_seed_same_batches(const char *manifest) {
    enum { GB = 6, STEPS = 120 }; /* 720 samples: more than 2 epochs of 313 windows */
    int *a = malloc(sizeof(int) * STEPS * GB * W), *b = malloc(sizeof(int) * STEPS * GB * W);
    ct_data_t *d1 = open_loader(manifest, 42, GB, 0, 1, NULL);
    ct_data_t *d2 = open_loader(manifest, 42, GB, 0, 1, NULL);
    read_steps(d1, STEPS, GB, a);
    read_steps(d2, STEPS, GB, b);
    CHECK(memcmp(a, b, sizeof(int) * STEPS * GB * W) == 0);
    check_rows_are_windows(a, STEPS * GB);
    ct_data_destroy(&d2);
    /* Another seed: another order. */
    d2 = open_loader(manifest, 43, GB, 0, 1, NULL);
    read_steps(d2, STEPS, GB, b);
    CHECK(memcmp(a, b, sizeof(int) * STEPS * GB * W) != 0);
    ct_data_destroy(&d1);
    ct_data_destroy(&d2);
    free(a);
    free(b);
}

/* Each epoch visits every window exactly once. */
static void test_epochs_cover_every_window(const char *manifest) {
    int64_t nw = total_windows(); /* 313, prime: batches straddle epochs */
    enum { GB = 1, EPOCHS = 3 };
    int steps = (int)(nw * EPOCHS / GB);
    int *rows = malloc(sizeof(int) * (size_t)steps * GB * W);
    ct_data_t *d = open_loader(manifest, 7, GB, 0, 1, NULL);
    CHECK_EQ_INT(ct_data_num_windows(d), nw);
    read_steps(d, steps, GB, rows);
    int64_t n_tokens = 0;
    for (int i = 0; i < N_SHARDS; i++)
        n_tokens += sizes[i];
    unsigned char *seen = calloc((size_t)n_tokens, 1);
    for (int ep = 0; ep < EPOCHS; ep++) {
        memset(seen, 0, (size_t)n_tokens);
        for (int64_t r = ep * nw; r < (ep + 1) * nw; r++) {
            int first = rows[r * W];
            CHECK(!seen[first]);
            seen[first] = 1;
        }
    }
    ct_data_cursor_t c;
    ct_data_cursor(d, &c);
    CHECK_EQ_INT(c.samples, nw * EPOCHS);
    CHECK_EQ_INT(c.epoch, EPOCHS - 1); /* at the end of the last epoch, not yet in the next */
    /* Epochs differ in order. */
    CHECK(memcmp(rows, rows + nw * W, sizeof(int) * (size_t)nw * W) != 0);
    ct_data_destroy(&d);
    free(seen);
    free(rows);
}

/* Ranks of N = 1, 2, 4 concatenate to the same global batch. */
static void test_rank_slices(const char *manifest) {
    enum { GB = 8, STEPS = 90 };
    int *one = malloc(sizeof(int) * STEPS * GB * W), *part = malloc(sizeof(int) * STEPS * GB * W);
    ct_data_t *d = open_loader(manifest, 99, GB, 0, 1, NULL);
    read_steps(d, STEPS, GB, one);
    ct_data_destroy(&d);
    for (int world = 2; world <= 4; world *= 2) {
        int local = GB / world;
        for (int r = 0; r < world; r++) {
            d = open_loader(manifest, 99, GB, r, world, NULL);
            read_steps(d, STEPS, local, part);
            for (int s = 0; s < STEPS; s++)
                CHECK(memcmp(part + (size_t)s * local * W, one + ((size_t)s * GB + r * local) * W,
                             sizeof(int) * local * W) == 0);
            ct_data_cursor_t c;
            ct_data_cursor(d, &c);
            CHECK_EQ_INT(c.samples, STEPS * GB);
            ct_data_destroy(&d);
        }
    }
    free(one);
    free(part);
}

/* Stopping at step k and resuming from the cursor (through its JSON form) sees the same batches
 * as not stopping; so does a resume at another world size. */
static void test_resume(const char *manifest) {
    enum { GB = 4, STEPS = 160, K = 67 };
    ct_err_t e = {0};
    int *straight = malloc(sizeof(int) * STEPS * GB * W),
        *resumed = malloc(sizeof(int) * STEPS * GB * W);
    ct_data_t *d = open_loader(manifest, 5, GB, 0, 1, NULL);
    read_steps(d, STEPS, GB, straight);
    ct_data_destroy(&d);
    d = open_loader(manifest, 5, GB, 0, 1, NULL);
    read_steps(d, K, GB, resumed);
    ct_data_cursor_t c, back;
    ct_data_cursor(d, &c);
    ct_data_destroy(&d);
    cJSON *js = ct_data_cursor_to_json(&c);
    char *text = cJSON_PrintUnformatted(js);
    cJSON_Delete(js);
    js = cJSON_Parse(text);
    CHECK_EQ_INT(ct_data_cursor_from_json(js, &back, &e), 0);
    CHECK(memcmp(&c, &back, sizeof c) == 0);
    cJSON_Delete(js);
    free(text);
    d = open_loader(manifest, 5, GB, 0, 1, &back);
    read_steps(d, STEPS - K, GB, resumed + (size_t)K * GB * W);
    ct_data_destroy(&d);
    CHECK(memcmp(straight, resumed, sizeof(int) * STEPS * GB * W) == 0);
    /* Resume the same cursor on 2 ranks: rank 1 gets the second half of each batch. */
    d = open_loader(manifest, 5, GB, 1, 2, &back);
    read_steps(d, STEPS - K, GB / 2, resumed);
    for (int s = 0; s < STEPS - K; s++)
        CHECK(memcmp(resumed + (size_t)s * (GB / 2) * W,
                     straight + ((size_t)(K + s) * GB + GB / 2) * W,
                     sizeof(int) * (GB / 2) * W) == 0);
    ct_data_destroy(&d);
    /* A cursor from other data or another seed is refused, saying why. */
    ct_data_opts_t o = {
        .seq_len = T, .seed = 6, .global_batch = GB, .rank = 0, .world = 1, .start = &back};
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "seed") != NULL);
    ct_data_cursor_t wrong = back;
    snprintf(wrong.shard_id, sizeof wrong.shard_id, "not-this-one");
    o.seed = 5;
    o.start = &wrong;
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "not-this-one") != NULL);
    /* A malformed cursor. */
    js = cJSON_Parse("{\"seed\": 5, \"epoch\": -1, \"shard_pos\": 0, \"shard\": \"a\", "
                     "\"offset\": 0, \"samples\": 0}");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_cursor_from_json(js, &back, &e), CT_ECORRUPT);
    CHECK(strstr(e.msg, "epoch") != NULL);
    cJSON_Delete(js);
    free(straight);
    free(resumed);
}

/* The loader with data changes (plan.h): a run that learns of the changes at step K (its
 * loader replanned there) reads what a run given them from the start reads; the added shards are
 * read in the epoch they joined, the excluded one not from its point on. */
static void test_replan(const char *manifest, const char *added) {
    enum { GB = 4, STEPS = 300, K = 37 }; /* about 3.5 epochs of 313 windows, then 626 */
    ct_err_t e = {0};
    size_t step_ints = (size_t)GB * W;
    int *straight = malloc(sizeof(int) * STEPS * step_ints);
    int *replanned = malloc(sizeof(int) * STEPS * step_ints);
    ct_data_t *d = open_loader(manifest, 11, GB, 0, 1, NULL);
    read_steps(d, K, GB, replanned);
    ct_data_cursor_t at;
    ct_data_cursor(d, &at);
    /* the changes take effect after the unit in progress, as the coordinator places them */
    char *ahash = NULL, text[8192];
    size_t alen;
    CHECK_EQ_INT(ct_read_file(added, &ahash, &alen, &e), 0);
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(ahash, alen, sha);
    free(ahash);
    snprintf(text, sizeof text,
             "[{\"kind\":\"add\",\"epoch\":%lld,\"manifest\":\"%s\",\"sha256\":\"%s\","
             "\"shards\":%d},{\"kind\":\"exclude\",\"epoch\":%lld,\"pos\":%lld,"
             "\"shards\":[\"shard-4\"]}]",
             (long long)at.epoch, added, sha, N_SHARDS, (long long)at.epoch,
             (long long)at.shard_pos + 1);
    cJSON *changes = cJSON_Parse(text);
    CHECK(changes != NULL);
    int rc = ct_data_replan(d, changes, &e);
    if (rc) fprintf(stderr, "replan: %s\n", e.msg);
    CHECK_EQ_INT(rc, 0);
    read_steps(d, STEPS - K, GB, replanned + (size_t)K * step_ints);
    ct_data_destroy(&d);
    ct_data_opts_t o = {
        .seq_len = T, .seed = 11, .global_batch = GB, .rank = 0, .world = 1, .changes = changes};
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), 0);
    read_steps(d, STEPS, GB, straight);
    ct_data_destroy(&d);
    CHECK(memcmp(straight, replanned, sizeof(int) * STEPS * step_ints) == 0);
    /* shard-4 (tokens [1316, 2517)) is read before the change, not after the epoch it was
       excluded in; the added shards' tokens (from 4096) are read in that epoch */
    int64_t n_a = total_windows();
    int64_t end_of_change_epoch = (at.epoch + 1) * n_a + n_a; /* in samples, at the latest */
    int seen_excluded_late = 0, seen_added_early = 0, seen_added = 0;
    for (int64_t r = 0; r < (int64_t)STEPS * GB; r++) {
        int first = straight[r * W];
        int excluded = first >= 1316 && first < 2517, from_added = first >= 4096;
        if (excluded && r >= end_of_change_epoch) seen_excluded_late = 1;
        if (from_added && r < K * GB) seen_added_early = 1;
        if (from_added && r < end_of_change_epoch) seen_added = 1;
    }
    CHECK(!seen_excluded_late);
    CHECK(!seen_added_early);
    CHECK(seen_added);
    /* a plan never shrinks: a replan with fewer changes fails, and the loader stays failed */
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), 0);
    cJSON *fewer = cJSON_CreateArray();
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_replan(d, fewer, &e), CT_ECORRUPT);
    CHECK_EQ_INT(ct_data_next(d, straight, &e), CT_ECORRUPT);
    ct_data_destroy(&d);
    cJSON_Delete(fewer);
    cJSON_Delete(changes);
    free(straight);
    free(replanned);
}

/* A shard whose bytes differ from the manifest's hash is refused, naming it, whether it is the
 * first one (at open) or one met later (at the step that needs it); a missing one at open. */
static void test_bad_shards(const char *dir, const char *manifest) {
    ct_err_t e = {0};
    ct_data_t *d = NULL;
    char path[4096], saved[4096];
    ct_data_opts_t o = {.seq_len = T, .seed = 1, .global_batch = 4, .rank = 0, .world = 1};
    for (int i = 0; i < N_SHARDS; i++) {
        if (sizes[i] < W) continue; /* never read */
        snprintf(path, sizeof path, "%s/shard-%d.h5", dir, i);
        check_flip_byte(path, 3000, 0x40);
        ct_err_clear(&e);
        int rc = ct_data_open(&d, manifest, &o, &e);
        if (rc == 0) {
            int *rows = malloc(sizeof(int) * 4 * W);
            for (int s = 0; s < 100 && rc == 0; s++)
                rc = ct_data_next(d, rows, &e);
            /* The loader stays failed. */
            CHECK_EQ_INT(ct_data_next(d, rows, &e), CT_ECORRUPT);
            free(rows);
            ct_data_destroy(&d);
        }
        CHECK_EQ_INT(rc, CT_ECORRUPT);
        char want[32];
        snprintf(want, sizeof want, "shard-%d", i);
        CHECK(strstr(e.msg, want) != NULL && strstr(e.msg, "sha256") != NULL);
        check_flip_byte(path, 3000, 0x40);
    }
    snprintf(path, sizeof path, "%s/shard-2.h5", dir);
    snprintf(saved, sizeof saved, "%s/saved.h5", dir);
    CHECK_EQ_INT(rename(path, saved), 0);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), CT_ENOENT);
    CHECK(strstr(e.msg, "shard-2") != NULL);
    CHECK_EQ_INT(rename(saved, path), 0);
    /* Bad options and data too short for one sample. */
    o.global_batch = 6;
    o.world = 4;
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "divisible") != NULL);
    o.global_batch = 4;
    o.world = 1;
    o.seq_len = 5000;
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, manifest, &o, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "seq_len") != NULL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_data_open(&d, "/nonexistent/manifest.json", &o, &e), CT_ENOENT);
    CHECK(strstr(e.msg, "cotrain prep") != NULL);
}

int main(void) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    char dir[] = "/tmp/ct_test_data_XXXXXX", manifest[4096];
    CHECK(mkdtemp(dir) != NULL);
    make_dataset(dir, "shard", 0, manifest, sizeof manifest);
    test_same_seed_same_batches(manifest);
    test_epochs_cover_every_window(manifest);
    test_rank_slices(manifest);
    test_resume(manifest);
    char added_dir[4200], added[4096];
    snprintf(added_dir, sizeof added_dir, "%s/added", dir);
    CHECK_EQ_INT(ct_mkdirs(added_dir, &e), 0);
    make_dataset(added_dir, "more", 4096, added, sizeof added);
    test_replan(manifest, added);
    test_bad_shards(dir, manifest);
    check_rm_tree(dir);
    return CHECK_RESULT();
}
