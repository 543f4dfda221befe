/* outer_bench.c — the coordinator's outer step at a real model's size (scripts/bench outer): K
 * deltas of N floats (default 16 of GPT-2 124M's 124,439,808) arrive int8-encoded and are decoded,
 * their norms checked, aggregated by each rule, and applied with Nesterov momentum. Prints one
 * JSON line of seconds per part, the best of --reps rounds:
 *   outer_bench [--k K] [--n N] [--reps R] [--threads T]
 * The deltas are allocated and touched once before timing (first touch is not the step's cost). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/clock.h"
#include "cotrain/delta.h"
#include "cotrain/mem.h"
#include "cotrain/outer.h"
#include "cotrain/rng.h"

int main(int argc, char **argv) {
    int k = 16, reps = 3, threads = 0;
    int64_t n = 124439808;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--k"))
            k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n"))
            n = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (threads > 0) omp_set_num_threads(threads);
    ct_err_t e = {0};
    size_t len = ct_delta_encoded_size(CT_DELTA_INT8, n);
    float **d = calloc((size_t)k, sizeof *d), *g = ct_mem_alloc((size_t)n * 4, &e),
          *theta = ct_mem_alloc((size_t)n * 4, &e), *mom = ct_mem_alloc((size_t)n * 4, &e);
    unsigned char **enc = calloc((size_t)k, sizeof *enc);
    double *norms = calloc((size_t)k, sizeof *norms);
    int *bad = calloc((size_t)k, sizeof *bad);
    if (!d || !g || !theta || !mom || !enc || !norms || !bad) {
        fprintf(stderr, "outer_bench: out of memory\n");
        return 1;
    }
    ct_rng_t r;
    ct_rng_seed(&r, 1);
    for (int i = 0; i < k; i++) {
        d[i] = ct_mem_alloc((size_t)n * 4, &e);
        enc[i] = ct_mem_alloc(len, &e);
        if (!d[i] || !enc[i]) {
            fprintf(stderr, "outer_bench: out of memory for %d deltas of %lld floats\n", k,
                    (long long)n);
            return 1;
        }
        float s = 1e-3f * (float)(1 + ct_rng_below(&r, 4));
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < n; j++)
            d[i][j] = s * (float)((j * 2654435761u + (uint64_t)i * 40503u) % 2001 - 1000) / 1000.0f;
        if (ct_delta_encode(CT_DELTA_INT8, d[i], NULL, n, enc[i], &e) != 0) return 1;
    }
    memset(theta, 0, (size_t)n * 4);
    memset(mom, 0, (size_t)n * 4);
    double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    for (int rep = 0; rep < reps; rep++) {
        double t[7];
        t[0] = ct_now_s();
        for (int i = 0; i < k; i++)
            if (ct_delta_decode(CT_DELTA_INT8, enc[i], len, d[i], n, &e) != 0) return 1;
        t[1] = ct_now_s();
        ct_outer_norms((const float *const *)d, k, n, norms);
        ct_outer_outliers(norms, k, 3.0, bad, NULL);
        t[2] = ct_now_s();
        if (ct_outer_aggregate(CT_AGG_MEAN, 0, (const float *const *)d, NULL, k, n, g, &e))
            return 1;
        t[3] = ct_now_s();
        if (ct_outer_aggregate(CT_AGG_TRIMMED_MEAN, 0.2, (const float *const *)d, NULL, k, n, g,
                               &e))
            return 1;
        t[4] = ct_now_s();
        if (ct_outer_aggregate(CT_AGG_MEDIAN, 0, (const float *const *)d, NULL, k, n, g, &e))
            return 1;
        t[5] = ct_now_s();
        ct_outer_step(theta, mom, g, n, 0.7f, 0.9f);
        t[6] = ct_now_s();
        for (int p = 0; p < 6; p++)
            if (t[p + 1] - t[p] < best[p]) best[p] = t[p + 1] - t[p];
    }
    printf("{\"k\": %d, \"n\": %lld, \"threads\": %d, \"decode_int8_s\": %.3f, \"norms_s\": %.3f, "
           "\"mean_s\": %.3f, \"trimmed_mean_s\": %.3f, \"median_s\": %.3f, \"step_s\": %.3f}\n",
           k, (long long)n, omp_get_max_threads(), best[0], best[1], best[2], best[3], best[4],
           best[5]);
    return 0;
}
