/* curve.c — CURVE key files, key ids and allow lists (see curve.h). */
#include "cotrain/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cotrain/fsutil.h"
#include "cotrain/hash.h"

struct ct_allow {
    uint8_t (*keys)[32];
    int n;
};

/* 1 when s[0..40) are Z85 characters making a 32-byte key. */
static int z85_key(const char *s, uint8_t out[32]) {
    char buf[CT_Z85_KEY];
    if (strlen(s) < 40) return 0;
    memcpy(buf, s, 40);
    buf[40] = '\0';
    return zmq_z85_decode(out, buf) != NULL;
}

/* Writes text to path, created new with `mode` (never replacing a file). */
static int write_new(const char *path, const char *text, mode_t mode, ct_err_t *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EEXIST ? CT_ERR(e, CT_EINVAL,
                                        "%s exists: keys are never overwritten; "
                                        "choose another PREFIX or remove it",
                                        path)
                               : CT_ERR(e, CT_EIO, "cannot create %s: %s", path, strerror(errno));
    int rc = ct_write_all(fd, text, strlen(text), -1, path, e);
    if (rc == 0 && fsync(fd) != 0) rc = CT_ERR(e, CT_EIO, "fsync of %s failed", path);
    close(fd);
    if (rc != 0) unlink(path);
    return rc;
}

int ct_curve_keygen(const char *prefix, ct_keypair_t *out, ct_err_t *e) {
    char pub_path[CT_PATH_MAX], line[CT_Z85_KEY + 2];
    CT_TRY(ct_path_fmt(pub_path, sizeof pub_path, e, "%s.pub", prefix));
    if (access(pub_path, F_OK) == 0)
        return CT_ERR(e, CT_EINVAL,
                      "%s exists: keys are never overwritten; choose another "
                      "PREFIX or remove it",
                      pub_path);
    if (zmq_curve_keypair(out->pub, out->sec) != 0)
        return CT_ERR(e, CT_EINVAL,
                      "this ZeroMQ has no CURVE support (built without "
                      "libsodium?): %s",
                      zmq_strerror(zmq_errno()));
    snprintf(line, sizeof line, "%s\n", out->sec);
    CT_TRY(write_new(prefix, line, 0600, e));
    snprintf(line, sizeof line, "%s\n", out->pub);
    int rc = write_new(pub_path, line, 0644, e);
    if (rc != 0) unlink(prefix);
    return rc;
}

/* The first line of a small file, without its newline, into out[n]. */
static int first_line(const char *path, char *out, size_t n, ct_err_t *e) {
    char *text = NULL;
    size_t len = 0;
    CT_TRY(ct_read_file(path, &text, &len, e));
    size_t k = strcspn(text, "\r\n");
    int rc = k < n ? 0
                   : CT_ERR(e, CT_ECORRUPT,
                            "%s is not a key file (a line of 40 Z85 "
                            "characters)",
                            path);
    if (rc == 0) {
        memcpy(out, text, k);
        out[k] = '\0';
    }
    free(text);
    return rc;
}

int ct_curve_load(const char *path, ct_keypair_t *out, ct_err_t *e) {
    struct stat st;
    if (stat(path, &st) != 0)
        return CT_ERR(e, CT_ENOENT, "no key file %s: make one with `cotrain keygen %s`", path,
                      path);
    if (st.st_mode & 077)
        return CT_ERR(e, CT_EINVAL, "the secret key %s is readable by others: chmod 600 %s", path,
                      path);
    uint8_t key[32];
    CT_TRY(first_line(path, out->sec, sizeof out->sec, e));
    if (strlen(out->sec) != 40 || !z85_key(out->sec, key) ||
        zmq_curve_public(out->pub, out->sec) != 0)
        return CT_ERR(e, CT_ECORRUPT, "%s is not a secret key as `cotrain keygen` writes it", path);
    return 0;
}

int ct_curve_public(const char *z85_or_path, char pub[CT_Z85_KEY], ct_err_t *e) {
    uint8_t key[32];
    if (strlen(z85_or_path) == 40 && z85_key(z85_or_path, key)) {
        memcpy(pub, z85_or_path, CT_Z85_KEY);
        return 0;
    }
    CT_TRY(first_line(z85_or_path, pub, CT_Z85_KEY, e));
    if (strlen(pub) != 40 || !z85_key(pub, key))
        return CT_ERR(e, CT_ECORRUPT,
                      "%s is neither a public key (40 Z85 characters) nor a "
                      "file holding one",
                      z85_or_path);
    return 0;
}

void ct_curve_key_id(const uint8_t key[32], char id[CT_KEY_ID]) {
    char hex[CT_SHA256_HEX];
    ct_sha256_hex(key, 32, hex);
    memcpy(id, hex, CT_KEY_ID - 1);
    id[CT_KEY_ID - 1] = '\0';
}

void ct_curve_key_id_z85(const char *z85, char id[CT_KEY_ID]) {
    uint8_t key[32] = {0};
    z85_key(z85, key);
    ct_curve_key_id(key, id);
}

int ct_allow_load(ct_allow_t **out, const char *path, ct_err_t *e) {
    char *text = NULL;
    size_t len = 0;
    int rc = 0, line = 0;
    ct_allow_t *a = NULL;
    *out = NULL;
    CT_TRY(ct_read_file(path, &text, &len, e));
    CT_ALLOC(e, a, 1, out);
    CT_ALLOC(e, a->keys, len / 40 + 1, out);
    for (char *p = text, *next; p < text + len; p = next) {
        line++;
        size_t k = strcspn(p, "\n");
        next = p + k + (p[k] == '\n');
        p[k] = '\0';
        if (k && p[k - 1] == '\r') p[--k] = '\0';
        while (*p == ' ' || *p == '\t')
            p++, k--;
        if (!*p || *p == '#') continue;
        if (strlen(p) != 40 || !z85_key(p, a->keys[a->n])) {
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s line %d is not a public key (40 Z85 characters, as in "
                        "a PREFIX.pub `cotrain keygen` wrote)",
                        path, line);
            goto out;
        }
        a->n++;
    }
    *out = a;
    a = NULL;
out:
    free(text);
    ct_allow_destroy(&a);
    return rc;
}

int ct_allow_has(const ct_allow_t *a, const uint8_t key[32]) {
    for (int i = 0; i < a->n; i++)
        if (!memcmp(a->keys[i], key, 32)) return 1;
    return 0;
}

int ct_allow_count(const ct_allow_t *a) {
    return a->n;
}

void ct_allow_destroy(ct_allow_t **self_p) {
    ct_allow_t *a = *self_p;
    if (!a) return;
    free(a->keys);
    free(a);
    *self_p = NULL;
}
