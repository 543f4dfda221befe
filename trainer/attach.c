/* attach.c — a worker group's side of the coordinator protocol (see attach.h). Only rank 0 holds
 * a connection; every public call is collective, and the ranks agree on its outcome, so no rank
 * trains on while another stopped. A request that gets no answer is sent again with the same
 * `req` (the coordinator answers a retry with its stored reply) until ASK_S have passed.
 *
 * Why a pulse thread with a connection of its own: the coordinator counts a group alive by its
 * heartbeats (they renew its leases, and a standby takes over only from a silent group), and a
 * step can last longer than the lease TTL (a large model on CPUs: minutes). Heartbeats sent
 * between steps would then let the leases lapse and a standby take over a live group; the pulse
 * sends one every TTL/3 whatever the training thread is doing (a ZeroMQ socket belongs to one
 * thread, hence its own connection and session). */
#include "cotrain/attach.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/client.h"
#include "cotrain/clock.h"
#include "cotrain/curve.h"
#include "cotrain/json.h"
#include "cotrain/plan.h"
#include "cotrain/proto.h"
#include "cotrain/thread.h"

#define METRICS_S 5.0

enum {
    TRY_MS = 2000,
    /* a request that moves a chunk (up to CT_PROTO_CHUNK_MAX bytes, either way) waits longer
       before it is sent again: 1 MiB over a 1 Mbit/s link takes 8 s, and a resend every 2 s
       would never let one through */
    CHUNK_TRY_MS = 10000,
    ASK_S = 120,
    LEAVE_S = 10, /* a group on its way out waits no longer for its goodbye */
    HEAD_MSG = 4096,
    GROUP_MAX = 96,
    STANDBY_POLL_MS = 500,
    BUSY_MS = 100,
    METRICS_BATCH = 64, /* metrics lines a request carries at most */
    METRICS_EVERY = 16  /* lines queued before ct_attach_follow sends them (or METRICS_S) */
};

/* A unit reported done: one shard in one epoch. */
typedef struct unit {
    char shard_id[CT_SHARD_ID_MAX];
    int64_t epoch;
} unit_t;

/* A place in the plan's order: unit `pos` of epoch `epoch` (pos may be past the epoch's end or on
 * an excluded unit until settle() moves it to the unit it stands for). */
typedef struct upos {
    int64_t epoch, pos;
} upos_t;

struct ct_attach {
    ct_comm_t *comm;
    int rank0;
    ct_client_t *client;
    char group[GROUP_MAX];
    char session[24]; /* this start of the group: its requests are numbered anew */
    long long req;
    const ct_log_t *lg;
    ct_plan_t *plan;             /* the run's data plan, as the coordinator's (plan.h) */
    cJSON *changes;              /* its changes, as the last welcome or commit reply gave them */
    int new_changes;             /* rank 0: the last commit reply brought changes */
    int64_t *order, order_epoch; /* (order_cap) the shard order of order_epoch */
    int64_t order_cap;
    int started;                  /* next_lease / next_done set from the first cursor */
    upos_t next_lease, next_done; /* the next unit to lease, and to report done */
    int64_t *fences;              /* fences[k]: the k-th leased unit not yet reported done */
    int n_fences, cap_fences;
    unit_t *done; /* reported done since the last commit */
    int n_done, cap_done;
    char head[CT_SHA256_HEX];
    char **lines; /* metrics lines not sent yet */
    int n_lines, cap_lines;
    double lines_sent; /* when the queue last went out */
    /* the pulse (rank 0): heartbeats every ttl/3 on a connection and session of its own */
    ct_client_t *pulse_client;
    char pulse_session[32];
    pthread_t pulse;
    int pulsing, stop, pulse_failing;
    pthread_mutex_t mu; /* guards ttl and stop */
    pthread_cond_t wake;
    double ttl; /* the coordinator's lease TTL, from its welcome and grants */
};

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 when a reply is the coordinator's `busy` error (the request was not served) */
static int busy(const char *reply) {
    ct_msg_t m;
    int64_t req;
    ct_proto_error_t code;
    ct_err_t e = {0};
    if (ct_msg_parse(reply, strlen(reply), 0, &m, &req, &code, &e) != 0) return 0;
    const char *c = m.type == CT_MSG_ERROR ? ct_json_get_string(m.root, "code") : NULL;
    int yes = c && !strcmp(c, ct_proto_error_name(CT_PROTO_E_BUSY));
    ct_msg_clear(&m);
    return yes;
}

