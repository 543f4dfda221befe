/* server.c — the ROUTER loop (see server.h). One thread reads requests and answers them through
 * the handler, a batch in one transaction; the replies wait until the syncer's thread has that
 * transaction on disk, while the loop already answers the next batch (at most IN_FLIGHT batches
 * wait): the disk's wait overlaps the work instead of adding to it, and still no reply goes out
 * before its change is durable. */
#include "cotrain/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cotrain/clock.h"
#include "cotrain/curve.h"
#include "cotrain/fault.h"
#include "cotrain/proto.h"
#include "cotrain/public.h"
#include "cotrain/ratelimit.h"
#include "cotrain/syncer.h"

enum { POLL_MS = 200, BATCH_MAX = 256, IN_FLIGHT = 4 };
/* A peer may send BAD_BURST bad requests (refused as garbage: malformed, wrong version, unknown
 * type, too large, refused), then one every 1/BAD_RATE s; past that its requests get `busy`
 * unread: a key that sends garbage again and again costs the coordinator little. */
enum { BAD_BURST = 20 };
#define BAD_RATE 0.2

/* A request of the batch being answered: who asked, and the reply to send after the commit. */
typedef struct pending {
    zmq_msg_t id;
    char *reply;
    ct_frame_t frame; /* the reply's binary frame, if any */
} pending_t;

/* A batch committed, its replies held until sync generation `gen` is on disk; then the public
 * log may show its records, up to seq `upto`. */
typedef struct batch {
    pending_t req[BATCH_MAX];
    int n;
    int64_t gen, upto;
} batch_t;

struct ct_server {
    void *ctx, *sock;
    void *zap;               /* the ZAP handler's socket (CURVE only), else NULL */
    const ct_allow_t *allow; /* the keys admitted (CURVE only); NULL: any key (open join) */
    ct_handler_t *h;
    ct_ledger_t *l;      /* the handler's: its commits are synced by `syncer` */
    ct_syncer_t *syncer; /* while serving */
    ct_ratelimit_t *rl;  /* per-peer request rate, or NULL */
    double rate;
    ct_ratelimit_t *bad; /* per-peer budget of bad requests (garbage): spent, the peer waits */
    const ct_log_t *lg;
    ct_public_t *pub; /* the public log the records go to, or NULL */
    char endpoint[256];
    batch_t ring[IN_FLIGHT]; /* batches waiting for their sync, from `first`, `waiting` of them */
    int first, waiting;
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

int ct_server_create(ct_server_t **out, ct_handler_t *h, ct_ledger_t *l, const char *endpoint,
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
    CT_TRY_GOTO(ct_ratelimit_create(&s->bad, BAD_RATE, BAD_BURST, e), fail);
    s->h = h;
    s->l = l;
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
    ct_ratelimit_destroy(&s->bad);
    free(s);
    *self_p = NULL;
}

/* Receives the rest of a multipart message, counting the frames after the header and keeping the
 * first of them in *first (a delta's chunk; the caller closes it); the others are dropped. */
static int drain(void *sock, int *frames, zmq_msg_t *first) {
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
        if (*frames == 0) zmq_msg_move(first, &part);
        zmq_msg_close(&part);
        (*frames)++;
    }
    return 0;
}

/* The peer that sent hdr as the rate limits name it: its CURVE key id, else its connection. */
static void peer_name(zmq_msg_t *id, zmq_msg_t *hdr, const void **name, size_t *n) {
    const char *key = zmq_msg_gets(hdr, "User-Id");
    *name = key && key[0] ? (const void *)key : zmq_msg_data(id);
    *n = key && key[0] ? strlen(key) : zmq_msg_size(id);
}

/* A reply refusing garbage (not a stale lease, a busy peer or our own failure). */
static int bad_reply(const char *reply) {
    static const char *const codes[] = {"\"code\":\"malformed\"", "\"code\":\"version\"",
                                        "\"code\":\"unknown_type\"", "\"code\":\"too_large\"",
                                        "\"code\":\"refused\""};
    if (!reply || !strstr(reply, "\"type\":\"error\"")) return 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strstr(reply, codes[i])) return 1;
    return 0;
}

