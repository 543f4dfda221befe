/* handler.c — one request, one transaction, one reply (see handler.h). */
#include "cotrain/handler.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/proto.h"
#include "cotrain/rounds.h"

enum {
    FINISH_GRACE_S = 60, /* a finished volunteer run waits this long at most for its groups */
    UNITS_MAX = 1 << 16, /* units one checkpoint may list */
    METRICS_MAX = 64,    /* metrics lines one request may carry */
    LINE_MAX = 4096      /* the longest metrics line */
};

struct ct_handler {
    ct_ledger_t *l;
    const ct_manifest_t *m; /* the run's data, sent to workers that cannot read it */
    cJSON *config;          /* the run's resolved config, sent in every welcome */
    double ttl;
    char ckpt_dir[CT_PATH_MAX]; /* the lineage's checkpoints model_fetch serves ("": none) */
    ct_rounds_t *rounds;        /* volunteer mode's outer steps, or NULL (cluster mode) */
    double finished_at;         /* volunteer mode: when the last version was seen out (0: not) */
    int done;                   /* ... and its groups have left, or FINISH_GRACE_S passed */
};

int ct_handler_create(ct_handler_t **out, ct_ledger_t *l, const ct_manifest_t *m,
                      const char *config_json, double lease_ttl, ct_err_t *e) {
    int rc = 0;
    ct_handler_t *h = NULL;
    *out = NULL;
    CT_ALLOC(e, h, 1, fail);
    h->l = l;
    h->m = m;
    h->ttl = lease_ttl;
    h->config = cJSON_Parse(config_json);
    if (!cJSON_IsObject(h->config)) {
        rc = CT_ERR(e, CT_EINVAL, "the coordinator's config is not a JSON object");
        goto fail;
    }
    *out = h;
    return 0;
fail:
    ct_handler_destroy(&h);
    return rc;
}

int ct_handler_set_checkpoints(ct_handler_t *h, const char *dir, ct_err_t *e) {
    return ct_path_fmt(h->ckpt_dir, sizeof h->ckpt_dir, e, "%s", dir);
}

void ct_handler_set_rounds(ct_handler_t *h, ct_rounds_t *r) {
    h->rounds = r;
}

void ct_handler_destroy(ct_handler_t **self_p) {
    ct_handler_t *h = *self_p;
    if (!h) return;
    cJSON_Delete(h->config);
    free(h);
    *self_p = NULL;
}

/* The status reply: units by state, the head, progress and an ETA from the pace of the commits,
 * the groups heard from, and the data changes in effect and pending. */
static int status(ct_handler_t *h, double now, cJSON *f, ct_err_t *e) {
    ct_ledger_counts_t c;
    char id[CT_SHA256_HEX];
    int64_t step, first_step, head_step;
    double first_at, head_at;
    CT_TRY(ct_ledger_counts(h->l, &c, e));
    CT_TRY(ct_ledger_head(h->l, id, &step, e));
    CT_TRY(ct_ledger_progress(h->l, &first_step, &first_at, &head_step, &head_at, e));
    int64_t pending = 0;
    CT_TRY(ct_ledger_changes_pending(h->l, &pending, e));
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(h->config, "train");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(tr, "steps");
    double total = cJSON_IsNumber(steps) ? steps->valuedouble : -1;
    /* the pace between the first and the head commit; none before two commits */
    double eta = -1;
    if (head_step > first_step && head_at > first_at && total > 0)
        eta = (total - (double)head_step) * (head_at - first_at) / (double)(head_step - first_step);
    ct_group_info_t *g = NULL;
    int n = 0;
    CT_TRY(ct_ledger_groups(h->l, 0, &g, &n, e));
    cJSON *groups = cJSON_CreateArray();
    int ok = groups != NULL;
    for (int i = 0; ok && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddStringToObject(o, "group", g[i].name) &&
             cJSON_AddNumberToObject(o, "seen_s_ago", now - g[i].last_seen) &&
             cJSON_AddNumberToObject(o, "leased", (double)g[i].leased) &&
             cJSON_AddBoolToObject(o, "standby", g[i].standby) && cJSON_AddItemToArray(groups, o);
        if (!ok) cJSON_Delete(o);
    }
    free(g);
    ok = ok && cJSON_AddItemToObject(f, "groups", groups);
    if (!ok) cJSON_Delete(groups);
    if (!ok || !cJSON_AddNumberToObject(f, "available", (double)c.available) ||
        !cJSON_AddNumberToObject(f, "leased", (double)c.leased) ||
        !cJSON_AddNumberToObject(f, "done", (double)c.done) ||
        !cJSON_AddNumberToObject(f, "committed", (double)c.committed) ||
        !cJSON_AddNumberToObject(f, "epochs", (double)c.epochs) ||
        !cJSON_AddStringToObject(f, "head", id) ||
        !cJSON_AddNumberToObject(f, "head_step", (double)step) ||
        !cJSON_AddNumberToObject(f, "steps", total) || !cJSON_AddNumberToObject(f, "eta_s", eta) ||
        !cJSON_AddBoolToObject(f, "volunteer", h->rounds != NULL) ||
        !cJSON_AddNumberToObject(f, "changes_in_effect", ct_plan_count(ct_ledger_plan(h->l))) ||
        !cJSON_AddNumberToObject(f, "changes_pending", (double)pending))
        return CT_ERR(e, CT_ENOMEM, "out of memory answering status");
    cJSON *credit = ct_ledger_credit(h->l, h->config, e);
    if (!credit) return e->code;
    return ct_json_add_owned(f, "credit", credit)
               ? 0
               : CT_ERR(e, CT_ENOMEM, "out of memory answering status");
}

