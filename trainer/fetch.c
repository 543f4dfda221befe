/* fetch.c — the run's data and checkpoints from the coordinator, chunk by chunk (see fetch.h).
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
#include "cotrain/json.h"
#include "cotrain/manifest.h"

enum { REPORT_S = 2 };

/* Progress over the files fetched, logged every REPORT_S seconds and at the end. */
typedef struct progress {
    const ct_log_t *lg;
    const char *what, *unit; /* "data", "shard(s)"; "checkpoint", "file(s)" */
    int done, total;
    double bytes, t0, last;
} progress_t;

/* A file the coordinator serves in chunks: the request that asks for one (its type, the field and
 * value that name the file, and model_fetch's checkpoint id), where it goes and its sha256. */
typedef struct remote {
    ct_msg_type_t type;
    const char *key, *name, *id;
    const char *path, *sha256;
    const char *kind, *source, *fix; /* for a mismatch: "shard", "the manifest", what to do */
} remote_t;

static void report(progress_t *p, int final) {
    double now = ct_now_s(), dt = now - p->t0;
    if (!final && now - p->last < REPORT_S) return;
    p->last = now;
    double rate = dt > 0 ? p->bytes / dt : 0;
    double eta = p->done > 0 ? dt / p->done * (p->total - p->done) : -1;
    char when[32] = "?";
    if (eta >= 0) snprintf(when, sizeof when, "%.0f s", eta);
    ct_log(p->lg, CT_LOG_INFO, "fetching %s: %d of %d %s, %.1f MiB at %.1f MiB/s%s%s", p->what,
           p->done, p->total, p->unit, p->bytes / 1048576.0, rate / 1048576.0,
           final ? "" : ", ETA ", final ? "" : when);
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

/* One chunk of r from offset `off` written into the open file fd; *size gets the file's. */
static int fetch_chunk(ct_attach_t *a, const remote_t *r, int fd, const char *part, int64_t off,
                       int64_t *size, int64_t *got, ct_err_t *e) {
    cJSON *q = cJSON_CreateObject();
    if (!q || !cJSON_AddStringToObject(q, r->key, r->name) ||
        (r->id && !cJSON_AddStringToObject(q, "id", r->id)) ||
        !cJSON_AddNumberToObject(q, "offset", (double)off) ||
        !cJSON_AddNumberToObject(q, "length", CT_PROTO_CHUNK_MAX)) {
        cJSON_Delete(q);
        return CT_ERR(e, CT_ENOMEM, "out of memory building %s", ct_msg_type_name(r->type));
    }
    ct_msg_t m;
    ct_frame_t f = {0};
    int64_t at = -1, len = -1;
    CT_TRY(ct_attach_request(a, r->type, q, &m, &f, e));
    int rc = ct_msg_uint(&m, "offset", &at, e);
    if (rc == 0) rc = ct_msg_uint(&m, "length", &len, e);
    if (rc == 0) rc = ct_msg_uint(&m, "size", size, e);
    ct_msg_clear(&m);
    if (rc == 0 &&
        (at != off || len != (int64_t)f.len || off + len > *size || (len == 0 && off < *size)))
        rc = CT_ERR(e, CT_EPROTO,
                    "the coordinator sent %lld byte(s) of %s at %lld (of %lld) for a request at "
                    "%lld",
                    (long long)f.len, r->name, (long long)at, (long long)*size, (long long)off);
    if (rc == 0 && f.len) rc = ct_write_all(fd, f.data, f.len, off, part, e);
    free(f.data);
    *got = len;
    return rc;
}

/* r into r->path: grown in .part from what is there, verified, renamed into place. */
static int fetch_file(ct_attach_t *a, const remote_t *r, progress_t *p, ct_err_t *e) {
    char part[CT_PATH_MAX], dir[CT_PATH_MAX], hex[CT_SHA256_HEX];
    CT_TRY(ct_path_fmt(part, sizeof part, e, "%s.part", r->path));
    snprintf(dir, sizeof dir, "%s", r->path);
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
        if (resumed)
            ct_log(p->lg, CT_LOG_INFO, "fetching %s: %s goes on from byte %lld (%s)", p->what,
                   r->name, (long long)off, part);
        while (rc == 0 && off < size) {
            rc = fetch_chunk(a, r, fd, part, off, &size, &got, e);
            off += got;
            p->bytes += (double)got;
            report(p, 0);
        }
        if (rc == 0 && off > size)
            rc = CT_ERR(e, CT_ECORRUPT, "%s holds more than %s's %lld bytes", part, r->name,
                        (long long)size);
        close(fd);
        if (rc == CT_EPROTO && resumed && attempt == 0) { /* a .part past this file's end */
            unlink(part);
            ct_err_clear(e);
            continue;
        }
        if (rc == 0) rc = ct_sha256_file(part, hex, e);
        if (rc == 0 && strcmp(hex, r->sha256) != 0) {
            unlink(part);
            if (resumed && attempt == 0) continue; /* an old .part of other bytes: once more */
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s %s from the coordinator has sha256 %.16s..., %s says %.16s...: the "
                        "coordinator's copy is damaged (%s)",
                        r->kind, r->name, hex, r->source, r->sha256, r->fix);
        }
        if (rc == 0) rc = ct_commit_file(part, r->path, e);
        return rc;
    }
}

