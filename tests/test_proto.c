/* test_proto.c — the message header grammar (comm/proto.c): every request type parses, every
 * malformed variant is refused with the error code a reply must carry and nothing kept, field
 * readers check type and range, the headers we build parse back, and 200,000 random mutations of
 * a good header never crash the parser (under ASan in scripts/test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/proto.h"

static int parse(const char *text, int n_frames, ct_msg_t *m, int64_t *req, ct_proto_error_t *code,
                 ct_err_t *e) {
    ct_err_clear(e);
    return ct_msg_parse(text, strlen(text), n_frames, m, req, code, e);
}

static void expect_refused(const char *text, ct_proto_error_t want, int64_t want_req,
                           const char *needle) {
    ct_msg_t m;
    int64_t req;
    ct_proto_error_t code;
    ct_err_t e = {0};
    CHECK_EQ_INT(parse(text, 0, &m, &req, &code, &e), CT_EPROTO);
    CHECK_EQ_INT(code, want);
    CHECK_EQ_INT(req, want_req);
    CHECK_CONTAINS(e.msg, needle);
    CHECK(m.root == NULL);
}

static void test_good(void) {
    for (int t = 0; t < CT_MSG_N_TYPES; t++) {
        char text[256];
        snprintf(text, sizeof text, "{\"v\":1,\"type\":\"%s\",\"req\":%d,\"extra\":[1,{}]}",
                 ct_msg_type_name((ct_msg_type_t)t), t);
        ct_msg_t m;
        int64_t req;
        ct_proto_error_t code;
        ct_err_t e = {0};
        CHECK_EQ_INT(parse(text, 2, &m, &req, &code, &e), 0);
        CHECK_EQ_INT(m.type, t);
        CHECK_EQ_INT(m.req, t);
        CHECK_EQ_INT(m.n_frames, 2);
        ct_msg_clear(&m);
    }
}

static void test_malformed(void) {
    expect_refused("", CT_PROTO_E_MALFORMED, -1, "not one JSON object");
    expect_refused("[1,2]", CT_PROTO_E_MALFORMED, -1, "not one JSON object");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":1", CT_PROTO_E_MALFORMED, -1, "JSON");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":1} x", CT_PROTO_E_MALFORMED, -1, "JSON");
    expect_refused("{\"type\":\"lease\",\"req\":4}", CT_PROTO_E_MALFORMED, 4, "\"v\"");
    expect_refused("{\"v\":2,\"type\":\"lease\",\"req\":4}", CT_PROTO_E_VERSION, 4, "version 2");
    expect_refused("{\"v\":\"1\",\"type\":\"lease\",\"req\":4}", CT_PROTO_E_MALFORMED, 4, "\"v\"");
    expect_refused("{\"v\":1,\"type\":\"lease\"}", CT_PROTO_E_MALFORMED, -1, "\"req\"");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":-3}", CT_PROTO_E_MALFORMED, -1, "\"req\"");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":1.5}", CT_PROTO_E_MALFORMED, -1, "\"req\"");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":1e300}", CT_PROTO_E_MALFORMED, -1,
                   "\"req\"");
    expect_refused("{\"v\":1,\"req\":5}", CT_PROTO_E_MALFORMED, 5, "\"type\"");
    expect_refused("{\"v\":1,\"type\":\"lease\",\"req\":null}", CT_PROTO_E_MALFORMED, -1,
                   "\"req\"");
    expect_refused("{\"v\":1,\"type\":7,\"req\":5}", CT_PROTO_E_MALFORMED, 5, "\"type\"");
    expect_refused("{\"v\":1,\"type\":\"launch\",\"req\":5}", CT_PROTO_E_UNKNOWN_TYPE, 5,
                   "\"launch\"");
    /* too deep for cJSON's nesting limit */
    char deep[4000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"v\":1,\"type\":\"lease\",\"req\":1,\"x\":");
    for (int i = 0; i < 1500; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    expect_refused(deep, CT_PROTO_E_MALFORMED, -1, "JSON");
    /* too large, too many frames */
    size_t big = CT_PROTO_HEADER_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    ct_msg_t m;
    int64_t req;
    ct_proto_error_t code;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_msg_parse(huge, big, 0, &m, &req, &code, &e), CT_EPROTO);
    CHECK_EQ_INT(code, CT_PROTO_E_TOO_LARGE);
    free(huge);
    CHECK_EQ_INT(parse("{\"v\":1,\"type\":\"lease\",\"req\":1}", CT_PROTO_FRAMES_MAX + 1, &m, &req,
                       &code, &e),
                 CT_EPROTO);
    CHECK_EQ_INT(code, CT_PROTO_E_TOO_LARGE);
}