/* data_manifest: the manifest file's bytes as the frame, with their sha256 (the run's data hash:
 * a file changed on disk since the coordinator started is not sent). */
static int data_manifest(ct_handler_t *h, cJSON *f, ct_frame_t *frame, ct_err_t *e) {
    char *buf = NULL, sha[CT_SHA256_HEX];
    size_t len = 0;
    CT_TRY(ct_read_file(h->m->path, &buf, &len, e));
    ct_sha256_hex(buf, len, sha);
    if (strcmp(sha, h->m->sha256) != 0) {
        free(buf);
        return CT_ERR(e, CT_EIO,
                      "the manifest %s changed on disk since the coordinator started (sha256 "
                      "%.16s..., was %.16s...): restore it",
                      h->m->path, sha, h->m->sha256);
    }
    if (!cJSON_AddStringToObject(f, "sha256", sha) ||
        !cJSON_AddNumberToObject(f, "bytes", (double)len)) {
        free(buf);
        return CT_ERR(e, CT_ENOMEM, "out of memory answering data_manifest");
    }
    frame->data = buf;
    frame->len = len;
    return 0;
}

/* Up to `want` (1..CT_PROTO_CHUNK_MAX) bytes of file `path` (named `what` in messages) from `off`
 * as the frame, with {offset, length, size} in the reply's fields. */
static int read_chunk(const char *path, const char *what, int64_t off, int64_t want, cJSON *f,
                      ct_frame_t *frame, ct_err_t *e) {
    if (want < 1 || want > CT_PROTO_CHUNK_MAX)
        return CT_ERR(e, CT_EPROTO, "\"length\" must be in [1, %d]", CT_PROTO_CHUNK_MAX);
    void *buf = NULL;
    size_t n = 0;
    int64_t size = 0;
    int rc = ct_read_range(path, off, (size_t)want, &buf, &n, &size, e);
    if (rc == CT_EINVAL) /* the request's offset: a bad request, not our failure */
        return CT_ERR(e, CT_EPROTO, "offset %lld is past the end of %s (%lld bytes)",
                      (long long)off, what, (long long)size);
    if (rc == CT_ENOENT) rc = CT_EIO;
    if (rc == 0 && (!cJSON_AddNumberToObject(f, "offset", (double)off) ||
                    !cJSON_AddNumberToObject(f, "length", (double)n) ||
                    !cJSON_AddNumberToObject(f, "size", (double)size)))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %s", what);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    frame->data = buf;
    frame->len = n;
    return 0;
}

/* shard_fetch {shard, offset, length}: up to CT_PROTO_CHUNK_MAX bytes of a shard of the manifest
 * (held-out ones too) from offset, as the frame, with the file's size. The receiver checks the
 * whole file against the manifest's sha256. */
