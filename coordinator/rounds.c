/* rounds.c — volunteer mode's global model and outer steps (see rounds.h). */
#include "cotrain/rounds.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/ckpt.h"
#include "cotrain/data.h"
#include "cotrain/clock.h"
#include "cotrain/delta.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/layout.h"
#include "cotrain/outer.h"
#include "cotrain/safetensors.h"

enum { UNITS_MAX = 1 << 16 }; /* units one delta may list */

struct ct_rounds {
    ct_rounds_opts_t o;
    char run_dir[CT_PATH_MAX], deltas[CT_PATH_MAX], updates[CT_PATH_MAX];
    ct_layout_t lay;
    int64_t n;                  /* floats of the model: lay.n_params */
    float *theta, *mom, *resid; /* (n) θ_v, the outer momentum, the update encoder's residual */
    float *scratch;             /* (n) decoding and the step's buffers */
    ct_delta_codec_t codec;
    int64_t version;          /* v: the head's step */
    int64_t tokens;           /* tokens trained into θ_v */
    char head[CT_SHA256_HEX]; /* checkpoint v's id */
};

int ct_rounds_finished(const ct_rounds_t *r) {
    return r->version >= r->o.cfg->train.steps;
}

static ct_ckpt_body_t body_of(ct_rounds_t *r) {
    return (ct_ckpt_body_t){.tensors = r->lay.tensors,
                            .n_tensors = r->lay.n_tensors,
                            .params = r->theta,
                            .adam_m = r->mom,
                            .adam_v = r->resid,
                            .adam_steps = r->version};
}

/* Saves θ_v as checkpoint `step` on top of parent; its id into id. */
static int save_version(ct_rounds_t *r, int64_t step, int64_t tokens, const char *parent,
                        char id[CT_SHA256_HEX], ct_err_t *e) {
    ct_ckpt_info_t info = {.step = step, .tokens = tokens, .world_size = 1};
    CT_TRY(ct_config_sha256(r->o.cfg, info.config_sha256, e));
    snprintf(info.tokenizer, sizeof info.tokenizer, "%s", r->o.m->tokenizer);
    snprintf(info.data_sha256, sizeof info.data_sha256, "%s", r->o.m->sha256);
    snprintf(info.parent, sizeof info.parent, "%s", parent);
    /* groups lease their data unit by unit: the cursor only names the run's first unit */
    info.cursor.seed = r->o.cfg->train.seed;
    int64_t n = r->o.m->n_shards - r->o.cfg->data.eval_shards, *order = malloc((size_t)n * 8);
    if (!order) return CT_ERR(e, CT_ENOMEM, "out of memory saving a version");
    ct_data_shard_order(info.cursor.seed, 0, n, order);
    snprintf(info.cursor.shard_id, sizeof info.cursor.shard_id, "%s", r->o.m->shards[order[0]].id);
    free(order);
    ct_ckpt_body_t b = body_of(r);
    b.adam_steps = step;
    CT_TRY(ct_ckpt_save(r->run_dir, &b, r->o.config_json, &info, NULL, 0, e));
    snprintf(id, CT_SHA256_HEX, "%s", info.id);
    return 0;
}

/* Version 0: the initial weights (of the seed, or of o.init), committed as the lineage's root. */
static int start(ct_rounds_t *r, ct_err_t *e) {
    char from[CT_PATH_MAX + 64], path[CT_PATH_MAX], hex[CT_SHA256_HEX];
    if (r->o.init) {
        CT_TRY(ct_path_join(path, sizeof path, r->o.init, "model.safetensors", e));
        CT_TRY(ct_safetensors_read(path, r->lay.tensors, r->lay.n_tensors, r->theta, e));
        CT_TRY(ct_sha256_file(path, hex, e));
        snprintf(from, sizeof from, "%s, sha256 %.16s...", path, hex);
    } else {
        ct_layout_init_weights(&r->lay, r->theta, r->o.cfg->train.seed);
        snprintf(from, sizeof from, "initial weights, seed %llu",
                 (unsigned long long)r->o.cfg->train.seed);
    }
    memset(r->mom, 0, (size_t)r->n * sizeof(float));
    memset(r->resid, 0, (size_t)r->n * sizeof(float));
    r->version = 0;
    r->tokens = 0;
    CT_TRY(save_version(r, 0, 0, "", r->head, e));
    CT_TRY(
        ct_ledger_commit(r->o.l, CT_LEDGER_OUTER_GROUP, 0, ct_wall_s(), r->head, "", NULL, 0, e));
    ct_log(r->o.lg, CT_LOG_INFO, "volunteer mode: version 0 (%s) is %.16s...", from, r->head);
    return 0;
}

