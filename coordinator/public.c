/* public.c — public/log.jsonl and run.json from the ledger's records (see public.h). */
#include "cotrain/public.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"

enum { HEAD_EVERY_S = 1 };

struct ct_public {
    ct_ledger_t *l;
    const ct_log_t *lg;
    ct_publog_key_t key;
    char log_path[CT_PATH_MAX], head_path[CT_PATH_MAX];
    int fd;                   /* log.jsonl */
    int64_t size;             /* its bytes that are lines of the ledger's records */
    int64_t seq;              /* the last record in it */
    char prev[CT_SHA256_HEX]; /* that record's hash ("" before the first) */
    ct_publog_head_t head;    /* run.json's, as last written */
    double head_at;
    /* while opening: the file's lines, compared with the records as they are derived */
    FILE *old;
    int64_t kept;
};

/* The line of record seq, sealed after p->prev; its hash in hash. */
static char *derive(ct_public_t *p, int64_t seq, double at, const char *type, const char *body,
                    char hash[CT_SHA256_HEX], ct_err_t *e) {
    char when[32];
    ct_publog_time(at, when);
    cJSON *rec = cJSON_Parse(body);
    if (!cJSON_IsObject(rec)) {
        cJSON_Delete(rec);
        CT_ERR(e, CT_ECORRUPT, "the ledger's record %lld is not a JSON object", (long long)seq);
        return NULL;
    }
    if (!cJSON_AddNumberToObject(rec, "seq", (double)seq) ||
        !cJSON_AddStringToObject(rec, "time", when) ||
        !cJSON_AddStringToObject(rec, "type", type)) {
        cJSON_Delete(rec);
        CT_ERR(e, CT_ENOMEM, "out of memory writing the public log");
        return NULL;
    }
    return ct_publog_seal(rec, p->prev, &p->key, hash, e);
}

/* ct_ledger_record_fn: the record's line into the file, after what is kept. While opening, a
 * line already there that matches is kept; from the first that does not, the rest is written. */
static int append(void *arg, int64_t seq, double at, const char *type, const char *body,
                  ct_err_t *e) {
    ct_public_t *p = arg;
    char hash[CT_SHA256_HEX], *line = derive(p, seq, at, type, body, hash, e);
    if (!line) return e->code ? e->code : CT_ENOMEM;
    size_t n = strlen(line);
    int rc = 0;
    if (p->old) {
        char *have = NULL;
        size_t cap = 0;
        ssize_t got = getline(&have, &cap, p->old);
        int same = got == (ssize_t)n + 1 && !memcmp(have, line, n) && have[n] == '\n';
        free(have);
        if (same) {
            p->kept++;
        } else { /* from here on the file is written again */
            fclose(p->old);
            p->old = NULL;
            if (ftruncate(p->fd, (off_t)p->size) != 0)
                rc = CT_ERR(e, CT_EIO, "cannot cut %s at byte %lld: %s", p->log_path,
                            (long long)p->size, strerror(errno));
        }
    }
    if (rc == 0 && !p->old) {
        line[n] = '\n'; /* the NUL's place */
        rc = ct_write_all(p->fd, line, n + 1, p->size, p->log_path, e);
    }
    free(line);
    if (rc != 0) return rc;
    p->size += (int64_t)n + 1;
    p->seq = seq;
    snprintf(p->prev, sizeof p->prev, "%s", hash);
    return 0;
}

/* run.json for the head written so far, after log.jsonl reached the disk. */
static int write_head(ct_public_t *p, ct_err_t *e) {
    if (fsync(p->fd) != 0)
        return CT_ERR(e, CT_EIO, "cannot sync %s: %s", p->log_path, strerror(errno));
    p->head.seq = p->seq;
    snprintf(p->head.hash, sizeof p->head.hash, "%s", p->prev);
    CT_TRY(ct_publog_head_write(p->head_path, &p->head, &p->key, e));
    p->head_at = ct_now_s();
    return 0;
}