static int shard_fetch(ct_handler_t *h, const ct_msg_t *m, cJSON *f, ct_frame_t *frame,
                       ct_err_t *e) {
    char id[CT_SHARD_ID_MAX];
    int64_t off, want;
    CT_TRY(ct_msg_string(m, "shard", id, sizeof id, e));
    CT_TRY(ct_msg_uint(m, "offset", &off, e));
    CT_TRY(ct_msg_uint(m, "length", &want, e));
    const ct_manifest_shard_t *s = NULL;
    for (int i = 0; i < h->m->n_shards && !s; i++)
        if (!strcmp(h->m->shards[i].id, id)) s = &h->m->shards[i];
    if (!s) return CT_ERR(e, CT_EPROTO, "shard_fetch: the run's data has no shard %s", id);
    if (!cJSON_AddStringToObject(f, "shard", id))
        return CT_ERR(e, CT_ENOMEM, "out of memory answering shard_fetch");
    return read_chunk(s->path, id, off, want, f, frame, e);
}

/* model_fetch {id?}: the files of checkpoint `id` of the lineage (the head when absent), as
 * {id, step, files: [{name, bytes, sha256}]} from its MANIFEST, MANIFEST itself among them (its
 * sha256 is the id); model_fetch {id, file, offset, length}: a chunk of one of those files as the
 * frame. Only the files MANIFEST lists are served, from the coordinator's copy of a committed
 * checkpoint that has the committed id. */
static int model_fetch(ct_handler_t *h, const ct_msg_t *m, cJSON *f, ct_frame_t *frame,
                       ct_err_t *e) {
    char id[CT_SHA256_HEX], dir[CT_PATH_MAX], path[CT_PATH_MAX], sha[CT_SHA256_HEX];
    char file[CT_PATH_MAX] = "", *text = NULL;
    int64_t step = -1;
    size_t len = 0;
    if (!h->ckpt_dir[0])
        return CT_ERR(e, CT_ESTATE, "model_fetch: this coordinator keeps no checkpoints");
    if (cJSON_GetObjectItemCaseSensitive(m->root, "id")) {
        CT_TRY(ct_msg_string(m, "id", id, sizeof id, e));
        int in = ct_ledger_find(h->l, id, &step, e);
        CT_TRY(in < 0 ? in : 0);
        if (!in)
            return CT_ERR(e, CT_ESTATE, "model_fetch: checkpoint %.16s... is not in the lineage",
                          id);
    } else {
        CT_TRY(ct_ledger_head(h->l, id, &step, e));
        if (!id[0]) return CT_ERR(e, CT_ESTATE, "model_fetch: no checkpoint is committed yet");
    }
    if (cJSON_GetObjectItemCaseSensitive(m->root, "file"))
        CT_TRY(ct_msg_string(m, "file", file, sizeof file, e));
    CT_TRY(ct_path_fmt(dir, sizeof dir, e, "%s/ckpt-%08lld", h->ckpt_dir, (long long)step));
    CT_TRY(ct_path_join(path, sizeof path, dir, "MANIFEST", e));
    if (ct_read_file(path, &text, &len, e) != 0) {
        ct_err_clear(e);
        return CT_ERR(e, CT_ESTATE,
                      "model_fetch: the coordinator has no copy of checkpoint %.16s... (step "
                      "%lld) in %s",
                      id, (long long)step, h->ckpt_dir);
    }
    ct_sha256_hex(text, len, sha);
    int rc = strcmp(sha, id) ? CT_ERR(e, CT_ESTATE,
                                      "model_fetch: the coordinator's %s is not checkpoint "
                                      "%.16s... (its MANIFEST hashes to %.16s...)",
                                      dir, id, sha)
                             : 0;
    cJSON *files = rc == 0 && !file[0] ? cJSON_AddArrayToObject(f, "files") : NULL;
    int served = !strcmp(file, "MANIFEST");
    if (rc == 0 && !file[0]) { /* the listing: MANIFEST first, then the files it names */
        cJSON *o = cJSON_CreateObject();
        if (!files || !o || !cJSON_AddItemToArray(files, o) ||
            !cJSON_AddStringToObject(o, "name", "MANIFEST") ||
            !cJSON_AddNumberToObject(o, "bytes", (double)len) ||
            !cJSON_AddStringToObject(o, "sha256", id))
            rc = CT_ERR(e, CT_ENOMEM, "out of memory answering model_fetch");
    }
    for (char *line = text, *nl; rc == 0 && (nl = memchr(line, '\n', len - (size_t)(line - text)));
         line = nl + 1) {
        *nl = '\0';
        char *name = line + 66;
        if (line[0] == '#' || strlen(line) < 67 || strncmp(line + 64, "  ", 2) || strchr(name, '/'))
            continue;
        line[64] = '\0';
        if (file[0]) {
            served |= !strcmp(name, file);
            continue;
        }
        struct stat st;
        cJSON *o = cJSON_CreateObject();
        if (ct_path_join(path, sizeof path, dir, name, e) != 0 || stat(path, &st) != 0) {
            cJSON_Delete(o);
            rc = e->code ? e->code
                         : CT_ERR(e, CT_ESTATE, "model_fetch: %s is missing from %s", name, dir);
        } else if (!o || !cJSON_AddItemToArray(files, o) ||
                   !cJSON_AddStringToObject(o, "name", name) ||
                   !cJSON_AddNumberToObject(o, "bytes", (double)st.st_size) ||
                   !cJSON_AddStringToObject(o, "sha256", line)) {
            rc = CT_ERR(e, CT_ENOMEM, "out of memory answering model_fetch");
        }
    }
    free(text);
    if (rc == 0 && (!cJSON_AddStringToObject(f, "id", id) ||
                    !cJSON_AddNumberToObject(f, "step", (double)step)))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory answering model_fetch");
    if (rc != 0 || !file[0]) return rc;
    if (!served)
        return CT_ERR(e, CT_EPROTO, "model_fetch: checkpoint %.16s... has no file %s", id, file);
    int64_t off, want;
    CT_TRY(ct_msg_uint(m, "offset", &off, e));
    CT_TRY(ct_msg_uint(m, "length", &want, e));
    CT_TRY(ct_path_join(path, sizeof path, dir, file, e));
    return cJSON_AddStringToObject(f, "file", file)
               ? read_chunk(path, file, off, want, f, frame, e)
               : CT_ERR(e, CT_ENOMEM, "out of memory answering model_fetch");
}

