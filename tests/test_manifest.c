/* test_manifest.c — manifest.json loading: a valid manifest (given as the file, its folder, or a
 * bare name in the current folder) with every field read back; every malformed variant refused
 * with CT_ECORRUPT naming the field; text that is not JSON or is cut short; a missing manifest
 * (CT_ENOENT, pointing at `cotrain prep`); ct_shard_id_valid on its own; the builder (what prep
 * writes) read back by the loader and by cJSON field for field, and out of memory at each of its
 * allocations in turn giving CT_ENOMEM, never a manifest missing a key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include <cjson/cJSON.h>

#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/manifest.h"

static char g_dir[] = "/tmp/ct_test_manifest_XXXXXX";

#define SHA_1 "1111111111111111111111111111111111111111111111111111111111111111"
#define SHA_2 "2222222222222222222222222222222222222222222222222222222222222222"
#define SHA_3 "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

/* The parts of a manifest a variant may replace; NULL fields are written as given in `raw_*`. */
typedef struct parts {
    const char *format; /* the value's JSON text, or NULL to leave the key out */
    const char *tokenizer;
    const char *vocab_size;
    const char *shards; /* the whole shards value */
} parts_t;

static const char SHARD_0[] =
    "{\"id\": \"00000-aaaa\", \"file\": \"00000-aaaa.h5\", \"n_tokens\": 100, "
    "\"n_docs\": 3, \"sha256\": \"" SHA_1 "\", \"tokens_sha256\": \"" SHA_2
    "\", \"sources\": [\"a.txt\"]}";
static const char SHARD_1[] =
    "{\"id\": \"00001-bbbb\", \"file\": \"sub/00001-bbbb.h5\", \"n_tokens\": 0, "
    "\"n_docs\": 0, \"sha256\": \"" SHA_3 "\", \"tokens_sha256\": \"" SHA_2 "\", \"sources\": []}";

/* Writes a manifest with the given parts (defaults: a valid one) to g_dir/name; returns the path
 * in path. */
static void write_manifest(char *path, size_t size, const char *name, const parts_t *p) {
    char shards[4096];
    snprintf(shards, sizeof shards, "[%s, %s]", SHARD_0, SHARD_1);
    snprintf(path, size, "%s/%s", g_dir, name);
    unlink(path);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\n");
    if (p->format) fprintf(f, "  \"format\": %s,\n", p->format);
    if (p->tokenizer) fprintf(f, "  \"tokenizer\": %s,\n", p->tokenizer);
    if (p->vocab_size) fprintf(f, "  \"vocab_size\": %s,\n", p->vocab_size);
    fprintf(f, "  \"eot\": 50256, \"dtype\": \"uint16\", \"n_tokens\": 100, \"n_docs\": 3,\n");
    fprintf(f, "  \"shards\": %s,\n", p->shards ? p->shards : shards);
    fprintf(f, "  \"sources\": [], \"optout\": null, \"settings\": {\"split\": \"file\"}\n}\n");
    CHECK_EQ_INT(fclose(f), 0);
}

static const parts_t VALID = {"\"cotrain-manifest/1\"", "\"gpt2\"", "50257", NULL};

static void check_valid(const ct_manifest_t *m, const char *file, const char *dir) {
    char want[4200], sha[CT_SHA256_HEX];
    CHECK_EQ_STR(m->tokenizer, "gpt2");
    CHECK_EQ_INT(m->vocab_size, 50257);
    CHECK_EQ_INT(m->n_tokens, 100);
    CHECK_EQ_INT(m->n_shards, 2);
    CHECK_EQ_STR(m->path, file);
    char *text = NULL;
    size_t len = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_read_file(file, &text, &len, &e), 0);
    ct_sha256_hex(text, len, sha);
    free(text);
    CHECK_EQ_STR(m->sha256, sha);
    if (m->n_shards != 2) return;
    CHECK_EQ_STR(m->shards[0].id, "00000-aaaa");
    snprintf(want, sizeof want, "%s/00000-aaaa.h5", dir);
    CHECK_EQ_STR(m->shards[0].path, want);
    CHECK_EQ_INT(m->shards[0].n_tokens, 100);
    CHECK_EQ_INT(m->shards[0].n_docs, 3);
    CHECK_EQ_STR(m->shards[0].sha256, SHA_1);
    CHECK_EQ_STR(m->shards[1].id, "00001-bbbb");
    snprintf(want, sizeof want, "%s/sub/00001-bbbb.h5", dir);
    CHECK_EQ_STR(m->shards[1].path, want);
    CHECK_EQ_INT(m->shards[1].n_tokens, 0);
    CHECK_EQ_STR(m->shards[1].sha256, SHA_3);
}

