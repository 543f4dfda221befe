/* test_tokenizer.c — unit tests of the tokenizers and the Unicode module: bytes round trip, gpt2
 * ids known from the npm reference, decode(encode(x)) == x for any bytes (invalid UTF-8 counted),
 * ct_encode_parallel == ct_encode, long pieces, the cache refilling, bad ids, and missing or
 * malformed vocabulary files. tests/tokenizer/reference.mjs compares against node at scale. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/tokenizer.h"
#include "cotrain/unicode.h"

#define CHECK_OK(expr, err)                                                                        \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__, __LINE__, #expr, rc_,         \
                    (err)->msg);                                                                   \
            check_failures_++;                                                                     \
        }                                                                                          \
    } while (0)

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Independent of ct_utf8_decode: the number of bytes of s[0..n) that are not part of a valid
 * UTF-8 sequence, decoding by value and then ruling out overlong forms, surrogates and > 10FFFF. */
static size_t ref_invalid(const uint8_t *s, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        int len = s[i] < 0x80       ? 1
                  : s[i] >> 5 == 6  ? 2
                  : s[i] >> 4 == 14 ? 3
                  : s[i] >> 3 == 30 ? 4
                                    : 0;
        uint32_t cp = len == 1 ? s[i] : len == 2 ? s[i] & 31u : len == 3 ? s[i] & 15u : s[i] & 7u;
        int ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++) {
            ok = (s[i + k] & 0xC0) == 0x80;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= min_cp[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (ok) {
            i += (size_t)len;
        } else {
            bad++;
            i++;
        }
    }
    return bad;
}

/* ids = the ids of s[0..n), *bad = its invalid bytes. */
static int encode(ct_encoder_t *enc, const char *s, size_t n, ct_ids_t *ids, size_t *bad) {
    ct_err_t e = {0};
    ids->n = 0;
    *bad = 0;
    int rc = enc ? ct_encode(enc, s, n, ids, bad, &e) : CT_EINVAL;
    if (rc) fprintf(stderr, "encode failed: %s\n", enc ? e.msg : "no encoder");
    return rc;
}

static ct_encoder_t *new_encoder(const ct_tokenizer_t *tok) {
    ct_err_t e = {0};
    ct_encoder_t *enc = NULL;
    if (ct_encoder_create(&enc, tok, &e) != 0) {
        fprintf(stderr, "ct_encoder_create failed: %s\n", e.msg);
        check_failures_++;
    }
    return enc;
}

/* decode(encode(s)) == s, and the invalid count matches the independent one. */
static void check_round_trip(const ct_tokenizer_t *tok, ct_encoder_t *enc, const char *s,
                             size_t n) {
    ct_ids_t ids = {0};
    size_t bad = 0, len = 0, cap = 0;
    char *back = NULL;
    ct_err_t e = {0};
    CHECK_OK(encode(enc, s, n, &ids, &bad), &e);
    CHECK_EQ_INT(bad, ref_invalid((const uint8_t *)s, n));
    CHECK_OK(ct_decode(tok, ids.ids, ids.n, &back, &len, &cap, &e), &e);
    CHECK_EQ_INT(len, n);
    if (len == n && n && memcmp(back, s, n) != 0) {
        fprintf(stderr, "round trip of %zu bytes changed them (%s)\n", n, ct_tokenizer_name(tok));
        check_failures_++;
    }
    free(back);
    ct_ids_free(&ids);
}