/* After a commit: the run's last step committed is logged as run_finished. */
static int finished(ct_handler_t *h, const char *group, int64_t step, const char *id, ct_err_t *e) {
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(h->config, "train");
    int64_t steps = 0;
    if (!ct_json_get_uint53(tr, "steps", &steps) || step < steps) return 0;
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "group", group) ||
        !cJSON_AddNumberToObject(f, "step", (double)step) ||
        !cJSON_AddStringToObject(f, "id", id)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory logging the run's end");
    }
    return ct_ledger_record(h->l, "run_finished", f, e);
}

/* metrics {lines: ["{\"step\":N,...}", ...]}: the group's metrics lines, kept as sent (each a JSON
 * object with its step) for public/metrics.jsonl. */
static int metrics(ct_handler_t *h, const ct_msg_t *m, const char *group, ct_err_t *e) {
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(m->root, "lines"), *l;
    int n = cJSON_GetArraySize(lines);
    if (!cJSON_IsArray(lines) || n < 1 || n > METRICS_MAX)
        return CT_ERR(e, CT_EPROTO, "metrics: \"lines\" must be an array of 1 to %d strings",
                      METRICS_MAX);
    cJSON_ArrayForEach(l, lines) {
        int64_t step = -1;
        cJSON *o = cJSON_IsString(l) && strlen(l->valuestring) <= LINE_MAX
                       ? cJSON_Parse(l->valuestring)
                       : NULL;
        int ok = cJSON_IsObject(o) && ct_json_get_uint53(o, "step", &step) && step > 0;
        cJSON_Delete(o);
        if (!ok)
            return CT_ERR(e, CT_EPROTO,
                          "metrics: a line that is not a JSON object of at most %d bytes with "
                          "a \"step\" >= 1",
                          LINE_MAX);
        CT_TRY(ct_ledger_metrics_add(h->l, group, step, l->valuestring, e));
    }
    return 0;
}

