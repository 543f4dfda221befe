/* join.c — a volunteer group's rounds (see join.h). Reads top to bottom: units of data, one
 * round of inner steps, the delta going up, the next version coming down, the loop. */
#include "cotrain/join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cotrain/ckpt.h"
#include "cotrain/clock.h"
#include "cotrain/delta.h"
#include "cotrain/fetch.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/manifest.h"
#include "cotrain/model.h"
#include "cotrain/train.h"
#include "cotrain/units.h"

enum {
    POLL_MS = 200,   /* how often a group that sent its delta asks for the next version */
    WAIT_LOG_S = 30, /* ... and says it still waits */
    STEP_LOG_S = 10  /* a progress line at most this often during a round */
};

typedef struct unit_rec {
    char shard[CT_SHARD_ID_MAX];
    int64_t epoch, fence;
} unit_rec_t;

typedef struct join {
    const ct_join_opts_t *o;
    const ct_config_t *c;
    int rank0, W, local;
    int64_t H; /* inner steps a round */
    ct_manifest_t *m;
    ct_units_t *units;
    ct_trainer_t *tr;
    ct_model_t *model;
    int64_t n;                  /* parameters (the model's buffer, padding rows included) */
    float *theta0, *delta, *ef; /* (n) θ_v, the delta / scratch, the encoder's residual */
    ct_delta_codec_t codec;
    void *enc; /* rank 0: the encoded delta */
    size_t enc_len;
    int *rows;
    int64_t version;
    char head[CT_SHA256_HEX];
    /* rank 0: the unit in progress and those finished this round */
    unit_rec_t cur;
    int have_unit;
    unit_rec_t *done;
    int n_done, cap_done;
    double loss; /* the round's last loss */
    int lost;    /* the coordinator no longer counted the group in the run: the round is void */
    /* traffic (payload bytes), for `scripts/bench volunteer` and the log */
    int64_t up, down_updates, down_ckpts, tokens;
} join_t;

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- units of data ---- */

