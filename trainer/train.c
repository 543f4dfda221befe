/* train.c — one optimizer step: accumulate gradients over micro-batches, clip, guard, update. */
#include "cotrain/train.h"

#include <math.h>
#include <stdlib.h>

#include "cotrain/clock.h"
#include "cotrain/optim.h"
#include "cotrain/reducer.h"
#include "cotrain/schedule.h"
#include "cotrain/spike.h"

struct ct_trainer {
    ct_config_t cfg;
    ct_data_t *data; /* borrowed */
    ct_comm_t *comm; /* borrowed; NULL = one process */
    ct_reducer_t *reducer; /* sums the gradients over the ranks (a no-op for one) */
    int world, local; /* ranks, and sequences per step on this rank */
    ct_model_t *model;
    ct_adamw_t *opt;
    ct_spike_t *spike; /* NULL when train.spike_guard is off */
    int64_t step;      /* next step */
    int *rows;         /* (global_batch, T+1) token rows of the current step */
    int *inputs, *targets; /* (micro_batch, T) each */
};

int ct_trainer_check(const ct_config_t *cfg, int data_vocab, int world, ct_err_t *e) {
    if (cfg->model.vocab_size <= 0)
        return CT_ERR(e, CT_ECONFIG, "model.vocab_size is not set (it defaults to the data "
                                     "tokenizer's vocabulary; give --data or set it)");
    if (data_vocab > cfg->model.vocab_size)
        return CT_ERR(e, CT_ECONFIG,
                      "model.vocab_size = %d is smaller than the data tokenizer's vocabulary "
                      "(%d): set it to at least %d",
                      cfg->model.vocab_size, data_vocab, data_vocab);
    if (cfg->train.global_batch % (world * cfg->train.micro_batch) != 0)
        return CT_ERR(e, CT_ECONFIG,
                      "train.global_batch = %d does not split into %d rank(s) x whole "
                      "micro-batches of train.micro_batch = %d: make global_batch a multiple of "
                      "%d",
                      cfg->train.global_batch, world, cfg->train.micro_batch,
                      world * cfg->train.micro_batch);
    return 0;
}

int ct_trainer_create(ct_trainer_t **out, const ct_config_t *cfg, ct_data_t *data,
                      ct_comm_t *comm, ct_err_t *e) {
    int rc = 0;
    ct_trainer_t *t = NULL;
    *out = NULL;
    int world = comm ? ct_comm_size(comm) : 1;
    CT_TRY(ct_trainer_check(cfg, data ? ct_data_manifest(data)->vocab_size : 0, world, e));
    CT_ALLOC(e, t, 1, fail);
    t->cfg = *cfg;
    t->data = data;
    t->comm = comm;
    t->world = world;
    t->local = cfg->train.global_batch / world;
    ct_model_dims_t dims = {.n_layer = cfg->model.n_layer,
                            .n_head = cfg->model.n_head,
                            .d_model = cfg->model.d_model,
                            .seq_len = cfg->model.seq_len,
                            .vocab_size = cfg->model.vocab_size};
    CT_TRY_GOTO(ct_model_create(&t->model, &dims, cfg->train.micro_batch, e), fail);
    ct_model_init_weights(t->model, cfg->train.seed);
    CT_TRY_GOTO(ct_adamw_create(&t->opt, ct_model_num_params(t->model), e), fail);
    size_t bucket_floats = (size_t)(cfg->comm.bucket_mb * 1e6 / sizeof(float)),
           chunk_floats = (size_t)(cfg->comm.chunk_mb * 1e6 / sizeof(float));
    CT_TRY_GOTO(ct_reducer_create(&t->reducer, comm, ct_model_grads(t->model),
                                  ct_model_num_params(t->model), bucket_floats, chunk_floats, e),
                fail);
    if (cfg->train.spike_guard)
        CT_TRY_GOTO(ct_spike_create(&t->spike, cfg->train.spike_window, cfg->train.spike_zscore, e),
                    fail);
    size_t T = (size_t)cfg->model.seq_len;
    CT_ALLOC(e, t->rows, (size_t)t->local * (T + 1), fail);
    CT_ALLOC(e, t->inputs, (size_t)cfg->train.micro_batch * T, fail);
    CT_ALLOC(e, t->targets, (size_t)cfg->train.micro_batch * T, fail);
    *out = t;
    return 0;
fail:
    ct_trainer_destroy(&t);
    return rc;
}

void ct_trainer_destroy(ct_trainer_t **self_p) {
    ct_trainer_t *t = *self_p;
    if (!t) return;
    ct_model_destroy(&t->model);
    ct_adamw_destroy(&t->opt);
    ct_reducer_destroy(&t->reducer);
    ct_spike_destroy(&t->spike);
    free(t->rows);
    free(t->inputs);
    free(t->targets);
    free(t);
    *self_p = NULL;
}

