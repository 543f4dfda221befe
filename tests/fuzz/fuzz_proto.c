/* fuzz_proto.c — libFuzzer target: the coordinator protocol's header grammar (comm/proto.c), the
 * first thing a peer's bytes reach. The first input byte is the number of binary frames said to
 * follow; the rest is the header. Every outcome must be a parsed message or a clean refusal with
 * an error code in range; a parsed message's fields are then read as the handler reads them. */
#include <stdint.h>
#include <string.h>

#include "cotrain/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ct_msg_t m;
    int64_t req;
    ct_proto_error_t code;
    ct_err_t e = {0};
    if (ct_msg_parse(data + 1, size - 1, data[0] % 20, &m, &req, &code, &e) != 0) {
        if (code < 0 || code >= CT_PROTO_E_N || !e.msg[0]) __builtin_trap();
        char *reply = ct_msg_error(req, code, e.msg);
        free(reply);
        return 0;
    }
    char s[128];
    int64_t v;
    ct_err_t ignored = {0};
    static const char *const keys[] = {"group", "shard", "id", "parent", "why", "file", "session"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ct_msg_string(&m, keys[i], s, sizeof s, &ignored);
    ct_msg_uint(&m, "epoch", &v, &ignored);
    ct_msg_uint(&m, "offset", &v, &ignored);
    ct_msg_clear(&m);
    return 0;
}
