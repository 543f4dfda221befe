/* ratelimit.h — the coordinator's per-peer request rate limit: a token bucket for each peer
 * (named by its CURVE key id, or its connection without CURVE), `rate` requests a second with
 * bursts of up to `burst`.
 *
 * The buckets live in a fixed table indexed by a hash of the peer's name: memory stays bounded
 * however many peers come and go. A peer that lands on a slot another peer holds takes it over
 * with a full bucket, so a collision can only ever let a peer ask more, never refuse one that
 * stays within the rate. */
#ifndef COTRAIN_RATELIMIT_H
#define COTRAIN_RATELIMIT_H

#include <stddef.h>

#include "cotrain/err.h"

typedef struct ct_ratelimit ct_ratelimit_t;

/* A table for `rate` (> 0) requests a second per peer, bursts of `burst` (>= 1).
 * Errors: CT_EINVAL, CT_ENOMEM. */
int ct_ratelimit_create(ct_ratelimit_t **out, double rate, double burst, ct_err_t *e);
void ct_ratelimit_destroy(ct_ratelimit_t **rl);

/* Takes one request of peer `name` (n bytes) at time `now` (seconds): 1 when it is within the
 * rate, else 0 (the request is to be refused). *warn, when 0 is returned, says whether this is
 * the first refusal of that peer in 10 s (to log it without flooding the log). */
int ct_ratelimit_take(ct_ratelimit_t *rl, const void *name, size_t n, double now, int *warn);

/* 1 when peer `name` has a request left in its bucket at `now` (nothing is taken). */
int ct_ratelimit_has(ct_ratelimit_t *rl, const void *name, size_t n, double now);

#endif