/* Sends a request of `type` with fields f (consumed), retrying the same req, and returns the
 * parsed reply in *m and its frame in *frame (may be NULL). An error reply is CT_ESTATE
 * (stale/refused) or CT_EPROTO, with its text. */
static int ask_within(ct_attach_t *a, ct_msg_type_t type, cJSON *f, const ct_frame_t *body,
                      ct_msg_t *m, ct_frame_t *frame, int limit_s, ct_err_t *e) {
    long long req = ++a->req;
    if (!f) f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "group", a->group) ||
        !cJSON_AddStringToObject(f, "session", a->session)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory building a request");
    }
    char *hdr = ct_msg_header(type, req, f); /* takes f */
    if (!hdr) return CT_ERR(e, CT_ENOMEM, "out of memory building a request");
    int rc = CT_ETIMEDOUT;
    int chunky = (body && body->len) || type == CT_MSG_SHARD_FETCH || type == CT_MSG_MODEL_FETCH ||
                 type == CT_MSG_MODEL_UPDATE;
    double t0 = ct_now_s();
    char *reply = NULL;
    while (rc == CT_ETIMEDOUT && ct_now_s() - t0 < limit_s) {
        ct_err_t why = {0};
        rc = ct_client_request_body(a->client, hdr, body, req, chunky ? CHUNK_TRY_MS : TRY_MS,
                                    &reply, frame, &why);
        if (rc == 0 && busy(reply)) { /* past the rate: the same req again, a little later */
            free(reply);
            reply = NULL;
            if (frame) free(frame->data);
            rc = CT_ETIMEDOUT;
            nap_ms(BUSY_MS);
        }
        if (rc != 0 && rc != CT_ETIMEDOUT) *e = why;
    }
    free(hdr);
    if (rc == CT_ETIMEDOUT)
        return CT_ERR(e, CT_ETIMEDOUT,
                      "the coordinator did not answer %s within %d s: is it "
                      "running? (the group stops; start it again once it is)",
                      ct_msg_type_name(type), limit_s);
    if (rc != 0) return rc;
    int64_t r;
    ct_proto_error_t code;
    rc = ct_msg_parse(reply, strlen(reply), 0, m, &r, &code, e);
    free(reply);
    if (rc == 0 && m->type == CT_MSG_ERROR) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m->root, "code");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->root, "message");
        int stale = cJSON_IsString(c) && !strcmp(c->valuestring, "stale");
        rc = CT_ERR(e, stale ? CT_ESTATE : CT_EPROTO, "the coordinator refused %s: %s",
                    ct_msg_type_name(type), cJSON_IsString(t) ? t->valuestring : "(no reason)");
        ct_msg_clear(m);
    }
    if (rc != 0 && frame) {
        free(frame->data);
        *frame = (ct_frame_t){0};
    }
    return rc;
}

static int ask_frame(ct_attach_t *a, ct_msg_type_t type, cJSON *f, ct_msg_t *m, ct_frame_t *frame,
                     ct_err_t *e) {
    return ask_within(a, type, f, NULL, m, frame, ASK_S, e);
}

static int ask(ct_attach_t *a, ct_msg_type_t type, cJSON *f, ct_msg_t *m, ct_err_t *e) {
    return ask_frame(a, type, f, m, NULL, e);
}