static void test_valid(void) {
    char path[4096];
    write_manifest(path, sizeof path, "manifest.json", &VALID);
    ct_manifest_t *m = NULL;
    ct_err_t e = {0};
    /* the file */
    int rc = ct_manifest_load(&m, path, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "  %s\n", e.msg);
    if (m) check_valid(m, path, g_dir);
    ct_manifest_destroy(&m);
    CHECK(m == NULL);
    ct_manifest_destroy(&m); /* NULL-safe */
    /* its folder */
    CHECK_EQ_INT(ct_manifest_load(&m, g_dir, &e), 0);
    if (m) check_valid(m, path, g_dir);
    ct_manifest_destroy(&m);
    /* a bare name, relative to the current folder */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_EQ_INT(chdir(g_dir), 0);
    CHECK_EQ_INT(ct_manifest_load(&m, "manifest.json", &e), 0);
    if (m) {
        CHECK_EQ_STR(m->shards[0].path, "./00000-aaaa.h5");
        CHECK_EQ_STR(m->path, "manifest.json");
    }
    ct_manifest_destroy(&m);
    CHECK_EQ_INT(chdir(cwd), 0);
    /* a uint32 vocabulary and a one-shard list are fine too */
    parts_t p = VALID;
    char one[4096];
    snprintf(one, sizeof one, "[%s]", SHARD_0);
    p.shards = one;
    p.vocab_size = "70000";
    p.tokenizer = "\"bytes\"";
    write_manifest(path, sizeof path, "one.json", &p);
    CHECK_EQ_INT(ct_manifest_load(&m, path, &e), 0);
    if (m) {
        CHECK_EQ_INT(m->n_shards, 1);
        CHECK_EQ_INT(m->vocab_size, 70000);
        CHECK_EQ_STR(m->tokenizer, "bytes");
    }
    ct_manifest_destroy(&m);
}

/* Loads g_dir/bad.json made of `p`: CT_ECORRUPT whose message holds each of `needles` (NULL
 * ended) and the manifest's path. */
static void expect_corrupt(const char *what, const parts_t *p, const char *const *needles) {
    char path[4096];
    write_manifest(path, sizeof path, "bad.json", p);
    ct_manifest_t *m = NULL;
    ct_err_t e = {0};
    int rc = ct_manifest_load(&m, path, &e);
    if (rc != CT_ECORRUPT) fprintf(stderr, "  variant \"%s\": rc %d (%s)\n", what, rc, e.msg);
    CHECK_EQ_INT(rc, CT_ECORRUPT);
    CHECK(m == NULL);
    CHECK_CONTAINS(e.msg, path);
    for (; *needles; needles++)
        CHECK_CONTAINS(e.msg, *needles);
    ct_manifest_destroy(&m);
}

/* The manifest with shard 1's `key` set to `value` (JSON text; NULL: key left out), or with the
 * whole shard 1 replaced when key is NULL. Expects shards[1].<field> in the message. */
static void expect_bad_shard(const char *key, const char *value, const char *field) {
    char shard[2048], shards[4096], name[128];
    if (!key) {
        snprintf(shard, sizeof shard, "%s", value);
    } else {
        /* rebuild shard 1 from its fields, replacing or dropping `key` */
        static const char *const keys[] = {"id", "file", "n_tokens", "n_docs", "sha256"};
        static const char *const vals[] = {"\"00001-bbbb\"", "\"00001-bbbb.h5\"", "10", "1",
                                           "\"" SHA_3 "\""};
        size_t n = (size_t)snprintf(shard, sizeof shard, "{");
        for (int k = 0; k < 5; k++) {
            const char *v = strcmp(keys[k], key) ? vals[k] : value;
            if (v) n += (size_t)snprintf(shard + n, sizeof shard - n, "\"%s\": %s, ", keys[k], v);
        }
        snprintf(shard + n, sizeof shard - n, "\"sources\": []}");
    }
    snprintf(shards, sizeof shards, "[%s, %s]", SHARD_0, shard);
    parts_t p = VALID;
    p.shards = shards;
    snprintf(name, sizeof name, "shards[1].%s", field);
    char what[256];
    snprintf(what, sizeof what, "%s = %s", key ? key : "shard", value ? value : "(absent)");
    const char *needles[] = {name, NULL};
    expect_corrupt(what, &p, needles);
}

