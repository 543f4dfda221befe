/* test_safetensors.c — the safetensors writer and reader: write → read round trips give the same
 * weights bit for bit (padded and unpadded vocabularies, an odd d_model), the file's layout
 * (sorted keys, F32, Hugging Face shapes, wte unpadded, aligned data start, no holes), identical
 * bytes for identical weights; Hugging Face variants that must load (names without the
 * "transformer." prefix, lm_head.weight, attn.bias / attn.masked_bias buffers); malformed files
 * that must fail with CT_ECORRUPT naming what is wrong (truncated, header length, JSON, shape,
 * dtype, missing / unexpected / duplicate tensors, offsets out of bounds, overlapping or leaving
 * holes), a fuzz pass over mutated files; writes that fail part way (RLIMIT_FSIZE) leave no temp
 * file and the previous file intact; and config.json. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/model.h"
#include "cotrain/safetensors.h"

static char g_dir[] = "/tmp/ct_test_safetensors_XXXXXX";

static void path_in(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g_dir, name);
}

/* xorshift64: reproducible test data without touching the C library's rand state. */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static ct_model_t *make_model(int L, int NH, int C, int T, int V, uint64_t seed) {
    ct_model_dims_t d = {.n_layer = L, .n_head = NH, .d_model = C, .seq_len = T, .vocab_size = V};
    ct_model_t *m = NULL;
    ct_err_t e = {0};
    if (ct_model_create(&m, &d, 1, &e) != 0) {
        fprintf(stderr, "ct_model_create: %s\n", e.msg);
        abort();
    }
    if (seed) ct_model_init_weights(m, seed);
    return m;
}

/* Every parameter, padding rows included, set to junk: a read must overwrite all of it. */
static void fill_junk(ct_model_t *m) {
    float *p = ct_model_params(m);
    for (size_t i = 0; i < ct_model_num_params(m); i++)
        p[i] = 7.25f;
}

static int same_params(ct_model_t *a, ct_model_t *b) {
    return ct_model_num_params(a) == ct_model_num_params(b) &&
           memcmp(ct_model_params(a), ct_model_params(b), ct_model_num_params(a) * 4) == 0;
}

static int read_into(const char *path, ct_model_t *m, ct_err_t *e) {
    ct_err_clear(e);
    return ct_safetensors_read(path, ct_model_tensor(m, 0), ct_model_num_tensors(m),
                               ct_model_params(m), e);
}

static int write_model(const char *path, ct_model_t *m, ct_err_t *e) {
    return ct_safetensors_write(path, ct_model_tensor(m, 0), ct_model_num_tensors(m),
                                ct_model_params(m), e);
}

/* ---- files built by hand ------------------------------------------------------------------- */

typedef struct spec {
    char name[96];
    char dtype[16];
    int ndim;
    int64_t shape[4];
    size_t bytes;
    const void *data; /* NULL: zeros */
} spec_t;

enum { MAX_SPECS = 128 };

/* Writes a safetensors file of the given entries (data back to back in this order). */
static void write_specs(const char *path, const spec_t *s, int n) {
    char hdr[65536];
    size_t len = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, sizeof hdr - len,
                                ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s[i].name, s[i].dtype);
        for (int k = 0; k < s[i].ndim; k++)
            len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s%lld", k ? "," : "",
                                    (long long)s[i].shape[k]);
        len += (size_t)snprintf(hdr + len, sizeof hdr - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + s[i].bytes);
        off += s[i].bytes;
    }
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "}");
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    uint64_t n64 = len;
    fwrite(&n64, 8, 1, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < n; i++) {
        if (s[i].data) {
            fwrite(s[i].data, 1, s[i].bytes, f);
        } else {
            for (size_t k = 0; k < s[i].bytes; k++)
                fputc(0, f);
        }
    }
    fclose(f);
}

