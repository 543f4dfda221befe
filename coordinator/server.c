/* server.c — the ROUTER loop (see server.h). One thread: a request is read, answered through the
 * handler (whose transaction is on disk before this returns) and only then replied to. */
#include "cotrain/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cotrain/clock.h"
#include "cotrain/curve.h"
#include "cotrain/proto.h"
#include "cotrain/public.h"
#include "cotrain/ratelimit.h"

enum { POLL_MS = 200, BATCH_MAX = 256, PUB_BUSY = 32, PUB_IDLE = 32 };
#define PUB_BUSY_S 0.1 /* under load, the public log advances this often */

/* A request of the batch being answered: who asked, and the reply to send after the commit. */
typedef struct pending {
    zmq_msg_t id;
    char *reply;
    ct_frame_t frame; /* the reply's binary frame, if any */
} pending_t;

struct ct_server {
    void *ctx, *sock;
    void *zap;               /* the ZAP handler's socket (CURVE only), else NULL */
    const ct_allow_t *allow; /* the keys admitted (CURVE only); NULL: any key (open join) */
    ct_handler_t *h;
    ct_ratelimit_t *rl; /* per-peer request rate, or NULL */
    double rate;
    const ct_log_t *lg;
    ct_public_t *pub; /* the public log the records go to, or NULL */
    int pub_failing;  /* the last sync of it failed (logged once) */
    char endpoint[256];
    pending_t pending[BATCH_MAX];
};

/* Loopback only until CURVE lands: anything else could be reached by strangers. */
static int loopback(const char *ep) {
    static const char *const ok[] = {"tcp://127.0.0.1:", "tcp://localhost:", "ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(ep, ok[i], strlen(ok[i]))) return 1;
    return 0;
}

/* CURVE on the ROUTER, and the ZAP handler that admits the allowed keys (ZeroMQ asks it, over
 * inproc in the same context, about every peer's handshake). */
static int secure(ct_server_t *s, const ct_keypair_t *key, ct_err_t *e) {
    int one = 1, linger = 0;
    if (!(s->zap = zmq_socket(s->ctx, ZMQ_REP)) ||
        zmq_setsockopt(s->zap, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(s->zap, "inproc://zeromq.zap.01") != 0 ||
        zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, key->sec, 41) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, "cotrain", 7) != 0)
        return CT_ERR(e, CT_ECOMM, "cannot set up CURVE on the coordinator's socket: %s",
                      zmq_strerror(zmq_errno()));
    return 0;
}

/* One ZAP request: [version][request id][domain][address][identity][mechanism][key] -> a reply
 * that admits (200) a CURVE peer whose key is allowed, naming it by key id, or refuses (400). */
