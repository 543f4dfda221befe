/* public.c — public/log.jsonl and run.json from the ledger's records (see public.h).
 *
 * Why a thread of its own, with its own connection to the ledger: sealing a record (canonical
 * JSON, SHA-256, an Ed25519 signature: ~25 us) costs as much as the transaction that made it, and
 * the thread that answers requests is the coordinator's bottleneck. Off that thread, a busy
 * coordinator's replies wait for no signature, and the log keeps up on a core the request loop
 * leaves idle while it waits for the disk. */
#include "cotrain/public.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/thread.h"

#define MARK_FORMAT "cotrain-public-mark/1"

enum {
    HEAD_EVERY_S = 1,
    ROUND = 1024,       /* records a round of the writer: run.json follows between rounds */
    WAKE_MS = 1000,     /* the writer wakes this often unpoked (run.json after the last poke) */
    WRITER_NICE = 10,   /* the writer's priority below the request loop's */
    TAIL = 100,         /* log lines in status.json */
    PLOT_POINTS = 5000, /* metrics lines in data.js, at most about: a long run's are thinned */
    GROUPS_SHOWN = 100  /* the groups status.json lists: those heard from last */
};

/* The dashboard's files, copied from the build into public/. */
static const char *const WEB_FILES[] = {"index.html", "dashboard.js", "dashboard.css",
                                        "uPlot.iife.min.js", "uPlot.min.css"};

