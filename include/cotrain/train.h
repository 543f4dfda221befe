/* train.h — one rank's training step: gradient accumulation over micro-batches, global-norm
 * clipping, the spike guard, the learning-rate schedule and the AdamW update.
 *
 * A step consumes the next global batch from the data loader (this rank's slice of it: see
 * data.h); each micro-batch's loss is weighted 1/(global_batch*seq_len) so the gradient is that of the
 * mean loss over the whole global batch, whatever micro_batch is. */
#ifndef COTRAIN_TRAIN_H
#define COTRAIN_TRAIN_H

#include <stdint.h>

#include "cotrain/comm.h"
#include "cotrain/config.h"
#include "cotrain/data.h"
#include "cotrain/err.h"
#include "cotrain/model.h"
#include "cotrain/optim.h"
#include "cotrain/reducer.h"
#include "cotrain/spike.h"

typedef struct ct_trainer ct_trainer_t;

typedef struct ct_step_stats {
    int64_t step;     /* the step just taken, 0-based */
    double loss;      /* mean loss over the global batch, before the update */
    double lr;        /* learning rate applied (also reported when skipped) */
    double grad_norm; /* global gradient norm before clipping */
    int skipped;      /* 1 if the spike guard skipped the update */
    double comm_s;    /* seconds spent summing over the ranks, waits included (0 for one rank) */
} ct_step_stats_t;

/* Checks what the trainer needs of cfg beyond the config's own validation, so that a caller can
 * refuse a run before writing anything: model.vocab_size set and at least data_vocab (the data
 * tokenizer's vocabulary; 0 when unknown), and train.global_batch a multiple of world ranks x
 * train.micro_batch. Returns 0 or CT_ECONFIG naming the keys and the value to choose. */
int ct_trainer_check(const ct_config_t *cfg, int data_vocab, int world, ct_err_t *e);

/* Builds the model (weights initialised from train.seed), optimizer and buffers for `cfg`.
 * `data` is borrowed (may be NULL when every step is given its tokens with
 * ct_trainer_step_tokens) and must outlive the trainer; so is `comm` (NULL: one process). With
 * N ranks each step runs global_batch/N sequences here and sums the gradients over the ranks.
 * cfg must pass ct_trainer_check. Errors: CT_ECONFIG from ct_trainer_check, CT_EINVAL with the
 * key named, CT_ENOMEM. */
int ct_trainer_create(ct_trainer_t **out, const ct_config_t *cfg, ct_data_t *data,
                      ct_comm_t *comm, ct_err_t *e);

/* Frees everything and sets *self_p to NULL; NULL-safe. */
void ct_trainer_destroy(ct_trainer_t **self_p);

/* Takes the next optimizer step on the next global batch of the data source. Returns 0, or
 * CT_ENUMERIC when the loss or gradient is not finite and the spike guard is off (the update is
 * not applied; the message says what to do). */
int ct_trainer_step(ct_trainer_t *t, ct_step_stats_t *st, ct_err_t *e);

/* Same, on given token rows (this rank's global_batch/N, seq_len+1) instead of the data
 * source. The loss reported is the mean over the whole global batch (all ranks). */
int ct_trainer_step_tokens(ct_trainer_t *t, const int *rows, ct_step_stats_t *st, ct_err_t *e);

ct_model_t *ct_trainer_model(ct_trainer_t *t);

/* What a checkpoint saves and restores: the steps taken (the next step's index), the optimizer,
 * and the spike guard (NULL when train.spike_guard is off). */
int64_t ct_trainer_steps(const ct_trainer_t *t);
void ct_trainer_set_steps(ct_trainer_t *t, int64_t steps);
ct_adamw_t *ct_trainer_optim(ct_trainer_t *t);
ct_spike_t *ct_trainer_spike(ct_trainer_t *t);

/* The gradient all-reduce (its bucket count, for the log). */
const ct_reducer_t *ct_trainer_reducer(const ct_trainer_t *t);

#endif
