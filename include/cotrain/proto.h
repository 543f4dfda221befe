/* proto.h — the worker <-> coordinator message codec (DESIGN.md, "Protocol"): the grammar of
 * a message's JSON header, checked before anything acts on it; ZeroMQ moves the frames.
 *
 * A message is multipart: frame 1 a JSON object {"v": 1, "type": TYPE, "req": N, ...}, then
 * binary frames (tensor or shard chunks) that the header describes. Requests carry a per-group
 * sequence number `req` (an integer in [0, 2^53]); a reply carries the `req` it answers. A bad
 * request gets {"v":1,"type":"error","req":N,"code":CODE,"message":TEXT} and changes nothing
 * (`req` null when the request's could not be read; ct_msg_t.req is then -1).
 *
 * Parsing treats the bytes as hostile: length first (at most CT_PROTO_HEADER_MAX), then cJSON
 * (whose nesting limit bounds recursion), then every field the type needs, by type and range;
 * unknown fields are ignored (a newer peer may send more). */
#ifndef COTRAIN_PROTO_H
#define COTRAIN_PROTO_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

enum {
    CT_PROTO_VERSION = 1,
    CT_PROTO_HEADER_MAX = 64 * 1024,
    CT_PROTO_FRAMES_MAX = 16,
    CT_PROTO_CHUNK_MAX = 1 << 20, /* the bytes of a shard one shard_fetch reply carries */
    CT_PROTO_MSG_MAX = 64 << 20   /* the largest part either side accepts (ZMQ_MAXMSGSIZE) */
};

/* X(name, wire name) */
#define CT_MSG_TYPES(X)                                                                            \
    X(HELLO, "hello")                                                                              \
    X(WELCOME, "welcome")                                                                          \
    X(LEASE, "lease")                                                                              \
    X(LEASE_GRANT, "lease_grant")                                                                  \
    X(HEARTBEAT, "heartbeat")                                                                      \
    X(SHARD_DONE, "shard_done")                                                                    \
    X(CHECKPOINT_COMMIT, "checkpoint_commit")                                                      \
    X(LATEST_CHECKPOINT, "latest_checkpoint")                                                      \
    X(STATUS, "status")                                                                            \
    X(DATA_MANIFEST, "data_manifest")                                                              \
    X(SHARD_FETCH, "shard_fetch")                                                                  \
    X(METRICS, "metrics")                                                                          \
    X(LEAVE, "leave")                                                                              \
    X(MODEL_FETCH, "model_fetch")                                                                  \
    X(DELTA, "delta")                                                                              \
    X(MODEL_UPDATE, "model_update")                                                                \
    X(OK, "ok")                                                                                    \
    X(ERROR, "error")

typedef enum ct_msg_type {
#define CT_MSG_ENUM(name, wire) CT_MSG_##name,
    CT_MSG_TYPES(CT_MSG_ENUM)
#undef CT_MSG_ENUM
        CT_MSG_N_TYPES
} ct_msg_type_t;

/* X(name, wire name): the error codes a reply may carry. */
#define CT_PROTO_ERRORS(X)                                                                         \
    X(MALFORMED, "malformed")       /* not a header of this grammar */                             \
    X(VERSION, "version")           /* another protocol version */                                 \
    X(UNKNOWN_TYPE, "unknown_type") /* a type this coordinator does not serve */                   \
    X(TOO_LARGE, "too_large")       /* header or frames past the limits */                         \
    X(REPLAYED, "replayed")         /* an older req than the last one answered */                  \
    X(STALE, "stale")               /* a lease or checkpoint that is no longer current */          \
    X(REFUSED, "refused")           /* not allowed (auth, state) */                                \
    X(BUSY, "busy")                 /* past the per-peer request rate: ask again a little later */ \
    X(INTERNAL, "internal")         /* the coordinator failed; the request changed nothing */

typedef enum ct_proto_error {
#define CT_PROTO_ERR_ENUM(name, wire) CT_PROTO_E_##name,
    CT_PROTO_ERRORS(CT_PROTO_ERR_ENUM)
#undef CT_PROTO_ERR_ENUM
        CT_PROTO_E_N
} ct_proto_error_t;

/* The wire name of a type / error code ("?" when out of range). */
const char *ct_msg_type_name(ct_msg_type_t t);
const char *ct_proto_error_name(ct_proto_error_t c);

/* A message's binary frame: bytes (malloc'd, the receiver frees them) or none (data NULL). */
typedef struct ct_frame {
    void *data;
    size_t len;
} ct_frame_t;

/* A parsed header. `root` is owned (ct_msg_clear frees it); the frames are the caller's. */
typedef struct ct_msg {
    ct_msg_type_t type;
    int64_t req;
    cJSON *root;
    int n_frames;
} ct_msg_t;

/* Parses header bytes hdr[0..len) (not NUL-terminated) of a message with n_frames binary frames
 * after it. On failure returns CT_EPROTO with *code the error code to reply with and e->msg
 * saying what is wrong (for the reply's message and the log), and *out holds nothing; *req gets
 * the request's `req` when it could be read (else -1), so the error reply can name it. */
int ct_msg_parse(const void *hdr, size_t len, int n_frames, ct_msg_t *out, int64_t *req,
                 ct_proto_error_t *code, ct_err_t *e);

/* Frees what a parsed message holds and zeroes it. NULL-safe. */
void ct_msg_clear(ct_msg_t *m);

/* Field readers: 0 when present and valid, else CT_EPROTO naming the field and what it must be.
 * Strings must be 1..max-1 bytes of printable ASCII (ids, hashes, names) and are copied into
 * out[max]. */
int ct_msg_string(const ct_msg_t *m, const char *key, char *out, size_t max, ct_err_t *e);
int ct_msg_uint(const ct_msg_t *m, const char *key, int64_t *out, ct_err_t *e);

/* A header as text (malloc'd, NUL-terminated, compact JSON): {"v":1,"type":...,"req":req} with
 * the members of `fields` (may be NULL; consumed: freed here) added. NULL when out of memory. */
char *ct_msg_header(ct_msg_type_t type, int64_t req, cJSON *fields);

/* An error reply's header text for request `req` (-1: unknown), as ct_msg_header. */
char *ct_msg_error(int64_t req, ct_proto_error_t code, const char *message);

#endif
