/* comm_bench.c — speed of the gradient all-reduce (ct_reducer: buckets of reduce-scatter + sum
 * in rank order + all-gather, through reused buffers) against Open MPI's MPI_Allreduce on the
 * same buffer, in one run under mpirun. Bus bandwidth = 2 (p-1)/p x bytes / time, the usual
 * all-reduce figure. Rank 0 prints one JSON line per (size, implementation): median and best of
 * --reps rounds, each round calling every implementation once, after a warm-up round.
 *
 *   --reps N         timed calls per measurement (default 5)
 *   --bucket-mb B    the reducer's bucket size in MB (default 25; as there is no backward pass
 *                    here, it only bounds the pieces)
 *   --chunk-mb L     comma-separated sizes in MB of the pieces a bucket is summed in, one
 *                    measurement each (default 4,25: the trainer's default, and a bucket at once)
 *   --raw-only       measure MPI_Allreduce only (to compare its algorithms) */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/comm.h"
#include "cotrain/mem.h"
#include "cotrain/reducer.h"

enum { MAX_CHUNKS = 8 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One call of implementation `red` (a reducer, or NULL: MPI_Allreduce) on buf[0..n); returns the
 * slowest rank's seconds. */
static double time_one(ct_reducer_t *red, float *buf, size_t n) {
    ct_err_t e = {0};
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
    return dt;
}

/* Times reps rounds of every implementation (reducers red[0..n_red), then MPI_Allreduce), one
 * call of each per round after a warm-up round, so a disturbance or a slow start
 * does not fall on one of them only; t[i * reps + r] gets implementation i's round r. */
static void measure(ct_reducer_t **red, int n_red, float *buf, size_t n, int reps, double *t) {
    int n_impl = n_red + 1;
    for (int r = -1; r < reps; r++)
        for (int i = 0; i < n_impl; i++) {
            double dt = time_one(i < n_red ? red[i] : NULL, buf, n);
            if (r >= 0) t[i * reps + r] = dt;
        }
    for (int i = 0; i < n_impl; i++) qsort(t + i * reps, (size_t)reps, sizeof *t, cmp_double);
}

static void report(const ct_comm_t *comm, const char *impl, double bucket_mb, double chunk_mb,
                   size_t n, double med, double best) {
    int p = ct_comm_size(comm);
    double bytes = (double)n * sizeof(float), bus = 2.0 * (p - 1) / p * bytes;
    if (ct_comm_rank(comm) == 0)
        printf("{\"impl\": \"%s\", \"bucket_mb\": %g, \"chunk_mb\": %g, \"ranks\": %d, "
               "\"bytes\": %.0f, \"median_s\": %.6f, \"best_s\": %.6f, \"bus_gb_per_s\": %.3f}\n",
               impl, bucket_mb, chunk_mb, p, bytes, med, best, bus / med / 1e9);
}

int main(int argc, char **argv) {
    ct_err_t e = {0};
    ct_comm_t *comm = NULL;
    if (ct_comm_create(&comm, &argc, &argv, &e) != 0 || strcmp(ct_comm_backend(comm), "mpi")) {
        fprintf(stderr, "ct_bench_comm: run it under mpirun (%s)\n", e.msg);
        return 2;
    }
    int reps = 5, raw_only = 0, n_chunks = 0, c;
    double bucket_mb = 25.0, chunk_mb[MAX_CHUNKS];
    char *list = strdup("4,25");
    static const struct option opts[] = {{"reps", required_argument, 0, 'r'},
                                         {"bucket-mb", required_argument, 0, 'b'},
                                         {"chunk-mb", required_argument, 0, 'c'},
                                         {"raw-only", no_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r') reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
        if (c == 'o') raw_only = 1;
        if (c == 'b') bucket_mb = atof(optarg);
        if (c == 'c') {
            free(list);
            list = strdup(optarg);
        }
    }
    for (char *tok = strtok(list, ","); tok && n_chunks < MAX_CHUNKS; tok = strtok(NULL, ","))
        chunk_mb[n_chunks++] = atof(tok);
    free(list);
    size_t sizes[2] = {(size_t)124 << 20, (size_t)10 << 20}; /* floats: 496 MiB (GPT-2), 40 MiB */
    float *buf = ct_mem_alloc(sizes[0] * sizeof(float), &e);
    for (int s = 0; s < 2 && buf; s++) {
        size_t n = sizes[s];
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 97) * 1e-3f;
        ct_reducer_t *red[MAX_CHUNKS] = {0};
        int n_red = raw_only ? 0 : n_chunks;
        for (int k = 0; k < n_red; k++)
            if (ct_reducer_create(&red[k], comm, buf, n, (size_t)(bucket_mb * 1e6 / sizeof(float)),
                                  (size_t)(chunk_mb[k] * 1e6 / sizeof(float)), &e) != 0) {
                fprintf(stderr, "ct_bench_comm: %s\n", e.msg);
                ct_comm_abort(comm, 1); /* returns when there is no other rank to end */
                ct_comm_destroy(&comm);
                return 1;
            }
        double *t = malloc((size_t)(n_red + 1) * (size_t)reps * sizeof *t);
        measure(red, n_red, buf, n, reps, t);
        for (int k = 0; k <= n_red; k++)
            report(comm, k < n_red ? "cotrain" : "MPI_Allreduce", k < n_red ? bucket_mb : 0,
                   k < n_red ? chunk_mb[k] : 0, n, t[k * reps + reps / 2], t[k * reps]);
        for (int k = 0; k < n_red; k++) ct_reducer_destroy(&red[k]);
        free(t);
    }
    ct_mem_free(buf, sizes[0] * sizeof(float));
    ct_comm_destroy(&comm);
    return 0;
}