/* The run's data changes in effect (plan.h), as "data" in f, when there are any: a welcome and a
 * commit reply carry them, so a group's loader follows the plan the ledger leases by. */
static int add_plan(ct_handler_t *h, cJSON *f, ct_err_t *e) {
    const ct_plan_t *p = ct_ledger_plan(h->l);
    if (ct_plan_count(p) == 0) return 0;
    return ct_json_add_owned(f, "data", ct_plan_changes_json(p))
               ? 0
               : CT_ERR(e, CT_ENOMEM, "out of memory answering with the data changes");
}

/* checkpoint_commit's optional "cursor" {epoch, pos}: the unit the group's data cursor is in at
 * the checkpoint. With it, pending data changes take effect there. */
static int take_effect(ct_handler_t *h, const ct_msg_t *m, ct_err_t *e) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m->root, "cursor");
    if (!c) return 0;
    int64_t epoch, pos;
    if (!ct_json_get_uint53(c, "epoch", &epoch) || !ct_json_get_uint53(c, "pos", &pos))
        return CT_ERR(e, CT_EPROTO,
                      "checkpoint_commit: \"cursor\" must be {\"epoch\": E, \"pos\": P}");
    int64_t pending = 0;
    CT_TRY(ct_ledger_changes_pending(h->l, &pending, e));
    return pending ? ct_ledger_take_effect(h->l, epoch, pos, NULL, e) : 0;
}

/* A request that only a group in the run may make: one that left, or went silent and lost its
 * leases (a standby may have taken over), is refused until it says hello again, so a group cut
 * off by the network cannot take data or commit on top of the group that replaced it. */
static int in_run(ct_handler_t *h, const char *group, double now, ct_err_t *e) {
    int member = 0;
    CT_TRY(ct_ledger_touch(h->l, group, now, &member, e));
    if (member) return 0;
    return CT_ERR(e, CT_ESTATE,
                  "group %s is not in the run: it left, or went silent and its leases lapsed "
                  "(another group may have taken over); start it again (a new hello)",
                  group);
}

/* The reply's fields for a request of type m->type, or an error: CT_EPROTO (bad fields: reply
 * `malformed`), CT_ESTATE (a stale lease or checkpoint: reply `stale`), CT_EIO/CT_ENOMEM. */