int ct_attach_request(ct_attach_t *a, ct_msg_type_t type, cJSON *f, ct_msg_t *m, ct_frame_t *frame,
                      ct_err_t *e) {
    return ct_attach_send(a, type, f, NULL, m, frame, e);
}

int ct_attach_send(ct_attach_t *a, ct_msg_type_t type, cJSON *f, const ct_frame_t *body,
                   ct_msg_t *m, ct_frame_t *frame, ct_err_t *e) {
    if (!a->rank0) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ESTATE, "only rank 0 speaks to the coordinator");
    }
    return ask_within(a, type, f, body, m, frame, ASK_S, e);
}

int ct_attach_agree(ct_attach_t *a, int rc, ct_err_t *e) {
    int failed = rc != 0 ? -rc : 0;
    CT_TRY(ct_comm_max_int(a->comm, &failed, e));
    if (failed && rc == 0)
        return CT_ERR(e, -failed, "rank 0 lost the coordinator (its log says why)");
    return rc;
}

/* hello; a standby group asks again every STANDBY_POLL_MS while another group is active */
static int hello(ct_attach_t *a, int standby, ct_msg_t *m, ct_err_t *e) {
    for (int told = 0;; told = 1) {
        cJSON *f = cJSON_CreateObject();
        if (!f || (standby && !cJSON_AddTrueToObject(f, "standby"))) {
            cJSON_Delete(f);
            return CT_ERR(e, CT_ENOMEM, "out of memory building hello");
        }
        CT_TRY(ask(a, CT_MSG_HELLO, f, m, e));
        const char *active = ct_json_get_string(m->root, "active");
        if (!active) return 0;
        double ttl = 0;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->root, "ttl_s");
        if (cJSON_IsNumber(t)) ttl = t->valuedouble;
        if (!told)
            ct_log(a->lg, CT_LOG_INFO,
                   "standby: group %s is training; this group takes over from the head "
                   "checkpoint once %s has been silent for %.0f s",
                   active, active, ttl);
        ct_msg_clear(m);
        nap_ms(STANDBY_POLL_MS);
    }
}

/* A connection of rank 0 into *c: in the embedded coordinator's context, plain, or CURVE with
 * the coordinator's public key and the group's pair. */
static int connect_to(const ct_attach_opts_t *o, ct_client_t **c, ct_err_t *e) {
    if (o->zmq_ctx) return ct_client_create_shared(c, o->zmq_ctx, o->endpoint, e);
    if (!o->server_key) return ct_client_create(c, o->endpoint, NULL, NULL, e);
    char pub[CT_Z85_KEY];
    ct_keypair_t key;
    CT_TRY(ct_curve_public(o->server_key, pub, e));
    CT_TRY(ct_curve_load(o->key_file, &key, e));
    return ct_client_create(c, o->endpoint, pub, &key, e);
}

/* One heartbeat of the pulse; a failure is logged once while it lasts (the training thread's own
 * requests find out whether the coordinator is gone). */
static void beat(ct_attach_t *a, long long req, double every) {
    int timeout_ms = every * 1000 < TRY_MS ? (int)(every * 1000) + 1 : TRY_MS;
    cJSON *f = cJSON_CreateObject();
    char *hdr = NULL, *reply = NULL;
    ct_err_t why = {0};
    if (f && cJSON_AddStringToObject(f, "group", a->group) &&
        cJSON_AddStringToObject(f, "session", a->pulse_session))
        hdr = ct_msg_header(CT_MSG_HEARTBEAT, req, f); /* takes f */
    else
        cJSON_Delete(f);
    int rc = hdr ? ct_client_request(a->pulse_client, hdr, req, timeout_ms, &reply, NULL, &why)
                 : CT_ENOMEM;
    ct_msg_t m;
    int64_t r;
    ct_proto_error_t code;
    if (rc == 0 && (rc = ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &why)) == 0) {
        if (m.type != CT_MSG_OK) rc = CT_ERR(&why, CT_EPROTO, "the coordinator refused it");
        ct_msg_clear(&m);
    }
    if (rc != 0 && !a->pulse_failing)
        ct_log(a->lg, CT_LOG_WARN, "heartbeat unanswered%s%s (retrying every %.1f s)",
               why.msg[0] ? ": " : "", why.msg, every);
    else if (rc == 0 && a->pulse_failing)
        ct_log(a->lg, CT_LOG_INFO, "heartbeats answered again");
    a->pulse_failing = rc != 0;
    free(hdr);
    free(reply);
}