/* After a reply: a bad request spends the peer's budget; spent, it is logged by key id. */
static void count_bad(ct_server_t *s, zmq_msg_t *id, zmq_msg_t *hdr, const char *reply) {
    if (!bad_reply(reply)) return;
    const void *name;
    size_t n;
    int warn = 0;
    peer_name(id, hdr, &name, &n);
    const char *key = zmq_msg_gets(hdr, "User-Id");
    if (!ct_ratelimit_take(s->bad, name, n, ct_now_s(), &warn) && warn)
        ct_log(s->lg, CT_LOG_WARN,
               "peer %s sent more than %d bad requests: throttled to one every %.0f s",
               key && key[0] ? key : "(a loopback peer)", BAD_BURST, 1 / BAD_RATE);
}

/* 1 when the peer that sent hdr (its CURVE key id, else its connection) is within its rate; a
 * refused peer is logged by key id, once in a while. */
static int within_rate(ct_server_t *s, zmq_msg_t *id, zmq_msg_t *hdr) {
    if (!s->rl) return 1;
    const char *key = zmq_msg_gets(hdr, "User-Id");
    const void *name;
    size_t n;
    peer_name(id, hdr, &name, &n);
    int warn = 0, ok = ct_ratelimit_take(s->rl, name, n, ct_now_s(), &warn);
    if (warn)
        ct_log(s->lg, CT_LOG_WARN, "peer %s is past its request rate: told to slow down",
               key && key[0] ? key : "(a loopback peer)");
    return ok;
}

/* 1 while the peer that sent hdr has bad requests left in its budget. */
static int garbage_ok(ct_server_t *s, zmq_msg_t *id, zmq_msg_t *hdr) {
    const void *name;
    size_t n;
    peer_name(id, hdr, &name, &n);
    return ct_ratelimit_has(s->bad, name, n, ct_now_s());
}

/* The busy error reply saying `why`, carrying the request's req when its header has one. */
static char *busy_reply(zmq_msg_t *hdr, int frames, const char *why) {
    ct_msg_t m;
    int64_t req = -1;
    ct_proto_error_t code;
    ct_err_t e = {0};
    if (ct_msg_parse(zmq_msg_data(hdr), zmq_msg_size(hdr), frames, &m, &req, &code, &e) == 0)
        ct_msg_clear(&m);
    char text[160];
    snprintf(text, sizeof text, "%s: ask again a little later", why);
    return ct_msg_error(req, CT_PROTO_E_BUSY, text);
}

/* Sends batch b's replies and frees them. A request is [id][header][frames...], its reply
 * [id][header] or, carrying data, [id][header][frame]. */
static void send_replies(ct_server_t *s, batch_t *b) {
    for (int i = 0; i < b->n; i++) {
        pending_t *p = &b->req[i];
        int more = p->frame.data ? ZMQ_SNDMORE : 0, injected = 0;
        /* an injected failure (fault.h) comes before any part goes: never half a message */
        if (p->reply &&
            ((injected = ct_fault_hit(CT_FAULT_SEND) || ct_fault_hit(CT_FAULT_SEND) ||
                         (more && ct_fault_hit(CT_FAULT_SEND))) ||
             zmq_send(s->sock, zmq_msg_data(&p->id), zmq_msg_size(&p->id), ZMQ_SNDMORE) < 0 ||
             zmq_send(s->sock, p->reply, strlen(p->reply), more) < 0 ||
             (more && zmq_send(s->sock, p->frame.data, p->frame.len, 0) < 0)))
            ct_log(s->lg, CT_LOG_WARN,
                   "a reply could not be sent (the peer left? its retry gets the stored reply): %s",
                   injected ? ct_fault_strerror(1, 0) : zmq_strerror(zmq_errno()));
        free(p->reply);
        free(p->frame.data);
        zmq_msg_close(&p->id);
    }
    b->n = 0;
}

/* Replaces batch b's replies with an `internal` error saying why (its changes may not have
 * happened, or not reached the disk). */
static void fail_replies(batch_t *b, const ct_err_t *why) {
    for (int i = 0; i < b->n; i++) {
        free(b->req[i].reply);
        free(b->req[i].frame.data);
        b->req[i].frame = (ct_frame_t){0};
        b->req[i].reply = ct_msg_error(-1, CT_PROTO_E_INTERNAL, why->msg);
    }
}

