/* peak.c — measures FP32 FMA throughput: each thread keeps enough independent accumulators in
 * flight (8 chains of 16 lanes) to cover FMA latency, so the loop runs at the FMA units' rate. */
#include "cotrain/clock.h"
#include "cotrain/peak.h"

#include <omp.h>
#include <time.h>

enum { CHAINS = 8, LANES = 16, ITERS = 1 << 18 };

/* One thread's work: CHAINS*LANES independent multiply-adds per iteration. */
static float fma_chains(float seed) {
    float acc[CHAINS][LANES];
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++) acc[c][l] = seed + (float)(c * LANES + l) * 1e-3f;
    const float a = 0.999999f, b = 1e-7f;
    for (int it = 0; it < ITERS; it++)
        for (int c = 0; c < CHAINS; c++)
            for (int l = 0; l < LANES; l++) acc[c][l] = acc[c][l] * a + b;
    float s = 0.0f;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++) s += acc[c][l];
    return s;
}

double ct_peak_flops(void) {
    double best = 0.0;
    volatile float sink = 0.0f; /* keeps the work from being optimised away */
    for (int rep = 0; rep < 3; rep++) {
        int threads = 1;
        double t0 = ct_now_s();
#pragma omp parallel
        {
#pragma omp single
            threads = omp_get_num_threads();
            float s = fma_chains((float)omp_get_thread_num());
#pragma omp atomic
            sink += s;
        }
        double dt = ct_now_s() - t0;
        double flops = 2.0 * CHAINS * LANES * (double)ITERS * threads / dt;
        if (flops > best) best = flops;
    }
    (void)sink;
    return best > 0.0 ? best : 1.0;
}