static void test_unicode(void) {
    CHECK_EQ_INT(ct_unicode_class('a'), CT_UC_LETTER);
    CHECK_EQ_INT(ct_unicode_class('Z'), CT_UC_LETTER);
    CHECK_EQ_INT(ct_unicode_class('7'), CT_UC_NUMBER);
    CHECK_EQ_INT(ct_unicode_class(' '), CT_UC_SPACE);
    CHECK_EQ_INT(ct_unicode_class('\t'), CT_UC_SPACE);
    CHECK_EQ_INT(ct_unicode_class('\''), CT_UC_OTHER);
    CHECK_EQ_INT(ct_unicode_class(0x1F), CT_UC_OTHER); /* not \s in JS (it is in Python) */
    CHECK_EQ_INT(ct_unicode_class(0x85), CT_UC_OTHER); /* NEL: not \s in JS */
    CHECK_EQ_INT(ct_unicode_class(0xA0), CT_UC_SPACE);
    CHECK_EQ_INT(ct_unicode_class(0xBD), CT_UC_NUMBER);  /* ½ */
    CHECK_EQ_INT(ct_unicode_class(0xE9), CT_UC_LETTER);  /* é */
    CHECK_EQ_INT(ct_unicode_class(0x301), CT_UC_OTHER);  /* combining acute: Mn */
    CHECK_EQ_INT(ct_unicode_class(0x200B), CT_UC_OTHER); /* zero-width space */
    CHECK_EQ_INT(ct_unicode_class(0x3000), CT_UC_SPACE);
    CHECK_EQ_INT(ct_unicode_class(0x4E2D), CT_UC_LETTER); /* 中 */
    CHECK_EQ_INT(ct_unicode_class(0x0663), CT_UC_NUMBER); /* Arabic-Indic 3 */
    CHECK_EQ_INT(ct_unicode_class(0xFEFF), CT_UC_SPACE);
    CHECK_EQ_INT(ct_unicode_class(0x1F600), CT_UC_OTHER);
    CHECK_EQ_INT(ct_unicode_class(0x20000), CT_UC_LETTER); /* CJK extension B */
    CHECK_EQ_INT(ct_unicode_class(0x10FFFF), CT_UC_OTHER);
    CHECK_EQ_INT(ct_unicode_class(0x110000), CT_UC_OTHER);
    CHECK_EQ_INT(ct_unicode_class(CT_UTF8_INVALID), CT_UC_OTHER);
    CHECK(strlen(ct_unicode_version()) > 0);

    static const struct {
        const char *s;
        int len;
        uint32_t cp;
    } cases[] = {
        {"A", 1, 'A'},
        {"\xc3\xa9", 2, 0xE9},
        {"\xe4\xb8\xad", 3, 0x4E2D},
        {"\xf0\x9f\x98\x80", 4, 0x1F600},
        {"\xf4\x8f\xbf\xbf", 4, 0x10FFFF},
        {"\xef\xbf\xbf", 3, 0xFFFF},
        {"\x80", 1, CT_UTF8_INVALID},             /* lone continuation */
        {"\xc0\xaf", 1, CT_UTF8_INVALID},         /* overlong '/' */
        {"\xc1\xbf", 1, CT_UTF8_INVALID},         /* overlong */
        {"\xe0\x9f\xbf", 1, CT_UTF8_INVALID},     /* overlong 3-byte */
        {"\xf0\x8f\xbf\xbf", 1, CT_UTF8_INVALID}, /* overlong 4-byte */
        {"\xed\xa0\x80", 1, CT_UTF8_INVALID},     /* surrogate D800 */
        {"\xed\xbf\xbf", 1, CT_UTF8_INVALID},     /* surrogate DFFF */
        {"\xed\x9f\xbf", 3, 0xD7FF},
        {"\xf4\x90\x80\x80", 1, CT_UTF8_INVALID}, /* 110000 */
        {"\xf5\x80\x80\x80", 1, CT_UTF8_INVALID},
        {"\xff", 1, CT_UTF8_INVALID},
        {"\xc3", 1, CT_UTF8_INVALID}, /* cut off */
        {"\xe2\x82", 1, CT_UTF8_INVALID},
        {"\xe2\x82x", 1, CT_UTF8_INVALID},
        {"\xf0\x9f\x98", 1, CT_UTF8_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cp = 0;
        int len = ct_utf8_decode((const uint8_t *)cases[i].s, strlen(cases[i].s), &cp);
        if (len != cases[i].len || cp != cases[i].cp) {
            fprintf(stderr, "ct_utf8_decode case %zu: got len %d cp %#x, want %d %#x\n", i, len, cp,
                    cases[i].len, cases[i].cp);
            check_failures_++;
        }
    }
}

static void test_bytes(void) {
    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    CHECK_OK(ct_tokenizer_open(&tok, "bytes", &e), &e);
    if (!tok) return;
    CHECK(!strcmp(ct_tokenizer_name(tok), "bytes"));
    CHECK_EQ_INT(ct_tokenizer_vocab_size(tok), 256);
    CHECK_EQ_INT(ct_tokenizer_eot(tok), -1);
    ct_encoder_t *enc = new_encoder(tok);
    const char s[] = "h\xc3\xa9llo\xff\x00z";
    ct_ids_t ids = {0};
    size_t bad = 0;
    CHECK_OK(encode(enc, s, sizeof s - 1, &ids, &bad), &e);
    CHECK_EQ_INT(ids.n, sizeof s - 1);
    for (size_t i = 0; i < ids.n && i < sizeof s - 1; i++)
        CHECK_EQ_INT(ids.ids[i], (uint8_t)s[i]);
    CHECK_EQ_INT(bad, 1);
    check_round_trip(tok, enc, s, sizeof s - 1);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int32_t badids[] = {65, 256};
    CHECK_EQ_INT(ct_decode(tok, badids, 2, &buf, &len, &cap, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "token 1 of 2") && strstr(e.msg, "256"));
    CHECK_EQ_INT(len, 0);
    free(buf);
    ct_ids_free(&ids);
    ct_encoder_destroy(&enc);
    CHECK(enc == NULL);
    ct_encoder_destroy(&enc); /* NULL-safe */
    ct_tokenizer_destroy(&tok);
    CHECK(tok == NULL);
    ct_tokenizer_destroy(&tok); /* NULL-safe */
}

/* Ids from node: gpt-tokenizer@4.0.0 r50k_base encode(text, {disallowedSpecial: new Set()}),
 * equal to gpt-3-encoder@1.1.4's for these. */
static void test_gpt2_known(const ct_tokenizer_t *tok) {
    static const struct {
        const char *text;
        int32_t ids[40];
        int n;
    } cases[] = {
        {"Hello world", {15496, 995}, 2},
        {"Hello, world! It's 2024.", {15496, 11, 995, 0, 632, 338, 48609, 13}, 8},
        {" He'S here; they'LL see. We're done",
         {679, 6, 50, 994, 26, 484, 6, 3069, 766, 13, 775, 821, 1760},
         13},
        {"  indented\n\tcode();\r\n", {220, 773, 4714, 198, 197, 8189, 9783, 201, 198}, 9},
        {"\xc2\xbd \xd9\xa3\xd9\xa4 \xe4\xb8\xad\xe6\x96\x87 na\xc3\xafve caf\xc3\xa9",
         {23141, 18923, 96, 149, 97, 220, 40792, 23877, 229, 41492, 40304},
         11},
        {"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80"
         "\x8d\xf0\x9f\x91\xa7",
         {41840, 235, 8582, 237, 121, 50169, 101, 447, 235, 41840, 102, 447, 235, 41840, 100},
         15},
        {"<|endoftext|>", {27, 91, 437, 1659, 5239, 91, 29}, 7},
        {"a\xc2\xa0\xc2\xa0"
         "b \xe3\x80\x80"
         "c",
         {64, 1849, 1849, 65, 220, 5099, 222, 66},
         8},
        {"Don't stop\xe2\x80\x94we'RE 100% sure it's \xc2\xbd done!\n",
         {3987, 470, 2245, 960, 732, 6, 2200, 1802, 4, 1654, 340, 338, 25208, 1760, 0, 198},
         16},
        {"def f(x):\n    return x  # ok\n",
         {4299, 277, 7, 87, 2599, 198, 220, 220, 220, 1441, 2124, 220, 1303, 12876, 198},
         15},
        /* one 102-byte piece: the heap merge */
        {"SupercalifragilisticexpialidociousSupercalifragilisticexpialidocious"
         "Supercalifragilisticexpialidocious",
         {12442, 9948, 361, 22562, 346, 396, 501, 42372, 498, 312, 32346,
          12442, 9948, 361, 22562, 346, 396, 501, 42372, 498, 312, 32346,
          12442, 9948, 361, 22562, 346, 396, 501, 42372, 498, 312, 32346},
         33},
        {"He'Scored; we'LLama", {1544, 6, 3351, 1850, 26, 356, 6, 3069, 1689}, 9},
        {"x  \xc2\xa0y\t\t\nz \n", {87, 220, 220, 1849, 88, 197, 197, 198, 89, 220, 198}, 11},
        {"", {0}, 0},
    };
    ct_ids_t ids = {0};
    ct_err_t e = {0};
    ct_encoder_t *enc = new_encoder(tok);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t bad = 0;
        CHECK_OK(encode(enc, cases[c].text, strlen(cases[c].text), &ids, &bad), &e);
        int same = ids.n == (size_t)cases[c].n;
        for (size_t i = 0; same && i < ids.n; i++)
            same = ids.ids[i] == cases[c].ids[i];
        if (!same) {
            fprintf(stderr, "gpt2 case %zu (\"%s\"): got", c, cases[c].text);
            for (size_t i = 0; i < ids.n; i++)
                fprintf(stderr, " %d", (int)ids.ids[i]);
            fprintf(stderr, "\n  want");
            for (int i = 0; i < cases[c].n; i++)
                fprintf(stderr, " %d", (int)cases[c].ids[i]);
            fprintf(stderr, "\n");
            check_failures_++;
        }
        CHECK_EQ_INT(bad, 0);
        check_round_trip(tok, enc, cases[c].text, strlen(cases[c].text));
    }
    ct_ids_free(&ids);
    /* 'aaa...' (200 bytes) through the heap merge, decoded back. */
    char run[201];
    memset(run, 'a', 200);
    run[200] = 0;
    check_round_trip(tok, enc, run, 200);
    ct_encoder_destroy(&enc);
}

