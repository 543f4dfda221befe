/* fetch.c — the run's data from the coordinator, chunk by chunk (see fetch.h).
 *
 * Why chunks of a fixed size and a .part file: a volunteer's link may drop at any moment, and a
 * shard may be larger than any sane message; a request per chunk keeps every message small, lets
 * the coordinator's rate limit and retries apply as to any request, and lets a restart go on from
 * the bytes already on disk instead of from zero. Nothing is trusted before its hash matched. */
#include "cotrain/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/manifest.h"

enum { REPORT_S = 2 };

/* Progress over the shards fetched, logged every REPORT_S seconds and at the end. */
typedef struct progress {
    const ct_log_t *lg;
    int done, total;
    double bytes, t0, last;
} progress_t;

static void report(progress_t *p, int final) {
    double now = ct_now_s(), dt = now - p->t0;
    if (!final && now - p->last < REPORT_S) return;
    p->last = now;
    double rate = dt > 0 ? p->bytes / dt : 0;
    double eta = p->done > 0 ? dt / p->done * (p->total - p->done) : -1;
    char when[32] = "?";
    if (eta >= 0) snprintf(when, sizeof when, "%.0f s", eta);
    ct_log(p->lg, CT_LOG_INFO, "fetching data: %d of %d shard(s), %.1f MiB at %.1f MiB/s%s%s",
           p->done, p->total, p->bytes / 1048576.0, rate / 1048576.0, final ? "" : ", ETA ",
           final ? "" : when);
}

/* data_manifest: the run's manifest.json into path (kept when it is the same already). */
static int fetch_manifest(ct_attach_t *a, const char *path, ct_err_t *e) {
    ct_msg_t m;
    ct_frame_t f = {0};
    char want[CT_SHA256_HEX], got[CT_SHA256_HEX];
    CT_TRY(ct_attach_request(a, CT_MSG_DATA_MANIFEST, NULL, &m, &f, e));
    int rc = ct_msg_string(&m, "sha256", want, sizeof want, e);
    ct_msg_clear(&m);
    if (rc == 0 && !f.data)
        rc = CT_ERR(e, CT_EPROTO, "the coordinator's data_manifest reply carries no manifest");
    if (rc == 0) {
        ct_sha256_hex(f.data, f.len, got);
        if (strcmp(got, want) != 0)
            rc = CT_ERR(e, CT_ECORRUPT,
                        "the manifest from the coordinator has sha256 %.16s..., it said "
                        "%.16s...: damaged on the way; start again",
                        got, want);
    }
    char have[CT_SHA256_HEX] = "";
    ct_err_t ignored = {0};
    if (rc == 0 && (access(path, F_OK) != 0 || ct_sha256_file(path, have, &ignored) != 0 ||
                    strcmp(have, want) != 0))
        rc = ct_write_file_atomic(path, f.data, f.len, e);
    free(f.data);
    return rc;
}

/* One chunk of shard s from offset `off` appended to the open file fd; *size gets the shard's. */
static int fetch_chunk(ct_attach_t *a, const ct_manifest_shard_t *s, int fd, const char *part,
                       int64_t off, int64_t *size, int64_t *got, ct_err_t *e) {
    cJSON *q = cJSON_CreateObject();
    if (!q || !cJSON_AddStringToObject(q, "shard", s->id) ||
        !cJSON_AddNumberToObject(q, "offset", (double)off) ||
        !cJSON_AddNumberToObject(q, "length", CT_PROTO_CHUNK_MAX)) {
        cJSON_Delete(q);
        return CT_ERR(e, CT_ENOMEM, "out of memory building shard_fetch");
    }
    ct_msg_t m;
    ct_frame_t f = {0};
    int64_t at = -1, len = -1;
    CT_TRY(ct_attach_request(a, CT_MSG_SHARD_FETCH, q, &m, &f, e));
    int rc = ct_msg_uint(&m, "offset", &at, e);
    if (rc == 0) rc = ct_msg_uint(&m, "length", &len, e);
    if (rc == 0) rc = ct_msg_uint(&m, "size", size, e);
    ct_msg_clear(&m);
    if (rc == 0 &&
        (at != off || len != (int64_t)f.len || off + len > *size || (len == 0 && off < *size)))
        rc = CT_ERR(e, CT_EPROTO,
                    "the coordinator sent %lld byte(s) of shard %s at %lld (of %lld) for a "
                    "request at %lld",
                    (long long)f.len, s->id, (long long)at, (long long)*size, (long long)off);
    if (rc == 0 && f.len) rc = ct_write_all(fd, f.data, f.len, off, part, e);
    free(f.data);
    *got = len;
    return rc;
}

