/* test_publog.c — the public log's records (core/publog.c) and canonical JSON (core/json.c):
 *   - canonical JSON against RFC 8785's own example (member order by UTF-16 code units, the
 *     escapes) and the refusals (fractions, numbers past 2^53, duplicate members, bad UTF-8)
 *   - a sealed chain checks; every single-byte change of a line, a swapped pair, a dropped line
 *     and a line signed by another key are each refused
 *   - the signing key is made once (mode 0600) and read back; run.json round-trips and a changed
 *     run.json is refused */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/publog.h"

static char g_dir[] = "/tmp/ct_test_publog_XXXXXX";

static char *canon_of(const char *text, int *rc) {
    ct_err_t e = {0};
    cJSON *v = cJSON_Parse(text);
    CHECK(v != NULL);
    char *out = ct_json_canonical(v, &e);
    *rc = out ? 0 : e.code;
    cJSON_Delete(v);
    return out;
}

static void test_canonical(void) {
    int rc;
    /* RFC 8785, section 3.2.3: members sorted by UTF-16 code units */
    char *c = canon_of("{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\","
                       "\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\","
                       "\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
                       "\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}",
                       &rc);
    CHECK_EQ_STR(c,
                 "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                 "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro "
                 "Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew "
                 "Letter Dalet With Dagesh\"}");
    free(c);
    /* escapes: the short forms, \u00XX for other controls, nothing else escaped */
    c = canon_of("{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u000f\\u001f\\u007f\\u2028\"}", &rc);
    CHECK_EQ_STR(c, "{\"s\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u000f\\u001f\x7f\xe2\x80\xa8\"}");
    free(c);
    c = canon_of(
        "{ \"b\" : [ 1 , -2 , 9007199254740992 , true , null , { } , [ ] ] , \"a\" : \"\" }", &rc);
    CHECK_EQ_STR(c, "{\"a\":\"\",\"b\":[1,-2,9007199254740992,true,null,{},[]]}");
    free(c);
    /* refused: a fraction, past 2^53, a member twice, bytes that are not UTF-8 */
    const char *bad[] = {"{\"a\":1.5}", "{\"a\":9007199254740994}", "{\"a\":1,\"a\":2}",
                         "{\"a\":\"\xc3\x28\"}", "{\"\xed\xa0\x80\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = canon_of(bad[i], &rc);
        CHECK(c == NULL);
        CHECK_EQ_INT(rc, CT_EINVAL);
        free(c);
    }
}

/* Seals n records into lines[] (malloc'd each). */
static void seal_chain(const ct_publog_key_t *k, char **lines, int n) {
    char prev[CT_SHA256_HEX] = "", hash[CT_SHA256_HEX];
    for (int i = 0; i < n; i++) {
        ct_err_t e = {0};
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "seq", i + 1);
        cJSON_AddStringToObject(r, "time", "2026-12-06T23:30:00.000Z");
        cJSON_AddStringToObject(r, "type", i % 2 ? "shard_done" : "shard_leased");
        cJSON_AddStringToObject(r, "shard", "00003-abc");
        cJSON_AddNumberToObject(r, "epoch", i / 2);
        lines[i] = ct_publog_seal(r, prev, k, hash, &e);
        CHECK(lines[i] != NULL);
        snprintf(prev, sizeof prev, "%s", hash);
    }
}

/* 0 when lines[0..n) check as a chain under pk; else the 1-based line that failed. */
static int check_chain(const unsigned char pk[32], char **lines, int n) {
    char prev[CT_SHA256_HEX] = "";
    int64_t seq = 0;
    for (int i = 0; i < n; i++) {
        ct_err_t e = {0};
        if (ct_publog_check(lines[i], strlen(lines[i]), pk, &seq, prev, NULL, &e) != 0)
            return i + 1;
    }
    return 0;
}

static void test_chain(void) {
    enum { N = 6 };
    ct_publog_key_t k, other;
    ct_err_t e = {0};
    char path[CT_PATH_MAX], *lines[N], *alien[N];
    int made = 0;
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "coordinator.key", &e), 0);
    CHECK_EQ_INT(ct_publog_key_open(path, &k, &made, &e), 0);
    CHECK_EQ_INT(made, 1);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    ct_publog_key_t again;
    CHECK_EQ_INT(ct_publog_key_open(path, &again, &made, &e), 0);
    CHECK_EQ_INT(made, 0);
    CHECK(!memcmp(again.pk, k.pk, 32) && !memcmp(again.sk, k.sk, 64));
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "other.key", &e), 0);
    CHECK_EQ_INT(ct_publog_key_open(path, &other, NULL, &e), 0);
    seal_chain(&k, lines, N);
    seal_chain(&other, alien, N);
    CHECK_EQ_INT(check_chain(k.pk, lines, N), 0);
    CHECK_EQ_INT(check_chain(k.pk, alien, N), 1); /* re-signed with another key */
    CHECK_EQ_INT(check_chain(other.pk, alien, N), 0);
    /* every byte of line 3 changed in turn (to another printable byte) is caught there */
    size_t len = strlen(lines[2]);
    for (size_t i = 0; i < len; i++) {
        char saved = lines[2][i];
        lines[2][i] = saved == 'a' ? 'b' : saved == '0' ? '1' : 'a';
        int at = check_chain(k.pk, lines, N);
        if (at != 3) fprintf(stderr, "byte %zu of line 3 changed: caught at line %d\n", i, at);
        CHECK_EQ_INT(at, 3);
        lines[2][i] = saved;
    }
    /* two lines swapped; a line dropped; a line of the other chain put in */
    char *t = lines[3];
    lines[3] = lines[4], lines[4] = t;
    CHECK_EQ_INT(check_chain(k.pk, lines, N), 4);
    lines[4] = lines[3], lines[3] = t;
    CHECK_EQ_INT(check_chain(k.pk, lines + 1, N - 1), 1);
    char *mine = lines[5];
    lines[5] = alien[5];
    CHECK_EQ_INT(check_chain(k.pk, lines, N), 6);
    lines[5] = mine;
    /* the head round-trips; a changed head is refused */
    ct_publog_head_t h = {.seq = N};
    memset(h.config_sha256, 'c', 64);
    memset(h.data_sha256, 'd', 64);
    memset(h.hash, 'f', 64);
    CHECK_EQ_INT(ct_path_join(path, sizeof path, g_dir, "run.json", &e), 0);
    CHECK_EQ_INT(ct_publog_head_write(path, &h, &k, &e), 0);
    ct_publog_head_t r;
    CHECK_EQ_INT(ct_publog_head_read(path, &r, &e), 0);
    CHECK_EQ_INT(r.seq, N);
    CHECK_EQ_STR(r.hash, h.hash);
    CHECK(!memcmp(r.pk, k.pk, 32));
    char *text = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ct_read_file(path, &text, &n, &e), 0);
    char *at = strstr(text, "\"seq\":6");
    CHECK(at != NULL);
    if (at) at[6] = '5';
    CHECK_EQ_INT(ct_write_file_atomic(path, text, n, &e), 0);
    CHECK_EQ_INT(ct_publog_head_read(path, &r, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "signature on the head");
    free(text);
    for (int i = 0; i < N; i++)
        free(lines[i]), free(alien[i]);
}

int main(void) {
    CHECK(mkdtemp(g_dir) != NULL);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    test_canonical();
    test_chain();
    check_rm_tree(g_dir);
    return CHECK_RESULT();
}
