/* fuzz_publog.c — libFuzzer target: one line of a public log as `cotrain verify` reads it
 * (core/publog.c, core/json.c). A line that checks must be in canonical form: re-serialising what
 * was parsed gives the same bytes. Nothing is signed by the fuzzer, so a line checks only up to
 * the signature; every step before it (JSON, canonical form, fields, seq, chain) is exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/json.h"
#include "cotrain/publog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned char pk[32] = {1};
    int64_t seq = 0;
    char prev[CT_SHA256_HEX] = "";
    cJSON *rec = NULL;
    ct_err_t e = {0};
    if (ct_publog_check((const char *)data, size, pk, &seq, prev, &rec, &e) == 0) {
        char *canon = ct_json_canonical(rec, &e);
        if (!canon || strlen(canon) != size || memcmp(canon, data, size) != 0) __builtin_trap();
        free(canon);
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    cJSON_Delete(rec);
    /* and canonical JSON of whatever cJSON parses */
    cJSON *any = cJSON_ParseWithLength((const char *)data, size);
    if (any) {
        ct_err_t ignored = {0};
        free(ct_json_canonical(any, &ignored));
        cJSON_Delete(any);
    }
    return 0;
}