/* The head version, restored from its checkpoint. */
static int resume(ct_rounds_t *r, int64_t step, ct_err_t *e) {
    char dir[CT_PATH_MAX];
    CT_TRY(
        ct_path_fmt(dir, sizeof dir, e, "%s/checkpoints/ckpt-%08lld", r->run_dir, (long long)step));
    ct_ckpt_body_t b = body_of(r);
    ct_ckpt_info_t info;
    CT_TRY(ct_ckpt_restore(dir, &b, &info, e));
    if (strcmp(info.id, r->head) != 0)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s is not the run's version %lld (its id is %.16s..., the ledger's "
                      "%.16s...): restore that checkpoint",
                      dir, (long long)step, info.id, r->head);
    r->version = step;
    r->tokens = info.tokens;
    ct_log(r->o.lg, CT_LOG_INFO, "volunteer mode: resuming at version %lld (%.16s...)%s",
           (long long)step, r->head,
           r->o.init ? "; --init is not used: version 0 was made when the run started" : "");
    return 0;
}

int ct_rounds_open(ct_rounds_t **out, const ct_rounds_opts_t *o, ct_err_t *e) {
    int rc = 0;
    ct_rounds_t *r = NULL;
    *out = NULL;
    CT_ALLOC(e, r, 1, fail);
    r->o = *o;
    r->codec = (ct_delta_codec_t)o->cfg->volunteer.compress;
    CT_TRY_GOTO(ct_path_fmt(r->run_dir, sizeof r->run_dir, e, "%s", o->run_dir), fail_rc);
    CT_TRY_GOTO(ct_path_join(r->deltas, sizeof r->deltas, o->run_dir, "deltas", e), fail_rc);
    CT_TRY_GOTO(ct_path_join(r->updates, sizeof r->updates, o->run_dir, "updates", e), fail_rc);
    CT_TRY_GOTO(ct_mkdirs(r->deltas, e), fail_rc);
    CT_TRY_GOTO(ct_mkdirs(r->updates, e), fail_rc);
    int vocab = o->cfg->model.vocab_size ? o->cfg->model.vocab_size : o->m->vocab_size;
    CT_TRY_GOTO(ct_layout_build(&r->lay, o->cfg->model.n_layer, o->cfg->model.d_model,
                                o->cfg->model.seq_len, vocab, e),
                fail_rc);
    r->n = (int64_t)r->lay.n_params;
    CT_ALLOC(e, r->theta, r->n, fail);
    CT_ALLOC(e, r->mom, r->n, fail);
    CT_ALLOC(e, r->resid, r->n, fail);
    CT_ALLOC(e, r->scratch, r->n, fail);
    int64_t step;
    CT_TRY_GOTO(ct_ledger_head(o->l, r->head, &step, e), fail_rc);
    if (!r->head[0])
        rc = start(r, e);
    else
        rc = resume(r, step, e);
    if (rc != 0) goto fail;
    *out = r;
    return 0;
fail_rc:
    rc = e->code;
fail:
    ct_rounds_close(&r);
    return rc;
}

void ct_rounds_close(ct_rounds_t **self_p) {
    ct_rounds_t *r = *self_p;
    if (!r) return;
    free(r->theta);
    free(r->mom);
    free(r->resid);
    free(r->scratch);
    ct_layout_free(&r->lay);
    free(r);
    *self_p = NULL;
}

/* ---- deltas coming in ---- */

/* The units a delta lists, reported done by the group (its lease tokens must hold). */
static int report_units(ct_rounds_t *r, const ct_msg_t *m, const char *group, ct_err_t *e) {
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(m->root, "units");
    if (!cJSON_IsArray(units) || cJSON_GetArraySize(units) > UNITS_MAX)
        return CT_ERR(e, CT_EPROTO,
                      "delta: \"units\" must be an array of at most %d {shard, "
                      "epoch, fence}",
                      UNITS_MAX);
    const cJSON *u;
    cJSON_ArrayForEach(u, units) {
        ct_msg_t one = {.root = (cJSON *)u};
        char shard[CT_SHARD_ID_MAX];
        int64_t epoch, fence;
        CT_TRY(ct_msg_string(&one, "shard", shard, sizeof shard, e));
        CT_TRY(ct_msg_uint(&one, "epoch", &epoch, e));
        CT_TRY(ct_msg_uint(&one, "fence", &fence, e));
        CT_TRY(ct_ledger_done(r->o.l, group, shard, epoch, fence, e));
    }
    return 0;
}

