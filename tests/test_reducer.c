/* test_reducer.c — the bucketed gradient all-reduce against a straight re-computation. Run under
 * mpirun with any number of ranks (tests/CMakeLists.txt runs 1, 2, 3 and 4); alone it tests the
 * one-rank no-op. Every rank fills its buffer from (rank, i), so each rank can compute the
 * expected sum itself, added in rank order as the reducer promises, and compare bit for bit.
 * Covered: sizes that do and do not split over the ranks (n < ranks too), buckets and pieces of
 * one slice per rank up to the whole buffer, sums started all at the end and started bucket by
 * bucket as a backward pass would (ct_reducer_ready with a falling `from`), and reuse over
 * several steps. Also: ct_comm_local_size counts the ranks on this machine. */
#include <stdlib.h>

#include "check.h"
#include "cotrain/comm.h"
#include "cotrain/reducer.h"

/* Rank r's value at i in step s: varied magnitudes so the order of additions shows in the bits. */
static float value(int r, size_t i, int s) {
    unsigned h = (unsigned)(i * 2654435761u) ^ (unsigned)(r * 40503 + s * 977);
    return (float)((h % 2001) - 1000) * (r % 2 ? 1e-3f : 1.7f) + (float)r * 0.1f;
}

static void one_case(ct_comm_t *comm, size_t n, size_t bucket, size_t chunk, int overlap,
                     int steps) {
    int rank = ct_comm_rank(comm), size = ct_comm_size(comm);
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    ct_reducer_t *red = NULL;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_reducer_create(&red, comm, buf, n, bucket, chunk, &e), 0);
    if (!red) {
        free(buf);
        return;
    }
    for (int s = 0; s < steps; s++) {
        for (size_t i = 0; i < n; i++) buf[i] = value(rank, i, s);
        ct_reducer_begin(red);
        if (overlap) /* the backward pass finishing ~7 pieces, from the end towards the start */
            for (size_t from = n; from > 0;) {
                from = from > n / 7 + 1 ? from - (n / 7 + 1) : 0;
                ct_reducer_ready(red, from);
            }
        double busy = -1.0;
        CHECK_EQ_INT(ct_reducer_finish(red, &busy, &e), 0);
        CHECK(busy >= 0.0);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = value(0, i, s);
            for (int r = 1; r < size; r++) want += value(r, i, s);
            bad += buf[i] != want;
        }
        if (bad)
            fprintf(stderr,
                    "rank %d of %d, n %zu, bucket %zu, chunk %zu, overlap %d, step %d: %zu wrong\n",
                    rank, size, n, bucket, chunk, overlap, s, bad);
        CHECK_EQ_INT(bad, 0);
    }
    ct_reducer_destroy(&red);
    free(buf);
}

int main(int argc, char **argv) {
    ct_comm_t *comm = NULL;
    ct_err_t e = {0};
    if (ct_comm_create(&comm, &argc, &argv, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    static const size_t sizes[] = {1, 3, 4, 1000, 1001, 123457};
    static const size_t buckets[] = {1, 5, 64, 1000, 1 << 20}, chunks[] = {1, 7, 1000, 1 << 20};
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < sizeof buckets / sizeof buckets[0]; b++)
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
                for (int overlap = 0; overlap < 2; overlap++)
                    if (chunks[c] * 1000 >= sizes[a]) /* at most ~1000 pieces: quick */
                        one_case(comm, sizes[a], buckets[b], chunks[c], overlap, 3);
    /* the number of buckets: the buffer cut into buckets of bucket_floats rounded up to a whole
       number of pieces, themselves rounded up to a multiple of the rank count */
    ct_reducer_t *red = NULL;
    float buf[100];
    CHECK_EQ_INT(ct_reducer_create(&red, comm, buf, 100, 10, 3, &e), 0);
    int p = ct_comm_size(comm), chunk = (3 + p - 1) / p * p, per = (10 + chunk - 1) / chunk * chunk;
    CHECK_EQ_INT(ct_reducer_buckets(red), p == 1 ? 1 : (100 + per - 1) / per);
    ct_reducer_destroy(&red);
    /* every rank of this test runs on this machine, so all of them are local; the launcher's
       variables are removed first to show that the count comes from MPI itself */
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    unsetenv("MPI_LOCALNRANKS");
    unsetenv("SLURM_NTASKS_PER_NODE");
    CHECK_EQ_INT(ct_comm_local_size(comm), ct_comm_size(comm));
    /* alone there is no other rank to end: the library returns and leaves exiting to main() */
    if (ct_comm_size(comm) == 1) ct_comm_abort(comm, 3);
    int failures = check_failures_;
    CHECK_EQ_INT(ct_comm_max_int(comm, &failures, &e), 0);
    ct_comm_destroy(&comm);
    return failures ? 1 : 0;
}