static int push_done(join_t *J, ct_err_t *e) {
    if (J->n_done == J->cap_done) {
        int cap = J->cap_done ? 2 * J->cap_done : 16;
        unit_rec_t *p = realloc(J->done, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory listing finished units");
        J->done = p;
        J->cap_done = cap;
    }
    J->done[J->n_done++] = J->cur;
    J->have_unit = 0;
    return 0;
}

/* Rank 0 leases the next unit and every rank starts reading it. */
static int next_unit(join_t *J, ct_err_t *e) {
    struct {
        int32_t shard;
        int32_t rc;
        int64_t epoch;
        int32_t lost;
    } u = {-1, 0, 0, 0};
    int rc = 0;
    if (J->rank0) {
        if (J->have_unit) rc = push_done(J, e);
        ct_msg_t m;
        ct_err_t why = {0};
        if (rc == 0 &&
            (rc = ct_attach_request(J->o->a, CT_MSG_LEASE, NULL, &m, NULL, &why)) == CT_ESTATE) {
            /* cut off long enough for its leases to lapse: what it trained is someone else's now */
            ct_log(J->o->lg, CT_LOG_WARN, "%s; this round is given up, the group joins again",
                   why.msg);
            rc = ct_attach_rejoin(J->o->a, e);
            u.lost = 1;
        } else if (rc != 0) {
            *e = why;
        } else {
            const char *id = ct_json_get_string(m.root, "shard");
            int64_t epoch = 0, fence = 0;
            if (!id || !ct_json_get_uint53(m.root, "epoch", &epoch) ||
                !ct_json_get_uint53(m.root, "fence", &fence))
                rc = CT_ERR(e, CT_EPROTO, "the coordinator's lease_grant lacks shard/epoch/fence");
            else if ((u.shard = ct_units_find(J->units, id)) < 0)
                rc = CT_ERR(e, CT_EPROTO,
                            "the coordinator leased shard %s, which the run's manifest does not "
                            "train on",
                            id);
            if (rc == 0) {
                snprintf(J->cur.shard, sizeof J->cur.shard, "%s", id);
                J->cur.epoch = u.epoch = epoch;
                J->cur.fence = fence;
                J->have_unit = 1;
            }
            ct_msg_clear(&m);
        }
        u.rc = rc;
    }
    CT_TRY(ct_comm_bcast(J->o->comm, &u, sizeof u, e));
    if (u.lost && !u.rc) {
        J->lost = 1;
        J->have_unit = 0;
        J->n_done = 0;
        return 0;
    }
    rc = u.rc ? (J->rank0 ? rc : CT_ESTATE) : ct_units_start(J->units, u.shard, u.epoch, e);
    return ct_attach_agree(J->o->a, rc, e);
}

/* This rank's rows of the next global batch, leasing units as they run out. */
static int fill_batch(join_t *J, ct_err_t *e) {
    int lo = ct_comm_rank(J->o->comm) * J->local, gb = J->c->train.global_batch;
    for (int i = 0; i < gb; i++) {
        while (ct_units_left(J->units) == 0) {
            CT_TRY(next_unit(J, e));
            if (J->lost) return 0;
        }
        ct_units_take(J->units,
                      i >= lo && i < lo + J->local ? J->rows + (size_t)(i - lo) * J->W : NULL);
    }
    return 0;
}

/* ---- a round ---- */

/* 1 on every rank when any rank was told to stop. */
static int stopping(join_t *J, ct_err_t *e, int *stop) {
    *stop = *J->o->stop != 0;
    return ct_comm_max_int(J->o->comm, stop, e);
}

/* volunteer.inner_steps steps from θ_v; *stopped when told to stop first. */
static int train_round(join_t *J, int *stopped, ct_err_t *e) {
    float *p = ct_model_params(J->model);
    memcpy(J->theta0, p, (size_t)J->n * sizeof *p);
    ct_trainer_set_steps(J->tr, J->version * J->H);
    double t0 = ct_now_s(), last = t0;
    for (int64_t s = 0; s < J->H; s++) {
        CT_TRY(stopping(J, e, stopped));
        if (*stopped) return 0;
        CT_TRY(fill_batch(J, e));
        if (J->lost) return 0;
        ct_step_stats_t st;
        CT_TRY(ct_attach_agree(J->o->a, ct_trainer_step_tokens(J->tr, J->rows, &st, e), e));
        J->loss = st.loss;
        J->tokens += (int64_t)J->c->train.global_batch * J->c->model.seq_len;
        double now = ct_now_s();
        if (now - last >= STEP_LOG_S || s + 1 == J->H) {
            double tok = (double)(s + 1) * J->c->train.global_batch * J->c->model.seq_len;
            ct_log(J->o->lg, CT_LOG_INFO,
                   "version %lld: inner step %lld/%lld, loss %.4f, lr %.3g, %.0f tokens/s",
                   (long long)J->version, (long long)(s + 1), (long long)J->H, st.loss, st.lr,
                   tok / (now - t0 > 0 ? now - t0 : 1e-9));
            last = now;
        }
    }
    /* a unit read to its end is finished; one the round stopped inside of stays leased */
    if (J->rank0 && J->have_unit && ct_units_left(J->units) == 0) CT_TRY(push_done(J, e));
    return 0;
}

/* ---- the delta going up ---- */

/* The delta request's fields for the chunk at `offset`. */
static cJSON *delta_fields(join_t *J, const char *sha, int64_t offset) {
    cJSON *f = cJSON_CreateObject(), *units = cJSON_AddArrayToObject(f, "units");
    char loss[32];
    snprintf(loss, sizeof loss, "%.9g", J->loss);
    int64_t tokens = J->H * J->c->train.global_batch * J->c->model.seq_len;
    int ok = f && units && cJSON_AddNumberToObject(f, "base", (double)J->version) &&
             cJSON_AddStringToObject(f, "codec", ct_delta_codec_name(J->codec)) &&
             cJSON_AddNumberToObject(f, "n", (double)J->n) &&
             cJSON_AddNumberToObject(f, "bytes", (double)J->enc_len) &&
             cJSON_AddStringToObject(f, "sha256", sha) &&
             cJSON_AddNumberToObject(f, "offset", (double)offset) &&
             cJSON_AddNumberToObject(f, "tokens", (double)tokens) &&
             cJSON_AddNumberToObject(f, "steps", (double)J->H) &&
             cJSON_AddStringToObject(f, "loss", loss);
    for (int i = 0; ok && i < J->n_done; i++) {
        cJSON *u = cJSON_CreateObject();
        ok = u && cJSON_AddItemToArray(units, u) &&
             cJSON_AddStringToObject(u, "shard", J->done[i].shard) &&
             cJSON_AddNumberToObject(u, "epoch", (double)J->done[i].epoch) &&
             cJSON_AddNumberToObject(u, "fence", (double)J->done[i].fence);
    }
    if (!ok) {
        cJSON_Delete(f);
        return NULL;
    }
    return f;
}

/* Rank 0: encodes θ_v − θ and uploads it in chunks; *accepted 0 when the coordinator refused it
 * (too stale, a lease lost): the group then starts over from the next version. */
static int upload(join_t *J, int *accepted, ct_err_t *e) {
    const float *p = ct_model_params(J->model);
    for (int64_t i = 0; i < J->n; i++)
        J->delta[i] = J->theta0[i] - p[i];
    CT_TRY(ct_delta_encode(J->codec, J->delta, J->c->volunteer.error_feedback ? J->ef : NULL, J->n,
                           J->enc, e));
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(J->enc, J->enc_len, sha);
    int64_t off = 0;
    *accepted = 1;
    for (int complete = 0; !complete;) {
        size_t len = J->enc_len - (size_t)off < CT_PROTO_CHUNK_MAX ? J->enc_len - (size_t)off
                                                                   : CT_PROTO_CHUNK_MAX;
        const ct_frame_t body = {(char *)J->enc + off, len};
        cJSON *f = delta_fields(J, sha, off);
        if (!f) return CT_ERR(e, CT_ENOMEM, "out of memory building a delta request");
        ct_msg_t m;
        ct_err_t why = {0};
        int rc = ct_attach_send(J->o->a, CT_MSG_DELTA, f, &body, &m, NULL, &why);
        if (rc == CT_ESTATE || rc == CT_EPROTO) { /* refused: this round's work is void */
            ct_log(J->o->lg, CT_LOG_WARN, "%s; starting over from the next version", why.msg);
            *accepted = 0;
            return 0;
        }
        if (rc != 0) {
            *e = why;
            return rc;
        }
        int64_t have = 0;
        if (!ct_json_get_uint53(m.root, "have", &have) || have > (int64_t)J->enc_len) {
            ct_msg_clear(&m);
            return CT_ERR(e, CT_EPROTO,
                          "the coordinator's answer to a delta chunk lacks a valid "
                          "\"have\"");
        }
        complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m.root, "complete"));
        ct_msg_clear(&m);
        J->up += (int64_t)len;
        off = have;
    }
    ct_log(J->o->lg, CT_LOG_INFO, "delta of version %lld sent (%zu bytes %s, %d unit(s) finished)",
           (long long)J->version, J->enc_len, ct_delta_codec_name(J->codec), J->n_done);
    return 0;
}

