/* test_config.c — the config module: defaults, bundled configs, --set, every kind of error (with
 * the key and value named in the message), several errors reported together, canonical output
 * (sorted, Python-compatible floats, round trip to an identical struct, also for random floats),
 * sha256 of the canonical text, help, and mutated files that must fail cleanly, never crash. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "cotrain/config.h"
#include "cotrain/hash.h"

static const char *const BUNDLED[] = {"tiny",        "small",      "gpt2",
                                      "gpt2-medium", "gpt2-large", "gpt2-xl"};

static const char DEFAULT_CANONICAL[] =
    "{\"ckpt\":{\"every\":1000,\"keep_every\":0,\"keep_last\":3},"
    "\"comm\":{\"bucket_mb\":25.0,\"chunk_mb\":4.0,\"overlap\":false,\"watchdog_factor\":20.0,"
    "\"watchdog_min_s\":600.0,\"watchdog_slow_s\":600.0},\"data\":{\"eval_shards\":0},"
    "\"log\":{\"eval_every\":0,\"eval_tokens\":1048576,\"every\":1},"
    "\"model\":{\"d_model\":768,\"n_head\":12,\"n_layer\":12,"
    "\"seq_len\":1024,\"vocab_size\":0},\"train\":{\"beta1\":0.9,\"beta2\":0.95,"
    "\"decay_bias_and_norm\":false,\"eps\":1e-08,\"global_batch\":8,\"grad_clip\":1.0,"
    "\"lr\":0.0006,\"micro_batch\":8,\"min_lr\":6e-05,\"peak_gflops\":0.0,"
    "\"schedule\":\"cosine\",\"seed\":1337,"
    "\"spike_guard\":false,\"spike_window\":50,\"spike_zscore\":6.0,\"steps\":1000,"
    "\"warmup_steps\":100,\"weight_decay\":0.1},"
    "\"volunteer\":{\"aggregate\":\"trimmed_mean\",\"compress\":\"int8\",\"deadline_s\":600.0,"
    "\"enabled\":false,\"error_feedback\":true,\"inner_steps\":100,\"max_staleness\":1,"
    "\"outer_lr\":0.7,\"outer_momentum\":0.9,\"outlier_ratio\":10.0,\"quorum\":2,"
    "\"trim\":0.2}}\n";

/* Replaces the file by a new one: truncating it would make ext4 flush it to disk on close. */
static void write_file(const char *path, const char *text) {
    unlink(path);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    CHECK_EQ_INT(fclose(f), 0);
}

/* Loads `json` written to dir/c.json (json NULL: no file) plus the sets. */
static int load_json(const char *dir, const char *json, const char *const *sets, int n_set,
                     ct_config_t *cfg, ct_err_t *e) {
    char path[512];
    snprintf(path, sizeof path, "%s/c.json", dir);
    if (json) write_file(path, json);
    ct_err_clear(e);
    return ct_config_load(cfg, json ? path : NULL, NULL, sets, n_set, e);
}

/* One failing case: the code and every needle in the message. */
static void expect_err(int line, const char *dir, const char *json, const char *const *sets,
                       int n_set, int code, const char *const *needles) {
    ct_config_t cfg;
    ct_err_t e;
    int before = check_failures_;
    CHECK_EQ_INT(load_json(dir, json, sets, n_set, &cfg, &e), code);
    for (int i = 0; needles[i]; i++)
        CHECK_CONTAINS(e.msg, needles[i]);
    if (check_failures_ > before) fprintf(stderr, "  (the case at line %d)\n", line);
}

