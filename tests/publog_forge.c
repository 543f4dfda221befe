/* publog_forge.c — a forger for the tamper tests of `cotrain verify` (tests/verify_e2e.sh): what
 * an attacker holding another key could produce, correct in every way but the key.
 *
 *   publog_forge resign KEYFILE DIR    every line of DIR/log.jsonl sealed again with KEYFILE
 *                                      (chained as before), and DIR/run.json signed with it
 *   publog_forge append KEYFILE DIR    one more record (a shard_done) after DIR/log.jsonl's
 *                                      last line, chained to it, signed with KEYFILE
 * KEYFILE is made when absent. Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/publog.h"

/* The fields of a sealed line without prev, hash and sig. */
static cJSON *fields_of(const char *line) {
    cJSON *r = cJSON_Parse(line);
    cJSON_DeleteItemFromObjectCaseSensitive(r, "prev");
    cJSON_DeleteItemFromObjectCaseSensitive(r, "hash");
    cJSON_DeleteItemFromObjectCaseSensitive(r, "sig");
    return r;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "resign") && strcmp(argv[1], "append"))) {
        fprintf(stderr, "usage: publog_forge resign|append KEYFILE DIR\n");
        return 2;
    }
    ct_err_t e = {0};
    ct_publog_key_t k;
    char path[CT_PATH_MAX], head_path[CT_PATH_MAX], out[CT_PATH_MAX];
    if (ct_hash_init(&e) || ct_publog_key_open(argv[2], &k, NULL, &e) ||
        ct_path_join(path, sizeof path, argv[3], "log.jsonl", &e) ||
        ct_path_join(head_path, sizeof head_path, argv[3], "run.json", &e) ||
        ct_path_fmt(out, sizeof out, &e, "%s.forged", path)) {
        fprintf(stderr, "publog_forge: %s\n", e.msg);
        return 1;
    }
    FILE *in = fopen(path, "r"), *w = fopen(out, "w");
    if (!in || !w) return 1;
    char *line = NULL, prev[CT_SHA256_HEX] = "", hash[CT_SHA256_HEX], *sealed;
    size_t cap = 0;
    int64_t seq = 0;
    cJSON *last = NULL;
    while (getline(&line, &cap, in) > 0) {
        cJSON_Delete(last);
        last = cJSON_Parse(line);
        ct_json_get_uint53(last, "seq", &seq);
        if (!strcmp(argv[1], "resign")) {
            sealed = ct_publog_seal(fields_of(line), prev, &k, hash, &e);
            if (!sealed) return 1;
            fprintf(w, "%s\n", sealed);
            free(sealed);
            snprintf(prev, sizeof prev, "%s", hash);
        } else {
            fputs(line, w);
        }
    }
    if (!strcmp(argv[1], "append")) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "seq", (double)seq + 1);
        cJSON_AddStringToObject(r, "time", "2026-12-06T23:59:59.000Z");
        cJSON_AddStringToObject(r, "type", "shard_done");
        cJSON_AddStringToObject(r, "group", "forger");
        cJSON_AddStringToObject(r, "shard", "00000-forged");
        cJSON_AddNumberToObject(r, "epoch", 0);
        sealed = ct_publog_seal(r, ct_json_get_string(last, "hash"), &k, hash, &e);
        if (!sealed) return 1;
        fprintf(w, "%s\n", sealed);
        free(sealed);
    }
    free(line);
    cJSON_Delete(last);
    fclose(in);
    if (fclose(w) != 0 || rename(out, path) != 0) return 1;
    if (!strcmp(argv[1], "resign")) {
        ct_publog_head_t h;
        ct_err_t ignored = {0};
        if (ct_publog_head_read(head_path, &h, &ignored) != 0) return 1;
        h.seq = seq;
        snprintf(h.hash, sizeof h.hash, "%s", prev);
        if (ct_publog_head_write(head_path, &h, &k, &e) != 0) {
            fprintf(stderr, "publog_forge: %s\n", e.msg);
            return 1;
        }
    }
    return 0;
}
