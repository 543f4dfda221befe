/* test_shard.c — the HDF5 shard: write → file bytes → read round trips (uint16 and uint32
 * tokens, non-ASCII ids, several chunks), tokens_sha256 against a straight re-computation,
 * byte-identical files for identical content, the on-disk layout (types, Fletcher-32), and failures
 * that must be clean: a flipped byte in the token or offset data, truncated and random images, a
 * file that is HDF5 but no shard, tokens outside the stored vocabulary, invalid content to write
 * (nothing left behind) and an unwritable path. */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/shard.h"

static char g_dir[] = "/tmp/ct_test_shard_XXXXXX";

static void path_in(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g_dir, name);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* xorshift64: reproducible test data without touching the C library's rand state. */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A shard of n_docs documents over n_tokens tokens < vocab; document d's id is ids[d % n_ids]
 * followed by "-d" (so ids are distinct). Owned by the caller: free with free_shard. */
static ct_shard_t make_shard(int64_t n_tokens, int64_t n_docs, int vocab, const char *tokenizer,
                             const char *const *ids, int n_ids, uint64_t seed) {
    ct_shard_t s = {0};
    s.n_tokens = n_tokens;
    s.n_docs = n_docs;
    s.vocab_size = vocab;
    snprintf(s.tokenizer, sizeof s.tokenizer, "%s", tokenizer);
    s.tokens = calloc((size_t)n_tokens + 1, sizeof *s.tokens);
    s.doc_offsets = calloc((size_t)n_docs + 1, sizeof *s.doc_offsets);
    s.doc_ids = calloc((size_t)n_docs + 1, sizeof *s.doc_ids);
    if (!s.tokens || !s.doc_offsets || !s.doc_ids) abort();
    uint64_t r = seed | 1;
    for (int64_t i = 0; i < n_tokens; i++)
        s.tokens[i] = (uint32_t)(next_rand(&r) % (uint64_t)vocab);
    /* the largest id of the vocabulary occurs, so a narrowing of the type would show */
    s.tokens[n_tokens / 2] = (uint32_t)vocab - 1;
    for (int64_t d = 0; d <= n_docs; d++)
        s.doc_offsets[d] = n_tokens * d / n_docs;
    for (int64_t d = 0; d < n_docs; d++) {
        char buf[600];
        snprintf(buf, sizeof buf, "%s-%lld", ids[d % n_ids], (long long)d);
        if (!(s.doc_ids[d] = strdup(buf))) abort();
    }
    return s;
}

static void free_shard(ct_shard_t *s) {
    ct_shard_clear(s); /* frees ids 0..n_docs-1, tokens, offsets */
}

static int read_path(const char *path, const char *name, int with_ids, ct_shard_t *out,
                     ct_err_t *e) {
    char *buf = NULL;
    size_t len = 0;
    int rc = ct_read_file(path, &buf, &len, e);
    if (rc == 0) rc = ct_shard_read_image(buf, len, name, with_ids, out, e);
    free(buf);
    return rc;
}

/* Straight re-computation of tokens_sha256: pack little-endian by hand, hash the buffer. */
static void packed_sha256(const uint32_t *tokens, int64_t n, int width, char hex[CT_SHA256_HEX]) {
    unsigned char *buf = malloc((size_t)(n * width) + 1);
    if (!buf) abort();
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b < width; b++)
            buf[i * width + b] = (unsigned char)(tokens[i] >> (8 * b));
    ct_sha256_hex(buf, (size_t)(n * width), hex);
    free(buf);
}

static int files_equal(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    ct_err_t e = {0};
    int same = ct_read_file(a, &x, &nx, &e) == 0 && ct_read_file(b, &y, &ny, &e) == 0 && nx == ny &&
               memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static int shard_is_empty(const ct_shard_t *s) {
    return !s->tokens && !s->doc_offsets && !s->doc_ids && s->n_tokens == 0 && s->n_docs == 0;
}

/* The stored type size of dataset `name` and whether it carries the Fletcher-32 filter. */
static void dataset_layout(const char *path, const char *name, size_t *type_size,
                           int *little_endian, int *fletcher) {
    *type_size = 0;
    *fletcher = 0;
    *little_endian = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t t = H5Dget_type(d);
        *type_size = H5Tget_size(t);
        *little_endian = H5Tget_class(t) != H5T_INTEGER || H5Tget_order(t) == H5T_ORDER_LE;
        H5Tclose(t);
        hid_t dcpl = H5Dget_create_plist(d);
        for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            char fname[64];
            unsigned fconfig;
            if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname,
                               &fconfig) == H5Z_FILTER_FLETCHER32)
                *fletcher = 1;
        }
        H5Pclose(dcpl);
        H5Dclose(d);
    }
    if (f >= 0) H5Fclose(f);
}

