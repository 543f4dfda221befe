/* server.h — the coordinator's socket: a ZeroMQ ROUTER that hands each request to the handler
 * and sends its reply back to the peer that asked (DESIGN.md, "Protocol").
 *
 * A request arrives as [peer routing id][header][binary frames...] from a DEALER. Limits: a
 * message past CT_SERVER_MSG_MAX is dropped by ZeroMQ itself (ZMQ_MAXMSGSIZE), more frames than
 * the grammar allows get an error reply, the queues are bounded (high-water marks) and a
 * handshake must finish within CT_SERVER_HANDSHAKE_MS, so no peer can make the coordinator hold
 * unbounded memory. With a key the socket speaks CURVE and a
 * ZAP handler admits only the peers whose public keys are on the allow list, or in open-join mode
 * any key (logged by key id either way);
 * without one only loopback endpoints are served (tcp://127.0.0.1:PORT, tcp://localhost:PORT,
 * ipc://, inproc://), in plain text. */
#ifndef COTRAIN_SERVER_H
#define COTRAIN_SERVER_H

#include <stdatomic.h>

#include "cotrain/curve.h"
#include "cotrain/err.h"
#include "cotrain/handler.h"
#include "cotrain/log.h"
#include "cotrain/proto.h"
#include "cotrain/public.h"

/* Limits: the largest message, the queue lengths, and how long a peer may take over its
 * handshake before it is dropped. */
enum { CT_SERVER_MSG_MAX = CT_PROTO_MSG_MAX, CT_SERVER_HWM = 1000, CT_SERVER_HANDSHAKE_MS = 10000 };

typedef struct ct_server ct_server_t;

/* Binds a ROUTER at endpoint ("tcp://127.0.0.1:0" picks a free port) for handler h over ledger l
 * (whose commits the server makes durable itself while serving: ct_ledger_defer_sync), with
 * CURVE when key is not NULL: then allow lists the keys admitted, or NULL admits any key (open
 * join: each peer still named by its key id, and held to the rate of ct_server_set_rate); h, l,
 * key and allow are borrowed. Errors: CT_EINVAL (a non-loopback endpoint without a key: saying what
 * to give), CT_ECOMM (ZeroMQ could not bind: the endpoint and its reason, e.g. the port is taken),
 * CT_ENOMEM. */
int ct_server_create(ct_server_t **out, ct_handler_t *h, ct_ledger_t *l, const char *endpoint,
                     const ct_keypair_t *key, const ct_allow_t *allow, const ct_log_t *lg,
                     ct_err_t *e);

/* Limits each peer (by CURVE key id, else by connection) to `rate` requests a second in bursts of
 * `burst`; past it a request gets a `busy` error reply and changes nothing. rate 0: no limit (the
 * default). Errors: CT_EINVAL, CT_ENOMEM. */
int ct_server_set_rate(ct_server_t *s, double rate, double burst, ct_err_t *e);

/* The public log (borrowed) the server tells of the records each batch put on disk. */
void ct_server_set_public(ct_server_t *s, ct_public_t *pub);

/* The endpoint bound, with the port ZeroMQ chose (tcp://127.0.0.1:41234). */
const char *ct_server_endpoint(const ct_server_t *s);

/* The socket's ZeroMQ context: an inproc:// endpoint is reachable only from sockets of it. */
void *ct_server_zmq_context(const ct_server_t *s);

/* Serves requests until *stop is set (checked at least every 200 ms; a signal handler or another
 * thread may set it), expiring leases as time passes. Errors: CT_ECOMM (the socket failed), CT_EIO
 * (the ledger failed: the coordinator must stop rather than answer without recording). */
int ct_server_run(ct_server_t *s, const atomic_int *stop, ct_err_t *e);

/* Closes the socket and frees the server; sets *self_p to NULL; NULL-safe. */
void ct_server_destroy(ct_server_t **self_p);

#endif