/* The entries of m's tensors, as Hugging Face stores them, with or without the prefix. */
static int model_specs(ct_model_t *m, spec_t *s, int prefixed) {
    const ct_model_dims_t *d = ct_model_dims(m);
    int n = ct_model_num_tensors(m);
    for (int i = 0; i < n; i++) {
        const ct_tensor_info_t *t = ct_model_tensor(m, i);
        memset(&s[i], 0, sizeof s[i]);
        snprintf(s[i].name, sizeof s[i].name, "%s",
                 prefixed ? t->name : t->name + strlen("transformer."));
        strcpy(s[i].dtype, "F32");
        s[i].ndim = t->ndim;
        s[i].shape[0] = t->shape[0];
        s[i].shape[1] = t->shape[1];
        if (i == 0) s[i].shape[0] = d->vocab_size; /* wte, unpadded */
        s[i].bytes = (size_t)s[i].shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1) * 4;
        s[i].data = ct_model_params(m) + t->offset;
    }
    return n;
}

static int find_spec(spec_t *s, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s[i].name, name)) return i;
    fprintf(stderr, "no spec %s\n", name);
    abort();
}

static void drop_spec(spec_t *s, int *n, int i) {
    memmove(&s[i], &s[i + 1], (size_t)(*n - i - 1) * sizeof *s);
    (*n)--;
}

/* A file of 8-byte length (as given), then `hdr`, then data_len zero bytes. */
static void write_raw(const char *path, uint64_t hlen, const char *hdr, size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(&hlen, 8, 1, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t k = 0; k < data_len; k++)
        fputc(0, f);
    fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_corrupt(const char *what, const char *path, ct_model_t *m, const char *needle) {
    ct_err_t e = {0};
    int rc = read_into(path, m, &e);
    if (rc != CT_ECORRUPT) fprintf(stderr, "case %s: rc %d (%s)\n", what, rc, e.msg);
    CHECK_EQ_INT(rc, CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, needle);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_round_trip(int L, int NH, int C, int T, int V) {
    char path[512], path2[512];
    path_in(path, sizeof path, "rt.safetensors");
    path_in(path2, sizeof path2, "rt2.safetensors");
    ct_model_t *a = make_model(L, NH, C, T, V, 1234), *b = make_model(L, NH, C, T, V, 0);
    ct_err_t e = {0};
    CHECK_EQ_INT(write_model(path, a, &e), 0);
    fill_junk(b);
    CHECK_EQ_INT(read_into(path, b, &e), 0);
    CHECK(same_params(a, b));
    /* the padding rows came back as zeros, not as the junk */
    const ct_model_dims_t *d = ct_model_dims(b);
    const float *wte = ct_model_params(b) + ct_model_tensor(b, 0)->offset;
    for (size_t i = (size_t)d->vocab_size * C; i < (size_t)d->vocab_padded * C; i++)
        if (wte[i] != 0.0f) {
            CHECK(wte[i] == 0.0f);
            break;
        }
    /* same weights, same bytes */
    CHECK_EQ_INT(write_model(path2, b, &e), 0);
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    CHECK_EQ_INT(ct_read_file(path, &x, &nx, &e), 0);
    CHECK_EQ_INT(ct_read_file(path2, &y, &ny, &e), 0);
    CHECK(nx == ny && memcmp(x, y, nx) == 0);

    /* the layout: header length, aligned data, size, sorted keys, shapes and dtype */
    uint64_t hlen = 0;
    memcpy(&hlen, x, 8);
    CHECK_EQ_INT((8 + hlen) % 8, 0);
    CHECK_EQ_INT(nx, 8 + hlen + ct_model_num_real_params(a) * 4);
    cJSON *root = cJSON_ParseWithLength(x + 8, hlen);
    CHECK(root != NULL);
    if (root) {
        const cJSON *it, *prev = NULL;
        int count = 0;
        cJSON_ArrayForEach(it, root) {
            if (prev) CHECK(strcmp(prev->string, it->string) < 0);
            prev = it;
            count++;
        }
        CHECK_EQ_INT(count, ct_model_num_tensors(a) + 1);
        CHECK_EQ_STR(
            cJSON_GetObjectItem(cJSON_GetObjectItem(root, "__metadata__"), "format")->valuestring,
            "pt");
        const cJSON *wte_e = cJSON_GetObjectItem(root, "transformer.wte.weight");
        const cJSON *sh = cJSON_GetObjectItem(wte_e, "shape");
        CHECK_EQ_INT(cJSON_GetArraySize(sh), 2);
        CHECK_EQ_INT(cJSON_GetArrayItem(sh, 0)->valueint, V);
        CHECK_EQ_INT(cJSON_GetArrayItem(sh, 1)->valueint, C);
        const cJSON *fc = cJSON_GetObjectItem(root, "transformer.h.0.mlp.c_fc.weight");
        CHECK_EQ_INT(cJSON_GetArrayItem(cJSON_GetObjectItem(fc, "shape"), 0)->valueint, C);
        CHECK_EQ_INT(cJSON_GetArrayItem(cJSON_GetObjectItem(fc, "shape"), 1)->valueint, 4 * C);
        const cJSON *lnb = cJSON_GetObjectItem(root, "transformer.ln_f.bias");
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(lnb, "shape")), 1);
        cJSON_ArrayForEach(it, root) {
            if (!strcmp(it->string, "__metadata__")) continue;
            CHECK_EQ_STR(cJSON_GetObjectItem(it, "dtype")->valuestring, "F32");
            /* a tensor's first value in the file is the model's */
            const cJSON *of = cJSON_GetObjectItem(it, "data_offsets");
            int idx = -1;
            for (int i = 0; i < ct_model_num_tensors(a); i++)
                if (!strcmp(ct_model_tensor(a, i)->name, it->string)) idx = i;
            CHECK(idx >= 0);
            if (idx >= 0)
                CHECK(memcmp(x + 8 + hlen + (size_t)cJSON_GetArrayItem(of, 0)->valuedouble,
                             ct_model_params(a) + ct_model_tensor(a, idx)->offset, 4) == 0);
        }
        cJSON_Delete(root);
    }
    free(x);
    free(y);
    ct_model_destroy(&a);
    ct_model_destroy(&b);
}