/* The requests waiting, up to BATCH_MAX, answered into b in one transaction: one commit and one
 * sync for the batch (group commit). On a failure of the ledger nothing of the batch happened:
 * its peers are told, and the coordinator stops (it cannot record). */
static int serve_batch(ct_server_t *s, batch_t *b, ct_err_t *e) {
    pending_t *p = b->req;
    int n = 0, rc = 0, more = 0, frames = 0, events = 0;
    size_t sz = sizeof more, esz = sizeof events;
    ct_err_t why = {0};
    b->n = 0;
    CT_TRY(ct_handler_batch_begin(s->h, e));
    double now = ct_wall_s();
    while (n < BATCH_MAX && rc == 0) {
        if (n > 0 &&
            (zmq_getsockopt(s->sock, ZMQ_EVENTS, &events, &esz) != 0 || !(events & ZMQ_POLLIN)))
            break;
        zmq_msg_t hdr, first;
        zmq_msg_init(&p[n].id);
        zmq_msg_init(&hdr);
        zmq_msg_init(&first);
        p[n].reply = NULL;
        p[n].frame = (ct_frame_t){0};
        if (zmq_msg_recv(&p[n].id, s->sock, 0) < 0 ||
            zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) != 0) {
            rc =
                CT_ERR(&why, CT_ECOMM, "receiving a request failed: %s", zmq_strerror(zmq_errno()));
        } else if (!more) { /* a peer that sent only its identity: nothing to answer */
            zmq_msg_close(&p[n].id);
            zmq_msg_close(&hdr);
            zmq_msg_close(&first);
            continue;
        } else if (zmq_msg_recv(&hdr, s->sock, 0) < 0 || drain(s->sock, &frames, &first) != 0) {
            rc =
                CT_ERR(&why, CT_ECOMM, "receiving a request failed: %s", zmq_strerror(zmq_errno()));
        } else if (!within_rate(s, &p[n].id, &hdr)) {
            char why_busy[96];
            snprintf(why_busy, sizeof why_busy, "more than %g requests/s from this peer", s->rate);
            p[n].reply = busy_reply(&hdr, frames, why_busy);
        } else if (!garbage_ok(s, &p[n].id, &hdr)) {
            p[n].reply = busy_reply(&hdr, frames, "too many bad requests from this peer");
        } else {
            const char *key = zmq_msg_gets(&hdr, "User-Id");
            const ct_frame_t in = {zmq_msg_data(&first), zmq_msg_size(&first)};
            rc = ct_handler_request(s->h, zmq_msg_data(&hdr), zmq_msg_size(&hdr), frames,
                                    frames ? &in : NULL, key && key[0] ? key : NULL, now,
                                    &p[n].reply, &p[n].frame, &why);
            count_bad(s, &p[n].id, &hdr, p[n].reply);
        }
        zmq_msg_close(&hdr);
        zmq_msg_close(&first);
        n++;
    }
    b->n = n;
    int end = ct_handler_batch_end(s->h, rc == 0, &why);
    if (rc == 0) rc = end;
    if (rc == 0) rc = ct_ledger_log_head(s->l, &b->upto, &why);
    if (rc != 0) {
        ct_log(s->lg, CT_LOG_ERROR, "%s", why.msg);
        *e = why;
        fail_replies(b, &why);
    }
    return rc;
}

/* Queues batch b (the ring's next) behind the sync that will cover it. */
static void hold(ct_server_t *s) {
    batch_t *b = &s->ring[(s->first + s->waiting) % IN_FLIGHT];
    b->gen = ct_syncer_request(s->syncer);
    s->waiting++;
}

/* Sends the replies of the batches now on disk, and lets the public log show their records. A
 * failed sync fails every waiting batch. */
