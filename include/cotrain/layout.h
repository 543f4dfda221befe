/* layout.h — GPT-2's parameters as a tensor table (names, shapes, offsets into one buffer) and
 * their initial values, from the model's sizes alone.
 *
 * Why here and not in the model: in volunteer mode the coordinator holds the global model — it
 * starts it, checks that a delta has its shape, applies the outer step and writes its
 * checkpoints — and it never links the model's compute (a lower library never uses a higher
 * one). The model (trainer/model.c) lays its buffer out by this same table, so a worker's
 * parameters, a delta and a checkpoint agree value for value.
 *
 * The buffer holds the tensors in Hugging Face's order: wte (vocabulary padded to a multiple of
 * 64 rows; the padding is never stored and always zero), wpe, blocks 0..L-1 (12 tensors each),
 * ln_f. */
#ifndef COTRAIN_LAYOUT_H
#define COTRAIN_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/tensor.h"

typedef struct ct_layout {
    int n_layer, d_model, seq_len, vocab_size, vocab_padded;
    int n_tensors;
    ct_tensor_info_t *tensors; /* (n_tensors), owned */
    size_t n_params;           /* floats in the buffer, padding rows included */
    size_t n_real_params;      /* without the padding rows */
} ct_layout_t;

/* The table of a model of these sizes into *out (ct_layout_free frees it). Errors: CT_EINVAL (a
 * size below 1), CT_ENOMEM. */
int ct_layout_build(ct_layout_t *out, int n_layer, int d_model, int seq_len, int vocab_size,
                    ct_err_t *e);

/* Frees the table and zeroes *l; NULL-safe. */
void ct_layout_free(ct_layout_t *l);

/* GPT-2 initialisation into params[0..n_params): weights N(0, 0.02), residual projections
 * N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1, padding rows 0. Depends only on `seed`. */
void ct_layout_init_weights(const ct_layout_t *l, float *params, uint64_t seed);

#endif