/* Writes s, reads it back through the file's bytes and compares everything. */
static void round_trip(const char *name, ct_shard_t *s, size_t want_width) {
    char path[4096], tmp[4200], hex[CT_SHA256_HEX], packed[CT_SHA256_HEX];
    path_in(path, sizeof path, name);
    ct_err_t e = {0};
    int rc = ct_shard_write(path, s, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  write %s: %s\n", name, e.msg);
        return;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!exists(tmp));

    /* the hash write stored into s, the public helper and a hand-packed buffer agree */
    CHECK_EQ_INT(ct_shard_tokens_sha256(s->tokens, s->n_tokens, s->vocab_size, hex, &e), 0);
    packed_sha256(s->tokens, s->n_tokens, (int)want_width, packed);
    CHECK_EQ_STR(s->tokens_sha256, hex);
    CHECK_EQ_STR(hex, packed);

    size_t width;
    int le, fl;
    dataset_layout(path, "tokens", &width, &le, &fl);
    CHECK_EQ_INT(width, want_width);
    CHECK(le);
    CHECK(fl);
    dataset_layout(path, "doc_offsets", &width, &le, &fl);
    CHECK_EQ_INT(width, 8);
    CHECK(fl);
    dataset_layout(path, "doc_ids", &width, &le, &fl);
    CHECK(fl);

    ct_shard_t r;
    rc = read_path(path, name, 1, &r, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  read %s: %s\n", name, e.msg);
        return;
    }
    CHECK_EQ_INT(r.n_tokens, s->n_tokens);
    CHECK_EQ_INT(r.n_docs, s->n_docs);
    CHECK_EQ_INT(r.vocab_size, s->vocab_size);
    CHECK_EQ_STR(r.tokenizer, s->tokenizer);
    CHECK_EQ_STR(r.tokens_sha256, hex);
    if (r.n_tokens == s->n_tokens) {
        int64_t bad = -1;
        for (int64_t i = 0; i < r.n_tokens && bad < 0; i++)
            if (r.tokens[i] != s->tokens[i]) bad = i;
        if (bad >= 0)
            fprintf(stderr, "  %s: token %lld read %u, wrote %u\n", name, (long long)bad,
                    r.tokens[bad], s->tokens[bad]);
        CHECK_EQ_INT(bad, -1);
    }
    if (r.n_docs == s->n_docs) {
        int64_t bad = -1;
        for (int64_t d = 0; d <= r.n_docs && bad < 0; d++)
            if (r.doc_offsets[d] != s->doc_offsets[d]) bad = d;
        CHECK_EQ_INT(bad, -1);
        CHECK(r.doc_ids != NULL);
        for (int64_t d = 0; r.doc_ids && d < r.n_docs; d++)
            if (strcmp(r.doc_ids[d], s->doc_ids[d]) != 0) {
                CHECK_EQ_STR(r.doc_ids[d], s->doc_ids[d]);
                break;
            }
    }
    ct_shard_clear(&r);
    CHECK(shard_is_empty(&r));

    /* without ids: the same tokens, no ids */
    rc = read_path(path, name, 0, &r, &e);
    CHECK_EQ_INT(rc, 0);
    CHECK(r.doc_ids == NULL);
    CHECK_EQ_INT(r.n_tokens, s->n_tokens);
    ct_shard_clear(&r);
}

static const char *const IDS[] = {
    "doc", "é-ü-ß", "文字", "🙂🚀", "ид", "a\u200db" /* ZERO WIDTH JOINER inside */,
};
enum { N_IDS = sizeof IDS / sizeof IDS[0] };