/* Sends the round's delta; on a refusal the group says hello again (its leases go back) and its
 * encoder forgets what it carried. */
static int send_delta(join_t *J, ct_err_t *e) {
    int accepted = 1, rc = J->rank0 ? upload(J, &accepted, e) : 0;
    if (rc == 0 && !accepted) {
        if (J->ef) memset(J->ef, 0, (size_t)J->n * sizeof *J->ef);
        rc = ct_attach_rejoin(J->o->a, e);
    }
    J->n_done = 0;
    CT_TRY(ct_attach_agree(J->o->a, rc, e));
    CT_TRY(ct_comm_bcast(J->o->comm, &accepted, sizeof accepted, e));
    if (!accepted) { /* the unit in progress went back too */
        J->have_unit = 0;
        ct_units_drop(J->units);
    }
    return 0;
}

/* ---- the next version coming down ---- */

/* The bytes of checkpoint dir's files: what fetching it moved (at most). */
static int64_t dir_bytes(const char *dir) {
    static const char *const files[] = {"MANIFEST", "config.json", "model.h5", "optim.h5",
                                        "state.json"};
    int64_t n = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[CT_PATH_MAX];
        struct stat st;
        ct_err_t ignored = {0};
        if (ct_path_join(path, sizeof path, dir, files[i], &ignored) == 0 && stat(path, &st) == 0)
            n += st.st_size;
    }
    return n;
}