struct ct_public {
    ct_ledger_t *l; /* a reader of the coordinator's ledger, this object's own */
    const ct_log_t *lg;
    /* the writer's thread */
    pthread_t thread;
    int running, poked, failing;
    int64_t shown; /* the records known to be on disk: the writer goes no further */
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    ct_publog_key_t key;
    char log_path[CT_PATH_MAX], head_path[CT_PATH_MAX];
    int fd;                   /* log.jsonl */
    int64_t size;             /* its bytes that are lines of the ledger's records */
    int64_t seq;              /* the last record in it */
    char prev[CT_SHA256_HEX]; /* that record's hash ("" before the first) */
    ct_publog_head_t head;    /* run.json's, as last written */
    double head_at;
    char status_path[CT_PATH_MAX], data_path[CT_PATH_MAX], metrics_path[CT_PATH_MAX];
    cJSON *config;          /* the run's config, for the dashboard */
    int64_t shards, tokens; /* the data trained on */
    int held_out;
    char *tail[TAIL]; /* the last lines written, a ring */
    int64_t n_tail;
    /* metrics.jsonl, written from the ledger's metrics lines and kept here as well (data.js
       holds them): its bytes, and how many of them data.js was last written with */
    char *metrics;
    size_t metrics_len, metrics_cap, metrics_shown;
    int mfd;
    int64_t mseq, mgen;
    /* while opening: the file's lines, compared with the records as they are derived */
    FILE *old;
    int64_t kept;
    /* the digest of log.jsonl's bytes so far, and RUN_DIR/public.mark: after each head, the
       seq, size and digest the synced file had, so a restart keeps that prefix without deriving
       (and signing) every record again */
    ct_sha256_t *digest;
    char mark_path[CT_PATH_MAX];
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

/* The line (malloc'd, taken) into the ring of the last TAIL lines. */
static void remember(ct_public_t *p, char *line) {
    free(p->tail[p->n_tail % TAIL]);
    p->tail[p->n_tail++ % TAIL] = line;
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
    if (rc != 0) {
        free(line);
        return rc;
    }
    line[n] = '\n';
    ct_sha256_update(p->digest, line, n + 1);
    line[n] = '\0';
    remember(p, line);
    p->size += (int64_t)n + 1;
    p->seq = seq;
    snprintf(p->prev, sizeof p->prev, "%s", hash);
    return 0;
}

/* ct_ledger_metrics_fn: one metrics line onto metrics.jsonl (and its copy in memory). */
static int append_metric(void *arg, int64_t seq, const char *line, ct_err_t *e) {
    ct_public_t *p = arg;
    size_t n = strlen(line);
    if (p->metrics_len + n + 2 > p->metrics_cap) {
        size_t cap = p->metrics_cap ? p->metrics_cap : 1 << 16;
        while (cap < p->metrics_len + n + 2)
            cap *= 2;
        char *q = realloc(p->metrics, cap);
        if (!q) return CT_ERR(e, CT_ENOMEM, "out of memory writing the metrics");
        p->metrics = q;
        p->metrics_cap = cap;
    }
    char *at = p->metrics + p->metrics_len;
    memcpy(at, line, n);
    at[n] = '\n';
    at[n + 1] = '\0';
    CT_TRY(ct_write_all(p->mfd, at, n + 1, (int64_t)p->metrics_len, p->metrics_path, e));
    p->metrics_len += n + 1;
    p->mseq = seq;
    return 0;
}

/* metrics.jsonl brought up to the ledger's metrics lines (written anew when some were dropped). */
static int sync_metrics(ct_public_t *p, int max, ct_err_t *e) {
    int64_t gen;
    CT_TRY(ct_ledger_metrics_gen(p->l, &gen, e));
    if (gen != p->mgen || p->mseq < 0) {
        if (ftruncate(p->mfd, 0) != 0)
            return CT_ERR(e, CT_EIO, "cannot cut %s: %s", p->metrics_path, strerror(errno));
        p->metrics_len = 0;
        p->mseq = 0;
        p->mgen = gen;
    }
    return ct_ledger_metrics(p->l, p->mseq, max > 0 ? max : INT64_MAX, append_metric, p, e);
}

/* status.json: what the dashboard shows besides the metrics. */
static cJSON *status(ct_public_t *p, ct_err_t *e) {
    char pk[CT_PUBLOG_PK_HEX], fp[CT_PUBLOG_FP], when[32];
    sodium_bin2hex(pk, sizeof pk, p->key.pk, sizeof p->key.pk);
    ct_publog_fingerprint(p->key.pk, fp);
    ct_publog_time(ct_wall_s(), when);
    ct_ckpt_entry_t *ck = NULL;
    ct_group_info_t *g = NULL;
    ct_ledger_counts_t c;
    int n_ck = 0, n_g = 0;
    if (ct_ledger_checkpoints(p->l, &ck, &n_ck, e) ||
        ct_ledger_groups(p->l, GROUPS_SHOWN, &g, &n_g, e) || ct_ledger_counts(p->l, &c, e)) {
        free(ck);
        free(g);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject(), *run = cJSON_AddObjectToObject(o, "run");
    cJSON *data = cJSON_AddObjectToObject(o, "data"), *counts = cJSON_AddObjectToObject(o, "units");
    cJSON *cks = cJSON_AddArrayToObject(o, "checkpoints"),
          *gs = cJSON_AddArrayToObject(o, "groups");
    cJSON *log = cJSON_AddArrayToObject(o, "log");
    int ok = o && run && data && counts && cks && gs && log &&
             cJSON_AddStringToObject(o, "updated", when) &&
             ct_json_add_owned(o, "config", cJSON_Duplicate(p->config, 1)) &&
             cJSON_AddStringToObject(run, "fingerprint", fp) &&
             cJSON_AddStringToObject(run, "public_key", pk) &&
             cJSON_AddStringToObject(run, "config_sha256", p->head.config_sha256) &&
             cJSON_AddStringToObject(run, "data_sha256", p->head.data_sha256) &&
             cJSON_AddNumberToObject(run, "head_seq", (double)p->seq) &&
             cJSON_AddStringToObject(run, "head_hash", p->prev) &&
             cJSON_AddNumberToObject(data, "shards", (double)p->shards) &&
             cJSON_AddNumberToObject(data, "held_out", p->held_out) &&
             cJSON_AddNumberToObject(data, "tokens", (double)p->tokens) &&
             cJSON_AddNumberToObject(counts, "available", (double)c.available) &&
             cJSON_AddNumberToObject(counts, "leased", (double)c.leased) &&
             cJSON_AddNumberToObject(counts, "done", (double)c.done) &&
             cJSON_AddNumberToObject(counts, "committed", (double)c.committed) &&
             cJSON_AddNumberToObject(counts, "epochs", (double)c.epochs);
    for (int i = 0; ok && i < n_ck; i++) {
        cJSON *x = cJSON_CreateObject();
        ct_publog_time(ck[i].at, when);
        ok = x && cJSON_AddItemToArray(cks, x) &&
             cJSON_AddNumberToObject(x, "step", (double)ck[i].step) &&
             cJSON_AddStringToObject(x, "id", ck[i].id) &&
             cJSON_AddStringToObject(x, "group", ck[i].group) &&
             cJSON_AddStringToObject(x, "time", when) &&
             cJSON_AddNumberToObject(x, "units", (double)ck[i].units);
    }
    for (int i = 0; ok && i < n_g; i++) {
        cJSON *x = cJSON_CreateObject();
        ct_publog_time(g[i].last_seen, when);
        ok = x && cJSON_AddItemToArray(gs, x) && cJSON_AddStringToObject(x, "group", g[i].name) &&
             cJSON_AddStringToObject(x, "last_seen", when) &&
             cJSON_AddNumberToObject(x, "leased", (double)g[i].leased) &&
             cJSON_AddBoolToObject(x, "standby", g[i].standby);
    }
    cJSON *credit = ok ? ct_ledger_credit(p->l, p->config, e) : NULL;
    if (ok && !credit) {
        free(ck);
        free(g);
        cJSON_Delete(o);
        return NULL;
    }
    if (credit && !ct_json_add_owned(o, "credit", credit)) ok = 0;
    const cJSON *vol = cJSON_GetObjectItemCaseSensitive(p->config, "volunteer");
    ok = ok && cJSON_AddBoolToObject(
                   o, "volunteer", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(vol, "enabled")));
    int64_t first = p->n_tail > TAIL ? p->n_tail - TAIL : 0;
    for (int64_t i = first; ok && i < p->n_tail; i++)
        ok = cJSON_AddItemToArray(log, cJSON_CreateString(p->tail[i % TAIL])) != 0;
    free(ck);
    free(g);
    if (!ok) {
        cJSON_Delete(o);
        CT_ERR(e, CT_ENOMEM, "out of memory writing the dashboard's data");
        return NULL;
    }
    return o;
}

/* status.json, and data.js: the same with the metrics, for the page opened from disk. */
static int write_dashboard(ct_public_t *p, ct_err_t *e) {
    cJSON *o = status(p, e);
    if (!o) return e->code ? e->code : CT_ENOMEM;
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory writing the dashboard's data");
    size_t n = strlen(text);
    int rc = ct_write_file_atomic(p->status_path, text, n, e);
    p->metrics_shown = p->metrics_len;
    /* data.js = "window.COTRAIN_DATA = " + status without its last "}" + ,"metrics":[lines] }; */
    size_t cap = n + p->metrics_len + 64;
    char *js = rc == 0 ? malloc(cap) : NULL;
    if (rc == 0 && !js) rc = CT_ERR(e, CT_ENOMEM, "out of memory writing the dashboard's data");
    if (rc == 0) {
        size_t k = (size_t)snprintf(js, cap, "window.COTRAIN_DATA = %.*s,\"metrics\":[",
                                    (int)(n - 1), text);
        /* at most about PLOT_POINTS lines: every stride-th, and always the last */
        size_t lines = 0, stride;
        for (size_t i = 0; i < p->metrics_len; i++)
            lines += p->metrics[i] == '\n';
        stride = lines > PLOT_POINTS ? (lines + PLOT_POINTS - 1) / PLOT_POINTS : 1;
        int first = 1;
        for (size_t i = 0, line = 0; i < p->metrics_len; line++) {
            char *nl = memchr(p->metrics + i, '\n', p->metrics_len - i);
            size_t end = nl ? (size_t)(nl - p->metrics) : p->metrics_len;
            if (line % stride == 0 || line + 1 == lines) {
                if (!first) js[k++] = ',';
                memcpy(js + k, p->metrics + i, end - i);
                k += end - i;
                first = 0;
            }
            i = end + 1;
        }
        k += (size_t)snprintf(js + k, cap - k, "]};\n");
        rc = ct_write_file_atomic(p->data_path, js, k, e);
    }
    free(js);
    free(text);
    return rc;
}

/* run.json for the head written so far, after log.jsonl reached the disk, and the dashboard's
 * data. */
static int write_head(ct_public_t *p, ct_err_t *e) {
    if (fsync(p->fd) != 0)
        return CT_ERR(e, CT_EIO, "cannot sync %s: %s", p->log_path, strerror(errno));
    p->head.seq = p->seq;
    snprintf(p->head.hash, sizeof p->head.hash, "%s", p->prev);
    CT_TRY(ct_publog_head_write(p->head_path, &p->head, &p->key, e));
    p->head_at = ct_now_s();
    char digest[CT_SHA256_HEX], mark[256];
    if (ct_sha256_so_far(p->digest, digest) != 0)
        return CT_ERR(e, CT_ENOMEM, "out of memory marking the public log");
    int n = snprintf(mark, sizeof mark, "%s %lld %lld %s %s\n", MARK_FORMAT, (long long)p->seq,
                     (long long)p->size, digest, p->prev[0] ? p->prev : "-");
    CT_TRY(ct_write_file_atomic(p->mark_path, mark, (size_t)n, e));
    return write_dashboard(p, e);
}

/* ct_ledger_record_fn for keep_marked: arg is {p, the file's last kept line, the mark's hash of
 * it, a flag set when the record exists}; 0 when the record derives to that line. */
static int same_last(void *arg, int64_t seq, double at, const char *type, const char *body,
                     ct_err_t *e) {
    void **a = arg;
    ct_public_t *p = a[0];
    const char *have = a[1];
    char hash[CT_SHA256_HEX], *line = derive(p, seq, at, type, body, hash, e);
    if (!line) return e->code ? e->code : CT_ENOMEM;
    int same = !strcmp(line, have) && !strcmp(hash, (const char *)a[2]);
    free(line);
    a[3] = a; /* it was there */
    return same ? 0
                : CT_ERR(e, CT_ECORRUPT, "the ledger's record %lld is not the file's line",
                         (long long)seq);
}

/* Keeps the prefix of log.jsonl that RUN_DIR/public.mark vouches for: its bytes hash to the
 * digest the mark recorded after they were synced, and its last line is still what the ledger's
 * record of that seq derives to. Then the records after it are derived as usual (compared with
 * the file's lines after the prefix). Anything else (no mark, another file, a shorter file, an
 * edit inside the prefix, another ledger): nothing is kept, and every record is derived again. */
static void keep_marked(ct_public_t *p) {
    char text[256], fmt[32], digest[CT_SHA256_HEX], prev[CT_SHA256_HEX], got[CT_SHA256_HEX];
    long long seq = 0, size = 0;
    size_t len = 0;
    ct_err_t e = {0};
    struct stat st;
    if (ct_read_file_into(p->mark_path, text, sizeof text - 1, &len, &e) != 0) return;
    text[len] = '\0';
    if (sscanf(text, "%31s %lld %lld %64s %64s", fmt, &seq, &size, digest, prev) != 5 ||
        strcmp(fmt, MARK_FORMAT) || seq < 1 || size < 1 || fstat(p->fd, &st) != 0 ||
        (long long)st.st_size < size)
        return;
    /* the prefix's digest, read once; the last TAIL lines kept for status.json as it goes */
    char *buf = malloc(1 << 20), *last = NULL;
    int ok = buf != NULL;
    size_t carry = 0;
    for (long long at = 0; ok && at < size;) {
        size_t want =
            (size_t)(size - at < (1 << 20) - (long long)carry ? size - at
                                                              : (1 << 20) - (long long)carry);
        ok = want > 0 && ct_read_all(p->fd, buf + carry, want, at, p->log_path, &e) == 0;
        if (!ok) break;
        ct_sha256_update(p->digest, buf + carry, want);
        at += (long long)want;
        size_t n = carry + want, from = 0;
        for (size_t i = 0; i < n; i++)
            if (buf[i] == '\n') {
                char *line = strndup(buf + from, i - from);
                ok = line != NULL;
                if (ok) remember(p, line);
                from = i + 1;
            }
        carry = n - from; /* a line cut by the buffer: kept for the next read */
        memmove(buf, buf + from, carry);
        ok = ok && carry < (1 << 20);
    }
    free(buf);
    ok = ok && carry == 0 && ct_sha256_so_far(p->digest, got) == 0 && !strcmp(got, digest);
    last = ok && p->n_tail ? p->tail[(p->n_tail - 1) % TAIL] : NULL;
    cJSON *rec = last ? cJSON_Parse(last) : NULL;
    const char *lp = ct_json_get_string(rec, "prev");
    if (lp && ct_sha256_hex_valid(lp)) {
        snprintf(p->prev, sizeof p->prev, "%s", lp);
        void *arg[4] = {p, last, prev, NULL};
        ok = ct_ledger_records(p->l, seq - 1, 1, same_last, arg, &e) == 0 && arg[3];
    } else {
        ok = 0;
    }
    cJSON_Delete(rec);
    if (!ok) { /* start again from nothing */
        char ignored[CT_SHA256_HEX];
        ct_sha256_end(&p->digest, ignored);
        p->digest = ct_sha256_begin();
        for (int i = 0; i < TAIL; i++) {
            free(p->tail[i]);
            p->tail[i] = NULL;
        }
        p->n_tail = 0;
        p->prev[0] = '\0';
        return;
    }
    p->seq = seq;
    p->size = size;
    p->kept = seq;
    snprintf(p->prev, sizeof p->prev, "%s", prev);
    if (p->old) fseeko(p->old, (off_t)size, SEEK_SET);
}

/* The dashboard's files into public/ (when the build has them). */
static void copy_web(ct_public_t *p, const char *web_dir, const char *dir) {
    for (size_t i = 0; web_dir && i < sizeof WEB_FILES / sizeof WEB_FILES[0]; i++) {
        char from[CT_PATH_MAX], to[CT_PATH_MAX], *buf = NULL;
        size_t len = 0;
        ct_err_t e = {0};
        if (ct_path_join(from, sizeof from, web_dir, WEB_FILES[i], &e) ||
            ct_path_join(to, sizeof to, dir, WEB_FILES[i], &e) ||
            ct_read_file(from, &buf, &len, &e) || ct_write_file_atomic(to, buf, len, &e)) {
            ct_log(p->lg, CT_LOG_WARN, "dashboard: %s (public/ gets the data without the page)",
                   e.msg);
            free(buf);
            return;
        }
        free(buf);
    }
}

/* Appends up to `max` records committed since the last call (0: all); with `force`, or when a
 * second has passed, rewrites run.json and the dashboard's data. *behind (may be NULL) gets 1 when
 * records are left. */
static int sync_public(ct_public_t *p, int max, int force, int *behind, ct_err_t *e) {
    int64_t before = p->seq, upto = INT64_MAX, n;
    if (p->running && !force) {
        pthread_mutex_lock(&p->mu);
        upto = p->shown;
        pthread_mutex_unlock(&p->mu);
    }
    n = upto - p->seq;
    if (max > 0 && n > max) n = max;
    CT_TRY(sync_metrics(p, max, e));
    if (n > 0) CT_TRY(ct_ledger_records(p->l, p->seq, n, append, p, e));
    if (behind) *behind = n > 0 && p->seq - before == n && n == max;
    if (!force && ct_now_s() - p->head_at < HEAD_EVERY_S) return 0;
    if (p->head.seq != p->seq) return write_head(p, e);
    /* no new record, but the metrics may have grown: the dashboard's data follows them */
    if (!force && p->metrics_len == p->metrics_shown) return 0;
    p->head_at = ct_now_s();
    return write_dashboard(p, e);
}

/* One round of the writer: the records committed since the last, ROUND at a time. A failure is
 * logged (once while it lasts) and tried again later: the ledger holds the records, the file is
 * derived from it. */
static void write_round(ct_public_t *p) {
    int behind = 1;
    while (behind && !atomic_load(&p->stop)) {
        ct_err_t why = {0};
        if (sync_public(p, ROUND, 0, &behind, &why) != 0) {
            if (!p->failing)
                ct_log(p->lg, CT_LOG_WARN,
                       "public log: %s (the coordinator goes on; it is written from the ledger "
                       "once this is fixed)",
                       why.msg);
            p->failing = 1;
            return;
        }
        if (p->failing) ct_log(p->lg, CT_LOG_INFO, "public log: writing again");
        p->failing = 0;
    }
}

static void *writer(void *arg) {
    ct_public_t *p = arg;
    /* below the request loop: a busy coordinator's CPU goes to its replies first (Linux gives
       each thread its own nice value) */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WRITER_NICE);
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stop)) {
        if (!p->poked) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += WAKE_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&p->wake, &p->mu, &until);
        }
        p->poked = 0;
        pthread_mutex_unlock(&p->mu);
        write_round(p);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The writer's thread. */