static void test_malformed(void) {
    parts_t p;
    const char *fmt[] = {"format", NULL}, *tok[] = {"tokenizer", NULL},
               *vocab[] = {"vocab_size", NULL};
    const char *shards[] = {"shards", NULL};
    /* format */
    const char *formats[] = {
        NULL,   "\"cotrain-manifest/2\"",  "\"cotrain-manifest/1 \"", "1", "null",
        "\"\"", "[\"cotrain-manifest/1\"]"};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        p = VALID;
        p.format = formats[i];
        expect_corrupt(formats[i] ? formats[i] : "no format", &p, fmt);
    }
    /* tokenizer and vocabulary */
    const char *toks[] = {NULL, "7", "null", "\"a-name-that-is-far-too-long\""};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        p = VALID;
        p.tokenizer = toks[i];
        expect_corrupt(toks[i] ? toks[i] : "no tokenizer", &p, tok);
    }
    const char *vocabs[] = {NULL, "0", "-5", "2.5", "\"50257\"", "1e300", "true"};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        p = VALID;
        p.vocab_size = vocabs[i];
        expect_corrupt(vocabs[i] ? vocabs[i] : "no vocab_size", &p, vocab);
    }
    /* shards not an array, or empty */
    const char *lists[] = {"{}", "[]", "null", "\"00000-aaaa\"", "3"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        p = VALID;
        p.shards = lists[i];
        expect_corrupt(lists[i], &p, shards);
    }
    /* a shard that is not an object */
    expect_bad_shard(NULL, "\"00001-bbbb.h5\"", "entry");
    expect_bad_shard(NULL, "[]", "entry");
    /* ids */
    const char *ids[] = {NULL,
                         "\"\"",
                         "7",
                         "\".hidden\"",
                         "\"a/b\"",
                         "\"a b\"",
                         "\"é\"",
                         "\"../x\"",
                         "\"0123456789012345678901234567890123456789012345678901234567890123\""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        expect_bad_shard("id", ids[i], "id");
    /* files: absolute, climbing out, empty, not a string */
    const char *files[] = {
        NULL,         "\"\"", "\"/etc/passwd\"", "\"../x.h5\"", "\"a/../../x.h5\"", "\"..\"",
        "\"sub/..\"", "5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        expect_bad_shard("file", files[i], "file");
    /* sha256: wrong length, upper case, not hex */
    const char *shas[] = {NULL,
                          "\"\"",
                          "\"" SHA_1 "1\"",
                          "\"111111111111111111111111111111111111111111111111111111111111111\"",
                          "\"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\"",
                          "\"g111111111111111111111111111111111111111111111111111111111111111\"",
                          "42"};
    for (size_t i = 0; i < sizeof shas / sizeof shas[0]; i++)
        expect_bad_shard("sha256", shas[i], "sha256");
    /* counts: negative, fractional, strings, beyond 2^53 */
    const char *counts[] = {NULL, "-1", "-5", "1.5", "\"10\"", "1e300", "true", "null", "1e17"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        expect_bad_shard("n_tokens", counts[i], "n_tokens");
        expect_bad_shard("n_docs", counts[i], "n_docs");
    }
    /* a duplicate id */
    char dup[4096];
    snprintf(dup, sizeof dup, "[%s, %s, %s]", SHARD_0, SHARD_1, SHARD_0);
    p = VALID;
    p.shards = dup;
    const char *twice[] = {"00000-aaaa", "twice", "shards[0]", "shards[2]", NULL};
    expect_corrupt("duplicate id", &p, twice);
}

/* Text that is not a manifest at all, or one cut short. */
static void test_not_json(void) {
    char path[4096], good[4096];
    write_manifest(good, sizeof good, "good.json", &VALID);
    char *text = NULL;
    size_t len = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_read_file(good, &text, &len, &e), 0);
    const char *bodies[] = {"",          "{",
                            "not json",  "[]",
                            "null",      "\"cotrain-manifest/1\"",
                            "42",        "{\"format\": \"cotrain-manifest/1\",}",
                            "\xff\xfe{}"};
    snprintf(path, sizeof path, "%s/junk.json", g_dir);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0] + 6; i++) {
        unlink(path);
        FILE *f = fopen(path, "wb");
        if (!f) continue;
        if (i < sizeof bodies / sizeof bodies[0])
            fputs(bodies[i], f);
        else if (text) /* the valid manifest cut at 1/7, 2/7, ... 6/7 */
            fwrite(text, 1, len * (i - sizeof bodies / sizeof bodies[0] + 1) / 7, f);
        fclose(f);
        ct_manifest_t *m = NULL;
        e = (ct_err_t){0};
        int rc = ct_manifest_load(&m, path, &e);
        if (rc != CT_ECORRUPT) fprintf(stderr, "  junk body %zu: rc %d (%s)\n", i, rc, e.msg);
        CHECK_EQ_INT(rc, CT_ECORRUPT);
        CHECK(m == NULL);
        CHECK_CONTAINS(e.msg, path);
        ct_manifest_destroy(&m);
    }
    free(text);
}

