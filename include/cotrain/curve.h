/* curve.h — CURVE keys for the coordinator protocol (ZeroMQ's CurveZMQ: Curve25519, through
 * libsodium): key files, key ids, and the allow list a coordinator admits peers by.
 *
 * Files: `cotrain keygen PREFIX` writes PREFIX, the secret key (mode 0600), and PREFIX.pub, the
 * public key, each as 40 Z85 characters and a newline. An allow file lists public keys, one per
 * line (Z85), `#` comments and blank lines ignored. A key id is the first 16 hex digits of the
 * sha256 of the 32-byte public key: what logs and the public record name a peer by (never its
 * address). */
#ifndef COTRAIN_CURVE_H
#define COTRAIN_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

enum { CT_Z85_KEY = 41, CT_KEY_ID = 17 };

typedef struct ct_keypair {
    char pub[CT_Z85_KEY]; /* Z85 */
    char sec[CT_Z85_KEY]; /* Z85 */
} ct_keypair_t;

/* Makes a new key pair and writes PREFIX (the secret key, mode 0600) and PREFIX.pub; an existing
 * file is never overwritten. Errors: CT_EINVAL (a file exists: naming it), CT_EIO. */
int ct_curve_keygen(const char *prefix, ct_keypair_t *out, ct_err_t *e);

/* Reads the secret key file `path` (as keygen wrote it) and derives its public key. Errors:
 * CT_ENOENT, CT_ECORRUPT (not a key: naming the file), CT_EINVAL (readable by others: say
 * `chmod 600`). */
int ct_curve_load(const char *path, ct_keypair_t *out, ct_err_t *e);

/* A public key given as 40 Z85 characters, or the name of a file holding them (PREFIX.pub).
 * Errors: CT_ENOENT, CT_ECORRUPT. */
int ct_curve_public(const char *z85_or_path, char pub[CT_Z85_KEY], ct_err_t *e);

/* The key id of a 32-byte public key, or of its Z85 form. */
void ct_curve_key_id(const uint8_t key[32], char id[CT_KEY_ID]);
void ct_curve_key_id_z85(const char *z85, char id[CT_KEY_ID]);

/* An allow list: the public keys a coordinator admits. */
typedef struct ct_allow ct_allow_t;

/* Reads an allow file. Errors: CT_ENOENT, CT_ECORRUPT (a line that is not a key: naming the
 * line), CT_ENOMEM. */
int ct_allow_load(ct_allow_t **out, const char *path, ct_err_t *e);

/* 1 when the 32-byte key is on the list. */
int ct_allow_has(const ct_allow_t *a, const uint8_t key[32]);

/* Keys on the list. */
int ct_allow_count(const ct_allow_t *a);

/* Frees the list and sets *self_p to NULL; NULL-safe. */
void ct_allow_destroy(ct_allow_t **self_p);

#endif