static void test_round_trips(void) {
    /* bytes: vocab 256 → uint16 */
    ct_shard_t s = make_shard(1000, 7, 256, "bytes", IDS, N_IDS, 1);
    round_trip("bytes.h5", &s, 2);
    free_shard(&s);
    /* a vocabulary that needs uint32 */
    s = make_shard(5000, 9, 70000, "big", IDS, N_IDS, 2);
    round_trip("v70000.h5", &s, 4);
    free_shard(&s);
    /* the boundaries of the width choice: 65535 still fits uint16, 65536 does not */
    s = make_shard(300, 2, 65535, "b16", IDS, N_IDS, 3);
    round_trip("v65535.h5", &s, 2);
    free_shard(&s);
    s = make_shard(300, 2, 65536, "b32", IDS, N_IDS, 4);
    round_trip("v65536.h5", &s, 4);
    free_shard(&s);
    /* gpt2-sized, a single token and a single document */
    s = make_shard(1, 1, 50257, "gpt2", IDS, N_IDS, 5);
    round_trip("one.h5", &s, 2);
    free_shard(&s);
    /* more tokens and documents than one chunk holds (2^20 tokens, 2^14 documents), with empty
     * documents in between (equal offsets are allowed) */
    s = make_shard((1 << 20) + 7, (1 << 14) + 3, 50257, "gpt2", IDS, N_IDS, 6);
    s.doc_offsets[5] = s.doc_offsets[4];
    s.doc_offsets[6] = s.doc_offsets[4];
    round_trip("chunks.h5", &s, 2);
    free_shard(&s);
    /* a 512-byte id (the largest the opt-out rules allow) */
    char long_id[520];
    memset(long_id, 'x', 508);
    long_id[508] = '\0';
    const char *const long_ids[] = {long_id};
    s = make_shard(10, 1, 256, "bytes", long_ids, 1, 7);
    round_trip("longid.h5", &s, 2);
    free_shard(&s);
}

static void test_deterministic(void) {
    char a[4096], b[4096];
    ct_err_t e = {0};
    ct_shard_t s = make_shard(4000, 5, 50257, "gpt2", IDS, N_IDS, 11);
    path_in(a, sizeof a, "same-a.h5");
    path_in(b, sizeof b, "same-b.h5");
    time_t t0 = time(NULL);
    CHECK_EQ_INT(ct_shard_write(a, &s, &e), 0);
    CHECK_EQ_INT(ct_shard_write(b, &s, &e), 0);
    time_t t1 = time(NULL);
    CHECK(files_equal(a, b));
    /* two writes within a second would hide object times: look for the clock in the bytes (HDF5
     * stores times as 32-bit seconds since the epoch, little-endian) */
    char *img = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ct_read_file(a, &img, &len, &e), 0);
    for (time_t t = t0 - 2; img && t <= t1 + 2; t++) {
        unsigned char le[4] = {(unsigned char)t, (unsigned char)(t >> 8), (unsigned char)(t >> 16),
                               (unsigned char)(t >> 24)};
        if (memmem(img, len, le, 4))
            fprintf(stderr, "  the time %lld is in the file\n", (long long)t);
        CHECK(memmem(img, len, le, 4) == NULL);
    }
    free(img);
    /* over an existing file: the same bytes again */
    CHECK_EQ_INT(ct_shard_write(a, &s, &e), 0);
    CHECK(files_equal(a, b));
    /* and a different token gives a different file and hash */
    char before[CT_SHA256_HEX];
    memcpy(before, s.tokens_sha256, sizeof before);
    s.tokens[17] = (s.tokens[17] + 1) % 50257;
    CHECK_EQ_INT(ct_shard_write(b, &s, &e), 0);
    CHECK(!files_equal(a, b));
    CHECK(strcmp(before, s.tokens_sha256) != 0);
    free_shard(&s);
}

/* Finds needle in hay; returns its offset or -1. */
static long find_bytes(const unsigned char *hay, size_t n, const unsigned char *needle, size_t k) {
    void *p = memmem(hay, n, needle, k);
    return p ? (long)((const unsigned char *)p - hay) : -1;
}