/* Restores θ of checkpoint `id` of `step` from RUN_DIR/checkpoints (every rank); counted as
 * fetched when `fetched`. */
static int load_version(join_t *J, int64_t step, const char *id, int fetched, ct_err_t *e) {
    char dir[CT_PATH_MAX];
    CT_TRY(
        ct_path_fmt(dir, sizeof dir, e, "%s/checkpoints/ckpt-%08lld", J->o->out, (long long)step));
    if (fetched) J->down_ckpts += dir_bytes(dir);
    ct_ckpt_body_t b = {.tensors = ct_model_tensor(J->model, 0),
                        .n_tensors = ct_model_num_tensors(J->model),
                        .params = ct_model_params(J->model)};
    ct_ckpt_info_t info;
    int rc = ct_ckpt_restore(dir, &b, &info, e);
    if (rc == 0 && strcmp(info.id, id) != 0)
        rc = CT_ERR(e, CT_ECORRUPT, "%s is not version %lld of the run (%.16s..., not %.16s...)",
                    dir, (long long)step, info.id, id);
    return ct_attach_agree(J->o->a, rc, e);
}

/* Version `step` as a whole checkpoint from the coordinator. */
static int fetch_version(join_t *J, int64_t step, const char *id, ct_err_t *e) {
    char root[CT_PATH_MAX];
    CT_TRY(ct_path_join(root, sizeof root, J->o->out, "checkpoints", e));
    CT_TRY(ct_fetch_checkpoint(J->o->a, J->o->comm, root, id, step, J->o->lg, e));
    CT_TRY(load_version(J, step, id, 1, e));
    ct_ckpt_prune(J->o->out, 2, 0, &(ct_err_t){0});
    return 0;
}

/* Rank 0: the update to version+1 into J->enc, and the hash θ_{v+1} must have; *have 0 when the
 * coordinator no longer keeps it. */
static int download_update(join_t *J, char params_sha[CT_SHA256_HEX], int *have, ct_err_t *e) {
    int64_t off = 0, size = (int64_t)J->enc_len;
    *have = 1;
    while (off < size) {
        cJSON *q = cJSON_CreateObject();
        if (!q || !cJSON_AddNumberToObject(q, "from", (double)J->version) ||
            !cJSON_AddNumberToObject(q, "offset", (double)off) ||
            !cJSON_AddNumberToObject(q, "length", CT_PROTO_CHUNK_MAX)) {
            cJSON_Delete(q);
            return CT_ERR(e, CT_ENOMEM, "out of memory building a request");
        }
        ct_msg_t m;
        ct_frame_t fr = {0};
        ct_err_t why = {0};
        int rc = ct_attach_request(J->o->a, CT_MSG_MODEL_UPDATE, q, &m, &fr, &why);
        if (rc == CT_ESTATE) {
            *have = 0;
            return 0;
        }
        if (rc != 0) {
            *e = why;
            return rc;
        }
        int64_t bytes = -1, at = -1;
        const char *ps = ct_json_get_string(m.root, "params_sha256");
        const char *codec = ct_json_get_string(m.root, "codec");
        rc = ct_json_get_uint53(m.root, "bytes", &bytes) && bytes == size &&
                     ct_json_get_uint53(m.root, "offset", &at) && at == off && ps &&
                     ct_sha256_hex_valid(ps) && codec &&
                     ct_delta_codec_parse(codec) == (int)J->codec && fr.len > 0 &&
                     (int64_t)fr.len <= size - off
                 ? 0
                 : CT_ERR(e, CT_EPROTO,
                          "the coordinator's model_update answer does not fit this "
                          "run's model (%zu bytes at %lld)",
                          fr.len, (long long)off);
        if (rc == 0) {
            memcpy((char *)J->enc + off, fr.data, fr.len);
            off += (int64_t)fr.len;
            J->down_updates += (int64_t)fr.len;
            snprintf(params_sha, CT_SHA256_HEX, "%s", ps);
        }
        free(fr.data);
        ct_msg_clear(&m);
        CT_TRY(rc);
    }
    return 0;
}

/* Version+1 from its update: θ_{v+1} = θ_v + decode(update), checked against the coordinator's
 * hash; *ok 0 when that did not work out (the caller fetches the checkpoint). */