static void test_gpt2_invalid(const ct_tokenizer_t *tok) {
    ct_encoder_t *enc = new_encoder(tok);
    static const struct {
        const char *s;
        size_t invalid;
    } cases[] = {
        {"\xff\xfe", 2},           {"abc\xc3", 1},          {"\xed\xa0\x80", 3},
        {"\xc0\xaf", 2},           {"\xf4\x90\x80\x80", 4}, {"x \xe2\x82 y", 2},
        {"\xf0\x9f\x98", 3},       {"\xf0\x9f\x98\x80", 0}, {"it\xff's", 1},
        {" \xff\xff\xff word", 3}, {"\x80\x80\x80\x80", 4}, {"caf\xe9 ol\xe9", 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ct_ids_t ids = {0};
        size_t bad = 0;
        ct_err_t e = {0};
        CHECK_OK(encode(enc, cases[c].s, strlen(cases[c].s), &ids, &bad), &e);
        CHECK_EQ_INT(bad, cases[c].invalid);
        check_round_trip(tok, enc, cases[c].s, strlen(cases[c].s));
        ct_ids_free(&ids);
    }
    /* Fuzz: random byte strings biased towards UTF-8 structure. */
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char buf[300];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = rng_next(&seed) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng_next(&seed);
            static const uint8_t pool[] = {' ',  ' ',  'a',  'Z',  '\'', 's',  '1',
                                           '\n', '\t', '.',  0x80, 0xBF, 0xC2, 0xC3,
                                           0xE0, 0xED, 0xF0, 0xF4, 0xFF};
            buf[i] = (char)(r % 3 ? pool[(r >> 8) % sizeof pool] : (uint8_t)(r >> 16));
        }
        check_round_trip(tok, enc, buf, n);
    }
    ct_encoder_destroy(&enc);
}

