/* test_optout.c — the opt-out list: ids and content hashes, comments, blank lines, CRLF,
 * surrounding spaces, duplicates counted once, matching by id or hash and the matched count, a
 * large list (the table grows), the file's sha256, and every kind of bad line refused with
 * "FILE:LINE" naming it — plus ct_doc_id_valid on its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/optout.h"

static char g_dir[] = "/tmp/ct_test_optout_XXXXXX";

/* Writes len bytes (binary: NULs and CRs kept) to g_dir/name; the full path goes to path. */
static void write_bytes(char *path, size_t size, const char *name, const char *data, size_t len) {
    snprintf(path, size, "%s/%s", g_dir, name);
    unlink(path);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ_INT(fwrite(data, 1, len, f), len);
    CHECK_EQ_INT(fclose(f), 0);
}

static void write_text(char *path, size_t size, const char *name, const char *text) {
    write_bytes(path, size, name, text, strlen(text));
}

static const char HASH_A[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char HASH_B[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static void test_valid_list(void) {
    char path[4096];
    /* 1 comment, 2 blank, 3 id, 4 spaced id with CRLF, 5 hash with CRLF, 6 duplicate, 7 tabbed,
     * 8 non-ASCII, 9 indented comment, 10 spaces only, 11 hash B, 12 '#' inside an id,
     * 13 the duplicate of a hash, 14 last line without a newline */
    static const char text[] =
        "# opted out on request\n"
        "\n"
        "doc-1\n"
        "   doc-2   \r\n"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
        "doc-1\n"
        "\tdoc-3\t\n"
        "héllo-🙂-文字\n"
        "   # indented comment\n"
        "    \n"
        "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\n"
        "a#b\n"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
        "42";
    write_text(path, sizeof path, "valid.txt", text);
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    int rc = ct_optout_load(&o, path, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    /* doc-1, doc-2, hash A, doc-3, héllo, hash B, a#b, 42 */
    CHECK_EQ_INT(ct_optout_entries(o), 8);
    CHECK_EQ_INT(ct_optout_matched(o), 0);
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(text, strlen(text), sha);
    CHECK_EQ_STR(ct_optout_sha256(o), sha);

    /* by id */
    CHECK_EQ_INT(ct_optout_match(o, "doc-1", "ffff"), 1);
    CHECK_EQ_INT(ct_optout_matched(o), 1);
    CHECK_EQ_INT(ct_optout_match(o, "doc-1", NULL), 1); /* again: still one entry matched */
    CHECK_EQ_INT(ct_optout_matched(o), 1);
    CHECK_EQ_INT(ct_optout_match(o, "doc-2", NULL), 1);
    CHECK_EQ_INT(ct_optout_match(o, "héllo-🙂-文字", NULL), 1);
    CHECK_EQ_INT(ct_optout_match(o, "42", NULL), 1);
    CHECK_EQ_INT(ct_optout_matched(o), 4);
    /* by content hash, with an id that is not listed */
    CHECK_EQ_INT(ct_optout_match(o, "unlisted", HASH_A), 1);
    CHECK_EQ_INT(ct_optout_matched(o), 5);
    /* id and hash both listed: both entries count as matched */
    CHECK_EQ_INT(ct_optout_match(o, "doc-3", HASH_B), 1);
    CHECK_EQ_INT(ct_optout_matched(o), 7);
    /* not listed: prefixes, other case, the spaces and comments of the file, NULLs */
    const char *misses[] = {"doc", "doc-10", "DOC-1", " doc-2",  "doc-2 ", "# opted out on request",
                            "a",   "b",      "",      "\tdoc-3", "4",      "héllo"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        int m = ct_optout_match(o, misses[i], NULL);
        if (m) fprintf(stderr, "  \"%s\" matched\n", misses[i]);
        CHECK_EQ_INT(m, 0);
    }
    CHECK_EQ_INT(ct_optout_match(o, NULL, NULL), 0);
    CHECK_EQ_INT(ct_optout_match(
                     o, NULL, "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"),
                 0);
    CHECK_EQ_INT(ct_optout_matched(o), 7);
    CHECK_EQ_INT(ct_optout_match(o, "a#b", NULL), 1);
    CHECK_EQ_INT(ct_optout_matched(o), 8);
    CHECK_EQ_INT(ct_optout_entries(o), 8);
    ct_optout_destroy(&o);
    CHECK(o == NULL);
    ct_optout_destroy(&o); /* NULL-safe */
}

/* A list saved by an editor that starts files with a UTF-8 byte order mark: the mark is not part
 * of the first entry. */
static void test_bom(void) {
    char path[4096];
    static const char text[] = "\xef\xbb\xbf"
                               "doc-1\r\nzz\r\n";
    write_text(path, sizeof path, "bom.txt", text);
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), 0);
    if (!o) return;
    CHECK_EQ_INT(ct_optout_entries(o), 2);
    CHECK_EQ_INT(ct_optout_match(o, "doc-1", NULL), 1);
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(text, strlen(text), sha); /* the file's bytes, mark included */
    CHECK_EQ_STR(ct_optout_sha256(o), sha);
    ct_optout_destroy(&o);
}

static void test_empty_and_missing(void) {
    char path[4096];
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    /* an empty file and a comments-only file are valid, empty lists */
    const char *empties[] = {"", "\n\n", "# nothing yet\r\n\r\n  # still nothing\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        write_text(path, sizeof path, "empty.txt", empties[i]);
        e = (ct_err_t){0};
        CHECK_EQ_INT(ct_optout_load(&o, path, &e), 0);
        if (!o) continue;
        CHECK_EQ_INT(ct_optout_entries(o), 0);
        CHECK_EQ_INT(ct_optout_match(o, "x", HASH_A), 0);
        CHECK_EQ_INT(ct_optout_matched(o), 0);
        char sha[CT_SHA256_HEX];
        ct_sha256_hex(empties[i], strlen(empties[i]), sha);
        CHECK_EQ_STR(ct_optout_sha256(o), sha);
        ct_optout_destroy(&o);
    }
    snprintf(path, sizeof path, "%s/no-such-list.txt", g_dir);
    e = (ct_err_t){0};
    o = (ct_optout_t *)&e; /* must be reset to NULL on failure */
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), CT_ENOENT);
    CHECK(o == NULL);
    CHECK_CONTAINS(e.msg, "no-such-list.txt");
}

