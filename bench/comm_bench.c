/* comm_bench.c — speed of the gradient all-reduce (ct_reducer: buckets of reduce-scatter + sum
 * in rank order + all-gather, through reused buffers) against Open MPI's MPI_Allreduce on the
 * same buffer, in one run under mpirun. Bus bandwidth = 2 (p-1)/p x bytes / time, the usual
 * all-reduce figure. Rank 0 prints one JSON line per (size, implementation): median and best of
 * --reps calls after one warm-up call.
 *
 *   --reps N         timed calls per measurement (default 5)
 *   --bucket-mb L    comma-separated bucket sizes in MB for the reducer; 0 = the whole buffer
 *                    as one bucket (default 25,0)
 *   --raw-only       measure MPI_Allreduce only (to compare its algorithms) */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/comm.h"
#include "cotrain/mem.h"
#include "cotrain/reducer.h"

enum { MAX_BUCKETS = 8 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times reps calls of the reducer (red != NULL) or of MPI_Allreduce on buf[0..n). */
static void measure(ct_reducer_t *red, float *buf, size_t n, int reps, double *med, double *best) {
    double *t = malloc((size_t)reps * sizeof *t);
    ct_err_t e = {0};
    for (int r = -1; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (red) {
            ct_reducer_begin(red);
            if (ct_reducer_finish(red, NULL, &e) != 0) {
                fprintf(stderr, "ct_bench_comm: %s\n", e.msg);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        } else {
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r >= 0) t[r] = dt;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *med = t[reps / 2];
    *best = t[0];
    free(t);
}

static void report(const ct_comm_t *comm, const char *impl, double bucket_mb, size_t n, double med,
                   double best) {
    int p = ct_comm_size(comm);
    double bytes = (double)n * sizeof(float), bus = 2.0 * (p - 1) / p * bytes;
    if (ct_comm_rank(comm) == 0)
        printf("{\"impl\": \"%s\", \"bucket_mb\": %g, \"ranks\": %d, \"bytes\": %.0f, "
               "\"median_s\": %.6f, \"best_s\": %.6f, \"bus_gb_per_s\": %.3f}\n",
               impl, bucket_mb, p, bytes, med, best, bus / med / 1e9);
}

int main(int argc, char **argv) {
    ct_err_t e = {0};
    ct_comm_t *comm = NULL;
    if (ct_comm_create(&comm, &argc, &argv, &e) != 0 || strcmp(ct_comm_backend(comm), "mpi")) {
        fprintf(stderr, "ct_bench_comm: run it under mpirun (%s)\n", e.msg);
        return 2;
    }
    int reps = 5, raw_only = 0, n_buckets = 0, c;
    double bucket_mb[MAX_BUCKETS];
    char *list = strdup("25,0");
    static const struct option opts[] = {{"reps", required_argument, 0, 'r'},
                                         {"bucket-mb", required_argument, 0, 'b'},
                                         {"raw-only", no_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r') reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
        if (c == 'o') raw_only = 1;
        if (c == 'b') {
            free(list);
            list = strdup(optarg);
        }
    }
    for (char *tok = strtok(list, ","); tok && n_buckets < MAX_BUCKETS; tok = strtok(NULL, ","))
        bucket_mb[n_buckets++] = atof(tok);
    free(list);
    size_t sizes[2] = {(size_t)124 << 20, (size_t)10 << 20}; /* floats: 496 MiB (GPT-2), 40 MiB */
    float *buf = ct_mem_alloc(sizes[0] * sizeof(float), &e);
    for (int s = 0; s < 2 && buf; s++) {
        size_t n = sizes[s];
        double med, best;
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 97) * 1e-3f;
        for (int k = 0; k < n_buckets && !raw_only; k++) {
            ct_reducer_t *red = NULL;
            size_t per = bucket_mb[k] > 0 ? (size_t)(bucket_mb[k] * 1e6 / sizeof(float)) : n;
            if (ct_reducer_create(&red, comm, buf, n, per, &e) != 0) {
                fprintf(stderr, "ct_bench_comm: %s\n", e.msg);
                ct_comm_abort(comm, 1);
            }
            measure(red, buf, n, reps, &med, &best);
            report(comm, "cotrain", bucket_mb[k], n, med, best);
            ct_reducer_destroy(&red);
        }
        measure(NULL, buf, n, reps, &med, &best);
        report(comm, "MPI_Allreduce", 0, n, med, best);
    }
    ct_mem_free(buf, sizes[0] * sizeof(float));
    ct_comm_destroy(&comm);
    return 0;
}