static void test_corruption(void) {
    char path[4096];
    ct_err_t e = {0};
    path_in(path, sizeof path, "corrupt.h5");
    /* tokens 0x1234 + i (distinct, little-endian on disk) make the data easy to find */
    ct_shard_t s = make_shard(2000, 4, 50257, "gpt2", IDS, N_IDS, 21);
    for (int64_t i = 0; i < s.n_tokens; i++)
        s.tokens[i] = (uint32_t)(0x1234 + i);
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), 0);
    char *img = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ct_read_file(path, &img, &len, &e), 0);
    if (!img) return;

    unsigned char probe[64];
    for (int i = 0; i < 32; i++) {
        probe[2 * i] = (unsigned char)((0x1234 + 1000 + i) & 0xff);
        probe[2 * i + 1] = (unsigned char)((0x1234 + 1000 + i) >> 8);
    }
    long at = find_bytes((unsigned char *)img, len, probe, sizeof probe);
    CHECK(at > 0);
    ct_shard_t r;
    if (at > 0) {
        char *bad = malloc(len);
        memcpy(bad, img, len);
        bad[at + 10] ^=
            0x01; /* token 1005 becomes another valid token: only the checksum sees it */
        e = (ct_err_t){0};
        int rc = ct_shard_read_image(bad, len, "shard-tok-flip", 1, &r, &e);
        CHECK_EQ_INT(rc, CT_ECORRUPT);
        CHECK_CONTAINS(e.msg, "shard-tok-flip");
        CHECK_CONTAINS(e.msg, "tokens");
        CHECK(shard_is_empty(&r));
        free(bad);
    }
    /* doc_offsets 0, 500, 1000, 1500, 2000 as int64 LE: flip a byte of the 1000 */
    unsigned char offs[40] = {0};
    for (int d = 0; d <= 4; d++)
        for (int b = 0; b < 8; b++)
            offs[8 * d + b] = (unsigned char)((uint64_t)(500 * d) >> (8 * b));
    at = find_bytes((unsigned char *)img, len, offs, sizeof offs);
    CHECK(at > 0);
    if (at > 0) {
        char *bad = malloc(len);
        memcpy(bad, img, len);
        bad[at + 16] ^= 0x04;
        e = (ct_err_t){0};
        CHECK_EQ_INT(ct_shard_read_image(bad, len, "shard-off-flip", 1, &r, &e), CT_ECORRUPT);
        CHECK_CONTAINS(e.msg, "shard-off-flip");
        CHECK(shard_is_empty(&r));
        free(bad);
    }
    /* truncated images: every result is a clean CT_ECORRUPT */
    size_t cuts[] = {0, 1, 7, 8, 64, 512, len / 3, len / 2, len - 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        e = (ct_err_t){0};
        int rc = ct_shard_read_image(img, cuts[i], "shard-cut", 1, &r, &e);
        if (rc != CT_ECORRUPT) fprintf(stderr, "  truncated to %zu bytes: rc %d\n", cuts[i], rc);
        CHECK_EQ_INT(rc, CT_ECORRUPT);
        CHECK_CONTAINS(e.msg, "shard-cut");
        CHECK(shard_is_empty(&r));
    }
    /* random bytes, and random bytes after a real HDF5 signature */
    uint64_t seed = 99;
    char *noise = malloc(len);
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < len; i++)
            noise[i] = (char)next_rand(&seed);
        if (round & 1) memcpy(noise, img, 8 + (size_t)round * 8); /* signature + some superblock */
        e = (ct_err_t){0};
        CHECK_EQ_INT(ct_shard_read_image(noise, len, "shard-noise", 1, &r, &e), CT_ECORRUPT);
        CHECK(shard_is_empty(&r));
    }
    free(noise);
    /* the original still reads */
    CHECK_EQ_INT(ct_shard_read_image(img, len, "shard-ok", 1, &r, &e), 0);
    ct_shard_clear(&r);
    free(img);
    free_shard(&s);
}

