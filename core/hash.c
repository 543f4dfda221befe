/* hash.c — SHA-256 (OpenSSL's libcrypto), and ct_hash64, the cheap fingerprint behind metrics'
 * param_hash (four multiply-xorshift lanes, then a SplitMix-style finaliser; tests/param_hash.py
 * is its reference definition for outsiders). */
#include "cotrain/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cotrain/fault.h"

int ct_sha256_hex_valid(const char *s) {
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int ct_hash_init(ct_err_t *e) {
    if (sodium_init() < 0)
        return CT_ERR(e, CT_ESTATE, "libsodium failed to initialise (is /dev/urandom readable?)");
    return 0;
}

/* SHA-256 comes from OpenSSL's libcrypto: it uses the CPU's SHA extensions where they exist
 * (~1.7 GB/s on this class of machine, 5x libsodium's portable code), and checkpoints and shards
 * hash every byte they write and read. */
static void to_hex(const unsigned char d[CT_SHA256_BYTES], char hex[CT_SHA256_HEX]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < CT_SHA256_BYTES; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

void ct_sha256_hex(const void *data, size_t n, char hex[CT_SHA256_HEX]) {
    unsigned char d[CT_SHA256_BYTES];
    EVP_Digest(data, n, d, NULL, EVP_sha256(), NULL);
    to_hex(d, hex);
}

struct ct_sha256 {
    EVP_MD_CTX *ctx;
};

ct_sha256_t *ct_sha256_begin(void) {
    ct_sha256_t *h = ct_fault_malloc(sizeof *h);
    if (!h) return NULL;
    if (!(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void ct_sha256_update(ct_sha256_t *h, const void *data, size_t n) {
    EVP_DigestUpdate(h->ctx, data, n);
}

int ct_sha256_so_far(const ct_sha256_t *h, char hex[CT_SHA256_HEX]) {
    unsigned char d[CT_SHA256_BYTES];
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    int ok = copy && EVP_MD_CTX_copy_ex(copy, h->ctx) == 1 && EVP_DigestFinal_ex(copy, d, NULL) == 1;
    EVP_MD_CTX_free(copy);
    if (ok) to_hex(d, hex);
    return ok ? 0 : -1;
}

void ct_sha256_end(ct_sha256_t **h_p, char hex[CT_SHA256_HEX]) {
    ct_sha256_t *h = *h_p;
    unsigned char d[CT_SHA256_BYTES];
    EVP_DigestFinal_ex(h->ctx, d, NULL);
    to_hex(d, hex);
    EVP_MD_CTX_free(h->ctx);
    free(h);
    *h_p = NULL;
}

int ct_sha256_file(const char *path, char hex[CT_SHA256_HEX], ct_err_t *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return CT_ERR(e, CT_ENOENT, "cannot open %s: %s", path, strerror(errno));
    enum { PIECE = 4 << 20 };
    unsigned char *buf = ct_fault_malloc(PIECE);
    ct_sha256_t *h = ct_sha256_begin();
    int rc = 0;
    if (!buf || !h) rc = CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", path);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    off_t at = 0;
    for (ssize_t r; rc == 0 && (r = read(fd, buf, PIECE)) != 0;) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = CT_ERR(e, CT_EIO, "reading %s failed: %s", path, strerror(errno));
            break;
        }
        /* Ask for the next pieces now, so the disk reads them while this one is hashed
           (the kernel's own readahead window is far smaller than a piece). */
        at += r;
        posix_fadvise(fd, at, 2 * PIECE, POSIX_FADV_WILLNEED);
        ct_sha256_update(h, buf, (size_t)r);
    }
    close(fd);
    free(buf);
    if (h) ct_sha256_end(&h, hex);
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