/* A list whose line `bad_line` is `bad` (len bytes) between valid lines: CT_EINVAL naming it. */
static void expect_bad_line(const char *what, const char *bad, size_t len, int crlf) {
    char buf[2048], path[4096], want[4200];
    size_t n = 0;
    const char *nl = crlf ? "\r\n" : "\n";
    n += (size_t)snprintf(buf + n, sizeof buf - n, "# list%s%sok-1%s  ok-2%s", nl, nl, nl, nl);
    memcpy(buf + n, bad, len); /* line 5 */
    n += len;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%sok-3%s", nl, nl);
    write_bytes(path, sizeof path, "bad.txt", buf, n);
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    int rc = ct_optout_load(&o, path, &e);
    if (rc != CT_EINVAL) fprintf(stderr, "  bad line (%s): rc %d\n", what, rc);
    CHECK_EQ_INT(rc, CT_EINVAL);
    CHECK(o == NULL);
    snprintf(want, sizeof want, "%s:5:", path);
    CHECK_CONTAINS(e.msg, want);
    ct_optout_destroy(&o);
}

static void test_bad_lines(void) {
    static const struct {
        const char *what, *text;
    } cases[] = {
        {"embedded space", "doc 1"},
        {"embedded tab", "doc\t1"},
        {"control character", "doc\x01"},
        {"escape", "doc\x1b[0m"},
        {"DEL", "doc\x7f"},
        {"bare CR inside", "doc\rx"},
        {"invalid UTF-8 byte", "doc\xff"},
        {"lone continuation byte", "\x80"},
        {"truncated sequence", "doc\xe6\x96"},
        {"overlong encoding", "\xc0\xaf"},
        {"surrogate", "\xed\xa0\x80"},
        {"above U+10FFFF", "\xf4\x90\x80\x80"},
        /* not ASCII, but spaces or control characters all the same */
        {"NO-BREAK SPACE", "doc\xc2\xa0x"},
        {"NEXT LINE (C1 control)", "doc\xc2\x85"},
        {"C1 control U+0080", "\xc2\x80"},
        {"LINE SEPARATOR", "doc\xe2\x80\xa8x"},
        {"IDEOGRAPHIC SPACE", "\xe3\x80\x80"
                              "doc"},
        {"EN QUAD", "doc\xe2\x80\x80"},
        {"BOM inside the file", "\xef\xbb\xbf"
                                "doc"},
    };
    for (int crlf = 0; crlf < 2; crlf++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            expect_bad_line(cases[i].what, cases[i].text, strlen(cases[i].text), crlf);
    expect_bad_line("NUL byte", "doc\0x", 5, 0);
    /* 513 bytes is one too many; 512 (also when made of 4-byte characters) is fine */
    char long_id[600];
    memset(long_id, 'a', 513);
    expect_bad_line("513 bytes", long_id, 513, 0);
    char path[4096];
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    long_id[512] = '\n';
    long_id[513] = '\0';
    write_text(path, sizeof path, "long.txt", long_id);
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), 0);
    if (o) {
        CHECK_EQ_INT(ct_optout_entries(o), 1);
        long_id[512] = '\0';
        CHECK_EQ_INT(ct_optout_match(o, long_id, NULL), 1);
        ct_optout_destroy(&o);
    }
    /* 128 emoji = 512 bytes */
    char emoji[600] = "";
    for (int i = 0; i < 128; i++)
        strcat(emoji, "🙂");
    CHECK_EQ_INT(strlen(emoji), 512);
    strcat(emoji, "\n");
    write_text(path, sizeof path, "emoji.txt", emoji);
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), 0);
    ct_optout_destroy(&o);
    /* the first bad line is the one named, on line 1 as on line 1000 */
    char big[16000] = "bad one\n";
    write_text(path, sizeof path, "first.txt", big);
    e = (ct_err_t){0};
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), CT_EINVAL);
    char want[4200];
    snprintf(want, sizeof want, "%s:1:", path);
    CHECK_CONTAINS(e.msg, want);
    big[0] = '\0';
    for (int i = 1; i < 1000; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "id%d\n", i);
    strcat(big, "id 1000\nid 1001\n");
    write_text(path, sizeof path, "late.txt", big);
    e = (ct_err_t){0};
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), CT_EINVAL);
    snprintf(want, sizeof want, "%s:1000:", path);
    CHECK_CONTAINS(e.msg, want);
}