/* A valid HDF5 file that is not a shard, and a shard whose tokens exceed its stored vocabulary. */
static void test_not_a_shard(void) {
    char path[4096];
    ct_err_t e = {0};
    ct_shard_t r;
    path_in(path, sizeof path, "plain.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4;
    uint16_t data[4] = {1, 2, 3, 4};
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "tokens", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    int rc = read_path(path, "plain", 1, &r, &e);
    CHECK_EQ_INT(rc, CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "plain");
    CHECK_CONTAINS(e.msg, "cotrain-shard/1");
    CHECK(shard_is_empty(&r));

    /* vocab_size rewritten to 256 under tokens up to 69999 */
    path_in(path, sizeof path, "vocab.h5");
    ct_shard_t s = make_shard(100, 2, 70000, "big", IDS, N_IDS, 31);
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), 0);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "vocab_size", H5P_DEFAULT);
    int64_t small = 256;
    CHECK(H5Awrite(a, H5T_NATIVE_INT64, &small) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    e = (ct_err_t){0};
    rc = read_path(path, "vocab-shard", 1, &r, &e);
    CHECK_EQ_INT(rc, CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "vocab-shard");
    CHECK_CONTAINS(e.msg, "outside");
    CHECK(shard_is_empty(&r));

    /* n_tokens attribute disagreeing with the dataset */
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), 0);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    a = H5Aopen(f, "n_tokens", H5P_DEFAULT);
    int64_t more = 101;
    CHECK(H5Awrite(a, H5T_NATIVE_INT64, &more) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    e = (ct_err_t){0};
    CHECK_EQ_INT(read_path(path, "ntok-shard", 1, &r, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "ntok-shard");
    free_shard(&s);
}

/* Invalid content: CT_EINVAL and nothing at the path or its temp name. */
static void expect_einval(ct_shard_t *s, const char *name, const char *why) {
    char path[4096], tmp[4200];
    path_in(path, sizeof path, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ct_err_t e = {0};
    int rc = ct_shard_write(path, s, &e);
    if (rc != CT_EINVAL) fprintf(stderr, "  %s (%s): rc %d: %s\n", name, why, rc, e.msg);
    CHECK_EQ_INT(rc, CT_EINVAL);
    CHECK_CONTAINS(e.msg, name);
    CHECK(!exists(path));
    CHECK(!exists(tmp));
}

static void test_invalid_write(void) {
    ct_shard_t s = make_shard(100, 4, 256, "bytes", IDS, N_IDS, 41);
    s.tokens[50] = 256;
    expect_einval(&s, "tok-vocab.h5", "token == vocab");
    s.tokens[50] = 0xffffffffu;
    expect_einval(&s, "tok-huge.h5", "token 2^32-1");
    s.tokens[50] = 7;
    int64_t keep = s.doc_offsets[2];
    s.doc_offsets[2] = s.doc_offsets[1] - 1;
    expect_einval(&s, "off-decrease.h5", "decreasing offsets");
    s.doc_offsets[2] = keep;
    s.doc_offsets[0] = 1;
    expect_einval(&s, "off-start.h5", "offsets start at 1");
    s.doc_offsets[0] = 0;
    s.doc_offsets[4] = 99;
    expect_einval(&s, "off-end.h5", "offsets end before the tokens");
    s.doc_offsets[4] = 100;
    int64_t n = s.n_tokens;
    s.n_tokens = 0;
    expect_einval(&s, "no-tokens.h5", "no tokens");
    s.n_tokens = n;
    int64_t docs = s.n_docs;
    s.n_docs = 0;
    expect_einval(&s, "no-docs.h5", "no documents");
    s.n_docs = docs;
    /* an invalid write over an existing shard leaves it alone */
    char path[4096];
    ct_err_t e = {0};
    path_in(path, sizeof path, "keep.h5");
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), 0);
    char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    CHECK_EQ_INT(ct_read_file(path, &before, &nb, &e), 0);
    s.tokens[0] = 1000;
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), CT_EINVAL);
    CHECK_EQ_INT(ct_read_file(path, &after, &na, &e), 0);
    CHECK(nb == na && before && after && memcmp(before, after, nb) == 0);
    free(before);
    free(after);
    free_shard(&s);
}

static void test_unwritable(void) {
    ct_shard_t s = make_shard(100, 2, 256, "bytes", IDS, N_IDS, 51);
    char path[4200], file[4096];
    ct_err_t e = {0};
    /* a folder that does not exist */
    path_in(path, sizeof path, "no-such-dir/x.h5");
    int rc = ct_shard_write(path, &s, &e);
    CHECK_EQ_INT(rc, CT_EIO);
    CHECK_CONTAINS(e.msg, "no-such-dir/x.h5");
    CHECK(!exists(path));
    /* a "folder" that is a regular file */
    path_in(file, sizeof file, "a-file");
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/x.h5", file);
    e = (ct_err_t){0};
    CHECK_EQ_INT(ct_shard_write(path, &s, &e), CT_EIO);
    CHECK_CONTAINS(e.msg, "a-file/x.h5");
    /* a read-only folder (root may write anyway: then only check that the write is complete) */
    path_in(path, sizeof path, "ro");
    CHECK_EQ_INT(mkdir(path, 0500), 0);
    path_in(path, sizeof path, "ro/x.h5");
    e = (ct_err_t){0};
    rc = ct_shard_write(path, &s, &e);
    if (geteuid() != 0) {
        CHECK_EQ_INT(rc, CT_EIO);
        CHECK(!exists(path));
    } else {
        CHECK_EQ_INT(rc, 0);
    }
    free_shard(&s);
}

int main(void) {
    ct_err_t e = {0};
    if (ct_hash_init(&e) != 0 || !mkdtemp(g_dir)) {
        fprintf(stderr, "setup failed: %s\n", e.msg);
        return 1;
    }
    test_round_trips();
    test_deterministic();
    test_corruption();
    test_not_a_shard();
    test_invalid_write();
    test_unwritable();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