static void *pulse_main(void *arg) {
    ct_attach_t *a = arg;
    long long req = 0;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        double every = a->ttl / 3;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)every;
        until.tv_nsec += (long)((every - (double)(time_t)every) * 1e9);
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        int r = 0;
        while (!a->stop && r == 0) /* 0: woken early (or spuriously): wait on */
            r = pthread_cond_timedwait(&a->wake, &a->mu, &until);
        if (a->stop) break;
        pthread_mutex_unlock(&a->mu);
        beat(a, ++req, every);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Starts the pulse on rank 0, after the hello. */
static int start_pulse(ct_attach_t *a, const ct_attach_opts_t *o, ct_err_t *e) {
    snprintf(a->pulse_session, sizeof a->pulse_session, "%s-pulse", a->session);
    CT_TRY(connect_to(o, &a->pulse_client, e));
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&a->wake, &ca) != 0)
        return CT_ERR(e, CT_ENOMEM, "cannot make the heartbeat thread's condition variable");
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    if (ct_thread_start(&a->pulse, pulse_main, a, "the heartbeat thread", e) != 0) {
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->mu);
        return e->code;
    }
    a->pulsing = 1;
    return 0;
}

/* Stops the pulse (if it runs) and closes its connection. */
static void stop_pulse(ct_attach_t *a) {
    if (a->pulsing) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->pulse, NULL);
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->mu);
        a->pulsing = 0;
    }
    ct_client_destroy(&a->pulse_client);
}

/* The TTL a welcome or lease grant names, for the pulse. */
static void learn_ttl(ct_attach_t *a, const ct_msg_t *m) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->root, "ttl_s");
    if (!cJSON_IsNumber(t) || !(t->valuedouble > 0)) return;
    if (a->pulsing) pthread_mutex_lock(&a->mu);
    a->ttl = t->valuedouble;
    if (a->pulsing) pthread_mutex_unlock(&a->mu);
}

/* Rank 0's data changes (the "data" of a welcome or commit reply, may be absent: NULL) to every
 * rank, as a->changes. */
static int share_changes(ct_attach_t *a, const cJSON *data, ct_err_t *e) {
    char *text = a->rank0 && data ? cJSON_PrintUnformatted(data) : NULL;
    if (a->rank0 && data && !text) return CT_ERR(e, CT_ENOMEM, "out of memory");
    int rc = ct_comm_bcast_text(a->comm, &text, e);
    cJSON *c = rc == 0 && text ? cJSON_Parse(text) : NULL;
    if (rc == 0 && text && !cJSON_IsArray(c))
        rc = CT_ERR(e, CT_EPROTO, "the coordinator's data changes are not a JSON array");
    int got = text != NULL;
    free(text);
    if (rc != 0 || !got) {
        cJSON_Delete(c);
        return rc;
    }
    cJSON_Delete(a->changes);
    a->changes = c;
    return 0;
}

