/* harness.c — ct_tokenizer_harness: the C side of the reference comparison (reference.mjs). Loads
 * a tokenizer once and answers in one of three modes:
 *
 *   ct_tokenizer_harness encode [TOKENIZER]   stdin: records "<byte count>\n<bytes>\n"; stdout:
 *                                             one line per record, "<invalid bytes>:" and the ids
 *                                             separated by spaces
 *   ct_tokenizer_harness classes              stdout: 0x110000 bytes, ct_unicode_class of every
 *                                             code point, to check the table against node
 *   ct_tokenizer_harness version              stdout: the table's Unicode version
 *
 * Length-prefixed records carry any bytes (newlines, invalid UTF-8) unambiguously. Exit codes:
 * 0 done, 1 runtime failure, 2 bad usage or malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/tokenizer.h"
#include "cotrain/unicode.h"

static int encode_records(const char *name) {
    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    ct_encoder_t *enc = NULL;
    ct_ids_t ids = {0};
    char *buf = NULL;
    size_t cap = 0;
    int rc = ct_tokenizer_open(&tok, name, &e);
    if (rc == 0) rc = ct_encoder_create(&enc, tok, &e);
    for (unsigned long rec = 0; rc == 0; rec++) {
        unsigned long long n;
        int got = scanf("%llu", &n);
        if (got == EOF) break;
        if (got != 1 || getchar() != '\n') {
            fprintf(stderr, "harness: record %lu: expected \"<byte count>\\n\"\n", rec);
            rc = CT_EINVAL;
            break;
        }
        if (n + 1 > cap) {
            cap = (size_t)n + 1;
            char *p = realloc(buf, cap);
            if (!p) {
                rc = CT_ERR(&e, CT_ENOMEM, "record %lu: out of memory for %llu bytes", rec, n);
                break;
            }
            buf = p;
        }
        if (fread(buf, 1, (size_t)n, stdin) != n || getchar() != '\n') {
            fprintf(stderr, "harness: record %lu: truncated (%llu bytes announced)\n", rec, n);
            rc = CT_EINVAL;
            break;
        }
        size_t bad = 0;
        ids.n = 0;
        rc = ct_encode(enc, buf, (size_t)n, &ids, &bad, &e);
        if (rc < 0) break;
        printf("%zu:", bad);
        for (size_t i = 0; i < ids.n; i++)
            printf(i ? " %d" : "%d", (int)ids.ids[i]);
        putchar('\n');
    }
    if (rc < 0 && e.msg[0]) fprintf(stderr, "harness: %s\n", e.msg);
    free(buf);
    ct_ids_free(&ids);
    ct_encoder_destroy(&enc);
    ct_tokenizer_destroy(&tok);
    if (fflush(stdout) != 0) return 1;
    return rc < 0 ? ct_exit_code(rc) : 0;
}

static int dump_classes(void) {
    unsigned char *cls = malloc(0x110000);
    if (!cls) return 1;
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        cls[cp] = (unsigned char)ct_unicode_class(cp);
    int ok = fwrite(cls, 1, 0x110000, stdout) == 0x110000 && fflush(stdout) == 0;
    free(cls);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "encode") && argc <= 3)
        return encode_records(argc == 3 ? argv[2] : "gpt2");
    if (argc == 2 && !strcmp(argv[1], "classes")) return dump_classes();
    if (argc == 2 && !strcmp(argv[1], "version")) {
        printf("%s\n", ct_unicode_version());
        return 0;
    }
    fprintf(stderr, "usage: ct_tokenizer_harness encode [TOKENIZER] | classes | version\n");
    return 2;
}