/* A deterministic text of `n` bytes mixing words, scripts, whitespace runs, numbers, emoji,
 * contractions and invalid bytes. The caller frees it. */
static char *mixed_text(size_t n, uint64_t seed) {
    static const char *const frags[] = {
        "the ",
        "The ",
        "quick ",
        "brown ",
        "fox",
        "'s ",
        "'LL ",
        " don't ",
        "\n",
        "\n\n",
        "  ",
        "\t\t",
        "    return x;\n",
        "12345 ",
        "3.14",
        "\xc2\xbd",
        "\xd9\xa3\xd9\xa4 ",
        "\xe4\xb8\xad",
        "\xe6\x96\x87\xe5\xad\x97",
        "na\xc3\xafve ",
        "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd ",
        "\xe2\x80\x8d",
        "!!! ",
        "... ",
        "--",
        "\xc2\xa0",
        "\xe3\x80\x80",
        "\xff",
        "\xed\xa0\x80",
        "\xe2\x82",
        "e\xcc\x81",
        "\r\n",
        "                ",
        "=====",
        "{\"a\": [1, 2]}",
    };
    enum { NF = sizeof frags / sizeof frags[0] };
    char *s = malloc(n + 64);
    if (!s) return NULL;
    size_t len = 0;
    while (len < n) {
        const char *f = frags[rng_next(&seed) % NF];
        size_t fl = strlen(f);
        memcpy(s + len, f, fl);
        len += fl;
    }
    return s;
}