#define SETS(...)                                                                                  \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define NO_SETS NULL, 0
#define EXPECT_ERR(dir, json, sets_and_n, code, ...)                                               \
    expect_err(__LINE__, dir, json, sets_and_n, code, (const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(const char *dir) {
    ct_config_t d, c;
    ct_err_t e;
    ct_config_defaults(&d);
    CHECK_EQ_INT(d.model.n_layer, 12);
    CHECK_EQ_INT(d.model.n_head, 12);
    CHECK_EQ_INT(d.model.d_model, 768);
    CHECK_EQ_INT(d.model.seq_len, 1024);
    CHECK_EQ_INT(d.model.vocab_size, 0);
    CHECK_EQ_INT(d.train.steps, 1000);
    CHECK_EQ_INT(d.train.global_batch, 8);
    CHECK_EQ_INT(d.train.micro_batch, 8);
    CHECK(d.train.lr == 6e-4 && d.train.min_lr == 6e-5);
    CHECK_EQ_INT(d.train.warmup_steps, 100);
    CHECK_EQ_INT(d.train.schedule, CT_SCHED_COSINE);
    CHECK(d.train.weight_decay == 0.1 && d.train.beta1 == 0.9 && d.train.beta2 == 0.95);
    CHECK(d.train.eps == 1e-8 && d.train.grad_clip == 1.0 && d.train.spike_zscore == 6.0);
    CHECK_EQ_INT(d.train.decay_bias_and_norm, 0);
    CHECK_EQ_INT(d.train.seed, 1337);
    CHECK_EQ_INT(d.train.spike_guard, 0);
    CHECK_EQ_INT(d.train.spike_window, 50);
    CHECK_EQ_INT(d.log.every, 1);
    CHECK_EQ_INT(load_json(dir, NULL, NO_SETS, &c, &e), 0);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK_EQ_INT(load_json(dir, "{}", NO_SETS, &c, &e), 0);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK_EQ_INT(load_json(dir, "{\"model\":{},\"train\":{},\"log\":{}}", NO_SETS, &c, &e), 0);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
}

static void test_bundled(void) {
    ct_config_t c;
    ct_err_t e = {0};
    for (size_t i = 0; i < sizeof BUNDLED / sizeof BUNDLED[0]; i++) {
        ct_err_clear(&e);
        int rc = ct_config_load(&c, BUNDLED[i], CT_CONFIG_DIR, NULL, 0, &e);
        if (rc != 0) fprintf(stderr, "bundled config %s: %s\n", BUNDLED[i], e.msg);
        CHECK_EQ_INT(rc, 0);
        CHECK(strstr(BUNDLED[i], "gpt2") ? c.model.vocab_size == 50257 : c.model.vocab_size == 0);
    }
    CHECK_EQ_INT(ct_config_load(&c, "tiny", CT_CONFIG_DIR, NULL, 0, &e), 0);
    CHECK_EQ_INT(c.model.n_layer, 4);
    CHECK_EQ_INT(c.model.d_model, 128);
    CHECK_EQ_INT(c.train.steps, 300);
    CHECK_EQ_INT(c.log.every, 10);
    CHECK_EQ_INT(ct_config_load(&c, CT_CONFIG_DIR "/gpt2-xl.json", NULL, NULL, 0, &e), 0);
    CHECK_EQ_INT(c.model.n_layer, 48);
    CHECK_EQ_INT(c.model.n_head, 25);
    CHECK_EQ_INT(c.model.d_model, 1600);
}

/* A file named like a bundled config in the current directory wins over the bundled one. */
static void test_cwd_preferred(const char *dir) {
    char cwd[4096], path[512];
    ct_config_t c;
    ct_err_t e = {0};
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(path, sizeof path, "%s/tiny", dir);
    write_file(path, "{\"model\":{\"n_layer\":2}}");
    CHECK_EQ_INT(chdir(dir), 0);
    CHECK_EQ_INT(ct_config_load(&c, "tiny", CT_CONFIG_DIR, NULL, 0, &e), 0);
    CHECK_EQ_INT(c.model.n_layer, 2);
    CHECK_EQ_INT(c.model.d_model, 768);
    CHECK_EQ_INT(chdir(cwd), 0);
    CHECK_EQ_INT(unlink(path), 0);
}

static void test_sets(const char *dir) {
    ct_config_t c;
    ct_err_t e;
    CHECK_EQ_INT(
        load_json(dir, "{\"train\":{\"steps\":10,\"lr\":0.5}}",
                  SETS("train.steps=5", "train.lr=0.01", "train.schedule=linear",
                       "train.spike_guard=true", "train.steps=7", "train.warmup_steps=0",
                       "train.seed=42", "model.vocab_size=1e3", "train.decay_bias_and_norm=false"),
                  &c, &e),
        0);
    CHECK_EQ_INT(c.train.steps, 7);
    CHECK(c.train.lr == 0.01);
    CHECK_EQ_INT(c.train.schedule, CT_SCHED_LINEAR);
    CHECK_EQ_INT(c.train.spike_guard, 1);
    CHECK_EQ_INT(c.train.seed, 42);
    CHECK_EQ_INT(c.model.vocab_size, 1000);
    CHECK_EQ_INT(c.train.decay_bias_and_norm, 0);
    CHECK_EQ_INT(load_json(dir, NULL,
                           SETS("train.schedule=\"constant\"", "train.seed=9007199254740992"), &c,
                           &e),
                 0);
    CHECK_EQ_INT(c.train.schedule, CT_SCHED_CONSTANT);
    CHECK(c.train.seed == (UINT64_C(1) << 53));
    CHECK_EQ_INT(load_json(dir,
                           "{\"train\":{\"decay_bias_and_norm\":true,\"spike_guard\":true,"
                           "\"schedule\":\"constant\"}}",
                           NO_SETS, &c, &e),
                 0);
    CHECK_EQ_INT(c.train.decay_bias_and_norm, 1);
    CHECK_EQ_INT(c.train.spike_guard, 1);
}

static void test_errors(const char *dir) {
    EXPECT_ERR(dir, "{\"model\":{\"n_layers\":4}}", NO_SETS, CT_ECONFIG, "model.n_layers",
               "unknown key", "n_layer, n_head, d_model, seq_len, vocab_size");
    EXPECT_ERR(dir, "{\"modle\":{\"n_layer\":4}}", NO_SETS, CT_ECONFIG, "modle", "unknown section",
               "model, train, ckpt, comm, log");
    EXPECT_ERR(dir, "{\"model\":5}", NO_SETS, CT_ECONFIG, "model: found 5", "expected an object");
    EXPECT_ERR(dir, "{\"train\":{\"steps\":\"abc\"}}", NO_SETS, CT_ECONFIG, "train.steps",
               "\"abc\"", "expected an integer");
    EXPECT_ERR(dir, "{\"train\":{\"steps\":2.5}}", NO_SETS, CT_ECONFIG, "train.steps", "2.5",
               "integer");
    EXPECT_ERR(dir, "{\"train\":{\"lr\":[1]}}", NO_SETS, CT_ECONFIG, "train.lr", "an array",
               "a number");
    EXPECT_ERR(dir, "{\"train\":{\"lr\":1e999}}", NO_SETS, CT_ECONFIG, "train.lr", "inf", "finite");
    EXPECT_ERR(dir, "{\"train\":{\"spike_guard\":1}}", NO_SETS, CT_ECONFIG, "train.spike_guard",
               "found 1", "true or false");
    EXPECT_ERR(dir, "{\"train\":{\"schedule\":\"cosin\"}}", NO_SETS, CT_ECONFIG, "train.schedule",
               "\"cosin\"", "\"cosine\", \"linear\", \"constant\"");
    EXPECT_ERR(dir, "{\"model\":{\"n_layer\":0}}", NO_SETS, CT_ECONFIG, "model.n_layer", "0 is",
               "out of range [1, 1024]");
    EXPECT_ERR(dir, "{\"train\":{\"beta2\":1}}", NO_SETS, CT_ECONFIG, "train.beta2", "1 is",
               "[0, 1)");
    EXPECT_ERR(dir, "{\"train\":{\"eps\":0}}", NO_SETS, CT_ECONFIG, "train.eps", "(0, 1]");
    EXPECT_ERR(dir, "{\"comm\":{\"watchdog_slow_s\":0}}", NO_SETS, CT_ECONFIG,
               "comm.watchdog_slow_s", "0 is", "(0, 1000000000]");
    EXPECT_ERR(dir, "{\"train\":{\"seed\":-1}}", NO_SETS, CT_ECONFIG, "train.seed", "-1",
               "[0, 9007199254740992]");
    EXPECT_ERR(dir, "{\"train\":{\"seed\":9007199254740994}}", NO_SETS, CT_ECONFIG, "train.seed",
               "9007199254740994");
    EXPECT_ERR(dir, "{\"train\":{\"spike_window\":4}}", NO_SETS, CT_ECONFIG, "train.spike_window",
               "4 is");
    EXPECT_ERR(dir, "{\"model\":{\"vocab_size\":16777217}}", NO_SETS, CT_ECONFIG,
               "model.vocab_size", "16777217");
    EXPECT_ERR(dir, "{\"train\":{\"steps\":3,\"steps\":4}}", NO_SETS, CT_ECONFIG, "train.steps",
               "twice");
    EXPECT_ERR(dir, "[1,2]", NO_SETS, CT_ECONFIG, "JSON object", "an array");
}

static void test_cross(const char *dir) {
    EXPECT_ERR(dir, "{\"model\":{\"d_model\":100,\"n_head\":3}}", NO_SETS, CT_ECONFIG,
               "model.d_model = 100", "model.n_head = 3", "1 problem:");
    EXPECT_ERR(dir, "{\"train\":{\"global_batch\":10,\"micro_batch\":4}}", NO_SETS, CT_ECONFIG,
               "train.global_batch = 10", "train.micro_batch = 4");
    EXPECT_ERR(dir, "{\"train\":{\"lr\":0.001,\"min_lr\":0.01}}", NO_SETS, CT_ECONFIG,
               "train.min_lr = 0.01", "train.lr = 0.001");
    EXPECT_ERR(dir, "{\"train\":{\"steps\":10,\"warmup_steps\":11}}", NO_SETS, CT_ECONFIG,
               "train.warmup_steps = 11", "train.steps = 10");
    /* A bad key's rules are skipped: one problem, not a second about d_model % n_head. */
    EXPECT_ERR(dir, "{\"model\":{\"d_model\":100,\"n_head\":\"x\"}}", NO_SETS, CT_ECONFIG,
               "1 problem:", "model.n_head");
    ct_config_t c;
    ct_err_t e;
    CHECK_EQ_INT(load_json(dir, NULL, SETS("train.steps=10", "train.warmup_steps=10"), &c, &e), 0);
}

static void test_files_and_sets(const char *dir) {
    ct_config_t c;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_config_load(&c, "/nonexistent/x.json", NULL, NULL, 0, &e), CT_ENOENT);
    CHECK_CONTAINS(e.msg, "/nonexistent/x.json");
    CHECK_CONTAINS(e.msg, "tiny, small, gpt2, gpt2-medium, gpt2-large, gpt2-xl");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_config_load(&c, "nosuchname", CT_CONFIG_DIR, NULL, 0, &e), CT_ENOENT);
    CHECK_CONTAINS(e.msg, "nosuchname");
    CHECK_CONTAINS(e.msg, CT_CONFIG_DIR "/nosuchname.json");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_config_load(&c, dir, NULL, NULL, 0, &e), CT_EIO); /* a directory */
    CHECK_CONTAINS(e.msg, dir);
    EXPECT_ERR(dir, "{\n  \"model\": {\n    \"n_layer\": 4,\n  }\n}\n", NO_SETS, CT_ECONFIG,
               "c.json:4:", "invalid JSON", "'}'");
    EXPECT_ERR(dir, "", NO_SETS, CT_ECONFIG, "c.json:1:1:", "invalid JSON");
    EXPECT_ERR(dir, "{} x", NO_SETS, CT_ECONFIG, "c.json:1:", "'{} x'");
    EXPECT_ERR(dir, NULL, SETS("train.nope=1"), CT_ECONFIG, "train.nope", "--set",
               "valid keys in \"train\"");
    EXPECT_ERR(dir, NULL, SETS("lr=1"), CT_ECONFIG, "lr: unknown", "model, train, ckpt, comm, log");
    EXPECT_ERR(dir, NULL, SETS("train.lr"), CT_ECONFIG, "--set train.lr", "key=value");
    EXPECT_ERR(dir, NULL, SETS("train.lr=fast"), CT_ECONFIG, "train.lr", "\"fast\"",
               "--set train.lr=fast");
    EXPECT_ERR(dir, NULL, SETS("train.spike_guard=1"), CT_ECONFIG, "train.spike_guard",
               "true or false");
}