static void test_missing(void) {
    char path[4096];
    ct_manifest_t *m = NULL;
    ct_err_t e = {0};
    /* a missing file */
    snprintf(path, sizeof path, "%s/no-such-manifest.json", g_dir);
    CHECK_EQ_INT(ct_manifest_load(&m, path, &e), CT_ENOENT);
    CHECK(m == NULL);
    CHECK_CONTAINS(e.msg, "no-such-manifest.json");
    CHECK_CONTAINS(e.msg, "cotrain prep");
    /* a folder without a manifest */
    snprintf(path, sizeof path, "%s/empty-dir", g_dir);
    CHECK_EQ_INT(mkdir(path, 0755), 0);
    e = (ct_err_t){0};
    CHECK_EQ_INT(ct_manifest_load(&m, path, &e), CT_ENOENT);
    CHECK_CONTAINS(e.msg, "empty-dir/manifest.json");
    CHECK_CONTAINS(e.msg, "cotrain prep");
    /* a folder where the manifest should be is not a manifest either */
    snprintf(path, sizeof path, "%s/empty-dir/manifest.json", g_dir);
    CHECK_EQ_INT(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/empty-dir", g_dir);
    e = (ct_err_t){0};
    int rc = ct_manifest_load(&m, path, &e);
    CHECK(rc == CT_ENOENT || rc == CT_ECORRUPT);
    CHECK(m == NULL);
}

static void test_shard_id_valid(void) {
    const char *good[] = {"a", "00000-0123456789abcdef", "A.b_c-d", "x.h5",
                          "012345678901234567890123456789012345678901234567890123456789012"};
    const char *bad[] = {"",
                         ".a",
                         "a/b",
                         "a b",
                         "é",
                         "a\n",
                         "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!ct_shard_id_valid(good[i])) fprintf(stderr, "  \"%s\" refused\n", good[i]);
        CHECK_EQ_INT(ct_shard_id_valid(good[i]), 1);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ct_shard_id_valid(bad[i])) fprintf(stderr, "  \"%s\" accepted\n", bad[i]);
        CHECK_EQ_INT(ct_shard_id_valid(bad[i]), 0);
    }
}

/* Builds a manifest of two shards and two sources into *text. */
static int build(char **text, size_t *len, ct_err_t *e) {
    ct_manifest_builder_t *b = NULL;
    const char *src0[] = {"a.txt"}, *src1[] = {"a.txt", "b.jsonl"};
    ct_manifest_source_t s[2] = {
        {.name = "a.txt", .sha256 = SHA_1, .bytes = 10, .docs = 3, .tokens = 100, .empty_docs = 1,
         .excluded_docs = 2, .invalid_utf8_docs = 1, .invalid_utf8_bytes = 4},
        {.name = "b.jsonl", .sha256 = SHA_2, .bytes = 20, .docs = 4, .tokens = 50, .bad_lines = 5}};
    ct_manifest_optout_t o = {.list_sha256 = SHA_3, .entries = 7, .matched_entries = 2,
                              .excluded_docs = 2};
    ct_manifest_settings_t set = {.split = "paragraphs", .shard_tokens = 120, .skip_bad = 1};
    int rc = ct_manifest_builder_create(&b, "gpt2", 50257, 50256, e);
    if (rc == 0)
        rc = ct_manifest_builder_add_shard(b, "00000-aaaa", "00000-aaaa.h5", 100, 3, SHA_1,
                                           SHA_2, src0, 1, e);
    if (rc == 0)
        rc = ct_manifest_builder_add_shard(b, "00001-bbbb", "00001-bbbb.h5", 50, 4, SHA_3, SHA_2,
                                           src1, 2, e);
    if (rc == 0) rc = ct_manifest_builder_text(b, s, 2, &o, &set, text, len, e);
    ct_manifest_builder_destroy(&b);
    return rc;
}