static void test_fields(void) {
    ct_msg_t m;
    int64_t req, v;
    ct_proto_error_t code;
    ct_err_t e = {0};
    CHECK_EQ_INT(parse("{\"v\":1,\"type\":\"shard_done\",\"req\":9,\"shard\":\"00001-ab\","
                       "\"epoch\":3,\"fence\":-1,\"ctl\":\"a\\u0001b\",\"empty\":\"\"}",
                       0, &m, &req, &code, &e),
                 0);
    char s[16];
    CHECK_EQ_INT(ct_msg_string(&m, "shard", s, sizeof s, &e), 0);
    CHECK_EQ_STR(s, "00001-ab");
    CHECK_EQ_INT(ct_msg_uint(&m, "epoch", &v, &e), 0);
    CHECK_EQ_INT(v, 3);
    CHECK_EQ_INT(ct_msg_uint(&m, "fence", &v, &e), CT_EPROTO);
    CHECK_CONTAINS(e.msg, "shard_done: \"fence\"");
    CHECK_EQ_INT(ct_msg_string(&m, "ctl", s, sizeof s, &e), CT_EPROTO);
    CHECK_EQ_INT(ct_msg_string(&m, "empty", s, sizeof s, &e), CT_EPROTO);
    CHECK_EQ_INT(ct_msg_string(&m, "missing", s, sizeof s, &e), CT_EPROTO);
    CHECK_EQ_INT(ct_msg_string(&m, "shard", s, 5, &e), CT_EPROTO); /* too long for out */
    ct_msg_clear(&m);
}

static void test_build(void) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "shard", "00002-cd");
    cJSON_AddNumberToObject(f, "epoch", 4);
    char *text = ct_msg_header(CT_MSG_LEASE_GRANT, 12, f);
    CHECK(text != NULL);
    ct_msg_t m;
    int64_t req, v;
    ct_proto_error_t code;
    ct_err_t e = {0};
    CHECK_EQ_INT(parse(text, 0, &m, &req, &code, &e), 0);
    CHECK_EQ_INT(m.type, CT_MSG_LEASE_GRANT);
    CHECK_EQ_INT(m.req, 12);
    CHECK_EQ_INT(ct_msg_uint(&m, "epoch", &v, &e), 0);
    CHECK_EQ_INT(v, 4);
    ct_msg_clear(&m);
    free(text);
    text = ct_msg_error(-1, CT_PROTO_E_STALE, "lease \"x\" expired");
    CHECK(text != NULL);
    CHECK_CONTAINS(text, "\"code\":\"stale\"");
    CHECK_CONTAINS(text, "\"req\":null");
    CHECK_CONTAINS(text, "lease \\\"x\\\" expired");
    /* an error reply to an unreadable request parses, with req -1 */
    CHECK_EQ_INT(parse(text, 0, &m, &req, &code, &e), 0);
    CHECK_EQ_INT(m.req, -1);
    ct_msg_clear(&m);
    free(text);
    CHECK_EQ_STR(ct_proto_error_name(CT_PROTO_E_N), "?");
    CHECK_EQ_STR(ct_msg_type_name(CT_MSG_N_TYPES), "?");
}

/* Random byte flips, insertions and cuts of a good header: parse must never crash, and what it
 * accepts is a full message. */
static void test_mutations(void) {
    const char good[] = "{\"v\":1,\"type\":\"checkpoint_commit\",\"req\":77,\"step\":10,"
                        "\"id\":\"abc\",\"units\":[{\"shard\":\"00001-ab\",\"epoch\":0}]}";
    char buf[sizeof good + 8];
    srand(3);
    int accepted = 0;
    for (int i = 0; i < 200000; i++) {
        size_t n = sizeof good - 1;
        memcpy(buf, good, n);
        for (int k = rand() % 4 + 1; k > 0; k--) {
            size_t at = (size_t)rand() % n;
            switch (rand() % 3) {
            case 0: buf[at] = (char)(rand() % 256); break;
            case 1: n = at; break;
            default: buf[at] ^= (char)(1 << (rand() % 8)); break;
            }
            if (n == 0) break;
        }
        ct_msg_t m;
        int64_t req;
        ct_proto_error_t code;
        ct_err_t e = {0};
        if (ct_msg_parse(buf, n, 0, &m, &req, &code, &e) == 0) {
            accepted++;
            CHECK(m.root != NULL && m.type < CT_MSG_N_TYPES);
            ct_msg_clear(&m);
        } else {
            CHECK(m.root == NULL && code < CT_PROTO_E_N && e.msg[0]);
        }
    }
    CHECK(accepted > 0);
}

int main(void) {
    test_good();
    test_malformed();
    test_fields();
    test_build();
    test_mutations();
    return CHECK_RESULT();
}
