/* hash.c — SHA-256 via libsodium, and the cheap FNV-1a fingerprint used for weight hashes. */
#include "cotrain/hash.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ct_hash_init(ct_err_t *e) {
    if (sodium_init() < 0)
        return CT_ERR(e, CT_ESTATE, "libsodium failed to initialise (is /dev/urandom readable?)");
    return 0;
}

void ct_sha256_hex(const void *data, size_t n, char hex[CT_SHA256_HEX]) {
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, n);
    sodium_bin2hex(hex, CT_SHA256_HEX, d, sizeof d);
}

int ct_sha256_file(const char *path, char hex[CT_SHA256_HEX], ct_err_t *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return CT_ERR(e, CT_ENOENT, "cannot open %s: %s", path, strerror(errno));
    enum { PIECE = 1 << 20 };
    unsigned char *buf = malloc(PIECE), d[crypto_hash_sha256_BYTES];
    if (!buf) {
        fclose(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", path);
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    size_t n;
    while ((n = fread(buf, 1, PIECE, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    int rc = ferror(f) ? CT_ERR(e, CT_EIO, "reading %s failed", path) : 0;
    fclose(f);
    free(buf);
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(hex, CT_SHA256_HEX, d, sizeof d);
    return rc;
}

static uint64_t mix(uint64_t h) {
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

uint64_t ct_hash64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t lane[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL,
                        0x082efa98ec4e6c89ULL};
    size_t words = n / 8, i = 0;
    for (; i + 4 <= words; i += 4)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, p + 8 * (i + j), 8);
            lane[j] = (lane[j] ^ w) * 0x9e3779b97f4a7c15ULL;
            lane[j] ^= lane[j] >> 31;
        }
    uint64_t h = (uint64_t)n;
    for (int j = 0; j < 4; j++) h = mix(h ^ lane[j]);
    for (size_t k = 8 * i; k < n; k++) h = mix(h ^ p[k]);
    return h;
}
