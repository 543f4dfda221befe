/* publog.h — the run's public log (DESIGN.md, "Public log"): one JSON record a line in
 * RUN_DIR/public/log.jsonl, hash-chained and Ed25519-signed by the coordinator's key, and the
 * signed head in RUN_DIR/public/run.json. Everything here is format: the coordinator writes with
 * it (coordinator/public.c), `cotrain verify` checks with it, neither needs anything else.
 *
 * A line is the canonical JSON (RFC 8785, ct_json_canonical) of a record: {seq (1, 2, ...),
 * time (UTC, "2026-12-06T23:30:00.123Z"), type, the type's fields, prev (the previous record's
 * hash; 64 zeros before the first), hash, sig}. hash = sha256 of the canonical JSON of the
 * record without hash and sig (prev included, so the records chain); sig = Ed25519 of the hash's
 * 64 lowercase hex characters, as 128 lowercase hex. Signed records hold no floats: a
 * non-integer goes as a string. run.json = {format, public_key (64 hex), fingerprint,
 * config_sha256, data_sha256, head {seq, hash}, sig} with sig over the canonical JSON of the rest:
 * a log cut short is told by the head, a copy re-signed with another key by the fingerprint. */
#ifndef COTRAIN_PUBLOG_H
#define COTRAIN_PUBLOG_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"

#define CT_PUBLOG_FORMAT "cotrain-public/1"

enum {
    CT_PUBLOG_FP = 17,    /* a key's fingerprint: 16 hex digits and a NUL */
    CT_PUBLOG_PK_HEX = 65 /* a public key as hex */
};

/* The coordinator's signing key. */
typedef struct ct_publog_key {
    unsigned char pk[32], sk[64];
} ct_publog_key_t;

/* The key at path (RUN_DIR/coordinator.key: the 64-byte secret, never under public/): read, or
 * made (mode 0600) when absent; *made (may be NULL) says which. Errors: CT_ECORRUPT (not a key:
 * wrong size), CT_EIO. */
int ct_publog_key_open(const char *path, ct_publog_key_t *k, int *made, ct_err_t *e);

/* A public key's fingerprint: the first 16 hex digits of the sha256 of its 32 bytes. */
void ct_publog_fingerprint(const unsigned char pk[32], char fp[CT_PUBLOG_FP]);

/* The time field for wall-clock seconds t. */
void ct_publog_time(double t, char out[32]);

/* Seals record rec (an object with seq, time, type and its fields; consumed) after the record
 * whose hash is prev ("" before the first): adds prev, hash and sig and returns the line
 * (canonical JSON, no newline, malloc'd); hash gets the record's hash. Errors: CT_EINVAL (rec
 * holds what a signed record may not), CT_ENOMEM. */
char *ct_publog_seal(cJSON *rec, const char *prev, const ct_publog_key_t *k,
                     char hash[CT_SHA256_HEX], ct_err_t *e);

/* Checks line[0..len) as the record after the one whose hash is prev ("" before the first),
 * signed by pk: canonical form, seq (expected *seq + 1), prev, hash and signature. On success
 * *seq and prev become the record's, and *out (may be NULL) gets the parsed record (the caller
 * deletes it). Errors: CT_ECORRUPT (what is wrong). */
int ct_publog_check(const char *line, size_t len, const unsigned char pk[32], int64_t *seq,
                    char prev[CT_SHA256_HEX], cJSON **out, ct_err_t *e);

/* The signed head of a log. */
typedef struct ct_publog_head {
    unsigned char pk[32];
    char config_sha256[CT_SHA256_HEX], data_sha256[CT_SHA256_HEX];
    int64_t seq;              /* the last record's (0: none yet) */
    char hash[CT_SHA256_HEX]; /* the last record's ("" when none) */
} ct_publog_head_t;

/* Writes run.json for h, signed by k (h->pk is taken from k), atomically. Errors: CT_EIO,
 * CT_ENOMEM. */
int ct_publog_head_write(const char *path, ct_publog_head_t *h, const ct_publog_key_t *k,
                         ct_err_t *e);

/* Reads run.json and checks its signature against the key it names. Errors: CT_ENOENT,
 * CT_ECORRUPT (what is wrong). */
int ct_publog_head_read(const char *path, ct_publog_head_t *h, ct_err_t *e);

#endif
