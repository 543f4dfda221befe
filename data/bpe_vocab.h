/* bpe_vocab.h — private to the tokenizer: GPT-2's byte-level BPE vocabulary and merge table as
 * bpe_vocab.c loads them from encoder.json and vocab.bpe, and the hashes both use. tokenizer.c
 * owns one and reads it; this module knows nothing of encoders (the dependency runs one way).
 * Not part of the public API (see cotrain/tokenizer.h). */
#ifndef COTRAIN_BPE_VOCAB_H
#define COTRAIN_BPE_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cotrain/err.h"

enum { CT_GPT2_VOCAB = 50257 };

/* One merge: the pair (a, b) of ids, key = a << 32 | b (CT_PAIR_EMPTY when the slot is free). */
typedef struct ct_pair_slot {
    uint64_t key;
    int32_t rank; /* line number in vocab.bpe after the version line: lower merges first */
    int32_t id;   /* the id of the merged token */
} ct_pair_slot_t;
#define CT_PAIR_EMPTY UINT64_MAX

/* The loaded vocabulary; read-only once loaded. */
typedef struct ct_bpe_vocab {
    int vocab, eot;
    int32_t byte_id[256];     /* the id of the one-byte token of each byte value */
    uint32_t *tok_off;        /* (vocab + 1) token t is tok_bytes[tok_off[t] .. tok_off[t + 1]) */
    uint8_t *tok_bytes;
    ct_pair_slot_t *pairs; /* (pair_mask + 1) open addressing, linear probing from
                              ct_mix64(key) & pair_mask */
    uint64_t pair_mask;
} ct_bpe_vocab_t;

/* Loads encoder.json and vocab.bpe from dir into the zeroed *v; on failure *v holds nothing
 * (freed). Errors: CT_ENOENT (a file is missing: says how to get it), CT_ECORRUPT (naming the
 * file and entry), CT_EIO, CT_ENOMEM. */
int ct_bpe_vocab_load(ct_bpe_vocab_t *v, const char *dir, ct_err_t *e);

/* Frees what *v holds and zeroes it. NULL-safe. */
void ct_bpe_vocab_free(ct_bpe_vocab_t *v);

static inline uint64_t ct_mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* A non-zero 64-bit hash of n bytes (not for security). */
static inline uint64_t ct_hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x100000001b3ull;
    }
    return ct_mix64(h) | 1;
}

static inline uint64_t ct_pair_key(int32_t a, int32_t b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

#endif