static int fetch_all(ct_attach_t *a, const char *dir, const char *manifest, const ct_log_t *lg,
                     ct_err_t *e) {
    CT_TRY(ct_mkdirs(dir, e));
    CT_TRY(fetch_manifest(a, manifest, e));
    ct_manifest_t *m = NULL;
    CT_TRY(ct_manifest_load(&m, manifest, e));
    progress_t p = {.lg = lg, .what = "data", .unit = "shard(s)", .t0 = ct_now_s()};
    p.last = p.t0;
    for (int i = 0; i < m->n_shards; i++)
        if (access(m->shards[i].path, F_OK) != 0) p.total++;
    int rc = 0;
    if (p.total)
        ct_log(lg, CT_LOG_INFO, "fetching %d of the %d shard(s) of the run's data into %s", p.total,
               m->n_shards, dir);
    for (int i = 0; i < m->n_shards && rc == 0; i++) {
        if (access(m->shards[i].path, F_OK) == 0) continue;
        const remote_t r = {CT_MSG_SHARD_FETCH,
                            "shard",
                            m->shards[i].id,
                            NULL,
                            m->shards[i].path,
                            m->shards[i].sha256,
                            "shard",
                            "the manifest",
                            "its operator must restore it, or prepare the data again with "
                            "`cotrain prep`"};
        rc = fetch_file(a, &r, &p, e);
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

/* Rank 0's part of ct_fetch_checkpoint. */
static int fetch_ckpt(ct_attach_t *a, const char *root, const char *id, int64_t step,
                      const ct_log_t *lg, ct_err_t *e) {
    cJSON *q = cJSON_CreateObject();
    if (!q || !cJSON_AddStringToObject(q, "id", id)) {
        cJSON_Delete(q);
        return CT_ERR(e, CT_ENOMEM, "out of memory building model_fetch");
    }
    ct_msg_t m;
    CT_TRY(ct_attach_request(a, CT_MSG_MODEL_FETCH, q, &m, NULL, e));
    char got[CT_SHA256_HEX] = "", tmp[CT_PATH_MAX], final[CT_PATH_MAX];
    int64_t at = -1;
    int rc = ct_msg_string(&m, "id", got, sizeof got, e);
    if (rc == 0) rc = ct_msg_uint(&m, "step", &at, e);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m.root, "files"), *f;
    if (rc == 0 && (strcmp(got, id) != 0 || at != step || !cJSON_IsArray(files)))
        rc = CT_ERR(e, CT_EPROTO,
                    "the coordinator listed checkpoint %.16s... of step %lld for "
                    "%.16s... of step %lld",
                    got, (long long)at, id, (long long)step);
    if (rc == 0)
        rc = ct_path_fmt(tmp, sizeof tmp, e, "%s/.fetch-ckpt-%08lld-%.16s", root, (long long)step,
                         id);
    if (rc == 0) rc = ct_path_fmt(final, sizeof final, e, "%s/ckpt-%08lld", root, (long long)step);
    if (rc == 0) rc = ct_mkdirs(tmp, e);
    progress_t p = {.lg = lg, .what = "checkpoint", .unit = "file(s)", .t0 = ct_now_s()};
    p.last = p.t0;
    p.total = cJSON_GetArraySize(files);
    if (rc == 0)
        ct_log(lg, CT_LOG_INFO,
               "fetching the run's head checkpoint %.16s... (step %lld, %d files) from the "
               "coordinator into %s",
               id, (long long)step, p.total, final);
    cJSON_ArrayForEach(f, files) {
        const char *name = ct_json_get_string(f, "name"), *sha = ct_json_get_string(f, "sha256");
        char path[CT_PATH_MAX];
        if (rc != 0) break;
        if (!name || !sha || !name[0] || strchr(name, '/') || name[0] == '.' ||
            !ct_sha256_hex_valid(sha))
            rc = CT_ERR(e, CT_EPROTO,
                        "the coordinator's listing of checkpoint %.16s... names a "
                        "file badly",
                        id);
        if (rc == 0) rc = ct_path_join(path, sizeof path, tmp, name, e);
        const remote_t r = {CT_MSG_MODEL_FETCH,
                            "file",
                            name,
                            id,
                            path,
                            sha,
                            "checkpoint file",
                            "the checkpoint's MANIFEST",
                            "its operator must restore the checkpoint from a copy"};
        if (rc == 0 && access(path, F_OK) != 0) rc = fetch_file(a, &r, &p, e);
        if (rc == 0) p.done++;
    }
    ct_msg_clear(&m);
    if (rc == 0) report(&p, 1);
    /* MANIFEST came with its sha256 = the id, and each file with the one MANIFEST lists: the
       whole checkpoint is the committed one; a checkpoint of that step off the lineage is set
       aside, not deleted */
    if (rc == 0 && access(final, F_OK) == 0) {
        char aside[CT_PATH_MAX];
        rc = ct_path_fmt(aside, sizeof aside, e, "%s.off-lineage-%lld", final,
                         (long long)ct_wall_s());
        if (rc == 0 && rename(final, aside) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot move %s aside: %s", final, strerror(errno));
        if (rc == 0)
            ct_log(lg, CT_LOG_WARN, "%s was not the run's checkpoint of step %lld: moved to %s",
                   final, (long long)step, aside);
    }
    if (rc == 0 && rename(tmp, final) != 0)
        rc = CT_ERR(e, CT_EIO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    if (rc == 0) rc = ct_fsync_path(root, e);
    return rc;
}

int ct_fetch_checkpoint(ct_attach_t *a, ct_comm_t *comm, const char *root, const char *id,
                        int64_t step, const ct_log_t *lg, ct_err_t *e) {
    int rc = ct_comm_rank(comm) == 0 ? ct_mkdirs(root, e) : 0;
    if (rc == 0 && ct_comm_rank(comm) == 0) rc = fetch_ckpt(a, root, id, step, lg, e);
    return ct_attach_agree(a, rc, e);
}