static void test_many_errors(const char *dir) {
    EXPECT_ERR(dir, "{\"model\":{\"n_layer\":-3,\"bogus\":1},\"train\":{\"lr\":\"x\"},\"zz\":{}}",
               SETS("log.every=0", "train.steps"), CT_ECONFIG, "6 problems", "model.n_layer", "-3",
               "model.bogus", "train.lr", "\"x\"", "zz", "log.every", "--set train.steps");
    /* Hundreds of problems: the message stays within its buffer and says how many were left out. */
    char json[16384];
    size_t w = (size_t)snprintf(json, sizeof json, "{\"train\":{");
    for (int i = 0; i < 300; i++)
        w += (size_t)snprintf(json + w, sizeof json - w, "%s\"k%d\":1", i ? "," : "", i);
    snprintf(json + w, sizeof json - w, "}}");
    EXPECT_ERR(dir, json, NO_SETS, CT_ECONFIG, "300 problems", "train.k0", "more");
}

static char *canonical_of(const ct_config_t *c) {
    ct_err_t e = {0};
    char *text = ct_config_canonical(c, &e);
    CHECK(text != NULL);
    return text ? text : strdup("");
}

/* Writes c's canonical text, loads it, and checks the struct and text come back identical. */
static void check_round_trip(const char *dir, const ct_config_t *c) {
    ct_config_t back;
    ct_err_t e;
    char *text = canonical_of(c);
    int rc = load_json(dir, text, NO_SETS, &back, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        char *again = canonical_of(&back);
        CHECK_EQ_STR(again, text);
        CHECK(memcmp(&back, c, sizeof back) == 0);
        free(again);
    } else {
        fprintf(stderr, "round trip of %s failed: %s\n", text, e.msg);
    }
    free(text);
}