static int apply_update(join_t *J, int *ok, ct_err_t *e) {
    char want[CT_SHA256_HEX] = "", got[CT_SHA256_HEX];
    int have = 0, rc = J->rank0 ? download_update(J, want, &have, e) : 0;
    CT_TRY(ct_attach_agree(J->o->a, rc, e));
    CT_TRY(ct_comm_bcast(J->o->comm, &have, sizeof have, e));
    *ok = 0;
    if (!have) return 0;
    CT_TRY(ct_comm_bcast(J->o->comm, want, sizeof want, e));
    CT_TRY(ct_comm_bcast(J->o->comm, J->enc, J->enc_len, e));
    rc = ct_delta_decode(J->codec, J->enc, J->enc_len, J->delta, J->n, e);
    if (rc == 0) {
        float *p = ct_model_params(J->model);
        for (int64_t i = 0; i < J->n; i++)
            p[i] = J->theta0[i] + J->delta[i];
        ct_sha256_hex(p, (size_t)J->n * sizeof *p, got);
        *ok = !strcmp(got, want);
        if (!*ok)
            ct_log(J->o->lg, CT_LOG_WARN,
                   "version %lld from its update hashes to %.16s..., not %.16s...: fetching the "
                   "checkpoint instead",
                   (long long)J->version + 1, got, want);
    }
    return ct_attach_agree(J->o->a, rc, e);
}

/* Waits for a version after J->version (rank 0 asks; every rank learns it); *stopped when told
 * to stop while waiting. */
static int wait_version(join_t *J, int64_t *step, char id[CT_SHA256_HEX], int *stopped,
                        ct_err_t *e) {
    struct {
        int64_t step;
        int32_t rc, stop;
        char id[CT_SHA256_HEX];
    } v = {.step = -1};
    if (J->rank0) {
        double t0 = ct_now_s(), told = t0;
        while (v.rc == 0 && v.step <= J->version && !*J->o->stop) {
            ct_msg_t m;
            v.rc = ct_attach_request(J->o->a, CT_MSG_LATEST_CHECKPOINT, NULL, &m, NULL, e);
            if (v.rc != 0) break;
            const char *h = ct_json_get_string(m.root, "id");
            if (h && ct_sha256_hex_valid(h) && ct_json_get_uint53(m.root, "step", &v.step))
                snprintf(v.id, sizeof v.id, "%s", h);
            else
                v.step = -1;
            ct_msg_clear(&m);
            if (v.step > J->version) break;
            if (ct_now_s() - told >= WAIT_LOG_S) {
                ct_log(J->o->lg, CT_LOG_INFO,
                       "waiting %.0f s so far for the outer step that makes version %lld",
                       ct_now_s() - t0, (long long)J->version + 1);
                told = ct_now_s();
            }
            nap_ms(POLL_MS);
        }
        v.stop = *J->o->stop != 0 && v.step <= J->version;
    }
    CT_TRY(ct_attach_agree(J->o->a, v.rc, e));
    CT_TRY(ct_comm_bcast(J->o->comm, &v, sizeof v, e));
    *stopped = v.stop;
    *step = v.step;
    snprintf(id, CT_SHA256_HEX, "%s", v.id);
    return 0;
}

/* Version `step` (checkpoint id): update after update from J->version while the coordinator
 * keeps them and each lands on its hash (a group a few versions behind moves a few updates, not
 * the model), else the whole checkpoint. */
static int advance(join_t *J, int64_t step, const char *id, ct_err_t *e) {
    int ok = 1;
    while (ok && J->version < step) {
        CT_TRY(apply_update(J, &ok, e));
        if (!ok) break;
        J->version++; /* the next update starts from this version */
        memcpy(J->theta0, ct_model_params(J->model), (size_t)J->n * sizeof *J->theta0);
    }
    if (J->version < step) CT_TRY(fetch_version(J, step, id, e));
    J->version = step;
    snprintf(J->head, sizeof J->head, "%s", id);
    return 0;
}

/* ---- the loop ---- */

