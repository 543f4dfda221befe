/* rng.c — xoshiro256** (Blackman & Vigna) seeded through splitmix64, and counter-based normal
 * samples from splitmix64 hashes and the Box–Muller transform. */
#include "cotrain/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void ct_rng_seed(ct_rng_t *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x = splitmix64(x);
        rng->s[i] = x;
    }
}

uint64_t ct_rng_next(ct_rng_t *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ct_rng_below(ct_rng_t *rng, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = ct_rng_next(rng);
    while (x >= limit);
    return x % n;
}

void ct_rng_normal_fill(float *out, size_t n, float std, uint64_t seed, uint64_t stream) {
    uint64_t key = splitmix64(seed ^ splitmix64(stream));
#pragma omp parallel for schedule(static)
    for (size_t pair = 0; pair < (n + 1) / 2; pair++) {
        uint64_t h = splitmix64(key + pair);
        /* u1 in (0,1], u2 in [0,1): 32 bits each, in double so log() never sees 0 */
        double u1 = ((double)(h >> 32) + 1.0) / 4294967296.0;
        double u2 = (double)(h & 0xffffffffULL) / 4294967296.0;
        double r = sqrt(-2.0 * log(u1));
        size_t i = 2 * pair;
        out[i] = (float)(std * r * cos(2.0 * M_PI * u2));
        if (i + 1 < n) out[i + 1] = (float)(std * r * sin(2.0 * M_PI * u2));
    }
}
