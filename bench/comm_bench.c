/* comm_bench.c — all-reduce speed of the gradient path (ct_comm_sum_floats: reduce-scatter +
 * all-gather through a reused buffer) against Open MPI's MPI_Allreduce on the same buffer, in
 * one run under mpirun. Bus bandwidth = 2 (p-1)/p x bytes / time, the usual all-reduce figure.
 * Rank 0 prints one JSON line per (size, implementation): median and best of --reps calls after
 * one warm-up call. */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/comm.h"
#include "cotrain/mem.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times reps calls of one implementation (0: cotrain, 1: MPI_Allreduce) on buf[0..n). */
static void measure(ct_comm_t *comm, float *buf, size_t n, int impl, int reps, double *med,
                    double *best) {
    double *t = malloc((size_t)reps * sizeof *t);
    ct_err_t e = {0};
    for (int r = -1; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (impl == 0)
            ct_comm_sum_floats(comm, buf, n, &e);
        else
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r >= 0) t[r] = dt;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *med = t[reps / 2];
    *best = t[0];
    free(t);
}

int main(int argc, char **argv) {
    ct_err_t e = {0};
    ct_comm_t *comm = NULL;
    if (ct_comm_create(&comm, &argc, &argv, &e) != 0 || strcmp(ct_comm_backend(comm), "mpi")) {
        fprintf(stderr, "ct_bench_comm: run it under mpirun (%s)\n", e.msg);
        return 2;
    }
    int reps = 5, c;
    size_t sizes[2] = {(size_t)124 << 20, (size_t)10 << 20}; /* floats: 496 MiB (GPT-2), 40 MiB */
    static const struct option opts[] = {{"reps", required_argument, 0, 'r'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (c == 'r') reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
    int p = ct_comm_size(comm);
    float *buf = ct_mem_alloc(sizes[0] * sizeof(float), &e);
    for (int s = 0; s < 2 && buf; s++) {
        size_t n = sizes[s];
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 97) * 1e-3f;
        for (int impl = 0; impl < 2; impl++) {
            double med, best;
            measure(comm, buf, n, impl, reps, &med, &best);
            double bytes = (double)n * sizeof(float), bus = 2.0 * (p - 1) / p * bytes;
            if (ct_comm_rank(comm) == 0)
                printf("{\"impl\": \"%s\", \"ranks\": %d, \"bytes\": %.0f, \"median_s\": %.6f, "
                       "\"best_s\": %.6f, \"bus_gb_per_s\": %.3f}\n",
                       impl ? "MPI_Allreduce" : "cotrain", p, bytes, med, best, bus / med / 1e9);
        }
    }
    ct_mem_free(buf, sizes[0] * sizeof(float));
    ct_comm_destroy(&comm);
    return 0;
}