/* Files as Hugging Face writes them load too. */
static void test_hf_variants(void) {
    char path[512];
    path_in(path, sizeof path, "hf.safetensors");
    enum { L = 2, NH = 2, C = 16, T = 8, V = 70 };
    ct_model_t *a = make_model(L, NH, C, T, V, 99), *b = make_model(L, NH, C, T, V, 0);
    spec_t s[MAX_SPECS];
    ct_err_t e = {0};
    float head[V * C];
    memcpy(head, ct_model_params(a) + ct_model_tensor(a, 0)->offset, sizeof head);

    /* GPT2Model names (no prefix), the tied head and the attention buffers */
    int n = model_specs(a, s, 0);
    s[n++] = (spec_t){.name = "lm_head.weight",
                      .dtype = "F32",
                      .ndim = 2,
                      .shape = {V, C},
                      .bytes = sizeof head,
                      .data = head};
    for (int l = 0; l < L; l++) {
        s[n] = (spec_t){.dtype = "F32", .ndim = 4, .shape = {1, 1, T, T}, .bytes = T * T * 4};
        snprintf(s[n++].name, sizeof s[0].name, "h.%d.attn.bias", l);
        s[n] = (spec_t){.dtype = "F32", .ndim = 0, .bytes = 4};
        snprintf(s[n++].name, sizeof s[0].name, "h.%d.attn.masked_bias", l);
    }
    /* a buffer stored as bool, as older exports did */
    s[n] = (spec_t){.name = "transformer.h.0.attn.bias",
                    .dtype = "BOOL",
                    .ndim = 2,
                    .shape = {T, T},
                    .bytes = T * T};
    n++;
    write_specs(path, s, n);
    fill_junk(b);
    CHECK_EQ_INT(read_into(path, b, &e), 0);
    if (e.code) fprintf(stderr, "%s\n", e.msg);
    CHECK(same_params(a, b));

    /* prefixed names in data order unlike the header: also fine */
    n = model_specs(a, s, 1);
    spec_t tmp = s[0];
    s[0] = s[n - 1];
    s[n - 1] = tmp;
    write_specs(path, s, n);
    fill_junk(b);
    CHECK_EQ_INT(read_into(path, b, &e), 0);
    CHECK(same_params(a, b));

    /* both spellings of one tensor: ambiguous */
    n = model_specs(a, s, 1);
    s[n] = s[find_spec(s, n, "transformer.ln_f.bias")];
    strcpy(s[n++].name, "ln_f.bias");
    write_specs(path, s, n);
    expect_corrupt("both names", path, b,
                   "transformer.ln_f.bias and ln_f.bias both give transformer.ln_f.bias");
    ct_model_destroy(&a);
    ct_model_destroy(&b);
}

