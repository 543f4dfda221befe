/* evaluate.c — loss over consecutive windows, shared by the ranks (see evaluate.h). */
#include "cotrain/evaluate.h"

#include <stdlib.h>

int ct_evaluate(ct_model_t *m, ct_comm_t *comm, ct_windows_t *w, int64_t n_windows, int batch,
                double *loss, ct_eval_progress_fn progress, void *ctx, ct_err_t *e) {
    int rank = comm ? ct_comm_rank(comm) : 0, ranks = comm ? ct_comm_size(comm) : 1;
    int T = ct_model_dims(m)->seq_len, W = T + 1, rc = 0;
    if (n_windows < 1 || n_windows > ct_windows_count(w) || batch < 1)
        return CT_ERR(e, CT_EINVAL,
                      "evaluation of %lld windows in batches of %d: the data has "
                      "%lld windows",
                      (long long)n_windows, batch, (long long)ct_windows_count(w));
    int64_t lo = n_windows * rank / ranks, hi = n_windows * (rank + 1) / ranks;
    int B = hi - lo < batch ? (int)(hi - lo) : batch;
    int *rows = NULL, *inputs = NULL, *targets = NULL;
    double sum[2] = {0.0, 0.0}; /* per-position losses, positions */
    CT_ALLOC(e, rows, (size_t)(B ? B : 1) * W, out);
    CT_ALLOC(e, inputs, (size_t)(B ? B : 1) * T, out);
    CT_ALLOC(e, targets, (size_t)(B ? B : 1) * T, out);
    for (int64_t at = lo; at < hi; at += B) {
        int nb = hi - at < B ? (int)(hi - at) : B;
        CT_TRY_GOTO(ct_windows_read(w, at, nb, rows, e), out);
        for (int b = 0; b < nb; b++)
            for (int t = 0; t < T; t++) {
                inputs[b * T + t] = rows[b * W + t];
                targets[b * T + t] = rows[b * W + t + 1];
            }
        float mean = ct_model_forward(m, inputs, targets, nb);
        sum[0] += (double)mean * nb * T;
        sum[1] += (double)nb * T;
        if (progress) progress(ctx, at + nb - lo, hi - lo, sum[0], (int64_t)sum[1]);
    }
    if (comm) CT_TRY_GOTO(ct_comm_sum_doubles(comm, sum, 2, e), out);
    *loss = sum[0] / sum[1];
out:
    free(rows);
    free(inputs);
    free(targets);
    return rc;
}