int ct_public_open(ct_public_t **out, const char *run_dir, ct_ledger_t *l,
                   const char *config_sha256, const char *data_sha256, const ct_log_t *lg,
                   ct_err_t *e) {
    int rc = 0, made = 0;
    ct_public_t *p = NULL;
    char dir[CT_PATH_MAX], key[CT_PATH_MAX];
    *out = NULL;
    CT_ALLOC(e, p, 1, fail);
    p->fd = -1;
    p->l = l;
    p->lg = lg;
    snprintf(p->head.config_sha256, sizeof p->head.config_sha256, "%s", config_sha256);
    snprintf(p->head.data_sha256, sizeof p->head.data_sha256, "%s", data_sha256);
    CT_TRY_GOTO(ct_path_join(key, sizeof key, run_dir, "coordinator.key", e), fail);
    CT_TRY_GOTO(ct_publog_key_open(key, &p->key, &made, e), fail);
    CT_TRY_GOTO(ct_path_join(dir, sizeof dir, run_dir, "public", e), fail);
    CT_TRY_GOTO(ct_mkdirs(dir, e), fail);
    CT_TRY_GOTO(ct_path_join(p->log_path, sizeof p->log_path, dir, "log.jsonl", e), fail);
    CT_TRY_GOTO(ct_path_join(p->head_path, sizeof p->head_path, dir, "run.json", e), fail);
    p->fd = open(p->log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        rc = CT_ERR(e, CT_EIO, "cannot open %s: %s", p->log_path, strerror(errno));
        goto fail;
    }
    struct stat st;
    int64_t had = fstat(p->fd, &st) == 0 ? (int64_t)st.st_size : 0;
    p->old = fopen(p->log_path, "r");
    CT_TRY_GOTO(ct_ledger_records(l, 0, INT64_MAX, append, p, e), fail);
    int longer = fstat(p->fd, &st) == 0 && st.st_size > p->size;
    if (longer && ftruncate(p->fd, (off_t)p->size) != 0) {
        rc = CT_ERR(e, CT_EIO, "cannot cut %s at byte %lld: %s", p->log_path, (long long)p->size,
                    strerror(errno));
        goto fail;
    }
    if (p->old) fclose(p->old);
    p->old = NULL;
    char fp[CT_PUBLOG_FP];
    ct_publog_fingerprint(p->key.pk, fp);
    if (had > 0 && p->kept < p->seq)
        ct_log(lg, CT_LOG_WARN,
               "public log %s: %lld line(s) matched the ledger, the %lld after them were written "
               "again from it (cut short by a crash, or edited)",
               p->log_path, (long long)p->kept, (long long)(p->seq - p->kept));
    if (longer)
        ct_log(lg, CT_LOG_WARN, "public log %s held lines the ledger does not: cut after seq %lld",
               p->log_path, (long long)p->seq);
    ct_log(lg, CT_LOG_INFO, "public log %s: %lld record(s), signed by key %s%s", p->log_path,
           (long long)p->seq, fp, made ? " (new: RUN_DIR/coordinator.key, keep it secret)" : "");
    CT_TRY_GOTO(write_head(p, e), fail);
    *out = p;
    return 0;
fail:
    ct_public_close(&p);
    return rc;
}

int ct_public_sync(ct_public_t *p, int max, int force, int *behind, ct_err_t *e) {
    int64_t before = p->seq;
    CT_TRY(ct_ledger_records(p->l, p->seq, max > 0 ? max : INT64_MAX, append, p, e));
    if (behind) *behind = max > 0 && p->seq - before == max;
    if (p->head.seq != p->seq && (force || ct_now_s() - p->head_at >= HEAD_EVERY_S))
        CT_TRY(write_head(p, e));
    return 0;
}

const ct_publog_key_t *ct_public_key(const ct_public_t *p) {
    return &p->key;
}

void ct_public_close(ct_public_t **self_p) {
    ct_public_t *p = *self_p;
    if (!p) return;
    if (p->fd >= 0 && !p->old) {
        ct_err_t e = {0};
        if (ct_public_sync(p, 0, 1, NULL, &e) != 0)
            ct_log(p->lg, CT_LOG_WARN, "public log: %s (it is derived again at the next start)",
                   e.msg);
    }
    if (p->old) fclose(p->old);
    if (p->fd >= 0) close(p->fd);
    sodium_memzero(&p->key, sizeof p->key);
    free(p);
    *self_p = NULL;
}