/* Files that are well-formed safetensors but not this model, and malformed ones. */
static void test_malformed(void) {
    char path[512], good[512];
    path_in(path, sizeof path, "bad.safetensors");
    path_in(good, sizeof good, "good.safetensors");
    enum { L = 2, NH = 2, C = 16, T = 8, V = 70 };
    ct_model_t *a = make_model(L, NH, C, T, V, 5), *b = make_model(L, NH, C, T, V, 0);
    spec_t s[MAX_SPECS];
    ct_err_t e = {0};
    int n;
    CHECK_EQ_INT(write_model(good, a, &e), 0);
    char *img = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ct_read_file(good, &img, &len, &e), 0);
    uint64_t hlen;
    memcpy(&hlen, img, 8);

    /* model mismatches */
    n = model_specs(a, s, 1);
    drop_spec(s, &n, find_spec(s, n, "transformer.h.1.ln_2.bias"));
    write_specs(path, s, n);
    expect_corrupt("missing", path, b, "transformer.h.1.ln_2.bias is missing");

    n = model_specs(a, s, 1);
    int k = find_spec(s, n, "transformer.h.0.mlp.c_fc.weight");
    s[k].shape[0] = 4 * C, s[k].shape[1] = C; /* transposed: same bytes, wrong layout */
    write_specs(path, s, n);
    expect_corrupt("shape", path, b, "transformer.h.0.mlp.c_fc.weight has shape [64, 16]");

    n = model_specs(a, s, 1);
    k = find_spec(s, n, "transformer.wte.weight");
    s[k].shape[0] = 128, s[k].bytes = 128 * C * 4, s[k].data = NULL; /* padded rows exported */
    write_specs(path, s, n);
    expect_corrupt("wte padded", path, b, "the vocabulary, 70 here");

    n = model_specs(a, s, 1);
    k = find_spec(s, n, "transformer.ln_f.bias");
    strcpy(s[k].dtype, "F16"), s[k].bytes = C * 2;
    write_specs(path, s, n);
    expect_corrupt("dtype", path, b, "transformer.ln_f.bias has dtype F16; only F32");

    n = model_specs(a, s, 1);
    s[n] = s[find_spec(s, n, "transformer.h.1.ln_1.weight")];
    strcpy(s[n++].name, "transformer.h.2.ln_1.weight"); /* a third layer */
    write_specs(path, s, n);
    expect_corrupt("unexpected", path, b, "unexpected tensor transformer.h.2.ln_1.weight");

    /* truncated files */
    write_bytes(path, img, len - 1);
    expect_corrupt("truncated data", path, b, "transformer.wte.weight: data_offsets");
    write_bytes(path, img, 8 + hlen / 2);
    expect_corrupt("truncated header", path, b, "runs past the end");
    write_bytes(path, img, 5);
    expect_corrupt("truncated length", path, b, "too short");
    write_bytes(path, img, 0);
    expect_corrupt("empty", path, b, "too short");

    /* header length */
    char *copy = malloc(len);
    memcpy(copy, img, len);
    uint64_t big = (uint64_t)1 << 40;
    memcpy(copy, &big, 8);
    write_bytes(path, copy, len);
    expect_corrupt("huge header length", path, b, "above the limit");
    uint64_t shorter = hlen; /* the length stops before the closing brace */
    while (shorter > 0 && copy[8 + shorter] != '}')
        shorter--;
    memcpy(copy, &shorter, 8);
    write_bytes(path, copy, len);
    expect_corrupt("header length too short", path, b, "not one JSON object");
    memcpy(copy, &hlen, 8);
    copy[9] = '\x01'; /* where the first key's quote was */
    write_bytes(path, copy, len);
    expect_corrupt("control byte in header", path, b, "malformed JSON near byte");
    free(copy);

    /* raw headers: each broken in one way */
    static const struct {
        const char *hdr;
        size_t data;
        const char *needle;
    } raw[] = {
        {"", 0, "not one JSON object"},
        {"[]", 0, "not one JSON object"},
        {" {}", 0, "not one JSON object"},
        {"{\"a\":1", 0, "malformed JSON"},
        {"{}x", 0, "malformed JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "lie outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "span 8 bytes"},
        {"{\"a\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "\"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "\"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "\"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "lie outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets"},
        {"{\"a\":[1]}", 0, "not a JSON object"},
        {"{\"__metadata__\":{\"format\":1}}", 0, "__metadata__"},
        {"{\"__metadata__\":[]}", 0, "__metadata__"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "tensor a appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensors a and b overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
         20, "bytes 8..12 belong to no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "last 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "unexpected tensor a"},
        {"{\"__metadata__\":null}", 0, "transformer.wte.weight is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999,99999999999,99999999999],"
         "\"data_offsets\":[0,8]}}",
         8, "absurdly large"},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        write_raw(path, strlen(raw[i].hdr), raw[i].hdr, raw[i].data);
        char what[32];
        snprintf(what, sizeof what, "raw %zu", i);
        expect_corrupt(what, path, b, raw[i].needle);
    }
    /* trailing spaces (our own padding) are fine in a header */
    write_raw(path, 5, "{}   ", 0);
    expect_corrupt("padded empty header", path, b, "is missing");

    path_in(path, sizeof path, "does-not-exist.safetensors");
    CHECK_EQ_INT(read_into(path, b, &e), CT_ENOENT);
    CHECK_CONTAINS(e.msg, "does-not-exist.safetensors");
    free(img);
    ct_model_destroy(&a);
    ct_model_destroy(&b);
}