/* Keys of every object appear in strictly increasing order. */
static void check_sorted(const cJSON *obj) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        if (item->prev && item != obj->child) CHECK(strcmp(item->prev->string, item->string) < 0);
        if (cJSON_IsObject(item)) check_sorted(item);
    }
}

static void check_float_text(const char *dir, const char *set, const char *needle) {
    ct_config_t c;
    ct_err_t e;
    int rc = load_json(dir, NULL, &set, 1, &c, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) fprintf(stderr, "--set %s: %s\n", set, e.msg);
    char *text = canonical_of(&c);
    CHECK_CONTAINS(text, needle);
    free(text);
}

static void test_canonical(const char *dir) {
    ct_config_t c;
    ct_config_defaults(&c);
    char *text = canonical_of(&c);
    CHECK_EQ_STR(text, DEFAULT_CANONICAL);
    cJSON *root = cJSON_Parse(text);
    CHECK(root != NULL);
    if (root) check_sorted(root);
    cJSON_Delete(root);
    free(text);
    check_float_text(dir, "train.lr=1e-4", "\"lr\":0.0001,");
    check_float_text(dir, "train.min_lr=0.00001", "\"min_lr\":1e-05,");
    check_float_text(dir, "train.lr=0.30000000000000004", "\"lr\":0.30000000000000004,");
    check_float_text(dir, "train.weight_decay=10", "\"weight_decay\":10.0}");
    check_float_text(dir, "train.grad_clip=1e6", "\"grad_clip\":1000000.0,");
    check_float_text(dir, "train.grad_clip=123456.789", "\"grad_clip\":123456.789,");
    check_float_text(dir, "train.grad_clip=0", "\"grad_clip\":0.0,");
    check_float_text(dir, "train.eps=5e-324", "\"eps\":5e-324,");
    check_float_text(dir, "train.eps=1.5e-300", "\"eps\":1.5e-300,");
    check_round_trip(dir, &c);
    c.model.vocab_size = 50257;
    c.train.steps = (int64_t)1e15;
    c.train.seed = UINT64_C(1) << 53;
    c.train.schedule = CT_SCHED_CONSTANT;
    c.train.spike_guard = 1;
    c.train.eps = 5e-324;
    c.train.lr = 0.1 + 0.2;
    c.train.grad_clip = 999999.9999999999;
    check_round_trip(dir, &c);
}