static int release(ct_server_t *s, ct_err_t *e) {
    int64_t synced;
    int rc = ct_syncer_done(s->syncer, &synced, e);
    while (s->waiting > 0 && (rc != 0 || s->ring[s->first].gen <= synced)) {
        batch_t *b = &s->ring[s->first];
        if (rc != 0)
            fail_replies(b, e);
        else if (s->pub)
            ct_public_poke(s->pub, b->upto);
        send_replies(s, b);
        s->first = (s->first + 1) % IN_FLIGHT;
        s->waiting--;
    }
    if (rc != 0) ct_log(s->lg, CT_LOG_ERROR, "%s", e->msg);
    return rc;
}

/* Waits for every batch in flight to reach the disk and answers them. */
static int release_all(ct_server_t *s, ct_err_t *e) {
    int rc = 0;
    while (rc == 0 && s->waiting > 0) {
        zmq_pollitem_t it = {.fd = ct_syncer_fd(s->syncer), .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, POLL_MS) < 0 && zmq_errno() != EINTR)
            return CT_ERR(e, CT_ECOMM, "polling the ledger's syncer failed: %s",
                          zmq_strerror(zmq_errno()));
        rc = release(s, e);
    }
    return rc;
}

/* The loop proper: requests in, batches out once on disk; leases expire as time passes. */
static int serve(ct_server_t *s, const atomic_int *stop, ct_err_t *e) {
    double last_tick = 0;
    while (!atomic_load(stop)) {
        zmq_pollitem_t items[3] = {
            {.socket = s->sock, .events = s->waiting < IN_FLIGHT ? ZMQ_POLLIN : 0},
            {.fd = ct_syncer_fd(s->syncer), .events = ZMQ_POLLIN},
            {.socket = s->zap, .events = ZMQ_POLLIN}};
        int r = zmq_poll(items, s->zap ? 3 : 2, POLL_MS);
        if (r < 0 && zmq_errno() == EINTR) continue;
        if (r < 0)
            return CT_ERR(e, CT_ECOMM, "polling the coordinator's socket failed: %s",
                          zmq_strerror(zmq_errno()));
        if (items[1].revents & ZMQ_POLLIN) CT_TRY(release(s, e));
        if (s->zap && (items[2].revents & ZMQ_POLLIN)) zap_answer(s);
        if (items[0].revents & ZMQ_POLLIN) {
            batch_t *b = &s->ring[(s->first + s->waiting) % IN_FLIGHT];
            int rc = serve_batch(s, b, e);
            if (rc != 0) {
                send_replies(s, b);
                return rc;
            }
            hold(s);
        }
        double now = ct_wall_s();
        if (now - last_tick >= 1.0) {
            int expired = 0, stepped = 0;
            CT_TRY(ct_handler_tick(s->h, now, &expired, &stepped, e));
            if (expired)
                ct_log(s->lg, CT_LOG_INFO, "%d lease(s) expired: back in the pool", expired);
            if (expired || stepped) {
                if (s->waiting < IN_FLIGHT) { /* an empty batch: the records, once on disk */
                    batch_t *b = &s->ring[(s->first + s->waiting) % IN_FLIGHT];
                    b->n = 0;
                    CT_TRY(ct_ledger_log_head(s->l, &b->upto, e));
                    hold(s);
                }
            }
            last_tick = now;
            if (ct_handler_done(s->h)) {
                ct_log(s->lg, CT_LOG_INFO, "the run is over: its last version is out");
                break;
            }
        }
    }
    return 0;
}

int ct_server_run(ct_server_t *s, const atomic_int *stop, ct_err_t *e) {
    int64_t head = 0;
    /* what the ledger holds now is on disk (its commits so far were synced): all of it public */
    CT_TRY(ct_ledger_log_head(s->l, &head, e));
    if (s->pub) ct_public_poke(s->pub, head);
    CT_TRY(ct_ledger_defer_sync(s->l, 1, e));
    int rc = ct_syncer_start(&s->syncer, s->l, e);
    if (rc == 0) {
        rc = serve(s, stop, e);
        ct_err_t why = {0};
        int last = release_all(s, rc == 0 ? e : &why);
        if (rc == 0) rc = last;
        ct_syncer_stop(&s->syncer);
    }
    ct_err_t why = {0};
    int off = ct_ledger_defer_sync(s->l, 0, rc == 0 ? e : &why);
    return rc == 0 ? off : rc;
}