static int start_writer(ct_public_t *p, ct_err_t *e) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->wake, &ca) != 0)
        return CT_ERR(e, CT_ENOMEM, "cannot make the public log writer's condition variable");
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    int rc = ct_thread_start(&p->thread, writer, p, "the public log's thread", e);
    if (rc != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        return rc;
    }
    p->running = 1;
    return 0;
}

int ct_public_open(ct_public_t **out, const ct_public_opts_t *o, const char *db, const ct_log_t *lg,
                   ct_err_t *e) {
    int rc = 0, made = 0;
    ct_public_t *p = NULL;
    char dir[CT_PATH_MAX], key[CT_PATH_MAX];
    *out = NULL;
    CT_ALLOC(e, p, 1, fail);
    p->fd = p->mfd = -1;
    p->mseq = -1; /* written anew at the first sync */
    p->lg = lg;
    CT_TRY_GOTO(ct_ledger_open_reader(&p->l, db, e), fail);
    ct_sha256_hex(o->config_json, strlen(o->config_json), p->head.config_sha256);
    snprintf(p->head.data_sha256, sizeof p->head.data_sha256, "%s", o->m->sha256);
    p->held_out = o->held_out;
    p->shards = o->m->n_shards - o->held_out;
    for (int i = 0; i < p->shards; i++)
        p->tokens += o->m->shards[i].n_tokens;
    if (!(p->config = cJSON_Parse(o->config_json))) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading the run's config");
        goto fail;
    }
    CT_TRY_GOTO(ct_path_join(key, sizeof key, o->run_dir, "coordinator.key", e), fail);
    CT_TRY_GOTO(ct_publog_key_open(key, &p->key, &made, e), fail);
    CT_TRY_GOTO(ct_path_join(dir, sizeof dir, o->run_dir, "public", e), fail);
    CT_TRY_GOTO(ct_mkdirs(dir, e), fail);
    CT_TRY_GOTO(ct_path_join(p->log_path, sizeof p->log_path, dir, "log.jsonl", e), fail);
    CT_TRY_GOTO(ct_path_join(p->head_path, sizeof p->head_path, dir, "run.json", e), fail);
    CT_TRY_GOTO(ct_path_join(p->mark_path, sizeof p->mark_path, o->run_dir, "public.mark", e),
                fail);
    CT_TRY_GOTO(ct_path_join(p->status_path, sizeof p->status_path, dir, "status.json", e), fail);
    CT_TRY_GOTO(ct_path_join(p->data_path, sizeof p->data_path, dir, "data.js", e), fail);
    CT_TRY_GOTO(ct_path_join(p->metrics_path, sizeof p->metrics_path, dir, "metrics.jsonl", e),
                fail);
    copy_web(p, o->web_dir, dir);
    p->mfd = open(p->metrics_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->mfd < 0) {
        rc = CT_ERR(e, CT_EIO, "cannot open %s: %s", p->metrics_path, strerror(errno));
        goto fail;
    }
    CT_TRY_GOTO(sync_metrics(p, 0, e), fail);
    p->fd = open(p->log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        rc = CT_ERR(e, CT_EIO, "cannot open %s: %s", p->log_path, strerror(errno));
        goto fail;
    }
    struct stat st;
    int64_t had = fstat(p->fd, &st) == 0 ? (int64_t)st.st_size : 0;
    p->old = fopen(p->log_path, "r");
    if (!(p->digest = ct_sha256_begin())) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory opening the public log");
        goto fail;
    }
    keep_marked(p);
    if (!p->digest) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory opening the public log");
        goto fail;
    }
    if (p->kept)
        ct_log(lg, CT_LOG_INFO,
               "public log %s: its first %lld record(s) kept as %s vouches (not derived again)",
               p->log_path, (long long)p->kept, p->mark_path);
    CT_TRY_GOTO(ct_ledger_records(p->l, p->seq, INT64_MAX, append, p, e), fail);
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
    CT_TRY_GOTO(start_writer(p, e), fail);
    *out = p;
    return 0;
