/* publog.c — records of the public log: sealing, checking, the key and the signed head (see
 * publog.h).
 *
 * Why a hash chain and a signature on every record, and not only on the head: anyone may hold a
 * copy of any part of the log, and each record must stand on its own (who said it, and what came
 * before it) without the rest of the file. Why canonical JSON: the signed bytes must be the same
 * for every reader that parses and re-serialises a record, in any language. */
#include "cotrain/publog.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/fsutil.h"
#include "cotrain/json.h"

static const char GENESIS[] = "0000000000000000000000000000000000000000000000000000000000000000";

int ct_publog_key_open(const char *path, ct_publog_key_t *k, int *made, ct_err_t *e) {
    unsigned char buf[65];
    size_t len = 0;
    if (made) *made = 0;
    if (access(path, F_OK) == 0) {
        CT_TRY(ct_read_file_into(path, buf, sizeof buf, &len, e));
        if (len != sizeof k->sk)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s is not a coordinator key (%zu bytes, a key has 64): restore it "
                          "from a backup; a new key would break the run's signed log",
                          path, len);
        memcpy(k->sk, buf, sizeof k->sk);
        crypto_sign_ed25519_sk_to_pk(k->pk, k->sk);
        sodium_memzero(buf, sizeof buf);
        return 0;
    }
    crypto_sign_keypair(k->pk, k->sk);
    char tmp[CT_PATH_MAX];
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s.tmp", path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int rc = ct_write_all(fd, k->sk, sizeof k->sk, 0, tmp, e);
    close(fd);
    if (rc == 0) rc = ct_commit_file(tmp, path, e);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    if (made) *made = 1;
    return 0;
}

void ct_publog_fingerprint(const unsigned char pk[32], char fp[CT_PUBLOG_FP]) {
    char hex[CT_SHA256_HEX];
    ct_sha256_hex(pk, 32, hex);
    snprintf(fp, CT_PUBLOG_FP, "%.16s", hex);
}

void ct_publog_time(double t, char out[32]) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    int ms = (int)((t - (double)s) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 999) ms = 999;
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.20s.%03dZ", day, ms);
}

/* hash = sha256(canonical JSON of rec), rec holding neither hash nor sig. */
static int record_hash(const cJSON *rec, char hash[CT_SHA256_HEX], ct_err_t *e) {
    char *text = ct_json_canonical(rec, e);
    if (!text) return e->code ? e->code : CT_ENOMEM;
    ct_sha256_hex(text, strlen(text), hash);
    free(text);
    return 0;
}

char *ct_publog_seal(cJSON *rec, const char *prev, const ct_publog_key_t *k,
                     char hash[CT_SHA256_HEX], ct_err_t *e) {
    unsigned char sig[crypto_sign_BYTES];
    char sig_hex[2 * crypto_sign_BYTES + 1], *line = NULL;
    int rc = cJSON_AddStringToObject(rec, "prev", prev && prev[0] ? prev : GENESIS)
                 ? 0
                 : CT_ERR(e, CT_ENOMEM, "out of memory sealing a record");
    if (rc == 0) rc = record_hash(rec, hash, e);
    if (rc == 0) {
        crypto_sign_detached(sig, NULL, (const unsigned char *)hash, 64, k->sk);
        sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
        if (!cJSON_AddStringToObject(rec, "hash", hash) ||
            !cJSON_AddStringToObject(rec, "sig", sig_hex))
            rc = CT_ERR(e, CT_ENOMEM, "out of memory sealing a record");
    }
    if (rc == 0) line = ct_json_canonical(rec, e);
    cJSON_Delete(rec);
    return line;
}