/* Enough entries to grow the table many times; every one matches, nothing else does. */
static void test_large_list(void) {
    enum { N = 20000 };
    size_t cap = (size_t)N * 80;
    char *text = malloc(cap), path[4096];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char sha[CT_SHA256_HEX], id[32];
        snprintf(id, sizeof id, "doc-%d", i);
        ct_sha256_hex(id, strlen(id), sha);
        /* even: the id; odd: the hash of "doc-i"; every 7th twice */
        n += (size_t)snprintf(text + n, cap - n, "%s\n", i % 2 ? sha : id);
        if (i % 7 == 0) n += (size_t)snprintf(text + n, cap - n, "%s\n", i % 2 ? sha : id);
    }
    write_bytes(path, sizeof path, "large.txt", text, n);
    free(text);
    ct_optout_t *o = NULL;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_optout_load(&o, path, &e), 0);
    if (!o) return;
    CHECK_EQ_INT(ct_optout_entries(o), N);
    int missed = 0, extra = 0;
    for (int i = 0; i < N; i++) {
        char sha[CT_SHA256_HEX], id[32];
        snprintf(id, sizeof id, "doc-%d", i);
        ct_sha256_hex(id, strlen(id), sha);
        missed += !(i % 2 ? ct_optout_match(o, "other", sha) : ct_optout_match(o, id, NULL));
        snprintf(id, sizeof id, "doc-%d", N + i);
        extra += ct_optout_match(o, id, NULL);
    }
    CHECK_EQ_INT(missed, 0);
    CHECK_EQ_INT(extra, 0);
    CHECK_EQ_INT(ct_optout_matched(o), N);
    ct_optout_destroy(&o);
}

static void test_doc_id_valid(void) {
    CHECK_EQ_INT(ct_doc_id_valid("a", 1), 1);
    CHECK_EQ_INT(ct_doc_id_valid("", 0), 0);
    CHECK_EQ_INT(ct_doc_id_valid("a b", 3), 0);
    CHECK_EQ_INT(ct_doc_id_valid("ab", 1), 1); /* only len bytes are looked at */
    CHECK_EQ_INT(ct_doc_id_valid("文字", strlen("文字")), 1);
    CHECK_EQ_INT(ct_doc_id_valid("文字", 2), 0); /* cut inside a character */
    char buf[600];
    memset(buf, 'z', sizeof buf);
    CHECK_EQ_INT(ct_doc_id_valid(buf, 512), 1);
    CHECK_EQ_INT(ct_doc_id_valid(buf, 513), 0);
}

int main(void) {
    ct_err_t e = {0};
    if (ct_hash_init(&e) != 0 || !mkdtemp(g_dir)) {
        fprintf(stderr, "setup failed: %s\n", e.msg);
        return 1;
    }
    test_valid_list();
    test_empty_and_missing();
    test_bom();
    test_bad_lines();
    test_large_list();
    test_doc_id_valid();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
