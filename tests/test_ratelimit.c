/* test_ratelimit.c — the per-peer token buckets (coordinator/ratelimit.c) against a straight
 * re-computation: a burst, then the rate; peers apart; a refusal logged once in 10 s; bad
 * arguments refused. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cotrain/ratelimit.h"

int main(void) {
    ct_ratelimit_t *rl = NULL;
    ct_err_t e = {0};
    int warn = -1;
    CHECK_EQ_INT(ct_ratelimit_create(&rl, 0, 5, &e), CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ratelimit_create(&rl, 10, 0.5, &e), CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ratelimit_create(&rl, 10, 5, &e), 0);
    /* a burst of 5 at t=100, then refused; the first refusal says to log */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.0, &warn), 1);
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.0, &warn), 0);
    CHECK_EQ_INT(warn, 1);
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.0, &warn), 0);
    CHECK_EQ_INT(warn, 0);
    /* another peer has its own bucket */
    CHECK_EQ_INT(ct_ratelimit_take(rl, "b", 1, 100.0, &warn), 1);
    /* 10/s: 0.25 s later two more requests, not three */
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.25, &warn), 1);
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.25, &warn), 1);
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 100.25, &warn), 0);
    CHECK_EQ_INT(warn, 0); /* within 10 s of the last warning */
    /* a peer keeping to the rate for a minute is never refused: one request each 0.1 s */
    int refused = 0;
    for (int i = 1; i <= 600; i++)
        refused += !ct_ratelimit_take(rl, "b", 1, 100.0 + 0.1 * i, &warn);
    CHECK_EQ_INT(refused, 0);
    /* the bucket holds no more than the burst after a long pause; the warning comes again */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 1000.0, &warn), 1);
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 1000.0, &warn), 0);
    CHECK_EQ_INT(warn, 1);
    /* a clock that steps back gives nothing */
    CHECK_EQ_INT(ct_ratelimit_take(rl, "a", 1, 900.0, &warn), 0);
    /* long names are bounded; thousands of peers keep memory fixed and each gets its burst */
    char name[200];
    memset(name, 'x', sizeof name);
    CHECK_EQ_INT(ct_ratelimit_take(rl, name, sizeof name, 2000.0, &warn), 1);
    int first = 0;
    for (int i = 0; i < 20000; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "peer-%d", i);
        first += ct_ratelimit_take(rl, p, (size_t)n, 3000.0, &warn);
    }
    CHECK_EQ_INT(first, 20000);
    ct_ratelimit_destroy(&rl);
    CHECK(rl == NULL);
    return CHECK_RESULT();
}
