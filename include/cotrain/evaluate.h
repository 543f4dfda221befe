/* evaluate.h — the mean next-token cross-entropy of a model over consecutive windows of a
 * dataset (windows.h): what `cotrain eval` prints and what the worker logs as `eval_loss` every
 * log.eval_every steps.
 *
 * With a group of N ranks, rank r evaluates windows [r*n/N, (r+1)*n/N) and the per-position
 * loss sums are added over the ranks in rank order, so the result does not depend on timing; it
 * depends on N and the batch only by float rounding. */
#ifndef COTRAIN_EVALUATE_H
#define COTRAIN_EVALUATE_H

#include <stdint.h>

#include "cotrain/comm.h"
#include "cotrain/err.h"
#include "cotrain/model.h"
#include "cotrain/windows.h"

/* Called after each batch with the windows done so far (this rank's) and its share. */
typedef void (*ct_eval_progress_fn)(void *ctx, int64_t done, int64_t total, double loss_sum,
                                    int64_t positions);

/* Evaluates the first n_windows windows of w (all ranks of comm call it together; comm NULL:
 * one process) in batches of up to `batch` sequences (at most the model's max batch), into
 * *loss. progress may be NULL. The model's activations are overwritten (not its weights or
 * gradients). Errors: CT_EINVAL (n_windows beyond the data, or < 1; batch < 1), those of
 * ct_windows_read, CT_ECOMM, CT_ENOMEM. */
int ct_evaluate(ct_model_t *m, ct_comm_t *comm, ct_windows_t *w, int64_t n_windows, int batch,
                double *loss, ct_eval_progress_fn progress, void *ctx, ct_err_t *e);

#endif