static int ids_equal(const ct_ids_t *a, const ct_ids_t *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->ids, b->ids, a->n * sizeof *a->ids));
}

static void check_parallel(const ct_tokenizer_t *tok, ct_encoder_t *enc, const char *s, size_t n,
                           const char *what) {
    ct_ids_t one = {0};
    size_t bad1 = 0;
    ct_err_t e = {0};
    CHECK_OK(encode(enc, s, n, &one, &bad1), &e);
    static const int threads[] = {1, 2, 3, 8, 0};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        ct_ids_t par = {0};
        size_t bad = 0;
        CHECK_OK(ct_encode_parallel(tok, s, n, threads[t], &par, &bad, &e), &e);
        if (!ids_equal(&one, &par) || bad != bad1) {
            fprintf(stderr,
                    "ct_encode_parallel(%s, %d threads): %zu ids, %zu invalid; ct_encode: "
                    "%zu ids, %zu invalid\n",
                    what, threads[t], par.n, bad, one.n, bad1);
            check_failures_++;
        }
        ct_ids_free(&par);
    }
    ct_ids_free(&one);
}

static void test_gpt2_parallel(const ct_tokenizer_t *tok) {
    size_t n = 1 << 20;
    char *s = mixed_text(n, 42);
    ct_encoder_t *enc = new_encoder(tok);
    CHECK(s != NULL);
    if (!s) return;
    check_parallel(tok, enc, s, n, "mixed text");
    check_round_trip(tok, enc, s, n);
    /* Apostrophes everywhere: a split between ' and a letter would break a contraction. */
    uint64_t seed = 7;
    size_t m = 0;
    static const char *const bits[] = {"''s ", "'ll", "x'", "'", "'re ", "''", "s", " 'd"};
    while (m < 200000) {
        const char *b = bits[rng_next(&seed) % (sizeof bits / sizeof bits[0])];
        memcpy(s + m, b, strlen(b));
        m += strlen(b);
    }
    check_parallel(tok, enc, s, m, "apostrophes");
    /* Texts without a single safe split point: one class throughout. */
    static const char *const units[] = {"\xe4\xb8\xad", " ", "a", "\xff", "\xe4\xb8\xad\xe6\x96"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ul = strlen(units[u]);
        for (m = 0; m + ul <= 200000; m += ul)
            memcpy(s + m, units[u], ul);
        check_parallel(tok, enc, s, m, units[u]);
    }
    ct_encoder_destroy(&enc);
    free(s);
}