static int setup(join_t *J, const ct_join_opts_t *o, ct_err_t *e) {
    const ct_config_t *c = o->cfg;
    J->o = o;
    J->c = c;
    J->rank0 = ct_comm_rank(o->comm) == 0;
    J->W = c->model.seq_len + 1;
    J->local = c->train.global_batch / ct_comm_size(o->comm);
    J->H = c->volunteer.inner_steps;
    J->codec = (ct_delta_codec_t)c->volunteer.compress;
    J->version = o->head_step;
    snprintf(J->head, sizeof J->head, "%s", o->head);
    CT_TRY(ct_manifest_load(&J->m, o->data, e));
    CT_TRY(ct_units_open(&J->units, J->m, J->m->n_shards - c->data.eval_shards, c->model.seq_len,
                         c->train.seed, e));
    /* the inner schedule runs over every inner step of the run */
    ct_config_t inner = *c;
    inner.train.steps = c->train.steps * c->volunteer.inner_steps;
    CT_TRY(ct_trainer_create(&J->tr, &inner, NULL, o->comm, e));
    J->model = ct_trainer_model(J->tr);
    J->n = (int64_t)ct_model_num_params(J->model);
    J->enc_len = ct_delta_encoded_size(J->codec, J->n);
    int rc = 0;
    CT_ALLOC(e, J->theta0, J->n, out);
    CT_ALLOC(e, J->delta, J->n, out);
    if (c->volunteer.error_feedback) CT_ALLOC(e, J->ef, J->n, out);
    CT_ALLOC(e, J->rows, (size_t)J->local * J->W, out);
    if (!(J->enc = malloc(J->enc_len))) rc = CT_ERR(e, CT_ENOMEM, "out of memory for a delta");
out:
    return rc;
}

static void teardown(join_t *J) {
    free(J->theta0);
    free(J->delta);
    free(J->ef);
    free(J->enc);
    free(J->rows);
    free(J->done);
    ct_trainer_destroy(&J->tr);
    ct_units_close(&J->units);
    ct_manifest_destroy(&J->m);
}

int ct_join_run(const ct_join_opts_t *o, ct_err_t *e) {
    join_t J = {0};
    int rc = setup(&J, o, e), stopped = 0;
    if (rc == 0) rc = ct_attach_agree(o->a, rc, e);
    if (rc == 0) rc = load_version(&J, J.version, J.head, 1, e);
    int64_t steps = o->cfg->train.steps;
    if (rc == 0)
        ct_log(o->lg, CT_LOG_INFO,
               "volunteer: version %lld of %lld, %lld inner steps a round, deltas %s%s",
               (long long)J.version, (long long)steps, (long long)J.H, ct_delta_codec_name(J.codec),
               o->cfg->volunteer.error_feedback ? " with error feedback" : "");
    while (rc == 0 && J.version < steps && !stopped) {
        rc = train_round(&J, &stopped, e);
        if (rc != 0 || stopped) break;
        if (J.lost) { /* back to θ_v, and the round again */
            memcpy(ct_model_params(J.model), J.theta0, (size_t)J.n * sizeof *J.theta0);
            J.lost = 0;
            continue;
        }
        rc = send_delta(&J, e);
        int64_t step = -1;
        char id[CT_SHA256_HEX];
        if (rc == 0) rc = wait_version(&J, &step, id, &stopped, e);
        if (rc == 0 && !stopped && step >= steps) { /* the last version: nothing left to train */
            J.version = step;
            break;
        }
        if (rc == 0 && !stopped) rc = advance(&J, step, id, e);
    }
    if (rc == 0) {
        ct_err_t why = {0};
        const char *how = stopped ? "stopped" : "finished";
        if (ct_attach_leave(o->a, how, &why) != 0)
            ct_log(o->lg, CT_LOG_WARN, "could not say goodbye: %s", why.msg);
        ct_log(o->lg, CT_LOG_INFO, "volunteer: %s at version %lld of %lld", how,
               (long long)J.version, (long long)steps);
        int64_t down = J.down_updates + J.down_ckpts;
        ct_log(o->lg, CT_LOG_INFO,
               "volunteer: traffic %lld bytes up (deltas), %lld down (%lld in model updates, "
               "%lld in whole checkpoints) for %lld tokens trained: %.4g bytes a token",
               (long long)J.up, (long long)down, (long long)J.down_updates, (long long)J.down_ckpts,
               (long long)J.tokens, J.tokens ? (double)(J.up + down) / (double)J.tokens : 0.0);
    }
    teardown(&J);
    return rc;
}