static int act(ct_handler_t *h, const ct_msg_t *m, const ct_frame_t *in, const char *group,
               const char *peer, double now, ct_msg_type_t *type, cJSON *f, ct_frame_t *frame,
               ct_err_t *e) {
    char id[CT_SHA256_HEX], parent[CT_SHA256_HEX] = "", shard[CT_SHARD_ID_MAX];
    int64_t epoch, fence, step;
    *type = CT_MSG_OK;
    switch (m->type) {
    case CT_MSG_HELLO: {
        const cJSON *sb = cJSON_GetObjectItemCaseSensitive(m->root, "standby");
        if (sb && !cJSON_IsBool(sb))
            return CT_ERR(e, CT_EPROTO, "field \"standby\" must be true or false");
        char active[CT_GROUP_MAX] = "";
        if (cJSON_IsTrue(sb)) CT_TRY(ct_ledger_standby(h->l, group, now, h->ttl, active, NULL, e));
        *type = CT_MSG_WELCOME;
        if (active[0]) /* another group is training: ask again later */
            return cJSON_AddStringToObject(f, "active", active) &&
                           cJSON_AddNumberToObject(f, "ttl_s", h->ttl)
                       ? 0
                       : CT_ERR(e, CT_ENOMEM, "out of memory answering hello");
        CT_TRY(ct_ledger_restart(h->l, group, peer, NULL, e));
        CT_TRY(ct_ledger_seen(h->l, group, now, e));
        CT_TRY(ct_ledger_head(h->l, id, &step, e));
        /* the group resumes from the head: what was logged past it is not the lineage's */
        CT_TRY(ct_ledger_metrics_rewind(h->l, step > 0 ? step : 0, e));
        if (!ct_json_add_owned(f, "config", cJSON_Duplicate(h->config, 1)) ||
            !cJSON_AddStringToObject(f, "group", group) ||
            !cJSON_AddStringToObject(f, "head", id) ||
            !cJSON_AddNumberToObject(f, "head_step", (double)step) ||
            !cJSON_AddNumberToObject(f, "ttl_s", h->ttl))
            return CT_ERR(e, CT_ENOMEM, "out of memory answering hello");
        return add_plan(h, f, e);
    }
    case CT_MSG_LEASE: {
        ct_lease_t x;
        CT_TRY(in_run(h, group, now, e));
        CT_TRY(ct_ledger_lease(h->l, group, now, h->ttl, &x, e));
        *type = CT_MSG_LEASE_GRANT;
        if (!cJSON_AddStringToObject(f, "shard", x.shard_id) ||
            !cJSON_AddNumberToObject(f, "epoch", (double)x.epoch) ||
            !cJSON_AddNumberToObject(f, "fence", (double)x.fence) ||
            !cJSON_AddNumberToObject(f, "ttl_s", h->ttl))
            return CT_ERR(e, CT_ENOMEM, "out of memory answering lease");
        return 0;
    }
    case CT_MSG_HEARTBEAT:
        CT_TRY(in_run(h, group, now, e));
        return ct_ledger_heartbeat(h->l, group, now, h->ttl, e);
    case CT_MSG_SHARD_DONE:
        CT_TRY(in_run(h, group, now, e));
        CT_TRY(ct_msg_string(m, "shard", shard, sizeof shard, e));
        CT_TRY(ct_msg_uint(m, "epoch", &epoch, e));
        CT_TRY(ct_msg_uint(m, "fence", &fence, e));
        return ct_ledger_done(h->l, group, shard, epoch, fence, e);
    case CT_MSG_CHECKPOINT_COMMIT: {
        if (h->rounds)
            return CT_ERR(e, CT_EINVAL,
                          "checkpoint_commit: in volunteer mode the coordinator "
                          "makes the checkpoints; a group sends its delta");
        CT_TRY(ct_msg_uint(m, "step", &step, e));
        CT_TRY(ct_msg_string(m, "id", id, sizeof id, e));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m->root, "parent");
        if (cJSON_IsString(p) && p->valuestring[0])
            CT_TRY(ct_msg_string(m, "parent", parent, sizeof parent, e));
        else if (!cJSON_IsString(p))
            return CT_ERR(e, CT_EPROTO, "checkpoint_commit: \"parent\" must be a string");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(m->root, "units"), *u;
        int n = cJSON_GetArraySize(arr);
        if (!cJSON_IsArray(arr) || n > UNITS_MAX)
            return CT_ERR(e, CT_EPROTO,
                          "checkpoint_commit: \"units\" must be an array of at "
                          "most %d {shard, epoch} objects",
                          UNITS_MAX);
        ct_unit_t *units = calloc((size_t)(n ? n : 1), sizeof *units);
        if (!units) return CT_ERR(e, CT_ENOMEM, "out of memory reading %d units", n);
        int i = 0, rc = 0;
        cJSON_ArrayForEach(u, arr) {
            ct_msg_t one = {.type = m->type, .root = (cJSON *)u};
            if ((rc = ct_msg_string(&one, "shard", units[i].shard_id, sizeof units[i].shard_id,
                                    e)) != 0 ||
                (rc = ct_msg_uint(&one, "epoch", &units[i].epoch, e)) != 0)
                break;
            i++;
        }
        if (rc == 0) rc = in_run(h, group, now, e);
        if (rc == 0) rc = ct_ledger_commit(h->l, group, step, now, id, parent, units, n, e);
        if (rc == 0) rc = finished(h, group, step, id, e);
        if (rc == 0) rc = take_effect(h, m, e);
        if (rc == 0) rc = add_plan(h, f, e);
        free(units);
        return rc;
    }
    case CT_MSG_LATEST_CHECKPOINT:
        CT_TRY(ct_ledger_head(h->l, id, &step, e));
        if (!cJSON_AddStringToObject(f, "id", id) ||
            !cJSON_AddNumberToObject(f, "step", (double)step))
            return CT_ERR(e, CT_ENOMEM, "out of memory answering latest_checkpoint");
        return 0;
    case CT_MSG_METRICS:
        CT_TRY(in_run(h, group, now, e)); /* a group cut off must not overwrite its successor's */
        return metrics(h, m, group, e);
    case CT_MSG_LEAVE: {
        static const char *const whys[] = {"finished", "stopped", "paused"};
        char why[16];
        int returned = 0;
        CT_TRY(ct_msg_string(m, "why", why, sizeof why, e));
        size_t k = 0;
        while (k < sizeof whys / sizeof whys[0] && strcmp(why, whys[k]))
            k++;
        if (k == sizeof whys / sizeof whys[0])
            return CT_ERR(e, CT_EPROTO, "leave: \"why\" must be finished, stopped or paused");
        CT_TRY(ct_ledger_leave(h->l, group, why, &returned, e));
        return cJSON_AddNumberToObject(f, "returned", returned)
                   ? 0
                   : CT_ERR(e, CT_ENOMEM, "out of memory answering leave");
    }
    case CT_MSG_STATUS: return status(h, now, f, e);
    case CT_MSG_DATA_MANIFEST: return data_manifest(h, f, frame, e);
    case CT_MSG_SHARD_FETCH: return shard_fetch(h, m, f, frame, e);
    case CT_MSG_MODEL_FETCH: return model_fetch(h, m, f, frame, e);
    case CT_MSG_DELTA:
        if (!h->rounds) return CT_ERR(e, CT_EINVAL, "delta: this run is not in volunteer mode");
        CT_TRY(in_run(h, group, now, e));
        return ct_rounds_delta(h->rounds, m, in, group, peer, now, f, e);
    case CT_MSG_MODEL_UPDATE:
        if (!h->rounds)
            return CT_ERR(e, CT_EINVAL, "model_update: this run is not in volunteer mode");
        return ct_rounds_update(h->rounds, m, f, frame, e);
    default: return CT_ERR(e, CT_EPROTO, "%s is a reply, not a request", ct_msg_type_name(m->type));
    }
}

