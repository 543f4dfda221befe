/* reducer.h — the gradient all-reduce: one float buffer summed over the group's ranks in
 * contiguous buckets, each bucket's sum able to start while the backward pass is still producing
 * the rest of the buffer. Buckets say when a sum may start, pieces how much moves at a time.
 *
 * The backward pass finishes gradients from the end of the buffer towards its start (the final
 * LayerNorm first, the embeddings last), so "buf[from, n) is final" describes its progress, and
 * buckets are cut from the end: bucket 0 is the last bucket_floats of the buffer, bucket 1 the
 * ones before it, and so on. Every element is summed over the ranks in rank order whatever the
 * bucket size, the timing or whether the sums overlap the backward pass, so all of these give
 * the same bits, on every rank and in every run.
 *
 * Use per step: ct_reducer_begin, then ct_reducer_ready as the backward pass goes (optional: it
 * is what overlaps), then ct_reducer_finish. */
#ifndef COTRAIN_REDUCER_H
#define COTRAIN_REDUCER_H

#include <stddef.h>

#include "cotrain/comm.h"
#include "cotrain/err.h"

typedef struct ct_reducer ct_reducer_t;

/* A reducer for buf[0, n) over comm's ranks, in buckets of about bucket_floats, each summed in
 * pieces of about chunk_floats (both rounded to multiples of the rank count; a bucket is a whole
 * number of pieces). Allocates and faults in its scratch space (a few pieces' worth with several
 * ranks, none for one) so no step pays for it. Errors: CT_EINVAL (a piece too large for MPI's
 * int counts), CT_ENOMEM, CT_ECOMM. *out is owned by the caller. */
int ct_reducer_create(ct_reducer_t **out, ct_comm_t *comm, float *buf, size_t n,
                      size_t bucket_floats, size_t chunk_floats, ct_err_t *e);

/* Frees the reducer and sets *self_p to NULL; NULL-safe. Must not be called with sums in
 * flight (after a failed step the process ends). */
void ct_reducer_destroy(ct_reducer_t **self_p);

/* Number of buckets. */
int ct_reducer_buckets(const ct_reducer_t *self);

/* Starts a new sum of the buffer; no bucket is in flight. */
void ct_reducer_begin(ct_reducer_t *self);

/* buf[from, n) holds its final values for this step: starts the sum of every bucket lying
 * wholly inside it and moves the sums in flight along (MPI makes progress only inside its
 * calls). Cheap when there is nothing to do. A failure is kept and returned by
 * ct_reducer_finish, so this can be called from a backward-pass hook. */
void ct_reducer_ready(ct_reducer_t *self, size_t from);

/* The whole buffer is final: starts the buckets not started yet and waits for all of them.
 * Then buf holds the sum over the ranks, the same bits on every rank. *busy_s (may be NULL)
 * gets the seconds spent inside the reducer this step, ct_reducer_ready's calls included.
 * Errors: CT_ECOMM (MPI's message), also for a failure seen by ct_reducer_ready. */
int ct_reducer_finish(ct_reducer_t *self, double *busy_s, ct_err_t *e);

#endif
