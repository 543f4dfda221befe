/* hash.h — SHA-256 of buffers, streams and files as lowercase hex, and a fast 64-bit fingerprint. */
#ifndef COTRAIN_HASH_H
#define COTRAIN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

enum { CT_SHA256_BYTES = 32, CT_SHA256_HEX = 65 /* 64 hex digits + NUL */ };

/* Initialises libsodium; call once before any other function here. Returns 0 or CT_ESTATE. */
int ct_hash_init(ct_err_t *e);

/* 1 when s is exactly 64 lowercase hex digits (a sha256 as cotrain writes it), else 0. */
int ct_sha256_hex_valid(const char *s);

/* hex receives 64 lowercase hex digits and a NUL. */
void ct_sha256_hex(const void *data, size_t n, char hex[CT_SHA256_HEX]);

/* Streaming SHA-256: begin (NULL when out of memory), update any number of times, end (frees it,
 * sets *h_p to NULL). */
typedef struct ct_sha256 ct_sha256_t;
ct_sha256_t *ct_sha256_begin(void);
void ct_sha256_update(ct_sha256_t *h, const void *data, size_t n);
void ct_sha256_end(ct_sha256_t **h_p, char hex[CT_SHA256_HEX]);
/* The digest of what was updated so far, the stream going on: 0, or -1 out of memory. */
int ct_sha256_so_far(const ct_sha256_t *h, char hex[CT_SHA256_HEX]);

/* sha256 (hex) of the file at `path`, read in 1 MiB pieces. Errors: CT_ENOENT (cannot open),
 * CT_EIO (read error), naming the file. */
int ct_sha256_file(const char *path, char hex[CT_SHA256_HEX], ct_err_t *e);

/* A fast, stable 64-bit fingerprint of a buffer (not for security): four multiply-xorshift lanes
 * over 64-bit little-endian words, then a finaliser over the lanes and the tail bytes, so it runs
 * near memory bandwidth. Used for weight hashes (param_hash); tests/param_hash.py defines it for
 * outsiders and recomputes a checkpoint's param_hash from model.h5 alone. */
uint64_t ct_hash64(const void *data, size_t n);

#endif
