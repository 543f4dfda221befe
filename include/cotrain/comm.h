/* comm.h — communication inside a group: the ranks of one MPI job (backend `mpi`), or a single
 * process with no MPI at all (backend `local`). The NCCL backend of the GPU path fits the same
 * calls.
 *
 * Every collective here is deterministic: for the same inputs and the same number of ranks it
 * gives the same bits every time, so N-rank runs are reproducible. Sums across ranks are done
 * in rank order on every rank, never in an order that depends on timing; the gradient sum is
 * reducer.h's. */
#ifndef COTRAIN_COMM_H
#define COTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

typedef struct ct_comm ct_comm_t;

/* Joins the group. Under mpirun/srun (Open MPI or PMI environment variables present) this is
 * MPI_Init and the backend is `mpi`; otherwise `local`, without touching MPI. Errors: CT_ECOMM
 * (MPI failed to start, with its message). *out is owned by the caller. */
int ct_comm_create(ct_comm_t **out, int *argc, char ***argv, ct_err_t *e);

/* Leaves the group (MPI_Finalize) and sets *self_p to NULL; NULL-safe. */
void ct_comm_destroy(ct_comm_t **self_p);

/* After a fatal error on one rank, ends every rank of the group with exit status `code`
 * (MPI_Abort), so none is left waiting in a collective; it does not return then. With no other
 * rank (the local backend, or one rank; NULL-safe) it does nothing and returns: the caller
 * reports and exits itself (only main() exits). */
void ct_comm_abort(ct_comm_t *self, int code);

/* Ranks of this group on this node, as MPI sees them (MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED, whatever launched the job); 1 for the local backend. */
int ct_comm_local_size(const ct_comm_t *self);

int ct_comm_rank(const ct_comm_t *self);
int ct_comm_size(const ct_comm_t *self);
const char *ct_comm_backend(const ct_comm_t *self); /* "mpi" or "local" */

/* buf[0..n) := the sum over ranks of everyone's buf, added in rank order: the same bits on every
 * rank and in every run. For a few values (losses, counters); gradients go through reducer.h.
 * Errors: CT_ECOMM. */
int ct_comm_sum_doubles(ct_comm_t *self, double *buf, int n, ct_err_t *e);

/* The largest of everyone's v (agreeing on a signal, a stop). */
int ct_comm_max_int(ct_comm_t *self, int *v, ct_err_t *e);

/* Every rank's buf[0..n) becomes rank 0's (n the same on every rank). Errors: CT_ECOMM. */
int ct_comm_bcast(ct_comm_t *self, void *buf, size_t n, ct_err_t *e);

/* Every rank's *text becomes a malloc'd copy of rank 0's string (NULL when rank 0's is NULL);
 * other ranks' *text must be NULL on entry, rank 0's stays its own. Errors: CT_ECOMM, CT_ENOMEM
 * (*text then NULL on the ranks that were to receive it). */
int ct_comm_bcast_text(ct_comm_t *self, char **text, ct_err_t *e);

/* *same = 1 when every rank passed the same v; also returns in *first_bad the lowest rank whose
 * v differs from rank 0's (or -1). For replica drift checks. */
int ct_comm_same_u64(ct_comm_t *self, uint64_t v, int *same, int *first_bad, ct_err_t *e);

#endif