int ct_publog_check(const char *line, size_t len, const unsigned char pk[32], int64_t *seq,
                    char prev[CT_SHA256_HEX], cJSON **out, ct_err_t *e) {
    const char *end = NULL;
    if (out) *out = NULL;
    cJSON *rec = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    int rc = 0;
    char *canon = NULL, want[CT_SHA256_HEX];
    int64_t s = -1;
    if (!cJSON_IsObject(rec) || end != line + len) {
        rc = CT_ERR(e, CT_ECORRUPT, "not one JSON object (a cut or edited line)");
        goto out;
    }
    if (!(canon = ct_json_canonical(rec, e)) || strlen(canon) != len || memcmp(canon, line, len)) {
        ct_err_clear(e);
        rc = CT_ERR(e, CT_ECORRUPT, "not in canonical form: the line was edited");
        goto out;
    }
    const char *p = ct_json_get_string(rec, "prev"), *h = ct_json_get_string(rec, "hash");
    const char *sg = ct_json_get_string(rec, "sig");
    if (!ct_json_get_uint53(rec, "seq", &s) || !ct_json_get_string(rec, "type") ||
        !ct_json_get_string(rec, "time") || !p || !h || !sg) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "a field of every record (seq, time, type, prev, hash, sig) "
                    "is missing or of the wrong type");
        goto out;
    }
    if (s != *seq + 1) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "seq %lld where %lld comes next: a record missing, repeated "
                    "or moved",
                    (long long)s, (long long)*seq + 1);
        goto out;
    }
    if (strcmp(p, prev[0] ? prev : GENESIS) != 0) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "prev %.16s... is not the previous record's hash %.16s...: "
                    "the chain is broken",
                    p, prev[0] ? prev : GENESIS);
        goto out;
    }
    unsigned char sig[crypto_sign_BYTES];
    size_t n = 0;
    if (strlen(sg) != 2 * crypto_sign_BYTES ||
        sodium_hex2bin(sig, sizeof sig, sg, strlen(sg), NULL, &n, NULL) != 0 || n != sizeof sig) {
        rc = CT_ERR(e, CT_ECORRUPT, "sig is not 128 hex digits");
        goto out;
    }
    cJSON *bare = cJSON_Duplicate(rec, 1);
    if (!bare) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory checking a record");
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(bare, "hash");
    cJSON_DeleteItemFromObjectCaseSensitive(bare, "sig");
    rc = record_hash(bare, want, e);
    cJSON_Delete(bare);
    if (rc == 0 && strcmp(want, h) != 0)
        rc = CT_ERR(e, CT_ECORRUPT,
                    "its hash is %.16s..., its content hashes to %.16s...: the "
                    "record was changed",
                    h, want);
    if (rc == 0 && crypto_sign_verify_detached(sig, (const unsigned char *)h, 64, pk) != 0)
        rc = CT_ERR(e, CT_ECORRUPT,
                    "the signature is not the run's key's (signed by another "
                    "key, or changed)");
out:
    free(canon);
    if (rc == 0) {
        *seq = s;
        snprintf(prev, CT_SHA256_HEX, "%s", ct_json_get_string(rec, "hash"));
        if (out) {
            *out = rec;
            rec = NULL;
        }
    }
    cJSON_Delete(rec);
    return rc;
}

