/* coord.c — the coordinator as one object, served in the foreground or on a thread (see coord.h).
 *
 * Why a thread for the embedded coordinator rather than calling the handler directly: a plain
 * run then speaks the very protocol a cluster run speaks (the same requests, replies, retries
 * and transactions), so the path every user takes first is the path the cluster relies on. Its
 * socket is inproc:// in the server's ZeroMQ context, which only this process can reach. */
#include "cotrain/coord.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/handler.h"
#include "cotrain/rounds.h"
#include "cotrain/server.h"
#include "cotrain/thread.h"

struct ct_coord {
    ct_ledger_t *ledger;
    ct_handler_t *handler;
    ct_server_t *server;
    ct_public_t *pub;
    ct_config_t cfg;     /* volunteer mode: the run's config, parsed */
    ct_rounds_t *rounds; /* volunteer mode, or NULL */
    const ct_log_t *lg;
    char db[CT_PATH_MAX];
    /* the serving thread (ct_coord_start) */
    pthread_t thread;
    int running;
    atomic_int stop;
    int rc; /* the thread's result */
    ct_err_t err;
};

static int count_one(void *arg, int64_t seq, const char *line, ct_err_t *e) {
    (void)seq, (void)line, (void)e;
    ++*(int *)arg;
    return 0;
}

/* A registry without a lineage or metrics (a run directory made before it, or whose ledger was
 * lost) takes over the metrics RUN_DIR/public/metrics.jsonl holds, so a run it adopts keeps its
 * history (the group's hello then drops what lies past the checkpoint it resumes from). */
static int adopt_metrics(ct_coord_t *c, const char *run_dir, ct_err_t *e) {
    char head[CT_SHA256_HEX], path[CT_PATH_MAX], *text = NULL;
    int64_t step;
    int any = 0;
    size_t len = 0;
    CT_TRY(ct_ledger_head(c->ledger, head, &step, e));
    CT_TRY(ct_ledger_metrics(c->ledger, 0, 1, count_one, &any, e));
    CT_TRY(ct_path_join(path, sizeof path, run_dir, "public/metrics.jsonl", e));
    if (head[0] || any || access(path, F_OK) != 0) return 0;
    CT_TRY(ct_read_file(path, &text, &len, e));
    int rc = ct_ledger_begin(c->ledger, e), n = 0; /* one transaction, one fsync */
    for (char *line = text, *nl; rc == 0 && (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        int64_t s = 0;
        const char *g = ct_json_get_string(o, "group");
        if (ct_json_get_uint53(o, "step", &s) && s > 0) {
            rc = ct_ledger_metrics_add(c->ledger, g ? g : "local", s, line, e);
            n++;
        }
        cJSON_Delete(o);
    }
    free(text);
    if (rc == 0)
        rc = ct_ledger_end(c->ledger, 1, e);
    else
        ct_ledger_end(c->ledger, 0, e);
    if (rc == 0 && n)
        ct_log(c->lg, CT_LOG_INFO, "the registry takes over the %d metrics line(s) of %s", n, path);
    return rc;
}

int ct_coord_open(ct_coord_t **out, const ct_coord_opts_t *o, const ct_log_t *lg, ct_err_t *e) {
    int rc = 0;
    ct_coord_t *c = NULL;
    *out = NULL;
    CT_ALLOC(e, c, 1, fail);
    c->lg = lg;
    CT_TRY_GOTO(ct_path_join(c->db, sizeof c->db, o->run_dir, CT_COORD_DB, e), fail);
    char sha[CT_SHA256_HEX];
    ct_sha256_hex(o->config_json, strlen(o->config_json), sha);
    CT_TRY_GOTO(ct_ledger_open(&c->ledger, c->db, o->m, o->seed, o->held_out, sha, e), fail);
    /* the groups could not heartbeat while no coordinator ran: a TTL to come back */
    CT_TRY_GOTO(ct_ledger_grace(c->ledger, ct_wall_s() + o->lease_ttl, e), fail);
    CT_TRY_GOTO(ct_handler_create(&c->handler, c->ledger, o->m, o->config_json, o->lease_ttl, e),
                fail);
    cJSON *js = cJSON_Parse(o->config_json);
    int volunteer = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(js, "volunteer"), "enabled"));
    cJSON_Delete(js);
    if (volunteer) {
        CT_TRY_GOTO(ct_config_load_text(&c->cfg, o->config_json, "the run's config", NULL, 0, e),
                    fail);
        const ct_rounds_opts_t ro = {.run_dir = o->run_dir,
                                     .cfg = &c->cfg,
                                     .config_json = o->config_json,
                                     .m = o->m,
                                     .l = c->ledger,
                                     .lg = lg,
                                     .init = o->init};
        CT_TRY_GOTO(ct_rounds_open(&c->rounds, &ro, e), fail);
        ct_handler_set_rounds(c->handler, c->rounds);
    } else if (o->init) {
        rc = CT_ERR(e, CT_EINVAL,
                    "--init sets version 0 of a volunteer run (volunteer.enabled); a cluster "
                    "run's workers start from their own --init");
        goto fail;
    }
    char ckpts[CT_PATH_MAX];
    CT_TRY_GOTO(ct_path_join(ckpts, sizeof ckpts, o->run_dir, "checkpoints", e), fail);
    CT_TRY_GOTO(ct_handler_set_checkpoints(c->handler, ckpts, e), fail);
    CT_TRY_GOTO(
        ct_server_create(&c->server, c->handler, c->ledger, o->bind, o->key, o->allow, lg, e),
        fail);
    CT_TRY_GOTO(ct_server_set_rate(c->server, o->rate, o->rate < 1 ? 1 : o->rate, e), fail);
    const ct_public_opts_t po = {.run_dir = o->run_dir,
                                 .config_json = o->config_json,
                                 .m = o->m,
                                 .held_out = o->held_out,
                                 .web_dir = CT_WEB_DIR};
    CT_TRY_GOTO(adopt_metrics(c, o->run_dir, e), fail);
    CT_TRY_GOTO(ct_public_open(&c->pub, &po, c->db, lg, e), fail);
    ct_server_set_public(c->server, c->pub);
    *out = c;
    return 0;