/* The error reply for a failed act(). */
static char *error_reply(int64_t req, int rc, const ct_err_t *why) {
    ct_proto_error_t code = rc == CT_EPROTO   ? CT_PROTO_E_MALFORMED
                            : rc == CT_ESTATE ? CT_PROTO_E_STALE
                            : rc == CT_EINVAL ? CT_PROTO_E_REFUSED
                                              : CT_PROTO_E_INTERNAL;
    return ct_msg_error(req, code, why->msg);
}

int ct_handler_batch_begin(ct_handler_t *h, ct_err_t *e) {
    return ct_ledger_begin(h->l, e);
}

int ct_handler_batch_end(ct_handler_t *h, int keep, ct_err_t *e) {
    return ct_ledger_end(h->l, keep, e);
}

int ct_handler_tick(ct_handler_t *h, double now, int *expired, int *stepped, ct_err_t *e) {
    *stepped = 0;
    CT_TRY(ct_ledger_expire(h->l, now, expired, e));
    if (!h->rounds) return 0;
    CT_TRY(ct_rounds_tick(h->rounds, now, stepped, e));
    if (!ct_rounds_finished(h->rounds)) return 0;
    /* the last version is out: the groups fetch it and leave, then the coordinator stops */
    if (h->finished_at == 0) h->finished_at = now;
    ct_group_info_t *g = NULL;
    int n = 0;
    CT_TRY(ct_ledger_groups(h->l, 0, &g, &n, e));
    free(g);
    h->done = n == 0 || now - h->finished_at >= FINISH_GRACE_S;
    return 0;
}

int ct_handler_done(const ct_handler_t *h) {
    return h->done;
}

