/* client.c — one request, one reply over a DEALER (see client.h). */
#include "cotrain/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cotrain/clock.h"
#include "cotrain/fault.h"
#include "cotrain/proto.h"

struct ct_client {
    void *ctx, *sock;
    int own_ctx; /* made here (else the caller's: ct_client_create_shared) */
    char endpoint[256];
};

/* A DEALER of ctx (NULL: a context of its own) connected to endpoint, CURVE with server_key. */
static int create(ct_client_t **out, void *ctx, const char *endpoint, const char *server_key,
                  const ct_keypair_t *key, ct_err_t *e) {
    int rc = 0, linger = 0;
    int64_t max = CT_PROTO_MSG_MAX;
    ct_client_t *c = NULL;
    ct_keypair_t temp;
    *out = NULL;
    CT_ALLOC(e, c, 1, fail);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->own_ctx = !ctx;
    c->ctx = ctx;
    if (server_key && !key) {
        if (zmq_curve_keypair(temp.pub, temp.sec) != 0) {
            rc = CT_ERR(e, CT_ECOMM, "this ZeroMQ has no CURVE support");
            goto fail;
        }
        key = &temp;
    }
    if ((c->own_ctx && !(c->ctx = zmq_ctx_new())) || !(c->sock = zmq_socket(c->ctx, ZMQ_DEALER)) ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        (server_key && (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, server_key, 41) != 0 ||
                        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, key->pub, 41) != 0 ||
                        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, key->sec, 41) != 0)) ||
        zmq_connect(c->sock, endpoint) != 0) {
        rc = CT_ERR(e, CT_ECOMM, "cannot connect to the coordinator at %s: %s", endpoint,
                    zmq_strerror(zmq_errno()));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ct_client_destroy(&c);
    return rc;
}

int ct_client_create(ct_client_t **out, const char *endpoint, const char *server_key,
                     const ct_keypair_t *key, ct_err_t *e) {
    return create(out, NULL, endpoint, server_key, key, e);
}

int ct_client_create_shared(ct_client_t **out, void *zmq_ctx, const char *endpoint, ct_err_t *e) {
    return create(out, zmq_ctx, endpoint, NULL, NULL, e);
}

void ct_client_destroy(ct_client_t **self_p) {
    ct_client_t *c = *self_p;
    if (!c) return;
    if (c->sock) zmq_close(c->sock);
    if (c->ctx && c->own_ctx) zmq_ctx_term(c->ctx);
    free(c);
    *self_p = NULL;
}

/* 1 when the reply text answers request req. */
static int answers(const char *text, size_t len, long long req) {
    ct_msg_t m;
    int64_t r;
    ct_proto_error_t code;
    ct_err_t ignored = {0};
    if (ct_msg_parse(text, len, 0, &m, &r, &code, &ignored) != 0) return 0;
    int ok = m.req == req || (m.type == CT_MSG_ERROR && m.req < 0);
    ct_msg_clear(&m);
    return ok;
}

/* Receives the parts after a reply's header: the first into *frame (when asked for, else
 * dropped), any others dropped. */
static int recv_frames(ct_client_t *c, ct_frame_t *frame, ct_err_t *e) {
    int more = 0;
    size_t sz = sizeof more;
    while (zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, c->sock, 0) < 0) {
            zmq_msg_close(&part);
            return CT_ERR(e, CT_ECOMM, "receiving from %s failed: %s", c->endpoint,
                          zmq_strerror(zmq_errno()));
        }
        if (frame && !frame->data) {
            size_t n = zmq_msg_size(&part);
            if (!(frame->data = malloc(n ? n : 1))) {
                zmq_msg_close(&part);
                return CT_ERR(e, CT_ENOMEM, "out of memory reading a reply's %zu bytes", n);
            }
            memcpy(frame->data, zmq_msg_data(&part), n);
            frame->len = n;
        }
        zmq_msg_close(&part);
    }
    return 0;
}

int ct_client_request(ct_client_t *c, const char *header, long long req, int timeout_ms,
                      char **reply, ct_frame_t *frame, ct_err_t *e) {
    return ct_client_request_body(c, header, NULL, req, timeout_ms, reply, frame, e);
}

int ct_client_request_body(ct_client_t *c, const char *header, const ct_frame_t *body,
                           long long req, int timeout_ms, char **reply, ct_frame_t *frame,
                           ct_err_t *e) {
    *reply = NULL;
    if (frame) *frame = (ct_frame_t){0};
    int more = body && body->len ? ZMQ_SNDMORE : 0;
    /* an injected failure (fault.h) comes before any part goes: never half a message */
    int injected = ct_fault_hit(CT_FAULT_SEND) || (more && ct_fault_hit(CT_FAULT_SEND));
    if (injected || zmq_send(c->sock, header, strlen(header), more) < 0 ||
        (more && zmq_send(c->sock, body->data, body->len, 0) < 0))
        return CT_ERR(e, CT_ECOMM, "sending to %s failed: %s", c->endpoint,
                      injected ? ct_fault_strerror(1, 0) : zmq_strerror(zmq_errno()));
    double deadline = ct_now_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - ct_now_s()) * 1000.0);
        if (left < 0) left = 0;
        zmq_pollitem_t item = {.socket = c->sock, .events = ZMQ_POLLIN};
        int r = zmq_poll(&item, 1, left);
        if (r < 0 && zmq_errno() == EINTR) continue;
        if (r < 0)
            return CT_ERR(e, CT_ECOMM, "waiting for %s failed: %s", c->endpoint,
                          zmq_strerror(zmq_errno()));
        if (r == 0)
            return CT_ERR(e, CT_ETIMEDOUT,
                          "no answer from the coordinator at %s within %d ms "
                          "(is it running? `cotrain-coordinator --bind` says where it listens)",
                          c->endpoint, timeout_ms);
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
            zmq_msg_close(&msg);
            return CT_ERR(e, CT_ECOMM, "receiving from %s failed: %s", c->endpoint,
                          zmq_strerror(zmq_errno()));
        }
        size_t n = zmq_msg_size(&msg);
        int mine = answers(zmq_msg_data(&msg), n, req), rc = 0;
        if (mine && (*reply = malloc(n + 1))) {
            memcpy(*reply, zmq_msg_data(&msg), n);
            (*reply)[n] = '\0';
        } else if (mine) {
            rc = CT_ERR(e, CT_ENOMEM, "out of memory reading a reply");
        }
        zmq_msg_close(&msg);
        /* a late answer to an earlier request is dropped with its frames */
        if (rc == 0) rc = recv_frames(c, mine ? frame : NULL, e);
        if (rc != 0) {
            free(*reply);
            *reply = NULL;
            if (frame) {
                free(frame->data);
                *frame = (ct_frame_t){0};
            }
            return rc;
        }
        if (mine) return 0;
    }
}