fail:
    ct_coord_close(&c);
    return rc;
}

ct_ledger_t *ct_coord_ledger(ct_coord_t *c) {
    return c->ledger;
}

const char *ct_coord_endpoint(const ct_coord_t *c) {
    return ct_server_endpoint(c->server);
}

void *ct_coord_zmq_context(const ct_coord_t *c) {
    return ct_server_zmq_context(c->server);
}

int ct_coord_serve(ct_coord_t *c, const atomic_int *stop, ct_err_t *e) {
    return ct_server_run(c->server, stop, e);
}

static void *serve_thread(void *arg) {
    ct_coord_t *c = arg;
    c->rc = ct_server_run(c->server, &c->stop, &c->err);
    if (c->rc != 0) ct_log(c->lg, CT_LOG_ERROR, "the embedded coordinator stopped: %s", c->err.msg);
    return NULL;
}

int ct_coord_start(ct_coord_t *c, ct_err_t *e) {
    if (c->running) return CT_ERR(e, CT_ESTATE, "the coordinator is serving already");
    atomic_store(&c->stop, 0);
    CT_TRY(ct_thread_start(&c->thread, serve_thread, c, "the coordinator's thread", e));
    c->running = 1;
    return 0;
}

double ct_coord_cpu_s(const ct_coord_t *c) {
    return (c->running ? ct_thread_cpu_s(c->thread) : 0.0) + ct_public_cpu_s(c->pub);
}

int ct_coord_stop(ct_coord_t *c, ct_err_t *e) {
    if (!c->running) return 0;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    c->running = 0;
    if (c->rc != 0) *e = c->err;
    return c->rc;
}

