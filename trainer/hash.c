/* hash.c — SHA-256 via libsodium, and the cheap FNV-1a fingerprint used for weight hashes. */
#include "cotrain/hash.h"

#include <sodium.h>

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

uint64_t ct_fnv1a64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}
