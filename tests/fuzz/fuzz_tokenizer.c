/* fuzz_tokenizer.c — libFuzzer target: any bytes as text to `cotrain prep` / `cotrain tokenize`
 * with the gpt2 tokenizer (data/tokenizer.c: pre-tokenizer, byte-level BPE, its cache). Checks
 * beyond "does not crash": every id is in the vocabulary, decoding gives the bytes back exactly
 * (valid UTF-8 or not), encoding again with the cache warm gives the same ids, and the invalid
 * bytes counted match a straight recount of the strict UTF-8 rules. Needs the GPT-2 files
 * (scripts/setup; or COTRAIN_GPT2_DIR). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/tokenizer.h"

/* The bytes of s[0..n) that are not part of a strict UTF-8 sequence (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t invalid_bytes(const uint8_t *s, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        uint8_t lo = 0x80, hi = 0xbf; /* the second byte's range */
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = k == 1 ? s[i + 1] >= lo && s[i + 1] <= hi : (s[i + k] & 0xc0) == 0x80;
        if (ok) {
            i += len;
        } else {
            bad++;
            i++;
        }
    }
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ct_tokenizer_t *tok;
    static ct_encoder_t *enc;
    ct_err_t e = {0};
    if (!tok && (ct_tokenizer_open(&tok, "gpt2", &e) != 0 || ct_encoder_create(&enc, tok, &e) != 0))
        abort(); /* no GPT-2 files: run scripts/setup */
    ct_ids_t a = {0}, b = {0};
    size_t bad = 0, bad2 = 0, len = 0, cap = 0;
    char *back = NULL;
    if (ct_encode(enc, (const char *)data, size, &a, &bad, &e) != 0) abort();
    for (size_t i = 0; i < a.n; i++)
        if (a.ids[i] < 0 || a.ids[i] >= ct_tokenizer_vocab_size(tok)) __builtin_trap();
    if (ct_decode(tok, a.ids, a.n, &back, &len, &cap, &e) != 0) __builtin_trap();
    if (len != size || (size && memcmp(back, data, size) != 0)) __builtin_trap();
    if (ct_encode(enc, (const char *)data, size, &b, &bad2, &e) != 0) abort();
    if (b.n != a.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) != 0)) __builtin_trap();
    if (bad != invalid_bytes(data, size) || bad2 != bad) __builtin_trap();
    free(back);
    ct_ids_free(&a);
    ct_ids_free(&b);
    return 0;
}