int ct_attach_open(ct_attach_t **out, ct_comm_t *comm, const ct_attach_opts_t *o,
                   char **config_json, char head[CT_SHA256_HEX], int64_t *head_step,
                   const ct_log_t *lg, ct_err_t *e) {
    int rc = 0;
    ct_attach_t *a = NULL;
    ct_msg_t m = {0};
    *out = NULL;
    *config_json = NULL;
    CT_ALLOC(e, a, 1, fail);
    a->comm = comm;
    a->rank0 = ct_comm_rank(comm) == 0;
    a->lg = lg;
    a->order_epoch = -1;
    a->ttl = 60.0;
    snprintf(a->group, sizeof a->group, "%s", o->group);
    /* a new session each start: 64 random bits (the clock and pid if there is no urandom) */
    uint64_t nonce = (uint64_t)(ct_now_s() * 1e9) ^ ((uint64_t)getpid() << 32);
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur) {
        if (fread(&nonce, sizeof nonce, 1, ur) != 1) nonce ^= 0x9e3779b97f4a7c15ull;
        fclose(ur);
    }
    snprintf(a->session, sizeof a->session, "%016llx", (unsigned long long)nonce);
    /* rank 0 asks; the welcome (config and head) then goes to every rank */
    char buf[HEAD_MSG + CT_SHA256_HEX + 32] = "";
    if (a->rank0) {
        rc = connect_to(o, &a->client, e);
        if (rc == 0) rc = hello(a, o->standby, &m, e);
        if (rc == 0) learn_ttl(a, &m);
        if (rc == 0) rc = start_pulse(a, o, e);
        const cJSON *c = rc == 0 ? cJSON_GetObjectItemCaseSensitive(m.root, "config") : NULL;
        const char *h = rc == 0 ? ct_json_get_string(m.root, "head") : NULL;
        int64_t step = -1;
        if (rc == 0) ct_json_get_uint53(m.root, "head_step", &step);
        char *text = c ? cJSON_PrintUnformatted(c) : NULL;
        if (rc == 0 && (!cJSON_IsObject(c) || !h || !text || strlen(text) >= HEAD_MSG))
            rc = CT_ERR(e, CT_EPROTO, "the coordinator's welcome has no usable config or head");
        if (rc == 0) snprintf(buf, sizeof buf, "%s\n%lld\n%s", h, (long long)step, text);
        free(text);
    }
    CT_TRY_GOTO(ct_attach_agree(a, rc, e), fail);
    CT_TRY_GOTO(ct_comm_bcast(comm, buf, sizeof buf, e), fail);
    CT_TRY_GOTO(share_changes(a, cJSON_GetObjectItemCaseSensitive(m.root, "data"), e), fail);
    char *nl = strchr(buf, '\n'), *nl2 = nl ? strchr(nl + 1, '\n') : NULL;
    if (!nl || !nl2 || nl - buf >= CT_SHA256_HEX) {
        rc = CT_ERR(e, CT_EPROTO, "the coordinator's welcome is malformed");
        goto fail;
    }
    memcpy(head, buf, (size_t)(nl - buf));
    head[nl - buf] = '\0';
    *head_step = strtoll(nl + 1, NULL, 10);
    snprintf(a->head, sizeof a->head, "%s", head);
    if (!(*config_json = strdup(nl2 + 1))) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory");
        goto fail;
    }
    ct_msg_clear(&m);
    *out = a;
    return 0;
fail:
    ct_msg_clear(&m);
    ct_attach_close(&a);
    return rc;
}

int ct_attach_data(ct_attach_t *a, const ct_manifest_t *m, int held_out, uint64_t seed,
                   ct_err_t *e) {
    ct_plan_destroy(&a->plan);
    CT_TRY(ct_plan_create(&a->plan, m, held_out, seed, e));
    return a->changes ? ct_plan_apply(a->plan, a->changes, NULL, e) : 0;
}

const cJSON *ct_attach_changes(const ct_attach_t *a) {
    return a->changes;
}

void ct_attach_close(ct_attach_t **self_p) {
    ct_attach_t *a = *self_p;
    if (!a) return;
    stop_pulse(a);
    for (int i = 0; i < a->n_lines; i++)
        free(a->lines[i]);
    free(a->lines);
    ct_client_destroy(&a->client);
    ct_plan_destroy(&a->plan);
    cJSON_Delete(a->changes);
    free(a->order);
    free(a->fences);
    free(a->done);
    free(a);
    *self_p = NULL;
}