static void zap_answer(ct_server_t *s) {
    enum { PARTS = 7 };
    zmq_msg_t part[PARTS];
    int n = 0, more = 1;
    size_t sz = sizeof more;
    while (more && n < PARTS) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], s->zap, 0) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        n++;
        zmq_getsockopt(s->zap, ZMQ_RCVMORE, &more, &sz);
    }
    while (more) { /* a longer request than CURVE's: drain it */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, s->zap, 0) < 0)
            more = 0;
        else
            zmq_getsockopt(s->zap, ZMQ_RCVMORE, &more, &sz);
        zmq_msg_close(&x);
    }
    int ok = n == PARTS && zmq_msg_size(&part[5]) == 5 &&
             !memcmp(zmq_msg_data(&part[5]), "CURVE", 5) && zmq_msg_size(&part[6]) == 32;
    char id[CT_KEY_ID] = "";
    if (ok) {
        ct_curve_key_id(zmq_msg_data(&part[6]), id);
        ok = !s->allow || ct_allow_has(s->allow, zmq_msg_data(&part[6]));
        ct_log(s->lg, ok ? CT_LOG_INFO : CT_LOG_WARN, "peer with key %s %s", id,
               !s->allow ? "admitted (open join)"
               : ok      ? "admitted"
                         : "refused: its key is not in the allow file");
    }
    const char *status = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
    zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(s->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    else
        zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(s->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(s->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(s->zap, id, strlen(id), ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

int ct_server_create(ct_server_t **out, ct_handler_t *h, const char *endpoint,
                     const ct_keypair_t *key, const ct_allow_t *allow, const ct_log_t *lg,
                     ct_err_t *e) {
    int rc = 0;
    ct_server_t *s = NULL;
    *out = NULL;
    if (!key && !loopback(endpoint))
        return CT_ERR(e, CT_EINVAL,
                      "--bind %s: a non-loopback endpoint needs CURVE: give "
                      "--key (the coordinator's secret key, from `cotrain keygen`) and --allow "
                      "(the public keys of the workers it admits)",
                      endpoint);
    CT_ALLOC(e, s, 1, fail);
    s->h = h;
    s->lg = lg;
    s->allow = allow;
    int64_t max = CT_SERVER_MSG_MAX;
    int hwm = CT_SERVER_HWM, linger = 0, handshake_ms = CT_SERVER_HANDSHAKE_MS;
    size_t n = sizeof s->endpoint;
    if (!(s->ctx = zmq_ctx_new()) || !(s->sock = zmq_socket(s->ctx, ZMQ_ROUTER)) ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms) != 0) {
        rc = CT_ERR(e, CT_ECOMM, "cannot create the coordinator's socket: %s",
                    zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (key) CT_TRY_GOTO(secure(s, key, e), fail);
    if (zmq_bind(s->sock, endpoint) != 0) {
        rc = CT_ERR(e, CT_ECOMM, "cannot bind %s: %s (is another coordinator using it?)", endpoint,
                    zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &n) != 0)
        snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    *out = s;
    return 0;
fail:
    ct_server_destroy(&s);
    return rc;
}

int ct_server_set_rate(ct_server_t *s, double rate, double burst, ct_err_t *e) {
    ct_ratelimit_destroy(&s->rl);
    s->rate = rate;
    return rate > 0 ? ct_ratelimit_create(&s->rl, rate, burst, e) : 0;
}

void ct_server_set_public(ct_server_t *s, ct_public_t *pub) {
    s->pub = pub;
}

/* Brings the public log up to up to max more records; a failure is logged (once while it lasts)
 * and tried again later: the ledger holds the records, the file is derived from it. */
static int sync_public(ct_server_t *s, int max) {
    int behind = 0;
    ct_err_t why = {0};
    if (!s->pub) return 0;
    if (ct_public_sync(s->pub, max, 0, &behind, &why) != 0) {
        if (!s->pub_failing)
            ct_log(s->lg, CT_LOG_WARN,
                   "public log: %s (the coordinator goes on; it is written "
                   "from the ledger once this is fixed)",
                   why.msg);
        s->pub_failing = 1;
        return 0;
    }
    if (s->pub_failing) ct_log(s->lg, CT_LOG_INFO, "public log: writing again");
    s->pub_failing = 0;
    return behind;
}

const char *ct_server_endpoint(const ct_server_t *s) {
    return s->endpoint;
}

void *ct_server_zmq_context(const ct_server_t *s) {
    return s->ctx;
}

void ct_server_destroy(ct_server_t **self_p) {
    ct_server_t *s = *self_p;
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    if (s->zap) zmq_close(s->zap);
    if (s->ctx) zmq_ctx_term(s->ctx);
    ct_ratelimit_destroy(&s->rl);
    free(s);
    *self_p = NULL;
}

/* Receives the rest of a multipart message, counting the frames after the header (their bytes
 * are not kept: no request type carries binary frames yet). */
static int drain(void *sock, int *frames) {
    int more = 1;
    size_t sz = sizeof more;
    *frames = 0;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return -1;
        }
        zmq_msg_close(&part);
        (*frames)++;
    }
    return 0;
}

/* 1 when the peer that sent hdr (its CURVE key id, else its connection) is within its rate; a
 * refused peer is logged by key id, once in a while. */
static int within_rate(ct_server_t *s, zmq_msg_t *id, zmq_msg_t *hdr) {
    if (!s->rl) return 1;
    const char *key = zmq_msg_gets(hdr, "User-Id");
    int warn = 0, ok = key && key[0] ? ct_ratelimit_take(s->rl, key, strlen(key), ct_now_s(), &warn)
                                     : ct_ratelimit_take(s->rl, zmq_msg_data(id), zmq_msg_size(id),
                                                         ct_now_s(), &warn);
    if (warn)
        ct_log(s->lg, CT_LOG_WARN, "peer %s is past its request rate: told to slow down",
               key && key[0] ? key : "(a loopback peer)");
    return ok;
}

/* The busy error reply, carrying the request's req when its header has one. */
static char *busy_reply(ct_server_t *s, zmq_msg_t *hdr, int frames) {
    ct_msg_t m;
    int64_t req = -1;
    ct_proto_error_t code;
    ct_err_t e = {0};
    if (ct_msg_parse(zmq_msg_data(hdr), zmq_msg_size(hdr), frames, &m, &req, &code, &e) == 0)
        ct_msg_clear(&m);
    char text[160];
    snprintf(text, sizeof text, "more than %g requests/s from this peer: ask again a little later",
             s->rate);
    return ct_msg_error(req, CT_PROTO_E_BUSY, text);
}

/* The requests waiting, up to BATCH_MAX, answered in one transaction, their replies sent after
 * it committed: one fsync for the batch (group commit), and still no reply before its change is
 * on disk. A request is [id][header][frames...], its reply [id][header] or, carrying data,
 * [id][header][frame]. */
static int serve_batch(ct_server_t *s, ct_err_t *e) {
    pending_t *p = s->pending;
    int n = 0, rc = 0, more = 0, frames = 0, events = 0;
    size_t sz = sizeof more, esz = sizeof events;
    ct_err_t why = {0};
    CT_TRY(ct_handler_batch_begin(s->h, e));
    double now = ct_wall_s();
    while (n < BATCH_MAX && rc == 0) {
        if (n > 0 &&
            (zmq_getsockopt(s->sock, ZMQ_EVENTS, &events, &esz) != 0 || !(events & ZMQ_POLLIN)))
            break;
        zmq_msg_t hdr;
        zmq_msg_init(&p[n].id);
        zmq_msg_init(&hdr);
        p[n].reply = NULL;
        p[n].frame = (ct_frame_t){0};
        if (zmq_msg_recv(&p[n].id, s->sock, 0) < 0 ||
            zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) != 0) {
            rc =
                CT_ERR(&why, CT_ECOMM, "receiving a request failed: %s", zmq_strerror(zmq_errno()));
        } else if (!more) { /* a peer that sent only its identity: nothing to answer */
            zmq_msg_close(&p[n].id);
            zmq_msg_close(&hdr);
            continue;
        } else if (zmq_msg_recv(&hdr, s->sock, 0) < 0 || drain(s->sock, &frames) != 0) {
            rc =
                CT_ERR(&why, CT_ECOMM, "receiving a request failed: %s", zmq_strerror(zmq_errno()));
        } else if (!within_rate(s, &p[n].id, &hdr)) {
            p[n].reply = busy_reply(s, &hdr, frames);
        } else {
            const char *key = zmq_msg_gets(&hdr, "User-Id");
            rc =
                ct_handler_request(s->h, zmq_msg_data(&hdr), zmq_msg_size(&hdr), frames,
                                   key && key[0] ? key : NULL, now, &p[n].reply, &p[n].frame, &why);
        }
        zmq_msg_close(&hdr);
        n++;
    }
    int end = ct_handler_batch_end(s->h, rc == 0, &why);
    if (rc == 0) rc = end;
    if (rc != 0) {
        /* the ledger failed: nothing of the batch happened; the peers are told, and the
           coordinator stops (it cannot record) */
        ct_log(s->lg, CT_LOG_ERROR, "%s", why.msg);
        *e = why;
        for (int i = 0; i < n; i++) {
            free(p[i].reply);
            free(p[i].frame.data);
            p[i].frame = (ct_frame_t){0};
            p[i].reply = ct_msg_error(-1, CT_PROTO_E_INTERNAL, why.msg);
        }
    }
    for (int i = 0; i < n; i++) {
        int more = p[i].frame.data ? ZMQ_SNDMORE : 0;
        if (p[i].reply &&
            (zmq_send(s->sock, zmq_msg_data(&p[i].id), zmq_msg_size(&p[i].id), ZMQ_SNDMORE) < 0 ||
             zmq_send(s->sock, p[i].reply, strlen(p[i].reply), more) < 0 ||
             (more && zmq_send(s->sock, p[i].frame.data, p[i].frame.len, 0) < 0)))
            ct_log(s->lg, CT_LOG_WARN, "a reply could not be sent (the peer left?): %s",
                   zmq_strerror(zmq_errno()));
        free(p[i].reply);
        free(p[i].frame.data);
        zmq_msg_close(&p[i].id);
    }
    return rc;
}

int ct_server_run(ct_server_t *s, const atomic_int *stop, ct_err_t *e) {
    double last_tick = 0;
    int behind = 0; /* the public log lags: catch up while nothing else waits */
    double last_pub = 0;
    while (!atomic_load(stop)) {
        zmq_pollitem_t items[2] = {{.socket = s->sock, .events = ZMQ_POLLIN},
                                   {.socket = s->zap, .events = ZMQ_POLLIN}};
        int r = zmq_poll(items, s->zap ? 2 : 1, behind ? 0 : POLL_MS);
        if (r < 0 && zmq_errno() == EINTR) continue;
        if (r < 0)
            return CT_ERR(e, CT_ECOMM, "polling the coordinator's socket failed: %s",
                          zmq_strerror(zmq_errno()));
        if (s->zap && (items[1].revents & ZMQ_POLLIN)) zap_answer(s);
        if (items[0].revents & ZMQ_POLLIN) CT_TRY(serve_batch(s, e));
        /* the public log: a few records every PUB_BUSY_S while requests keep coming (it lags a
           busy coordinator), the rest in small steps once they pause */
        if (r == 0 || ct_now_s() - last_pub >= PUB_BUSY_S) {
            behind = sync_public(s, r > 0 ? PUB_BUSY : PUB_IDLE);
            last_pub = ct_now_s();
        }
        double now = ct_wall_s();
        if (now - last_tick >= 1.0) {
            int expired = 0;
            CT_TRY(ct_handler_tick(s->h, now, &expired, e));
            if (expired)
                ct_log(s->lg, CT_LOG_INFO, "%d lease(s) expired: back in the pool", expired);
            last_tick = now;
        }
    }
    return 0;
}