/* Random floats of every magnitude survive canonical -> load unchanged. */
static void test_random_round_trip(const char *dir) {
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    ct_config_t c;
    ct_config_defaults(&c);
    for (int i = 0; i < 2000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) * 0x1p-53 + 0x1p-60; /* (0, 1) */
        c.train.lr = u * 10.0;
        c.train.min_lr = ldexp(u, -(int)(s % 1000)) * c.train.lr * 0.5;
        c.train.eps = ldexp(u, -(int)(s % 1070));
        c.train.weight_decay = u * (double)(s % 11);
        c.train.grad_clip = ldexp(u, (int)(s % 20));
        c.train.seed = s >> 11;
        int before = check_failures_;
        check_round_trip(dir, &c);
        if (check_failures_ > before) break;
    }
}

static void test_sha256(const char *dir) {
    ct_config_t c;
    ct_err_t e = {0};
    char a[65], b[65], want[65];
    ct_config_defaults(&c);
    CHECK_EQ_INT(ct_config_sha256(&c, a, &e), 0);
    CHECK_EQ_INT(ct_config_sha256(&c, b, &e), 0);
    CHECK_EQ_STR(a, b);
    CHECK_EQ_INT(strlen(a), 64);
    ct_sha256_hex(DEFAULT_CANONICAL, strlen(DEFAULT_CANONICAL), want);
    CHECK_EQ_STR(a, want);
    CHECK_EQ_INT(load_json(dir, NULL, SETS("train.seed=1338"), &c, &e), 0);
    CHECK_EQ_INT(ct_config_sha256(&c, b, &e), 0);
    CHECK(strcmp(a, b) != 0);
}