/* Checks a whole upload: its sha256, then that it decodes to finite values. */
static int check_upload(ct_rounds_t *r, const char *path, const char *sha, int64_t bytes,
                        ct_err_t *e) {
    char *buf = NULL, got[CT_SHA256_HEX];
    size_t len = 0;
    CT_TRY(ct_read_file(path, &buf, &len, e));
    ct_sha256_hex(buf, len, got);
    int rc = (int64_t)len != bytes || strcmp(got, sha)
                 ? CT_ERR(e, CT_EPROTO,
                          "delta: the %zu bytes received hash to %.16s..., not the %.16s... "
                          "announced: send it again from offset 0",
                          len, got, sha)
                 : ct_delta_decode(r->codec, buf, len, r->scratch, r->n, e);
    if (rc == CT_ECORRUPT) rc = CT_EPROTO; /* the sender's fault: the upload starts over */
    free(buf);
    return rc;
}

/* Appends the chunk to the group's upload when it starts where the file ends; *have gets the
 * file's size. */
static int append_chunk(const char *path, int64_t offset, const ct_frame_t *in, int64_t bytes,
                        int64_t *have, ct_err_t *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return CT_ERR(e, CT_EIO, "cannot open %s: %s", path, strerror(err));
    }
    *have = st.st_size;
    int rc = 0;
    if (offset == *have && in && in->len > 0) {
        if (offset + (int64_t)in->len > bytes)
            rc = CT_ERR(e, CT_EPROTO,
                        "delta: a chunk of %zu bytes at %lld passes the %lld "
                        "announced",
                        in->len, (long long)offset, (long long)bytes);
        else
            rc = ct_write_all(fd, in->data, in->len, offset, path, e);
        if (rc == 0) *have += (int64_t)in->len;
        if (rc == 0 && *have == bytes && fdatasync(fd) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot sync %s: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

int ct_rounds_delta(ct_rounds_t *r, const ct_msg_t *m, const ct_frame_t *in, const char *group,
                    const char *peer, double now, cJSON *f, ct_err_t *e) {
    ct_delta_entry_t d = {.at = now};
    char codec[16], part[CT_PATH_MAX], final[CT_PATH_MAX];
    int64_t n, offset, have = 0;
    snprintf(d.group, sizeof d.group, "%s", group);
    snprintf(d.key, sizeof d.key, "%s", peer ? peer : "");
    CT_TRY(ct_msg_uint(m, "base", &d.base, e));
    CT_TRY(ct_msg_string(m, "codec", codec, sizeof codec, e));
    CT_TRY(ct_msg_uint(m, "n", &n, e));
    CT_TRY(ct_msg_uint(m, "bytes", &d.bytes, e));
    CT_TRY(ct_msg_string(m, "sha256", d.sha256, sizeof d.sha256, e));
    CT_TRY(ct_msg_uint(m, "offset", &offset, e));
    CT_TRY(ct_msg_uint(m, "tokens", &d.tokens, e));
    CT_TRY(ct_msg_uint(m, "steps", &d.steps, e));
    if (cJSON_GetObjectItemCaseSensitive(m->root, "loss"))
        CT_TRY(ct_msg_string(m, "loss", d.loss, sizeof d.loss, e));
    if (!ct_sha256_hex_valid(d.sha256))
        return CT_ERR(e, CT_EPROTO, "delta: \"sha256\" must be 64 lowercase hex digits");
    if (ct_delta_codec_parse(codec) != (int)r->codec || n != r->n ||
        (size_t)d.bytes != ct_delta_encoded_size(r->codec, r->n))
        return CT_ERR(e, CT_EINVAL,
                      "delta: this run takes %lld values encoded %s (%zu bytes); got %lld values "
                      "%s in %lld bytes",
                      (long long)r->n, ct_delta_codec_name(r->codec),
                      ct_delta_encoded_size(r->codec, r->n), (long long)n, codec,
                      (long long)d.bytes);
    /* the mean weighs deltas by their tokens: no claim past what a round can train counts */
    const ct_config_t *c = r->o.cfg;
    int64_t round = c->volunteer.inner_steps * c->train.global_batch * c->model.seq_len;
    if (d.tokens > round || d.steps > c->volunteer.inner_steps)
        return CT_ERR(e, CT_EINVAL,
                      "delta: it claims %lld tokens in %lld steps; a round trains %lld tokens in "
                      "%lld steps (volunteer.inner_steps x train.global_batch x model.seq_len)",
                      (long long)d.tokens, (long long)d.steps, (long long)round,
                      (long long)c->volunteer.inner_steps);
    if (ct_rounds_finished(r)) /* no outer step would merge it: not acknowledged, so not lost */
        return CT_ERR(e, CT_ESTATE,
                      "delta: the run finished at version %lld: no delta is merged any more",
                      (long long)r->version);
    int64_t max = c->volunteer.max_staleness;
    if (d.base > r->version || r->version - d.base > max)
        return CT_ERR(e, CT_ESTATE,
                      "delta: it starts from version %lld, but the run is at version %lld and "
                      "takes deltas from versions %lld..%lld (volunteer.max_staleness %lld): "
                      "fetch version %lld and train from it",
                      (long long)d.base, (long long)r->version,
                      (long long)(r->version > max ? r->version - max : 0), (long long)r->version,
                      (long long)max, (long long)r->version);
    CT_TRY(ct_path_fmt(part, sizeof part, e, "%s/%s-%lld-%.16s.part", r->deltas, group,
                       (long long)d.base, d.sha256));
    CT_TRY(append_chunk(part, offset, in, d.bytes, &have, e));
    int complete = have == d.bytes;
    if (complete) {
        int rc = check_upload(r, part, d.sha256, d.bytes, e);
        if (rc == 0) rc = report_units(r, m, group, e);
        if (rc == 0) rc = ct_ledger_delta_add(r->o.l, &d, e);
        if (rc == 0) rc = ct_path_fmt(final, sizeof final, e, "%s/%s.delta", r->deltas, group);
        if (rc == 0 && rename(part, final) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot rename %s: %s", part, strerror(errno));
        if (rc == 0) rc = ct_fsync_path(r->deltas, e);
        if (rc == CT_EPROTO) unlink(part);
        CT_TRY(rc);
        ct_log(r->o.lg, CT_LOG_INFO, "delta from %s (version %lld, %lld tokens) received", group,
               (long long)d.base, (long long)d.tokens);
    }
    if (!cJSON_AddNumberToObject(f, "have", (double)have) ||
        !cJSON_AddBoolToObject(f, "complete", complete) ||
        !cJSON_AddNumberToObject(f, "version", (double)r->version))
        return CT_ERR(e, CT_ENOMEM, "out of memory answering delta");
    return 0;
}

/* ---- model updates going out ---- */

int ct_rounds_update(ct_rounds_t *r, const ct_msg_t *m, cJSON *f, ct_frame_t *frame, ct_err_t *e) {
    int64_t from, offset, want;
    char meta[CT_PATH_MAX], bin[CT_PATH_MAX], *text = NULL;
    size_t len = 0;
    CT_TRY(ct_msg_uint(m, "from", &from, e));
    CT_TRY(ct_msg_uint(m, "offset", &offset, e));
    CT_TRY(ct_msg_uint(m, "length", &want, e));
    if (want < 1 || want > CT_PROTO_CHUNK_MAX)
        return CT_ERR(e, CT_EPROTO, "model_update: \"length\" must be in [1, %d]",
                      CT_PROTO_CHUNK_MAX);
    if (from >= r->version)
        return CT_ERR(e, CT_ESTATE, "model_update: version %lld is the newest", (long long)from);
    CT_TRY(ct_path_fmt(meta, sizeof meta, e, "%s/update-%08lld.json", r->updates,
                       (long long)from + 1));
    CT_TRY(
        ct_path_fmt(bin, sizeof bin, e, "%s/update-%08lld.bin", r->updates, (long long)from + 1));
    if (ct_read_file(meta, &text, &len, e) != 0) {
        ct_err_clear(e);
        return CT_ERR(e, CT_ESTATE,
                      "model_update: the update to version %lld is no longer kept: fetch the "
                      "checkpoint (model_fetch)",
                      (long long)from + 1);
    }
    cJSON *js = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *it;
    int rc = cJSON_IsObject(js) ? 0 : CT_ERR(e, CT_EIO, "%s is damaged", meta);
    cJSON_ArrayForEach(it, js) {
        cJSON *copy = rc == 0 ? cJSON_Duplicate(it, 1) : NULL;
        if (rc == 0 && (!copy || !cJSON_AddItemToObject(f, it->string, copy))) {
            cJSON_Delete(copy);
            rc = CT_ERR(e, CT_ENOMEM, "out of memory answering model_update");
        }
    }
    cJSON_Delete(js);
    CT_TRY(rc);
    void *buf = NULL;
    size_t k = 0;
    int64_t size = 0;
    rc = ct_read_range(bin, offset, (size_t)want, &buf, &k, &size, e);
    if (rc == CT_EINVAL) /* the request's offset */
        return CT_ERR(e, CT_EPROTO, "model_update: offset %lld is past its end (%lld bytes)",
                      (long long)offset, (long long)size);
    if (rc == CT_ENOENT) rc = CT_EIO;
    if (rc == 0 && (!cJSON_AddNumberToObject(f, "offset", (double)offset) ||
                    !cJSON_AddNumberToObject(f, "length", (double)k)))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory answering model_update");
    if (rc != 0) {
        free(buf);
        return rc;
    }
    frame->data = buf;
    frame->len = k;
    return 0;
}

/* ---- the outer step ---- */

/* Is an outer step due: quorum, every group in, or the deadline with at least one delta? */
static int due(ct_rounds_t *r, int waiting, double now, ct_err_t *e, int *yes) {
    *yes = 0;
    if (waiting < 1) return 0;
    if (waiting >= r->o.cfg->volunteer.quorum) {
        *yes = 1;
        return 0;
    }
    int64_t first_step, head_step;
    double first_at, since;
    CT_TRY(ct_ledger_progress(r->o.l, &first_step, &first_at, &head_step, &since, e));
    if (head_step < 0) since = now;
    if (now - since >= r->o.cfg->volunteer.deadline_s) {
        *yes = 1;
        return 0;
    }
    ct_group_info_t *g = NULL;
    int ng = 0, active = 0;
    CT_TRY(ct_ledger_groups(r->o.l, 0, &g, &ng, e));
    for (int i = 0; i < ng; i++)
        active += !g[i].standby;
    free(g);
    *yes = waiting >= active;
    return 0;
}

/* Reads and decodes the delta file of d into x; a file that does not match its hash or decode
 * is a reason to refuse it (why), not an error. */
static int load_delta(ct_rounds_t *r, const ct_delta_entry_t *d, float *x, char *why, size_t n,
                      ct_err_t *e) {
    char path[CT_PATH_MAX], *buf = NULL, sha[CT_SHA256_HEX];
    size_t len = 0;
    ct_err_t err = {0};
    CT_TRY(ct_path_fmt(path, sizeof path, e, "%s/%s.delta", r->deltas, d->group));
    if (ct_read_file(path, &buf, &len, &err) != 0) {
        snprintf(why, n, "its file is gone: %.130s", err.msg);
        return 0;
    }
    ct_sha256_hex(buf, len, sha);
    if (strcmp(sha, d->sha256) != 0)
        snprintf(why, n, "its file hashes to %.16s..., not %.16s...", sha, d->sha256);
    else if (ct_delta_decode(r->codec, buf, len, x, r->n, &err) != 0)
        snprintf(why, n, "%.150s", err.msg);
    free(buf);
    return 0;
}

/* Writes the update that takes θ_v to θ_{v+1}: its bytes and what model_update says of them. */
static int write_update(ct_rounds_t *r, int64_t step, const void *bytes, size_t len,
                        const char *params_sha, char sha[CT_SHA256_HEX], ct_err_t *e) {
    char bin[CT_PATH_MAX], meta[CT_PATH_MAX];
    ct_sha256_hex(bytes, len, sha);
    CT_TRY(ct_path_fmt(bin, sizeof bin, e, "%s/update-%08lld.bin", r->updates, (long long)step));
    CT_TRY(ct_path_fmt(meta, sizeof meta, e, "%s/update-%08lld.json", r->updates, (long long)step));
    CT_TRY(ct_write_file_atomic(bin, bytes, len, e));
    char text[512];
    int k = snprintf(text, sizeof text,
                     "{\"step\":%lld,\"codec\":\"%s\",\"n\":%lld,\"bytes\":%zu,\"sha256\":\"%s\","
                     "\"params_sha256\":\"%s\"}\n",
                     (long long)step, ct_delta_codec_name(r->codec), (long long)r->n, len, sha,
                     params_sha);
    return ct_write_file_atomic(meta, text, (size_t)k, e);
}

/* Drops the updates and delta files no longer needed: updates older than the checkpoints kept. */
static void tidy(ct_rounds_t *r, int64_t step) {
    int keep = r->o.cfg->ckpt.keep_last;
    char path[CT_PATH_MAX];
    ct_err_t ignored = {0};
    if (keep > 0 && step - keep >= 1)
        for (const char *ext = "bin"; ext; ext = strcmp(ext, "bin") ? NULL : "json")
            if (ct_path_fmt(path, sizeof path, &ignored, "%s/update-%08lld.%s", r->updates,
                            (long long)(step - keep), ext) == 0)
                unlink(path);
    ct_ckpt_prune(r->run_dir, keep > 0 && keep < 2 ? 2 : keep, r->o.cfg->ckpt.keep_every, &ignored);
}

/* The run's metrics line of outer step `step`: its tokens so far and the mean last inner loss of
 * the deltas it accepted (weighted by their tokens), for the dashboard. */
static int outer_metrics(ct_rounds_t *r, const ct_outer_verdict_t *v, int k, int64_t step,
                         int64_t tokens, ct_err_t *e) {
    double sum = 0, w = 0;
    int accepted = 0;
    for (int i = 0; i < k; i++) {
        if (!v[i].accepted) continue;
        accepted++;
        char *end;
        double loss = strtod(v[i].d.loss, &end);
        if (v[i].d.loss[0] && !*end && isfinite(loss)) {
            sum += loss * (double)v[i].d.tokens;
            w += (double)v[i].d.tokens;
        }
    }
    char line[256], loss[40] = "null";
    if (w > 0) snprintf(loss, sizeof loss, "%.9g", sum / w);
    snprintf(line, sizeof line,
             "{\"step\":%lld,\"tokens\":%lld,\"loss\":%s,\"group\":\"%s\",\"deltas\":%d,"
             "\"rejected\":%d}",
             (long long)step, (long long)tokens, loss, CT_LEDGER_OUTER_GROUP, accepted,
             k - accepted);
    return ct_ledger_metrics_add(r->o.l, CT_LEDGER_OUTER_GROUP, step, line, e);
}

/* What an outer step works on: the waiting deltas, decoded, and the verdict on each. */
typedef struct step_in {
    int k;                 /* deltas waiting */
    float **x;             /* (k) each decoded: (n) floats, or NULL when refused on loading */
    ct_outer_verdict_t *v; /* (k) */
    const float **use;     /* (kept) those merged */
    double *w;             /* (kept) their tokens (the mean's weights) */
    int kept;
} step_in_t;

static void step_in_free(step_in_t *s) {
    if (s->x)
        for (int i = 0; i < s->k; i++)
            free(s->x[i]);
    free(s->x);
    free(s->v);
    free(s->use);
    free(s->w);
}

/* The share of itself a delta is merged with: a stale one (from version v - s, s >= 1) is
 * merged scaled by 1 / (1 + s). Why: it was
 * measured at a model the outer step has since moved away from, and the outer momentum already
 * carries the direction the fresh deltas of that version gave; merged whole, a step made of
 * stale deltas alone pushes that direction again, 1 / (1 - momentum) times over. Slow groups
 * make such steps normal: with the DiLoCo defaults (lr 0.7, momentum 0.9) volunteer_e2e's
 * model went from eval loss 3.3 back past its initial 5.5 when ASan slowed every group, while
 * the same run with fresh deltas fell steadily. The factor is in the record's weight. */
static double staleness_share(const ct_rounds_t *r, const ct_delta_entry_t *d) {
    return 1.0 / (double)(1 + r->version - d->base);
}

/* Loads each waiting delta and judges it: refused when its file does not check, or its norm
 * passes outlier_ratio times the median norm; the rest get their weights, each scaled by its
 * staleness_share. */
static int judge(ct_rounds_t *r, const ct_delta_entry_t *dl, int k, int64_t step, step_in_t *s,
                 ct_err_t *e) {
    const ct_config_t *c = r->o.cfg;
    s->k = k;
    s->x = calloc((size_t)k, sizeof *s->x);
    s->v = calloc((size_t)k, sizeof *s->v);
    s->use = calloc((size_t)k, sizeof *s->use);
    s->w = calloc((size_t)k, sizeof *s->w);
    double *norms = calloc((size_t)k, sizeof *norms);
    int *out = calloc((size_t)k, sizeof *out), *at = calloc((size_t)k, sizeof *at), loaded = 0;
    int rc = s->x && s->v && s->use && s->w && norms && out && at
                 ? 0
                 : CT_ERR(e, CT_ENOMEM, "out of memory for an outer step over %d deltas", k);
    for (int i = 0; i < k && rc == 0; i++) {
        s->v[i].d = dl[i];
        if (!(s->x[i] = malloc((size_t)r->n * sizeof(float)))) {
            rc = CT_ERR(e, CT_ENOMEM, "out of memory loading delta %d of %d", i + 1, k);
            break;
        }
        rc = load_delta(r, &dl[i], s->x[i], s->v[i].why, sizeof s->v[i].why, e);
        if (rc == 0 && !s->v[i].why[0]) s->use[loaded] = s->x[i], at[loaded++] = i;
    }
    double median = 0, wsum = 0;
    if (rc == 0) {
        ct_outer_norms(s->use, loaded, r->n, norms);
        ct_outer_outliers(norms, loaded, c->volunteer.outlier_ratio, out, &median);
    }
    for (int j = 0; rc == 0 && j < loaded; j++) {
        int i = at[j];
        if (out[j])
            snprintf(s->v[i].why, sizeof s->v[i].why,
                     "its norm %.6g is over %g times the median norm %.6g "
                     "(volunteer.outlier_ratio)",
                     norms[j], c->volunteer.outlier_ratio, median);
        else {
            float f = (float)staleness_share(r, &dl[i]);
            for (int64_t q = 0; f != 1.0f && q < r->n; q++)
                s->x[i][q] *= f;
            s->use[s->kept] = s->x[i];
            wsum += s->w[s->kept++] = dl[i].tokens > 0 ? dl[i].tokens : 1;
        }
    }
    for (int i = 0, j = 0; rc == 0 && i < k; i++) {
        ct_outer_verdict_t *v = &s->v[i];
        if (!(v->accepted = !v->why[0])) {
            ct_log(r->o.lg, CT_LOG_WARN, "outer step %lld: the delta of %s is refused: %s",
                   (long long)step, dl[i].group, v->why);
            continue;
        }
        double wi = c->volunteer.aggregate == CT_AGG_MEAN ? s->w[j] / wsum : 1.0 / s->kept;
        wi *= staleness_share(r, &dl[i]);
        snprintf(v->weight, sizeof v->weight, "%.6f", wi);
        j++;
    }
    free(norms);
    free(out);
    free(at);
    return rc;
}

/* Zeroes x's padding rows (the vocabulary's rows past vocab_size): never stored, always zero in
 * the model, so nothing a delta puts there may reach θ. */
static void zero_padding(const ct_rounds_t *r, float *x) {
    for (int i = 0; i < r->lay.n_tensors; i++) {
        const ct_tensor_info_t *t = &r->lay.tensors[i];
        size_t kept = ct_tensor_stored_numel(t);
        if (kept < t->numel) memset(x + t->offset + kept, 0, (t->numel - kept) * sizeof *x);
    }
}

/* θ_{v+1} from the kept deltas (none kept: θ_v again): the aggregate, the Nesterov step, and the
 * update that takes θ_v there encoded as the groups will get it (written into RUN_DIR/updates);
 * θ_{v+1} = θ_v + decode(update). On failure θ and the outer state may be half changed: the
 * caller restores them. */
static int merge(ct_rounds_t *r, const step_in_t *s, int64_t step, char params_sha[CT_SHA256_HEX],
                 char update_sha[CT_SHA256_HEX], ct_err_t *e) {
    const ct_config_t *c = r->o.cfg;
    int64_t n = r->n;
    size_t len = ct_delta_encoded_size(r->codec, n);
    float *g = r->scratch, *theta0 = malloc((size_t)n * sizeof *theta0);
    void *enc = malloc(len);
    int rc = theta0 && enc ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory for an outer step");
    if (rc == 0) memcpy(theta0, r->theta, (size_t)n * sizeof *theta0);
    if (rc == 0 && s->kept > 0) {
        rc = ct_outer_aggregate((ct_agg_rule_t)c->volunteer.aggregate, c->volunteer.trim, s->use,
                                c->volunteer.aggregate == CT_AGG_MEAN ? s->w : NULL, s->kept, n, g,
                                e);
        if (rc == 0) {
            zero_padding(r, g);
            ct_outer_step(r->theta, r->mom, g, n, (float)c->volunteer.outer_lr,
                          (float)c->volunteer.outer_momentum);
            for (int64_t i = 0; i < n; i++)
                g[i] = r->theta[i] - theta0[i];
        }
    } else if (rc == 0) { /* every delta refused: the version moves on unchanged */
        memset(g, 0, (size_t)n * sizeof *g);
    }
    if (rc == 0)
        rc = ct_delta_encode(r->codec, g, c->volunteer.error_feedback && s->kept ? r->resid : NULL,
                             n, enc, e);
    if (rc == 0) rc = ct_delta_decode(r->codec, enc, len, g, n, e);
    if (rc == 0) {
        for (int64_t i = 0; i < n; i++)
            r->theta[i] = theta0[i] + g[i];
        ct_sha256_hex(r->theta, (size_t)n * sizeof(float), params_sha);
        rc = write_update(r, step, enc, len, params_sha, update_sha, e);
    }
    free(theta0);
    free(enc);
    return rc;
}

/* θ_v and the outer state back from checkpoint v, after a step that did not commit. */
static void restore_version(ct_rounds_t *r) {
    ct_err_t ignored = {0};
    char dir[CT_PATH_MAX];
    ct_ckpt_body_t b = body_of(r);
    ct_ckpt_info_t info;
    if (ct_path_fmt(dir, sizeof dir, &ignored, "%s/checkpoints/ckpt-%08lld", r->run_dir,
                    (long long)r->version) == 0)
        ct_ckpt_restore(dir, &b, &info, &ignored);
}

/* After the commit: the run's metrics line and end, the merged deltas' files, old updates. */
static int settle(ct_rounds_t *r, const step_in_t *s, int64_t step, const char *id, ct_err_t *e) {
    CT_TRY(outer_metrics(r, s->v, s->k, step, r->tokens, e));
    if (ct_rounds_finished(r)) {
        cJSON *f = cJSON_CreateObject();
        if (!f || !cJSON_AddStringToObject(f, "group", CT_LEDGER_OUTER_GROUP) ||
            !cJSON_AddNumberToObject(f, "step", (double)step) ||
            !cJSON_AddStringToObject(f, "id", id)) {
            cJSON_Delete(f);
            return CT_ERR(e, CT_ENOMEM, "out of memory logging the run's end");
        }
        CT_TRY(ct_ledger_record(r->o.l, "run_finished", f, e));
    }
    for (int i = 0; i < s->k; i++) {
        char path[CT_PATH_MAX];
        ct_err_t ignored = {0};
        if (ct_path_fmt(path, sizeof path, &ignored, "%s/%s.delta", r->deltas, s->v[i].d.group) ==
            0)
            unlink(path);
    }
    tidy(r, step);
    return 0;
}

/* The outer step over the waiting deltas dl[0..k): judged, merged, saved as checkpoint v+1, and
 * committed with its outer_step record; nothing is committed on a failure (θ_v is restored). */
static int outer_step(ct_rounds_t *r, const ct_delta_entry_t *dl, int k, double now, ct_err_t *e) {
    const ct_config_t *c = r->o.cfg;
    int64_t step = r->version + 1, tokens = r->tokens;
    char params_sha[CT_SHA256_HEX], update_sha[CT_SHA256_HEX], id[CT_SHA256_HEX];
    const char *rule = ct_agg_rule_name((ct_agg_rule_t)c->volunteer.aggregate);
    step_in_t s = {0};
    int rc = judge(r, dl, k, step, &s, e);
    if (rc != 0) goto out;
    for (int i = 0; i < k; i++)
        if (s.v[i].accepted) tokens += dl[i].tokens;
    rc = merge(r, &s, step, params_sha, update_sha, e);
    if (rc == 0) rc = save_version(r, step, tokens, r->head, id, e);
    cJSON *extra = rc == 0 ? cJSON_CreateObject() : NULL;
    if (rc == 0 && (!extra || !cJSON_AddStringToObject(extra, "aggregate", rule) ||
                    !cJSON_AddStringToObject(extra, "update_sha256", update_sha) ||
                    !cJSON_AddStringToObject(extra, "params_sha256", params_sha) ||
                    !cJSON_AddNumberToObject(extra, "tokens", (double)tokens))) {
        cJSON_Delete(extra);
        rc = CT_ERR(e, CT_ENOMEM, "out of memory logging an outer step");
    }
    if (rc == 0) rc = ct_ledger_outer_commit(r->o.l, step, now, id, r->head, s.v, k, extra, e);
    if (rc != 0) {
        restore_version(r);
        goto out;
    }
    r->version = step;
    r->tokens = tokens;
    snprintf(r->head, sizeof r->head, "%s", id);
    ct_log(r->o.lg, CT_LOG_INFO,
           "outer step %lld: %d of %d deltas merged (%s), version %lld is %.16s...",
           (long long)step, s.kept, k, rule, (long long)step, id);
    rc = settle(r, &s, step, id, e);
out:
    step_in_free(&s);
    return rc;
}

int ct_rounds_tick(ct_rounds_t *r, double now, int *stepped, ct_err_t *e) {
    *stepped = 0;
    if (ct_rounds_finished(r)) return 0;
    ct_delta_entry_t *dl = NULL;
    int k = 0, yes = 0;
    CT_TRY(ct_ledger_deltas(r->o.l, &dl, &k, e));
    int rc = due(r, k, now, e, &yes);
    if (rc == 0 && yes) {
        rc = outer_step(r, dl, k, now, e);
        *stepped = rc == 0;
    }
    free(dl);
    return rc;
}