fail:
    ct_public_close(&p);
    return rc;
}

void ct_public_poke(ct_public_t *p, int64_t upto) {
    pthread_mutex_lock(&p->mu);
    if (upto > p->shown) p->shown = upto;
    p->poked = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

double ct_public_cpu_s(const ct_public_t *p) {
    return p && p->running ? ct_thread_cpu_s(p->thread) : 0.0;
}

void ct_public_close(ct_public_t **self_p) {
    ct_public_t *p = *self_p;
    if (!p) return;
    if (p->running) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, 1);
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
    }
    if (p->fd >= 0 && !p->old) {
        ct_err_t e = {0};
        if (sync_public(p, 0, 1, NULL, &e) != 0)
            ct_log(p->lg, CT_LOG_WARN, "public log: %s (it is derived again at the next start)",
                   e.msg);
    }
    if (p->old) fclose(p->old);
    if (p->fd >= 0) close(p->fd);
    if (p->mfd >= 0) close(p->mfd);
    sodium_memzero(&p->key, sizeof p->key);
    for (int i = 0; i < TAIL; i++)
        free(p->tail[i]);
    free(p->metrics);
    cJSON_Delete(p->config);
    ct_ledger_close(&p->l);
    if (p->digest) {
        char ignored[CT_SHA256_HEX];
        ct_sha256_end(&p->digest, ignored);
    }
    free(p);
    *self_p = NULL;
}
