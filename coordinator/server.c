/* server.c — the ROUTER loop (see server.h). One thread: a request is read, answered through the
 * handler (whose transaction is on disk before this returns) and only then replied to. */
#include "cotrain/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cotrain/proto.h"

enum { ID_MAX = 256, POLL_MS = 200 };

struct ct_server {
    void *ctx, *sock;
    ct_handler_t *h;
    const ct_log_t *lg;
    char endpoint[256];
};

/* Lease expiries are kept in the ledger, so they are wall-clock seconds: a monotonic clock
 * starts again at every boot. */
static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Loopback only until CURVE lands: anything else could be reached by strangers. */
static int loopback(const char *ep) {
    static const char *const ok[] = {"tcp://127.0.0.1:", "tcp://localhost:", "ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(ep, ok[i], strlen(ok[i]))) return 1;
    return 0;
}

int ct_server_create(ct_server_t **out, ct_handler_t *h, const char *endpoint, const ct_log_t *lg,
                     ct_err_t *e) {
    int rc = 0;
    ct_server_t *s = NULL;
    *out = NULL;
    if (!loopback(endpoint))
        return CT_ERR(e, CT_EINVAL,
                      "--bind %s: only loopback endpoints are served for now "
                      "(tcp://127.0.0.1:PORT, ipc://PATH): a public bind needs CURVE "
                      "authentication, which is not built yet",
                      endpoint);
    CT_ALLOC(e, s, 1, fail);
    s->h = h;
    s->lg = lg;
    int64_t max = CT_SERVER_MSG_MAX;
    int hwm = CT_SERVER_HWM, linger = 0;
    size_t n = sizeof s->endpoint;
    if (!(s->ctx = zmq_ctx_new()) || !(s->sock = zmq_socket(s->ctx, ZMQ_ROUTER)) ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        rc = CT_ERR(e, CT_ECOMM, "cannot create the coordinator's socket: %s",
                    zmq_strerror(zmq_errno()));
        goto fail;
    }
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

const char *ct_server_endpoint(const ct_server_t *s) {
    return s->endpoint;
}

void ct_server_destroy(ct_server_t **self_p) {
    ct_server_t *s = *self_p;
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    if (s->ctx) zmq_ctx_term(s->ctx);
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

/* One request: [id][header][frames...] -> [id][reply]. */
static int serve_one(ct_server_t *s, ct_err_t *e) {
    zmq_msg_t id, hdr;
    zmq_msg_init(&id);
    zmq_msg_init(&hdr);
    int rc = 0, frames = 0, more = 0;
    size_t sz = sizeof more;
    char *reply = NULL;
    if (zmq_msg_recv(&id, s->sock, 0) < 0) goto comm;
    if (zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) != 0) goto comm;
    if (!more) goto out; /* a peer that sent only its identity: nothing to answer */
    if (zmq_msg_recv(&hdr, s->sock, 0) < 0 || drain(s->sock, &frames) != 0) goto comm;
    ct_err_t why = {0};
    rc = ct_handler_request(s->h, zmq_msg_data(&hdr), zmq_msg_size(&hdr), frames, wall_s(), &reply,
                            &why);
    if (rc != 0) {
        /* the ledger failed: the peer is told, and the coordinator stops (it cannot record) */
        ct_log(s->lg, CT_LOG_ERROR, "%s", why.msg);
        *e = why;
    }
    if (reply && (zmq_send(s->sock, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE) < 0 ||
                  zmq_send(s->sock, reply, strlen(reply), 0) < 0))
        ct_log(s->lg, CT_LOG_WARN, "a reply could not be sent (the peer left?): %s",
               zmq_strerror(zmq_errno()));
    free(reply);
    goto out;
comm:
    rc = CT_ERR(e, CT_ECOMM, "receiving a request failed: %s", zmq_strerror(zmq_errno()));
out:
    zmq_msg_close(&id);
    zmq_msg_close(&hdr);
    return rc;
}

int ct_server_run(ct_server_t *s, volatile sig_atomic_t *stop, ct_err_t *e) {
    double last_tick = 0;
    while (!*stop) {
        zmq_pollitem_t item = {.socket = s->sock, .events = ZMQ_POLLIN};
        int r = zmq_poll(&item, 1, POLL_MS);
        if (r < 0 && zmq_errno() == EINTR) continue;
        if (r < 0)
            return CT_ERR(e, CT_ECOMM, "polling the coordinator's socket failed: %s",
                          zmq_strerror(zmq_errno()));
        if (r > 0) CT_TRY(serve_one(s, e));
        double now = wall_s();
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