/* Moves u to the unit it stands for: past an epoch's end into the next, past excluded units. */
static int settle(ct_attach_t *a, upos_t *u, ct_err_t *e) {
    for (;;) {
        if (u->pos >= ct_plan_epoch_len(a->plan, u->epoch)) {
            u->epoch++;
            u->pos = 0;
            continue;
        }
        if (a->order_epoch != u->epoch) {
            int64_t n = ct_plan_shards(a->plan);
            if (n > a->order_cap) {
                int64_t *o = realloc(a->order, (size_t)n * sizeof *o);
                if (!o) return CT_ERR(e, CT_ENOMEM, "out of memory");
                a->order = o;
                a->order_cap = n;
            }
            ct_plan_order(a->plan, u->epoch, a->order);
            a->order_epoch = u->epoch;
        }
        if (!ct_plan_excluded(a->plan, u->epoch, u->pos, a->order[u->pos])) return 0;
        u->pos++;
    }
}

/* The id of the shard of unit u (settled first). */
static int unit_shard(ct_attach_t *a, upos_t *u, const char **id, ct_err_t *e) {
    CT_TRY(settle(a, u, e));
    *id = ct_plan_shard(a->plan, a->order[u->pos])->id;
    return 0;
}

static int before(upos_t x, upos_t y) {
    return x.epoch < y.epoch || (x.epoch == y.epoch && x.pos < y.pos);
}

static int lease_next(ct_attach_t *a, ct_err_t *e) {
    ct_msg_t m;
    int64_t ep = -1, fence = -1;
    const char *want = NULL;
    char got[CT_SHARD_ID_MAX] = "";
    CT_TRY(unit_shard(a, &a->next_lease, &want, e));
    int64_t epoch = a->next_lease.epoch;
    CT_TRY(ask(a, CT_MSG_LEASE, NULL, &m, e));
    int rc = ct_msg_string(&m, "shard", got, sizeof got, e);
    if (rc == 0) rc = ct_msg_uint(&m, "epoch", &ep, e);
    if (rc == 0) rc = ct_msg_uint(&m, "fence", &fence, e);
    learn_ttl(a, &m);
    ct_msg_clear(&m);
    CT_TRY(rc);
    if (strcmp(got, want) != 0 || ep != epoch)
        return CT_ERR(e, CT_ESTATE,
                      "the coordinator leased shard %s of epoch %lld, but this "
                      "group's loader is at shard %s of epoch %lld: another group is taking "
                      "this run's data, or the head checkpoint is not the one resumed from",
                      got, (long long)ep, want, (long long)epoch);
    if (a->n_fences == a->cap_fences) {
        int cap = a->cap_fences ? 2 * a->cap_fences : 16;
        int64_t *p = realloc(a->fences, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory");
        a->fences = p;
        a->cap_fences = cap;
    }
    a->fences[a->n_fences++] = fence;
    a->next_lease.pos++;
    return 0;
}

static int report_next(ct_attach_t *a, ct_err_t *e) {
    const char *id = NULL;
    CT_TRY(unit_shard(a, &a->next_done, &id, e));
    int64_t epoch = a->next_done.epoch;
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "shard", id) ||
        !cJSON_AddNumberToObject(f, "epoch", (double)epoch) ||
        !cJSON_AddNumberToObject(f, "fence", (double)a->fences[0])) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory");
    }
    ct_msg_t m;
    CT_TRY(ask(a, CT_MSG_SHARD_DONE, f, &m, e));
    ct_msg_clear(&m);
    if (a->n_done == a->cap_done) {
        int cap = a->cap_done ? 2 * a->cap_done : 16;
        unit_t *p = realloc(a->done, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory");
        a->done = p;
        a->cap_done = cap;
    }
    unit_t *u = &a->done[a->n_done++];
    snprintf(u->shard_id, sizeof u->shard_id, "%s", id);
    u->epoch = epoch;
    memmove(a->fences, a->fences + 1, (size_t)--a->n_fences * sizeof *a->fences);
    a->next_done.pos++;
    return 0;
}

