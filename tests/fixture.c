/* fixture.c — data fixtures the unit tests share (see fixture.h). */
#include "fixture.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/fsutil.h"
#include "cotrain/manifest.h"

void fixture_manifest(const char *dir, const char *prefix, int n, const char *tokenizer, int vocab,
                      char *path, size_t cap, char sha[CT_SHA256_HEX]) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_mkdirs(dir, &e), 0);
    cJSON *m = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(m, "shards");
    cJSON_AddStringToObject(m, "format", CT_MANIFEST_FORMAT);
    cJSON_AddStringToObject(m, "tokenizer", tokenizer);
    cJSON_AddNumberToObject(m, "vocab_size", vocab);
    cJSON_AddNumberToObject(m, "n_tokens", 1000.0 * n);
    for (int i = 0; i < n; i++) {
        char id[32], file[48];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        snprintf(file, sizeof file, "%s.h5", id);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "id", id);
        cJSON_AddStringToObject(s, "file", file);
        cJSON_AddNumberToObject(s, "n_tokens", 1000);
        cJSON_AddNumberToObject(s, "n_docs", 1);
        cJSON_AddStringToObject(s, "sha256",
                                "0000000000000000000000000000000000000000000000000000000000000000");
        cJSON_AddItemToArray(arr, s);
    }
    char *text = cJSON_Print(m);
    CHECK(snprintf(path, cap, "%s/manifest.json", dir) < (int)cap);
    CHECK_EQ_INT(ct_write_file_atomic(path, text, strlen(text), &e), 0);
    if (sha) ct_sha256_hex(text, strlen(text), sha);
    free(text);
    cJSON_Delete(m);
}
