/* client.h — a worker's or a tool's line to the coordinator: a ZeroMQ DEALER that sends one
 * request and waits for its reply (DESIGN.md, "Protocol"). Requests are numbered by the caller
 * (`req`); a reply that does not answer the request in flight (a late answer to an earlier,
 * timed-out one) is skipped. */
#ifndef COTRAIN_CLIENT_H
#define COTRAIN_CLIENT_H

#include "cotrain/curve.h"
#include "cotrain/err.h"
#include "cotrain/proto.h"

typedef struct ct_client ct_client_t;

/* Connects to endpoint (connecting is lazy: an absent coordinator shows as a timeout). With
 * server_key (Z85; may be NULL) the connection speaks CURVE, as `key` (the client's pair; NULL:
 * a throwaway pair, which an allow-listing coordinator refuses). A refused or failed handshake
 * shows as a timeout too. Errors: CT_ECOMM (ZeroMQ refused the endpoint or the keys: saying
 * why), CT_ENOMEM. */
int ct_client_create(ct_client_t **out, const char *endpoint, const char *server_key,
                     const ct_keypair_t *key, ct_err_t *e);

/* Connects in plain text to endpoint through the caller's ZeroMQ context zmq_ctx (borrowed: it
 * must outlive the client), as an inproc:// endpoint needs: the embedded coordinator's. Errors:
 * CT_ECOMM, CT_ENOMEM. */
int ct_client_create_shared(ct_client_t **out, void *zmq_ctx, const char *endpoint, ct_err_t *e);

/* Sends the header text of request `req` and waits up to timeout_ms for the reply that carries
 * the same req (or an error reply with a null req); *reply gets its header text (malloc'd) and
 * *frame (may be NULL: dropped) the binary frame after it, if any (malloc'd). Errors:
 * CT_ETIMEDOUT (no answer: the coordinator is down or unreachable; the request may be sent again
 * with the same req), CT_ECOMM, CT_ENOMEM. */
int ct_client_request(ct_client_t *c, const char *header, long long req, int timeout_ms,
                      char **reply, ct_frame_t *frame, ct_err_t *e);

/* Same, with the binary frame `body` (NULL or empty: none) sent after the header. */
int ct_client_request_body(ct_client_t *c, const char *header, const ct_frame_t *body,
                           long long req, int timeout_ms, char **reply, ct_frame_t *frame,
                           ct_err_t *e);

/* Closes the connection and frees the client; sets *self_p to NULL; NULL-safe. */
void ct_client_destroy(ct_client_t **self_p);

#endif