/* More distinct pieces than the cache holds (it is cleared and refilled): the ids equal those
 * of each piece encoded on its own. */
static void test_gpt2_cache_refill(const ct_tokenizer_t *tok) {
    enum { WORDS = 80000 };
    char *s = malloc(WORDS * 12);
    ct_ids_t all = {0}, cat = {0};
    size_t bad = 0, len = 0;
    ct_err_t e = {0};
    if (!s) return;
    for (int w = 0; w < WORDS; w++)
        len += (size_t)sprintf(s + len, " w%dq", w * 7919 % 1000003);
    ct_encoder_t *enc = new_encoder(tok);
    CHECK_OK(encode(enc, s, len, &all, &bad), &e);
    /* The same encoder again word by word: its cache state differs from the first pass's. */
    for (size_t i = 0; enc && i < len;) {
        size_t j = i + 1;
        while (j < len && s[j] != ' ')
            j++;
        CHECK_OK(ct_encode(enc, s + i, j - i, &cat, NULL, &e), &e);
        i = j;
    }
    CHECK(ids_equal(&all, &cat));
    ct_encoder_destroy(&enc);
    ct_ids_free(&all);
    ct_ids_free(&cat);
    free(s);
}

static void test_gpt2_decode_errors(const ct_tokenizer_t *tok) {
    ct_err_t e = {0};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int32_t ok[] = {15496, 995, 50256};
    CHECK_OK(ct_decode(tok, ok, 3, &buf, &len, &cap, &e), &e);
    CHECK(len == 24 && !memcmp(buf, "Hello world<|endoftext|>", 24));
    int32_t bad[] = {15496, 995, 50257};
    CHECK_EQ_INT(ct_decode(tok, bad, 3, &buf, &len, &cap, &e), CT_EINVAL);
    CHECK(strstr(e.msg, "token 2 of 3") && strstr(e.msg, "50257") && strstr(e.msg, "gpt2"));
    CHECK_EQ_INT(len, 24); /* unchanged */
    ct_err_clear(&e);
    int32_t neg[] = {-1};
    CHECK_EQ_INT(ct_decode(tok, neg, 1, &buf, &len, &cap, &e), CT_EINVAL);
    free(buf);
}

