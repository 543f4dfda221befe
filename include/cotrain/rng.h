/* rng.h — deterministic random numbers: a small sequential generator (xoshiro256**) for data
 * order and sampling, and counter-based normal fills whose values depend only on (seed, stream,
 * index), so weight initialisation is parallel and independent of the thread count. */
#ifndef COTRAIN_RNG_H
#define COTRAIN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ct_rng {
    uint64_t s[4];
} ct_rng_t;

/* Seeds the generator from a 64-bit seed (any value, 0 included). */
void ct_rng_seed(ct_rng_t *rng, uint64_t seed);
/* Next 64 random bits. */
uint64_t ct_rng_next(ct_rng_t *rng);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t ct_rng_below(ct_rng_t *rng, uint64_t n);

/* out[i] = std * N(0,1) sample number i of stream `stream` under `seed`. */
void ct_rng_normal_fill(float *out, size_t n, float std, uint64_t seed, uint64_t stream);

#endif