void ct_coord_close(ct_coord_t **self_p) {
    ct_coord_t *c = *self_p;
    if (!c) return;
    ct_err_t ignored = {0};
    ct_coord_stop(c, &ignored);
    ct_server_destroy(&c->server);
    ct_public_close(&c->pub);
    ct_handler_destroy(&c->handler);
    ct_rounds_close(&c->rounds);
    ct_ledger_close(&c->ledger);
    free(c);
    *self_p = NULL;
}

int ct_coord_find_resume(ct_coord_t *c, const char *run_dir, int64_t before, char *dir, size_t n,
                         ct_ckpt_info_t *info, const ct_log_t *lg, ct_err_t *e) {
    char head[CT_SHA256_HEX];
    int64_t head_step;
    CT_TRY(ct_ledger_head(c->ledger, head, &head_step, e));
    for (int passed = 0;;) {
        int rc = ct_ckpt_latest(run_dir, before, 0, dir, n, NULL, info, lg, e);
        if (rc == CT_ENOENT && head[0])
            return CT_ERR(e, CT_ENOENT,
                          "no checkpoint of the run's registry (%s, head %.16s... of step "
                          "%lld) is in %s/checkpoints and verifies (%d newer one(s) were never "
                          "committed): restore the run's checkpoints, or start a new --out",
                          c->db, head, (long long)head_step, run_dir, passed);
        CT_TRY(rc);
        if (!head[0]) return 0; /* no lineage yet: ct_coord_settle adopts it */
        int in = ct_ledger_find(c->ledger, info->id, NULL, e);
        CT_TRY(in);
        if (in) return 0;
        ct_log(lg, CT_LOG_WARN,
               "passing over checkpoint %s: the run's registry never committed it (saved "
               "just before a crash, or after the checkpoint the run went back to)",
               dir);
        passed++;
        before = info->step;
    }
}

int ct_coord_settle(ct_coord_t *c, const char *group, const ct_ckpt_info_t *info,
                    const ct_log_t *lg, ct_err_t *e) {
    char head[CT_SHA256_HEX];
    int64_t head_step;
    CT_TRY(ct_ledger_head(c->ledger, head, &head_step, e));
    if (!info) {
        if (!head[0]) return 0;
        return CT_ERR(e, CT_EINVAL,
                      "this run directory holds a run: its registry (%s) has committed "
                      "checkpoints up to step %lld; go on with --resume latest, or start a new "
                      "run in another --out",
                      c->db, (long long)head_step);
    }
    if (!strcmp(head, info->id)) return 0;
    int64_t step;
    int in = ct_ledger_find(c->ledger, info->id, &step, e), returned = 0, n = 0;
    CT_TRY(in);
    if (in) {
        CT_TRY(ct_ledger_rollback(c->ledger, info->id, &returned, &n, e));
        ct_log(lg, CT_LOG_WARN,
               "the run goes back to checkpoint %.16s... (step %lld): %d later checkpoint(s) "
               "leave the registry's lineage and %d unit(s) of data return to the pool",
               info->id, (long long)step, n, returned);
        return 0;
    }
    if (head[0])
        return CT_ERR(e, CT_EINVAL,
                      "checkpoint %.16s... (step %lld) is not in this run's lineage (%s, head "
                      "step %lld): resume from one of the run's own checkpoints, or start its "
                      "run in a new --out",
                      info->id, (long long)info->step, c->db, (long long)head_step);
    CT_TRY(ct_ledger_adopt(c->ledger, group, info->step, ct_wall_s(), info->id, info->cursor.epoch,
                           info->cursor.shard_pos, &n, e));
    ct_log(lg, CT_LOG_INFO,
           "the registry %s starts its lineage at checkpoint %.16s... (step %lld), with the %d "
           "unit(s) of data before its cursor",
           c->db, info->id, (long long)info->step, n);
    return 0;
}
