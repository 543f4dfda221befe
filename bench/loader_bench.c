/* loader_bench.c — how long training steps wait for the data loader.
 *
 * Opens a manifest with the real loader and runs `--steps` simulated steps: each takes the next
 * batch (the time ct_data_next blocks is the wait) and then computes for `--step-ms` on this
 * thread, as a training step would, while the loader's thread reads ahead. With --step-ms 0 it
 * measures the loader's raw throughput instead (every step waits by construction). Prints one
 * JSON object: steps, step_ms, wait_s, busy_s, wait_fraction, samples_per_s, tokens_per_s. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cotrain/clock.h"
#include "cotrain/data.h"

/* Keeps this core busy for `seconds`, like a step's compute (a sleep would free the core for the
 * loader and flatter it). */
static double spin(double seconds, const int *rows, size_t n) {
    double t_end = ct_now_s() + seconds, acc = 0.0;
    while (ct_now_s() < t_end)
        for (size_t i = 0; i < n; i += 64) acc += rows[i];
    return acc;
}

int main(int argc, char **argv) {
    const char *data = NULL;
    int seq_len = 1024, global_batch = 8, steps = 200;
    double step_ms = 100.0;
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},         {"seq-len", required_argument, 0, 't'},
        {"global-batch", required_argument, 0, 'b'}, {"steps", required_argument, 0, 'n'},
        {"step-ms", required_argument, 0, 's'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 't': seq_len = atoi(optarg); break;
        case 'b': global_batch = atoi(optarg); break;
        case 'n': steps = atoi(optarg); break;
        case 's': step_ms = atof(optarg); break;
        case 'h':
            printf("usage: ct_bench_loader --data MANIFEST [--seq-len T] [--global-batch B] "
                   "[--steps N] [--step-ms MS]\n");
            return 0;
        default: fprintf(stderr, "ct_bench_loader: bad option (see --help)\n"); return 2;
        }
    }
    if (!data || seq_len < 1 || global_batch < 1 || steps < 1 || step_ms < 0) {
        fprintf(stderr, "ct_bench_loader: --data MANIFEST is required; sizes must be positive\n");
        return 2;
    }
    ct_err_t e = {0};
    ct_data_t *d = NULL;
    ct_data_opts_t o = {.seq_len = seq_len, .seed = 1, .global_batch = global_batch, .world = 1};
    int rc = ct_hash_init(&e);
    if (rc == 0) rc = ct_data_open(&d, data, &o, &e);
    size_t n = (size_t)global_batch * (size_t)(seq_len + 1);
    int *rows = malloc(n * sizeof *rows);
    double busy = 0.0, sink = 0.0, t0 = ct_now_s();
    for (int s = 0; rc == 0 && s < steps && rows; s++) {
        rc = ct_data_next(d, rows, &e);
        double t = ct_now_s();
        sink += spin(step_ms / 1e3, rows, n);
        busy += ct_now_s() - t;
    }
    double total = ct_now_s() - t0;
    if (rc != 0 || !rows) {
        fprintf(stderr, "ct_bench_loader: %s\n", rows ? e.msg : "out of memory");
        return 1;
    }
    double wait = ct_data_wait_seconds(d);
    printf("{\"steps\": %d, \"step_ms\": %g, \"seq_len\": %d, \"global_batch\": %d, "
           "\"wait_s\": %.6f, \"busy_s\": %.6f, \"wait_fraction\": %.6f, \"samples_per_s\": %.1f, "
           "\"tokens_per_s\": %.1f, \"checksum\": %.0f}\n",
           steps, step_ms, seq_len, global_batch, wait, busy, wait / total,
           steps * (double)global_batch / total, steps * (double)global_batch * seq_len / total,
           sink);
    ct_data_destroy(&d);
    free(rows);
    return 0;
}
