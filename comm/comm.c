/* comm.c — the group over MPI, or none for a single local process: joining, leaving, aborting
 * and the small collectives (a few doubles, a maximum, an equality check). Sums of whole
 * gradient buffers are reducer.c's. Small sums gather everything and add in rank order on every
 * rank, so they give the same bits everywhere and every time. */
#include "cotrain/comm.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_mpi.h"

struct ct_comm {
    int mpi; /* 1: MPI initialised by us */
    int rank, size;
    int local_size; /* ranks of the group on this node */
};

/* Was this process started by an MPI launcher? */
static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int ct_comm_mpi_err(int code, const char *what, ct_err_t *e) {
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
    c->size = c->local_size = 1;
    if (launched_by_mpi()) {
        int st = MPI_Init(argc, argv);
        if (st != MPI_SUCCESS) {
            rc = ct_comm_mpi_err(st, "MPI_Init", e);
            goto fail;
        }
        c->mpi = 1;
        /* errors come back as codes, so they can be reported with context, not abort silently */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &c->size);
        /* the ranks that share this node's memory: MPI knows, whatever launched us */
        MPI_Comm node;
        st = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                 &node);
        if (st == MPI_SUCCESS) {
            st = MPI_Comm_size(node, &c->local_size);
            MPI_Comm_free(&node);
        }
        if (st != MPI_SUCCESS) {
            rc = ct_comm_mpi_err(st, "MPI_Comm_split_type (the ranks on this node)", e);
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    ct_comm_destroy(&c);
    return rc;
}

void ct_comm_destroy(ct_comm_t **self_p) {
    ct_comm_t *c = *self_p;
    if (!c) return;
    if (c->mpi) MPI_Finalize();
    free(c);
    *self_p = NULL;
}

void ct_comm_abort(ct_comm_t *self, int code) {
    /* MPI_Abort ends every rank of the job, this one included; it returns only if it failed */
    if (self && self->mpi && self->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int ct_comm_local_size(const ct_comm_t *self) {
    return self->local_size;
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

int ct_comm_sum_doubles(ct_comm_t *c, double *buf, int n, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    /* small: gather everything and add in rank order on every rank */
    double *all = malloc((size_t)n * (size_t)c->size * sizeof *all);
    if (!all) return CT_ERR(e, CT_ENOMEM, "out of memory");
    int st = MPI_Allgather(buf, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (st == MPI_SUCCESS)
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int r = 0; r < c->size; r++)
                s += all[(size_t)r * n + i];
            buf[i] = s;
        }
    free(all);
    return st == MPI_SUCCESS ? 0 : ct_comm_mpi_err(st, "MPI_Allgather", e);
}

int ct_comm_max_int(ct_comm_t *c, int *v, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    int st = MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return st == MPI_SUCCESS ? 0 : ct_comm_mpi_err(st, "MPI_Allreduce", e);
}

int ct_comm_bcast(ct_comm_t *c, void *buf, size_t n, ct_err_t *e) {
    if (!c->mpi || c->size == 1) return 0;
    if (n > (size_t)INT32_MAX) return CT_ERR(e, CT_EINVAL, "broadcast of %zu bytes: too big", n);
    int st = MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    return st == MPI_SUCCESS ? 0 : ct_comm_mpi_err(st, "MPI_Bcast", e);
}

int ct_comm_bcast_text(ct_comm_t *c, char **text, ct_err_t *e) {
    int64_t len = c->rank == 0 && *text ? (int64_t)strlen(*text) + 1 : 0;
    CT_TRY(ct_comm_bcast(c, &len, sizeof len, e));
    if (len == 0) return 0;
    if (c->rank != 0 && !(*text = malloc((size_t)len)))
        return CT_ERR(e, CT_ENOMEM, "out of memory receiving %lld bytes", (long long)len);
    int rc = ct_comm_bcast(c, *text, (size_t)len, e);
    if (rc != 0 && c->rank != 0) {
        free(*text);
        *text = NULL;
    }
    return rc;
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
    return st == MPI_SUCCESS ? 0 : ct_comm_mpi_err(st, "MPI_Allgather", e);
}
