/* comm.c — the group's collectives over MPI, or none for a single local process.
 *
 * Sums of floats are a reduce-scatter followed by an all-gather, with the reduction done here:
 * an all-to-all gives rank r every rank's slice r, which it adds in rank order, then everyone
 * gathers the reduced slices. So all ranks hold the same bits by construction (a plain
 * MPI_Allreduce may give ranks different roundings) and runs repeat bit for bit (MPI's own
 * reductions may add in arrival order: with 4 ranks a tested run drifted by 1e-5 under load).
 * Buffers are padded to a multiple of the rank count in a scratch buffer that is kept and
 * reused (fresh pages cost ~11 us each here). */
#include "cotrain/comm.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/mem.h"

struct ct_comm {
    int mpi; /* 1: MPI initialised by us */
    int rank, size;
    float *scratch; /* (scratch_n) padded send and receive buffers */
    size_t scratch_n;
};

/* Was this process started by an MPI launcher? */
static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static int mpi_err(int code, const char *what, ct_err_t *e) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return CT_ERR(e, CT_ECOMM, "%s failed: %s", what, msg);
}

int ct_comm_create(ct_comm_t **out, int *argc, char ***argv, ct_err_t *e) {
    int rc = 0;
    ct_comm_t *c = NULL;
    *out = NULL;
    CT_ALLOC(e, c, 1, fail);
    c->size = 1;
    if (launched_by_mpi()) {
        int st = MPI_Init(argc, argv);
        if (st != MPI_SUCCESS) {
            rc = mpi_err(st, "MPI_Init", e);
            goto fail;
        }
        c->mpi = 1;
        /* errors come back as codes, so they can be reported with context, not abort silently */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    }
    *out = c;
    return 0;
fail:
    free(c);
    return rc;
}

void ct_comm_destroy(ct_comm_t **self_p) {
    ct_comm_t *c = *self_p;
    if (!c) return;
    ct_mem_free(c->scratch, c->scratch_n * sizeof(float));
    if (c->mpi) MPI_Finalize();
    free(c);
    *self_p = NULL;
}

void ct_comm_abort(ct_comm_t *self, int code) {
    if (self && self->mpi) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

int ct_comm_local_size(const ct_comm_t *self) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                       "SLURM_NTASKS_PER_NODE"};
    if (!self->mpi) return 1;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        int n = v ? atoi(v) : 0;
        if (n > 0) return n;
    }
    return 1;
}

int ct_comm_rank(const ct_comm_t *self) {
    return self->rank;
}

int ct_comm_size(const ct_comm_t *self) {
    return self->size;
}

const char *ct_comm_backend(const ct_comm_t *self) {
    return self->mpi ? "mpi" : "local";
}

/* Scratch floats a sum of n needs: a receive area, plus a padded send area when n does not split
 * evenly over the ranks (then buf cannot serve as send and gather buffer). */
static size_t scratch_need(const ct_comm_t *c, size_t n) {
    size_t p = (size_t)c->size, padded = (n + p - 1) / p * p;
    return padded == n ? padded : 2 * padded;
}

int ct_comm_reserve(ct_comm_t *c, size_t n, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    size_t need = scratch_need(c, n);
    if (need <= c->scratch_n) return 0;
    ct_mem_free(c->scratch, c->scratch_n * sizeof(float));
    c->scratch_n = 0;
    if (!(c->scratch = ct_mem_alloc(need * sizeof(float), e))) return CT_ENOMEM;
    c->scratch_n = need;
    return 0;
}

int ct_comm_sum_floats(ct_comm_t *c, float *buf, size_t n, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    size_t p = (size_t)c->size, slice = (n + p - 1) / p, padded = slice * p;
    if (slice > (size_t)INT32_MAX)
        return CT_ERR(e, CT_EINVAL, "all-reduce of %zu floats: a slice exceeds MPI's int count", n);
    /* When n splits evenly, buf itself is the send and gather buffer: no copies in or out. */
    int direct = padded == n;
    CT_TRY(ct_comm_reserve(c, n, e));
    float *send = direct ? buf : c->scratch, *recv = direct ? c->scratch : c->scratch + padded;
    if (!direct) {
        memcpy(send, buf, n * sizeof(float));
        memset(send + n, 0, (padded - n) * sizeof(float));
    }
    /* rank r receives everyone's slice r ... */
    int st = MPI_Alltoall(send, (int)slice, MPI_FLOAT, recv, (int)slice, MPI_FLOAT, MPI_COMM_WORLD);
    if (st != MPI_SUCCESS) return mpi_err(st, "MPI_Alltoall", e);
    /* ... and adds them in rank order: the same order on every run, whatever arrived first */
    float *mine = send + (size_t)c->rank * slice;
    memcpy(mine, recv, slice * sizeof(float));
    for (size_t q = 1; q < p; q++) {
        const float *x = recv + q * slice;
        for (size_t i = 0; i < slice; i++) mine[i] += x[i];
    }
    st = MPI_Allgather(MPI_IN_PLACE, (int)slice, MPI_FLOAT, send, (int)slice, MPI_FLOAT,
                       MPI_COMM_WORLD);
    if (st != MPI_SUCCESS) return mpi_err(st, "MPI_Allgather", e);
    if (!direct) memcpy(buf, send, n * sizeof(float));
    return 0;
}

int ct_comm_sum_doubles(ct_comm_t *c, double *buf, int n, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    /* small: gather everything and add in rank order on every rank */
    double *all = malloc((size_t)n * (size_t)c->size * sizeof *all);
    if (!all) return CT_ERR(e, CT_ENOMEM, "out of memory");
    int st = MPI_Allgather(buf, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (st == MPI_SUCCESS)
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int r = 0; r < c->size; r++) s += all[(size_t)r * n + i];
            buf[i] = s;
        }
    free(all);
    return st == MPI_SUCCESS ? 0 : mpi_err(st, "MPI_Allgather", e);
}

int ct_comm_max_int(ct_comm_t *c, int *v, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    int st = MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return st == MPI_SUCCESS ? 0 : mpi_err(st, "MPI_Allreduce", e);
}

int ct_comm_same_u64(ct_comm_t *c, uint64_t v, int *same, int *first_bad, ct_err_t *e) {
    *same = 1;
    *first_bad = -1;
    if (!c->mpi || c->size == 1) return 0;
    uint64_t *all = malloc((size_t)c->size * sizeof *all);
    if (!all) return CT_ERR(e, CT_ENOMEM, "out of memory");
    int st = MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    if (st == MPI_SUCCESS)
        for (int r = 1; r < c->size && *same; r++)
            if (all[r] != all[0]) {
                *same = 0;
                *first_bad = r;
            }
    free(all);
    return st == MPI_SUCCESS ? 0 : mpi_err(st, "MPI_Allgather", e);
}