static void test_help(void) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    if (!f) return;
    ct_config_print_help(f);
    fclose(f);
    CHECK_CONTAINS(buf, "train.spike_zscore");
    CHECK_CONTAINS(buf, "model.vocab_size");
    CHECK_CONTAINS(buf, "log.every");
    CHECK_CONTAINS(buf, "\"cosine\", \"linear\", \"constant\"");
    CHECK_CONTAINS(buf, "default 0.0006");
    CHECK_CONTAINS(buf, "2^53");
    free(buf);
}

/* Mutated canonical texts: each loads or fails with CT_ECONFIG, never crashes (ASan checks). */
static void test_mutations(const char *dir) {
    uint64_t s = 12345;
    ct_config_t c;
    ct_err_t e;
    const char alphabet[] = "{}[]\":,.-+eE0123456789 \ntruefalsnl\\";
    for (int i = 0; i < 500; i++) {
        char text[sizeof DEFAULT_CANONICAL];
        memcpy(text, DEFAULT_CANONICAL, sizeof text);
        for (int m = 0; m < 1 + i % 3; m++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            text[s % (sizeof text - 1)] = alphabet[(s >> 32) % (sizeof alphabet - 1)];
        }
        int rc = load_json(dir, text, NO_SETS, &c, &e);
        CHECK(rc == 0 || rc == CT_ECONFIG);
        CHECK(rc == 0 || (e.msg[0] && strlen(e.msg) < sizeof e.msg));
    }
}

int main(void) {
    char dir[] = "/tmp/test_config.XXXXXX", path[512];
    ct_err_t e = {0};
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    test_defaults(dir);
    test_bundled();
    test_cwd_preferred(dir);
    test_sets(dir);
    test_errors(dir);
    test_cross(dir);
    test_files_and_sets(dir);
    test_many_errors(dir);
    test_canonical(dir);
    test_random_round_trip(dir);
    test_sha256(dir);
    test_help();
    test_mutations(dir);
    snprintf(path, sizeof path, "%s/c.json", dir);
    unlink(path);
    CHECK_EQ_INT(rmdir(dir), 0);
    return CHECK_RESULT();
}