/* Splits rows (B, T+1) into inputs (B, T) = rows[:, :T] and targets (B, T) = rows[:, 1:]. */
static void split_rows(const int *rows, int B, int T, int *inputs, int *targets) {
    for (int b = 0; b < B; b++)
        for (int k = 0; k < T; k++) {
            inputs[b * T + k] = rows[b * (T + 1) + k];
            targets[b * T + k] = rows[b * (T + 1) + k + 1];
        }
}

int ct_trainer_step(ct_trainer_t *t, ct_step_stats_t *st, ct_err_t *e) {
    CT_TRY(ct_data_next(t->data, t->rows, e));
    return ct_trainer_step_tokens(t, t->rows, st, e);
}

/* The backward-pass hook of the last micro-batch: start the sums of finished buckets. */
static void grads_ready(void *reducer, size_t from) {
    ct_reducer_ready(reducer, from);
}

int ct_trainer_step_tokens(ct_trainer_t *t, const int *rows, ct_step_stats_t *st, ct_err_t *e) {
    const ct_config_t *c = &t->cfg;
    int T = c->model.seq_len, mb = c->train.micro_batch, n_micro = t->local / mb;
    float dloss = 1.0f / ((float)c->train.global_batch * (float)T);
    ct_model_zero_grads(t->model);
    ct_reducer_begin(t->reducer);
    double loss = 0.0;
    for (int k = 0; k < n_micro; k++) {
        split_rows(rows + (size_t)k * mb * (T + 1), mb, T, t->inputs, t->targets);
        loss += ct_model_forward(t->model, t->inputs, t->targets, mb);
        /* only the last micro-batch's backward pass finishes gradients */
        if (k == n_micro - 1 && c->comm.overlap)
            ct_model_set_grads_ready(t->model, grads_ready, t->reducer);
        ct_model_backward(t->model, t->inputs, t->targets, mb, dloss);
        ct_model_set_grads_ready(t->model, NULL, NULL);
    }
    /* Each rank's gradients are already scaled by 1/(global_batch*T): their sum over the ranks
       is the gradient of the mean loss over the whole global batch. */
    CT_TRY(ct_reducer_finish(t->reducer, &st->comm_s, e));
    if (t->comm && ct_comm_size(t->comm) > 1) {
        double t0 = ct_now_s();
        CT_TRY(ct_comm_sum_doubles(t->comm, &loss, 1, e));
        st->comm_s += ct_now_s() - t0;
    }
    st->step = t->step;
    st->loss = loss / ((double)n_micro * t->world);
    st->grad_norm = ct_grad_norm(ct_model_grads(t->model), ct_model_num_params(t->model));
    st->lr = ct_lr_at(c, t->step);
    st->skipped = t->spike ? ct_spike_check(t->spike, st->loss, st->grad_norm) : 0;
    if (!t->spike && (!isfinite(st->loss) || !isfinite(st->grad_norm)))
        return CT_ERR(e, CT_ENUMERIC,
                      "step %lld: loss %g, gradient norm %g: training diverged; lower train.lr, "
                      "raise train.warmup_steps or set train.spike_guard=true",
                      (long long)t->step, st->loss, st->grad_norm);
    if (!st->skipped) {
        ct_adamw_hparams_t hp = {.lr = (float)st->lr,
                                 .beta1 = (float)c->train.beta1,
                                 .beta2 = (float)c->train.beta2,
                                 .eps = (float)c->train.eps,
                                 .weight_decay = (float)c->train.weight_decay,
                                 .decay_bias_and_norm = c->train.decay_bias_and_norm};
        ct_adamw_update(t->opt, ct_model_params(t->model), ct_model_grads(t->model),
                        ct_model_tensor(t->model, 0), ct_model_num_tensors(t->model), &hp,
                        ct_clip_scale(st->grad_norm, c->train.grad_clip));
    }
    t->step++;
    return 0;
}

ct_model_t *ct_trainer_model(ct_trainer_t *t) {
    return t->model;
}

int64_t ct_trainer_steps(const ct_trainer_t *t) {
    return t->step;
}

void ct_trainer_set_steps(ct_trainer_t *t, int64_t steps) {
    t->step = steps;
}

ct_adamw_t *ct_trainer_optim(ct_trainer_t *t) {
    return t->opt;
}

ct_spike_t *ct_trainer_spike(ct_trainer_t *t) {
    return t->spike;
}

const ct_reducer_t *ct_trainer_reducer(const ct_trainer_t *t) {
    return t->reducer;
}