/* run.json's fields without sig. */
static cJSON *head_json(const ct_publog_head_t *h) {
    char pk[CT_PUBLOG_PK_HEX], fp[CT_PUBLOG_FP];
    sodium_bin2hex(pk, sizeof pk, h->pk, sizeof h->pk);
    ct_publog_fingerprint(h->pk, fp);
    cJSON *o = cJSON_CreateObject(), *hd = cJSON_CreateObject();
    if (!o || !hd || !cJSON_AddNumberToObject(hd, "seq", (double)h->seq) ||
        !cJSON_AddStringToObject(hd, "hash", h->hash) ||
        !cJSON_AddStringToObject(o, "format", CT_PUBLOG_FORMAT) ||
        !cJSON_AddStringToObject(o, "public_key", pk) ||
        !cJSON_AddStringToObject(o, "fingerprint", fp) ||
        !cJSON_AddStringToObject(o, "config_sha256", h->config_sha256) ||
        !cJSON_AddStringToObject(o, "data_sha256", h->data_sha256) ||
        !cJSON_AddItemToObject(o, "head", hd)) {
        if (!cJSON_GetObjectItemCaseSensitive(o, "head")) cJSON_Delete(hd); /* not o's yet */
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int ct_publog_head_write(const char *path, ct_publog_head_t *h, const ct_publog_key_t *k,
                         ct_err_t *e) {
    memcpy(h->pk, k->pk, sizeof h->pk);
    cJSON *o = head_json(h);
    char *text = o ? ct_json_canonical(o, e) : NULL, sig_hex[2 * crypto_sign_BYTES + 1];
    unsigned char sig[crypto_sign_BYTES];
    int rc = text ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory writing %s", path);
    if (rc == 0) {
        crypto_sign_detached(sig, NULL, (const unsigned char *)text, strlen(text), k->sk);
        sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
        free(text);
        text = cJSON_AddStringToObject(o, "sig", sig_hex) ? ct_json_canonical(o, e) : NULL;
        if (!text) rc = CT_ERR(e, CT_ENOMEM, "out of memory writing %s", path);
    }
    if (rc == 0) {
        size_t n = strlen(text);
        text[n] = '\n'; /* the NUL's place: the file ends with a newline */
        rc = ct_write_file_atomic(path, text, n + 1, e);
    }
    free(text);
    cJSON_Delete(o);
    return rc;
}

int ct_publog_head_read(const char *path, ct_publog_head_t *h, ct_err_t *e) {
    char *text = NULL, *canon = NULL;
    size_t len = 0;
    CT_TRY(ct_read_file(path, &text, &len, e));
    cJSON *o = cJSON_Parse(text);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(o, "head");
    const char *fmt = ct_json_get_string(o, "format"), *pk = ct_json_get_string(o, "public_key");
    const char *c = ct_json_get_string(o, "config_sha256"),
               *d = ct_json_get_string(o, "data_sha256");
    const char *hh = ct_json_get_string(hd, "hash"), *sg = ct_json_get_string(o, "sig");
    unsigned char sig[crypto_sign_BYTES];
    size_t n = 0, m = 0;
    int rc = 0;
    memset(h, 0, sizeof *h);
    if (!cJSON_IsObject(o) || !fmt || !pk || !c || !d || !hh || !sg ||
        !ct_json_get_uint53(hd, "seq", &h->seq) || strlen(c) != 64 || strlen(d) != 64 ||
        strlen(hh) > 64 || sodium_hex2bin(h->pk, sizeof h->pk, pk, strlen(pk), NULL, &n, NULL) ||
        n != sizeof h->pk || sodium_hex2bin(sig, sizeof sig, sg, strlen(sg), NULL, &m, NULL) ||
        m != sizeof sig) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "%s is not a run.json of a public log (a field is missing or "
                    "malformed)",
                    path);
    } else if (strcmp(fmt, CT_PUBLOG_FORMAT) != 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s has format \"%s\"; this cotrain reads \"%s\"", path, fmt,
                    CT_PUBLOG_FORMAT);
    } else {
        snprintf(h->config_sha256, sizeof h->config_sha256, "%s", c);
        snprintf(h->data_sha256, sizeof h->data_sha256, "%s", d);
        snprintf(h->hash, sizeof h->hash, "%s", hh);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "sig");
        canon = ct_json_canonical(o, e);
        if (!canon)
            rc = CT_ERR(e, CT_ECORRUPT, "%s: %s", path, e->msg);
        else if (crypto_sign_verify_detached(sig, (const unsigned char *)canon, strlen(canon),
                                             h->pk) != 0)
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s: the signature on the head is not its key's (the "
                        "file was changed)",
                        path);
    }
    free(canon);
    free(text);
    cJSON_Delete(o);
    return rc;
}