int ct_attach_metrics(ct_attach_t *a, const char *line, ct_err_t *e) {
    if (!a->rank0) return 0;
    if (a->n_lines == a->cap_lines) {
        int cap = a->cap_lines ? 2 * a->cap_lines : 16;
        char **p = realloc(a->lines, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory");
        a->lines = p;
        a->cap_lines = cap;
    }
    if (!(a->lines[a->n_lines] = strdup(line))) return CT_ERR(e, CT_ENOMEM, "out of memory");
    a->n_lines++;
    return 0;
}

/* The metrics lines queued, sent METRICS_BATCH at a time (rank 0). */
static int send_metrics(ct_attach_t *a, ct_err_t *e) {
    while (a->n_lines > 0) {
        int n = a->n_lines < METRICS_BATCH ? a->n_lines : METRICS_BATCH;
        cJSON *f = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(f, "lines");
        int ok = f && arr;
        for (int i = 0; ok && i < n; i++)
            ok = cJSON_AddItemToArray(arr, cJSON_CreateString(a->lines[i]));
        if (!ok) {
            cJSON_Delete(f);
            return CT_ERR(e, CT_ENOMEM, "out of memory sending metrics");
        }
        ct_msg_t m;
        CT_TRY(ask(a, CT_MSG_METRICS, f, &m, e));
        ct_msg_clear(&m);
        for (int i = 0; i < n; i++)
            free(a->lines[i]);
        memmove(a->lines, a->lines + n, (size_t)(a->n_lines - n) * sizeof *a->lines);
        a->n_lines -= n;
    }
    a->lines_sent = ct_now_s();
    return 0;
}

int ct_attach_follow(ct_attach_t *a, const ct_data_cursor_t *cur, ct_err_t *e) {
    int rc = 0;
    if (a->rank0) {
        upos_t g = {cur->epoch, cur->shard_pos};
        if (!a->started) {
            a->next_lease = a->next_done = g;
            a->started = 1;
        }
        while (rc == 0 && (rc = settle(a, &a->next_lease, e)) == 0 && !before(g, a->next_lease))
            rc = lease_next(a, e);
        while (rc == 0 && (rc = settle(a, &a->next_done, e)) == 0 && before(a->next_done, g))
            rc = report_next(a, e);
        /* a request is a synced transaction: lines go out 16 at a time, or every few seconds
           (each commit takes the rest), so logging every step costs little */
        if (rc == 0 && (a->n_lines >= METRICS_EVERY ||
                        (a->n_lines > 0 && ct_now_s() - a->lines_sent >= METRICS_S)))
            rc = send_metrics(a, e);
    }
    return ct_attach_agree(a, rc, e);
}

int ct_attach_commit(ct_attach_t *a, int64_t step, const char *id, const ct_data_cursor_t *cur,
                     ct_err_t *e) {
    if (!a->rank0) return 0;
    CT_TRY(send_metrics(a, e)); /* the checkpoint's steps' lines go first */
    cJSON *f = cJSON_CreateObject(), *units = cJSON_CreateArray();
    cJSON *at = f ? cJSON_AddObjectToObject(f, "cursor") : NULL; /* where changes take effect */
    int ok = f && units && at && cJSON_AddNumberToObject(f, "step", (double)step) &&
             cJSON_AddStringToObject(f, "id", id) &&
             cJSON_AddStringToObject(f, "parent", a->head) &&
             cJSON_AddNumberToObject(at, "epoch", (double)cur->epoch) &&
             cJSON_AddNumberToObject(at, "pos", (double)cur->shard_pos);
    for (int i = 0; ok && i < a->n_done; i++) {
        cJSON *u = cJSON_CreateObject();
        ok = u && cJSON_AddStringToObject(u, "shard", a->done[i].shard_id) &&
             cJSON_AddNumberToObject(u, "epoch", (double)a->done[i].epoch) &&
             cJSON_AddItemToArray(units, u);
        if (!ok) cJSON_Delete(u);
    }
    ok = ok && cJSON_AddItemToObject(f, "units", units);
    if (!ok) {
        cJSON_Delete(units);
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory building a commit");
    }
    ct_msg_t m;
    CT_TRY(ask(a, CT_MSG_CHECKPOINT_COMMIT, f, &m, e));
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(m.root, "data");
    a->new_changes = cJSON_GetArraySize(data) > ct_plan_count(a->plan);
    if (a->new_changes) {
        cJSON_Delete(a->changes);
        a->changes = cJSON_Duplicate(data, 1);
        if (!a->changes) {
            ct_msg_clear(&m);
            return CT_ERR(e, CT_ENOMEM, "out of memory");
        }
    }
    ct_msg_clear(&m);
    ct_log(a->lg, CT_LOG_INFO,
           "checkpoint %.16s... of step %lld committed by the coordinator "
           "with %d unit(s) of data",
           id, (long long)step, a->n_done);
    snprintf(a->head, sizeof a->head, "%s", id);
    a->n_done = 0;
    return 0;
}

int ct_attach_replan(ct_attach_t *a, ct_data_t *d, ct_err_t *e) {
    int n = a->rank0 && a->new_changes;
    CT_TRY(ct_comm_max_int(a->comm, &n, e));
    if (!n) return 0;
    CT_TRY(share_changes(a, a->rank0 ? a->changes : NULL, e));
    a->new_changes = 0;
    int before_n = ct_plan_count(a->plan), rc = ct_plan_apply(a->plan, a->changes, NULL, e);
    a->order_epoch = -1; /* the orders may have grown */
    if (rc == 0) rc = ct_data_replan(d, a->changes, e);
    if (rc == 0 && a->rank0)
        for (int i = before_n; i < ct_plan_count(a->plan); i++) {
            const cJSON *c = cJSON_GetArrayItem(a->changes, i);
            const char *kind = ct_json_get_string(c, "kind");
            int64_t epoch = -1, pos = -1;
            ct_json_get_uint53(c, "epoch", &epoch);
            ct_json_get_uint53(c, "pos", &pos);
            if (kind && !strcmp(kind, "add"))
                ct_log(a->lg, CT_LOG_INFO,
                       "data added to the run: %s (%d shard(s)), read after the other shards of "
                       "epoch %lld",
                       ct_json_get_string(c, "manifest"),
                       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "shards")),
                       (long long)epoch);
            else
                ct_log(a->lg, CT_LOG_INFO,
                       "data excluded from the run: %d shard(s), skipped from unit %lld of epoch "
                       "%lld on",
                       cJSON_GetArraySize(cJSON_GetObjectItem(c, "shards")), (long long)pos,
                       (long long)epoch);
        }
    return ct_attach_agree(a, rc, e);
}

int ct_attach_rejoin(ct_attach_t *a, ct_err_t *e) {
    if (!a->rank0) return 0;
    ct_msg_t m;
    CT_TRY(hello(a, 0, &m, e));
    ct_msg_clear(&m);
    return 0;
}

int ct_attach_leave(ct_attach_t *a, const char *why, ct_err_t *e) {
    if (!a->rank0) return 0;
    stop_pulse(a); /* a heartbeat after the goodbye would bring the group back */
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "why", why)) {
        cJSON_Delete(f);
        return CT_ERR(e, CT_ENOMEM, "out of memory building a request");
    }
    ct_msg_t m;
    CT_TRY(ask_within(a, CT_MSG_LEAVE, f, NULL, &m, NULL, LEAVE_S, e));
    ct_msg_clear(&m);
    return 0;
}