/* Shard s into s->path: grown in .part from what is there, verified, renamed into place. */
static int fetch_shard(ct_attach_t *a, const ct_manifest_shard_t *s, progress_t *p, ct_err_t *e) {
    char part[CT_PATH_MAX], dir[CT_PATH_MAX], hex[CT_SHA256_HEX];
    CT_TRY(ct_path_fmt(part, sizeof part, e, "%s.part", s->path));
    snprintf(dir, sizeof dir, "%s", s->path);
    CT_TRY(ct_mkdirs(dirname(dir), e));
    for (int attempt = 0;; attempt++) {
        int fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int err = errno;
            if (fd >= 0) close(fd);
            return CT_ERR(e, CT_EIO, "cannot write %s: %s", part, strerror(err));
        }
        int64_t off = st.st_size, size = INT64_MAX, got = 0;
        int resumed = off > 0, rc = 0;
        while (rc == 0 && off < size) {
            rc = fetch_chunk(a, s, fd, part, off, &size, &got, e);
            off += got;
            p->bytes += (double)got;
            report(p, 0);
        }
        if (rc == 0 && off > size)
            rc = CT_ERR(e, CT_ECORRUPT, "%s holds more than shard %s's %lld bytes", part, s->id,
                        (long long)size);
        close(fd);
        if (rc == CT_EPROTO && resumed && attempt == 0) { /* a .part past this shard's end */
            unlink(part);
            ct_err_clear(e);
            continue;
        }
        if (rc == 0) rc = ct_sha256_file(part, hex, e);
        if (rc == 0 && strcmp(hex, s->sha256) != 0) {
            unlink(part);
            if (resumed && attempt == 0) continue; /* an old .part of other bytes: once more */
            rc = CT_ERR(e, CT_ECORRUPT,
                        "shard %s from the coordinator has sha256 %.16s..., the manifest says "
                        "%.16s...: the coordinator's copy is damaged (its operator must restore "
                        "it, or prepare the data again with `cotrain prep`)",
                        s->id, hex, s->sha256);
        }
        if (rc == 0) rc = ct_commit_file(part, s->path, e);
        return rc;
    }
}

static int fetch_all(ct_attach_t *a, const char *dir, const char *manifest, const ct_log_t *lg,
                     ct_err_t *e) {
    CT_TRY(ct_mkdirs(dir, e));
    CT_TRY(fetch_manifest(a, manifest, e));
    ct_manifest_t *m = NULL;
    CT_TRY(ct_manifest_load(&m, manifest, e));
    progress_t p = {.lg = lg, .t0 = ct_now_s()};
    p.last = p.t0;
    for (int i = 0; i < m->n_shards; i++)
        if (access(m->shards[i].path, F_OK) != 0) p.total++;
    int rc = 0;
    if (p.total)
        ct_log(lg, CT_LOG_INFO, "fetching %d of the %d shard(s) of the run's data into %s", p.total,
               m->n_shards, dir);
    for (int i = 0; i < m->n_shards && rc == 0; i++) {
        if (access(m->shards[i].path, F_OK) == 0) continue;
        rc = fetch_shard(a, &m->shards[i], &p, e);
        if (rc == 0) p.done++;
    }
    if (rc == 0 && p.total) report(&p, 1);
    if (rc == 0)
        ct_log(lg, CT_LOG_INFO, "data %s (sha256 %.16s...): %d shard(s), all here", manifest,
               m->sha256, m->n_shards);
    ct_manifest_destroy(&m);
    return rc;
}

int ct_fetch_data(ct_attach_t *a, ct_comm_t *comm, const char *dir, char *manifest, size_t n,
                  const ct_log_t *lg, ct_err_t *e) {
    CT_TRY(ct_path_join(manifest, n, dir, "manifest.json", e));
    int rc = ct_comm_rank(comm) == 0 ? fetch_all(a, dir, manifest, lg, e) : 0;
    return ct_attach_agree(a, rc, e);
}