static void test_builder(void) {
    char *text = NULL, path[CT_PATH_MAX];
    size_t len = 0;
    ct_err_t e = {0};
    CHECK_EQ_INT(build(&text, &len, &e), 0);
    if (!text) return;
    CHECK_EQ_INT(text[len - 1], '\n');
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "built.json", &e), 0);
    CHECK_EQ_INT(ct_write_file_atomic(path, text, len, &e), 0);
    ct_manifest_t *m = NULL;
    CHECK_EQ_INT(ct_manifest_load(&m, path, &e), 0);
    if (m) {
        CHECK_EQ_STR(m->tokenizer, "gpt2");
        CHECK_EQ_INT(m->vocab_size, 50257);
        CHECK_EQ_INT(m->n_tokens, 150);
        CHECK_EQ_INT(m->n_shards, 2);
        CHECK_EQ_STR(m->shards[1].id, "00001-bbbb");
        CHECK_EQ_STR(m->shards[1].sha256, SHA_3);
        CHECK_EQ_INT(m->shards[1].n_docs, 4);
    }
    ct_manifest_destroy(&m);
    /* every field the loader does not read, straight from the JSON */
    cJSON *js = cJSON_Parse(text);
    const cJSON *src = cJSON_GetObjectItem(js, "sources"), *o = cJSON_GetObjectItem(js, "optout");
    const cJSON *s1 = cJSON_GetArrayItem(src, 1), *set = cJSON_GetObjectItem(js, "settings");
    const cJSON *sh1 = cJSON_GetArrayItem(cJSON_GetObjectItem(js, "shards"), 1);
    CHECK_EQ_INT(cJSON_GetObjectItem(js, "n_docs")->valueint, 7);
    CHECK_EQ_INT(cJSON_GetObjectItem(js, "eot")->valueint, 50256);
    CHECK_EQ_STR(cJSON_GetObjectItem(js, "dtype")->valuestring, "uint16");
    CHECK_EQ_INT(cJSON_GetObjectItem(s1, "bad_lines")->valueint, 5);
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(src, 0), "invalid_utf8_bytes")->valueint,
                 4);
    CHECK_EQ_INT(cJSON_GetObjectItem(o, "matched_entries")->valueint, 2);
    CHECK_EQ_STR(cJSON_GetObjectItem(set, "split")->valuestring, "paragraphs");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(set, "skip_bad")));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(sh1, "sources")), 2);
    cJSON_Delete(js);
    /* out of memory at each allocation in turn: CT_ENOMEM, or the very same text */
    int failures = 0;
    for (long n = 1;; n++) {
        char *t2 = NULL;
        size_t l2 = 0;
        ct_err_t e2 = {0};
        ct_fault_arm(CT_FAULT_ALLOC, n, 0);
        int rc = build(&t2, &l2, &e2);
        long fired = ct_fault_fired();
        ct_fault_disarm();
        if (fired == 0) {
            CHECK_EQ_INT(rc, 0);
            free(t2);
            break;
        }
        failures++;
        if (rc == 0) {
            CHECK(l2 == len && memcmp(t2, text, len) == 0);
        } else {
            CHECK_EQ_INT(rc, CT_ENOMEM);
            CHECK_CONTAINS(e2.msg, "out of memory");
        }
        free(t2);
    }
    CHECK(failures > 20);
    free(text);
}

int main(void) {
    ct_err_t e = {0};
    if (ct_hash_init(&e) != 0 || !mkdtemp(g_dir)) {
        fprintf(stderr, "setup failed: %s\n", e.msg);
        return 1;
    }
    test_valid();
    test_malformed();
    test_not_json();
    test_missing();
    test_shard_id_valid();
    test_builder();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