/* Random corruptions of a good file: the reader must fail cleanly or (a harmless change, e.g. a
 * space) succeed — never crash or read out of bounds (the sanitizer builds check that). */
static void test_fuzz(void) {
    char good[512], path[512];
    path_in(good, sizeof good, "fuzz-good.safetensors");
    path_in(path, sizeof path, "fuzz.safetensors");
    ct_model_t *a = make_model(1, 2, 8, 4, 20, 3), *b = make_model(1, 2, 8, 4, 20, 0);
    ct_err_t e = {0};
    CHECK_EQ_INT(write_model(good, a, &e), 0);
    char *img = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ct_read_file(good, &img, &len, &e), 0);
    uint64_t hlen;
    memcpy(&hlen, img, 8);
    char *buf = malloc(len);
    uint64_t r = 0x9e3779b97f4a7c15ULL;
    int ok = 0, bad = 0;
    static const char alphabet[] = "{}[]\",:0123456789.-eE ftnlaru\\F32";
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, img, len);
        size_t n = len;
        int flips = 1 + (int)(next_rand(&r) % 4);
        for (int f = 0; f < flips; f++) {
            /* mostly inside the length and the header, where the parsing happens */
            size_t at = (size_t)(next_rand(&r) % (8 + hlen + (it % 10 == 0 ? len - 8 - hlen : 0)));
            buf[at] = next_rand(&r) % 2 ? (char)next_rand(&r)
                                        : alphabet[next_rand(&r) % (sizeof alphabet - 1)];
        }
        if (it % 7 == 0) n = (size_t)(next_rand(&r) % len);
        write_bytes(path, buf, n);
        int rc = read_into(path, b, &e);
        if (rc == 0) {
            ok++;
        } else {
            bad++;
            if (rc != CT_ECORRUPT || e.msg[0] == '\0') {
                fprintf(stderr, "fuzz %d: rc %d msg '%s'\n", it, rc, e.msg);
                CHECK_EQ_INT(rc, CT_ECORRUPT);
            }
        }
    }
    CHECK(bad > 2000);
    printf("fuzz: %d loaded, %d refused\n", ok, bad);
    free(buf);
    free(img);
    ct_model_destroy(&a);
    ct_model_destroy(&b);
}

/* Names in g_dir other than `keep`: a leftover temp file shows up here. */
static int stray_files(const char *keep) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, keep)) {
            fprintf(stderr, "stray file %s\n", de->d_name);
            n++;
        }
    if (d) closedir(d);
    return n;
}

/* A write that fails at any point (the file-size limit makes write() fail with EFBIG) reports
 * CT_EIO and leaves the previous file as it was and no temp file. */
