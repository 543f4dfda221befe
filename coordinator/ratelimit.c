/* ratelimit.c — token buckets in a fixed, hash-indexed table (see ratelimit.h). */
#include "cotrain/ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 4096, PEER_NAME_MAX = 64, WARN_EVERY_S = 10 };

typedef struct slot {
    unsigned char name[PEER_NAME_MAX];
    size_t n; /* 0: free */
    double tokens, at, warned_at;
} slot_t;

struct ct_ratelimit {
    double rate, burst;
    slot_t slot[SLOTS];
};

int ct_ratelimit_create(ct_ratelimit_t **out, double rate, double burst, ct_err_t *e) {
    *out = NULL;
    if (!(rate > 0) || !(burst >= 1))
        return CT_ERR(e, CT_EINVAL, "a rate limit needs a rate > 0 and a burst >= 1 (got %g, %g)",
                      rate, burst);
    ct_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl) return CT_ERR(e, CT_ENOMEM, "out of memory for the rate limit's table");
    rl->rate = rate;
    rl->burst = burst;
    *out = rl;
    return 0;
}

void ct_ratelimit_destroy(ct_ratelimit_t **rl) {
    free(*rl);
    *rl = NULL;
}

/* FNV-1a over the name */
static uint32_t hash(const unsigned char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Peer name's slot, its bucket filled up to now. */
static slot_t *refill(ct_ratelimit_t *rl, const void *name, size_t n, double now) {
    if (n > PEER_NAME_MAX) n = PEER_NAME_MAX;
    slot_t *s = &rl->slot[hash(name, n) % SLOTS];
    if (s->n != n || memcmp(s->name, name, n) != 0) { /* a new peer here: a full bucket */
        memcpy(s->name, name, n);
        s->n = n;
        s->tokens = rl->burst;
        s->at = now;
        s->warned_at = -1e300;
    }
    if (now > s->at) s->tokens += (now - s->at) * rl->rate;
    if (s->tokens > rl->burst) s->tokens = rl->burst;
    s->at = now;
    return s;
}

int ct_ratelimit_has(ct_ratelimit_t *rl, const void *name, size_t n, double now) {
    return refill(rl, name, n, now)->tokens >= 1;
}

int ct_ratelimit_take(ct_ratelimit_t *rl, const void *name, size_t n, double now, int *warn) {
    slot_t *s = refill(rl, name, n, now);
    *warn = 0;
    if (s->tokens >= 1) {
        s->tokens -= 1;
        return 1;
    }
    if (now - s->warned_at >= WARN_EVERY_S) {
        *warn = 1;
        s->warned_at = now;
    }
    return 0;
}