int ct_handler_request(ct_handler_t *h, const void *hdr, size_t len, int n_frames,
                       const ct_frame_t *in, const char *peer, double now, char **reply,
                       ct_frame_t *frame, ct_err_t *e) {
    ct_msg_t m;
    int64_t req, stored_req;
    ct_proto_error_t code;
    ct_err_t why = {0};
    char group[CT_GROUP_MAX], *stored = NULL;
    *reply = NULL;
    *frame = (ct_frame_t){0};
    if (ct_msg_parse(hdr, len, n_frames, &m, &req, &code, &why) != 0) {
        *reply = ct_msg_error(req, code, why.msg);
        return 0;
    }
    int rc = 0;
    if (ct_msg_string(&m, "group", group, sizeof group, &why) != 0) {
        *reply = ct_msg_error(req, CT_PROTO_E_MALFORMED, why.msg);
        goto out;
    }
    /* reading requests change nothing: answered as they come, never stored or replayed */
    if (m.type == CT_MSG_STATUS || m.type == CT_MSG_LATEST_CHECKPOINT ||
        m.type == CT_MSG_DATA_MANIFEST || m.type == CT_MSG_SHARD_FETCH ||
        m.type == CT_MSG_MODEL_FETCH || m.type == CT_MSG_MODEL_UPDATE) {
        ct_msg_type_t type;
        cJSON *f = cJSON_CreateObject();
        int r = f ? act(h, &m, in, group, peer, now, &type, f, frame, &why) : CT_ENOMEM;
        if (r == 0) {
            *reply = ct_msg_header(type, req, f);
        } else {
            cJSON_Delete(f);
            *reply = error_reply(req, r, &why);
        }
        if (!*reply) { /* no header for the frame: nothing is sent */
            free(frame->data);
            *frame = (ct_frame_t){0};
        }
        goto out;
    }
    /* a retry gets the stored answer, an older request `replayed`; request numbers count per
       session (a group that starts again starts a new session, numbered from 1 again) */
    char key[CT_GROUP_MAX + 48], session[40];
    if (cJSON_GetObjectItemCaseSensitive(m.root, "session")) {
        if (ct_msg_string(&m, "session", session, sizeof session, &why) != 0) {
            *reply = ct_msg_error(req, CT_PROTO_E_MALFORMED, why.msg);
            goto out;
        }
        snprintf(key, sizeof key, "%s/%s", group, session);
    } else {
        snprintf(key, sizeof key, "%s", group);
    }
    CT_TRY_GOTO(ct_ledger_reply_get(h->l, key, &stored_req, &stored, e), internal);
    if (stored && req == stored_req) {
        *reply = stored;
        stored = NULL;
        goto out;
    }
    if (stored && req < stored_req) {
        char msg[CT_GROUP_MAX + 240];
        snprintf(msg, sizeof msg,
                 "request %lld of %s was answered before (the last one "
                 "answered is %lld)",
                 (long long)req, key, (long long)stored_req);
        *reply = ct_msg_error(req, CT_PROTO_E_REPLAYED, msg);
        goto out;
    }
    CT_TRY_GOTO(ct_ledger_begin(h->l, e), internal);
    ct_msg_type_t type;
    cJSON *f = cJSON_CreateObject();
    int r = f ? act(h, &m, in, group, peer, now, &type, f, frame, &why) : CT_ENOMEM;
    if (r == 0)
        *reply = ct_msg_header(type, req, f);
    else
        cJSON_Delete(f);
    if (r == CT_EIO || r == CT_ENOMEM || (r == 0 && !*reply)) {
        ct_ledger_end(h->l, 0, e);
        rc = CT_ERR(e, r ? r : CT_ENOMEM, "%s", r ? why.msg : "out of memory building a reply");
        free(*reply);
        *reply = NULL;
        goto internal;
    }
    if (r != 0) { /* refused: what act began is undone, the answer is kept */
        *reply = error_reply(req, r, &why);
        if (ct_ledger_end(h->l, 0, e) != 0 || ct_ledger_begin(h->l, e) != 0) {
            rc = e->code;
            free(*reply);
            *reply = NULL;
            goto internal;
        }
    }
    int kept = *reply && ct_ledger_reply_put(h->l, key, req, *reply, e) == 0;
    /* end undoes this level itself when keeping it fails */
    if (ct_ledger_end(h->l, kept, e) != 0 || !kept) {
        rc = e->code ? e->code : CT_ENOMEM;
        free(*reply);
        *reply = NULL;
        goto internal;
    }
    goto out;
internal:
    if (!*reply) *reply = ct_msg_error(req, CT_PROTO_E_INTERNAL, e->msg);
out:
    free(stored);
    ct_msg_clear(&m);
    return rc;
}