static void test_write_failures(void) {
    check_rm_tree(g_dir);
    mkdir(g_dir, 0700);
    char path[512];
    path_in(path, sizeof path, "model.safetensors");
    ct_model_t *a = make_model(2, 2, 16, 8, 70, 11);
    ct_err_t e = {0};
    write_bytes(path, "old", 3);
    CHECK_EQ_INT(write_model(path, a, &e), 0);
    char *full = NULL;
    size_t full_len = 0;
    CHECK_EQ_INT(ct_read_file(path, &full, &full_len, &e), 0);
    write_bytes(path, "old", 3);

    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_IGN);
    const size_t limits[] = {0, 4, 8, 100, full_len / 2, full_len - 1};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit lim = {.rlim_cur = limits[i], .rlim_max = saved.rlim_max};
        CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
        ct_err_clear(&e);
        int rc = write_model(path, a, &e);
        setrlimit(RLIMIT_FSIZE, &saved);
        CHECK_EQ_INT(rc, CT_EIO);
        CHECK_CONTAINS(e.msg, "model.safetensors");
        char *now = NULL;
        size_t now_len = 0;
        CHECK_EQ_INT(ct_read_file(path, &now, &now_len, &e), 0);
        CHECK(now_len == 3 && !memcmp(now, "old", 3));
        free(now);
        CHECK_EQ_INT(stray_files("model.safetensors"), 0);
    }
    signal(SIGXFSZ, SIG_DFL);
    /* with room again, the write goes through */
    CHECK_EQ_INT(write_model(path, a, &e), 0);
    char *now = NULL;
    size_t now_len = 0;
    CHECK_EQ_INT(ct_read_file(path, &now, &now_len, &e), 0);
    CHECK(now_len == full_len && !memcmp(now, full, full_len));
    free(now);
    free(full);

    path_in(path, sizeof path, "no-such-dir/model.safetensors");
    ct_err_clear(&e);
    CHECK_EQ_INT(write_model(path, a, &e), CT_EIO);
    CHECK_CONTAINS(e.msg, "no-such-dir");
    CHECK_EQ_INT(stray_files("model.safetensors"), 0);
    ct_model_destroy(&a);
}

static void check_config(int V, const char *eot) {
    char path[512];
    path_in(path, sizeof path, "config.json");
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.n_layer = 3, cfg.model.n_head = 4, cfg.model.d_model = 64, cfg.model.seq_len = 32;
    cfg.model.vocab_size = V;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_safetensors_write_hf_config(path, &cfg, &e), 0);
    char *text = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ct_read_file(path, &text, &len, &e), 0);
    cJSON *c = cJSON_Parse(text);
    CHECK(c != NULL);
    if (c) {
        const cJSON *it, *prev = NULL;
        cJSON_ArrayForEach(it, c) {
            if (prev) CHECK(strcmp(prev->string, it->string) < 0);
            prev = it;
        }
        CHECK_EQ_STR(cJSON_GetObjectItem(c, "model_type")->valuestring, "gpt2");
        CHECK_EQ_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "architectures"), 0)->valuestring,
                     "GPT2LMHeadModel");
        CHECK_EQ_STR(cJSON_GetObjectItem(c, "activation_function")->valuestring, "gelu_new");
        CHECK_EQ_STR(cJSON_GetObjectItem(c, "torch_dtype")->valuestring, "float32");
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "vocab_size")->valueint, V);
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "n_positions")->valueint, 32);
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "n_ctx")->valueint, 32);
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "n_embd")->valueint, 64);
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "n_layer")->valueint, 3);
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "n_head")->valueint, 4);
        CHECK(cJSON_GetObjectItem(c, "layer_norm_epsilon")->valuedouble == 1e-5);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(c, "tie_word_embeddings")));
        char *bos = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "bos_token_id"));
        char *eos = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "eos_token_id"));
        CHECK_EQ_STR(bos, eot);
        CHECK_EQ_STR(eos, eot);
        free(bos);
        free(eos);
        cJSON_Delete(c);
    }
    free(text);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(2, 2, 32, 16, 100); /* vocabulary padded to 128 */
    test_round_trip(1, 3, 33, 5, 64);   /* no padding; odd C: tensors 4-byte aligned only */
    test_round_trip(3, 4, 64, 32, 256);
    test_hf_variants();
    test_malformed();
    test_fuzz();
    check_config(256, "null");
    check_config(50257, "50256");
    test_write_failures();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