static void write_file(const char *dir, const char *name, const char *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ_INT(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void expect_open_fails(const char *dir, int code, const char *needle) {
    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    setenv("COTRAIN_GPT2_DIR", dir, 1);
    int rc = ct_tokenizer_open(&tok, "gpt2", &e);
    unsetenv("COTRAIN_GPT2_DIR");
    if (rc != code || tok != NULL || !strstr(e.msg, needle)) {
        fprintf(stderr, "open with %s: rc %d (want %d), message \"%s\" (want \"%s\" in it)\n", dir,
                rc, code, e.msg, needle);
        check_failures_++;
    }
    ct_tokenizer_destroy(&tok);
}

static void test_gpt2_files(void) {
    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    CHECK_EQ_INT(ct_tokenizer_open(&tok, "gpt3", &e), CT_EINVAL);
    CHECK(strstr(e.msg, "gpt3") && strstr(e.msg, "bytes, gpt2"));
    char dir[] = "/tmp/ct_test_tokenizer_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    expect_open_fails(dir, CT_ENOENT, "COTRAIN_GPT2_DIR");
    expect_open_fails(dir, CT_ENOENT, "encoder.json");
    write_file(dir, "encoder.json", "{not json", 9);
    expect_open_fails(dir, CT_ECORRUPT, "not valid JSON");
    write_file(dir, "encoder.json", "[1, 2]", 6);
    expect_open_fails(dir, CT_ECORRUPT, "not a JSON object");
    write_file(dir, "encoder.json", "{\"a\": 0}", 8);
    expect_open_fails(dir, CT_ECORRUPT, "has 1 entries");

    char *enc = NULL;
    size_t enc_len = 0;
    CHECK_OK(ct_read_file(CT_GPT2_DIR "/encoder.json", &enc, &enc_len, &e), &e);
    if (enc) {
        /* One id used twice, then a key outside the byte alphabet (a space). */
        char *dup = strstr(enc, "\"!\": 0,");
        CHECK(dup != NULL);
        if (dup) {
            dup[5] = '1';
            write_file(dir, "encoder.json", enc, enc_len);
            expect_open_fails(dir, CT_ECORRUPT, "distinct integer id");
            dup[5] = '0';
            dup[1] = ' ';
            write_file(dir, "encoder.json", enc, enc_len);
            expect_open_fails(dir, CT_ECORRUPT, "byte alphabet");
            dup[1] = '!';
        }
        write_file(dir, "encoder.json", enc, enc_len);
        expect_open_fails(dir, CT_ENOENT, "vocab.bpe");
        static const char *const bad_bpe[][2] = {
            {"#version: 0.2\n\xc4\xa0 t\nfoo bar baz\n", "line 3"},
            {"#version: 0.2\n\xc4\xa0 t\n\xc4\xa0 t\n", "repeats"},
            {"#version: 0.2\n\xc4\xa0t he\n\xc4\xa0 t\nh e\n", "later merge"},
            {"#version: 0.2\n", "0 merges"},
            {"#version: 0.2\nzz\n", "line 2"},
        };
        for (size_t i = 0; i < sizeof bad_bpe / sizeof bad_bpe[0]; i++) {
            write_file(dir, "vocab.bpe", bad_bpe[i][0], strlen(bad_bpe[i][0]));
            expect_open_fails(dir, CT_ECORRUPT, bad_bpe[i][1]);
        }
        /* A good but shorter merge list loads: the files are read, not assumed. */
        const char *few = "#version: 0.2\n\xc4\xa0 t\nh e\n\xc4\xa0t he\n";
        write_file(dir, "vocab.bpe", few, strlen(few));
        setenv("COTRAIN_GPT2_DIR", dir, 1);
        CHECK_OK(ct_tokenizer_open(&tok, "gpt2", &e), &e);
        unsetenv("COTRAIN_GPT2_DIR");
        if (tok) {
            ct_ids_t ids = {0};
            size_t bad = 0;
            ct_encoder_t *enc = new_encoder(tok);
            CHECK_OK(encode(enc, " the", 4, &ids, &bad), &e);
            CHECK(ids.n == 1 && ids.ids[0] == 262); /* "Ġthe" */
            ct_ids_free(&ids);
            ct_encoder_destroy(&enc);
        }
        ct_tokenizer_destroy(&tok);
    }
    free(enc);
    char path[4096];
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    unlink(path);
    CHECK_EQ_INT(rmdir(dir), 0);
}

int main(void) {
    test_unicode();
    test_bytes();
    test_gpt2_files();
    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    int rc = ct_tokenizer_open(&tok, "gpt2", &e);
    if (rc) {
        fprintf(stderr, "cannot open gpt2: %s\n", e.msg);
        check_failures_++;
        return CHECK_RESULT();
    }
    CHECK(!strcmp(ct_tokenizer_name(tok), "gpt2"));
    CHECK_EQ_INT(ct_tokenizer_vocab_size(tok), 50257);
    CHECK_EQ_INT(ct_tokenizer_eot(tok), 50256);
    test_gpt2_known(tok);
    test_gpt2_invalid(tok);
    test_gpt2_decode_errors(tok);
    test_gpt2_cache_refill(tok);
    test_gpt2_parallel(tok);
    ct_tokenizer_destroy(&tok);
    return CHECK_RESULT();
}
