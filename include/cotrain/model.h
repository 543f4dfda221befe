/* model.h — the GPT-2 model on the CPU: parameters, planned activations, forward and backward.
 *
 * GPT-2 architecture: learned position embeddings, pre-LayerNorm blocks, GELU (tanh form), causal
 * multi-head attention, logits tied to the token embedding, vocabulary padded to a multiple of 64.
 * All parameters live in one buffer, laid out tensor after tensor in the order of the tensor
 * table (embeddings, then block 0..L-1, then the final LayerNorm), each tensor named and shaped
 * as Hugging Face's GPT2LMHeadModel names and shapes it (Conv1D weights are (in, out)). The
 * gradients use the same layout in a second buffer, so all-reduce and checkpoint I/O each touch
 * one (pointer, length). Every buffer, activations included, is allocated and faulted in by
 * ct_model_create; forward and backward never allocate. */
#ifndef COTRAIN_MODEL_H
#define COTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/tensor.h"

typedef struct ct_model_dims {
    int n_layer;      /* L */
    int n_head;       /* NH */
    int d_model;      /* C */
    int seq_len;      /* T, also the number of position embeddings */
    int vocab_size;   /* V, real vocabulary */
    int vocab_padded; /* Vp, V rounded up to a multiple of 64 (set by ct_model_create) */
} ct_model_dims_t;

typedef struct ct_model ct_model_t;

/* Creates a model for `dims` able to run micro-batches of up to `max_batch` sequences of
 * dims->seq_len tokens. Weights are zero until ct_model_init_weights or a load. Returns 0, or
 * CT_EINVAL (bad dims, named in e) / CT_ENOMEM. *out is owned by the caller. */
int ct_model_create(ct_model_t **out, const ct_model_dims_t *dims, int max_batch, ct_err_t *e);

/* Frees the model and sets *self_p to NULL; NULL-safe. */
void ct_model_destroy(ct_model_t **self_p);

/* GPT-2 initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0,
 * LayerNorm weight 1, padded vocabulary rows 0. Depends only on `seed`. */
void ct_model_init_weights(ct_model_t *m, uint64_t seed);

/* Runs the forward pass on inputs (B,T) token ids (< V). With targets (B,T), also computes the
 * per-position cross-entropy and returns the mean loss over B*T positions; without, returns 0.
 * Leaves the logits (B,T,Vp) readable through ct_model_logits until the next backward. */
float ct_model_forward(ct_model_t *m, const int *inputs, const int *targets, int B);

/* Backward pass of the preceding forward (which must have had targets), ACCUMULATING into the
 * gradient buffer. dloss is the weight of each position's loss in the total being
 * differentiated: 1/(B*T) for this micro-batch's mean, 1/(global_batch*T) under accumulation. */
void ct_model_backward(ct_model_t *m, const int *inputs, const int *targets, int B, float dloss);

/* A backward-pass hook: grads[from, n_params) hold their final values for this backward pass.
 * The pass finishes gradients from the end of the buffer towards its start (final LayerNorm,
 * blocks L-1 .. 0, each block's tensors last to first, embeddings), so `from` only decreases and
 * reaches 0 at the end. This is what lets the gradient all-reduce start early. */
typedef void (*ct_grads_ready_fn)(void *ctx, size_t from);

/* Makes ct_model_backward call fn(ctx, from) after each tensor's gradient is final; fn NULL
 * stops it. */
void ct_model_set_grads_ready(ct_model_t *m, ct_grads_ready_fn fn, void *ctx);

/* Sets every gradient to zero. */
void ct_model_zero_grads(ct_model_t *m);

const ct_model_dims_t *ct_model_dims(const ct_model_t *m);
float *ct_model_params(ct_model_t *m);            /* (n_params) */
float *ct_model_grads(ct_model_t *m);             /* (n_params) */
size_t ct_model_num_params(const ct_model_t *m);  /* padded rows included */
size_t ct_model_num_real_params(const ct_model_t *m); /* without the padded vocabulary rows */
const float *ct_model_logits(const ct_model_t *m);    /* (B,T,Vp) of the last forward */
int ct_model_num_tensors(const ct_model_t *m);
/* The tensor table (tensor.h), in buffer order: wte is (Vp, C) with stored_rows V. */
const ct_tensor_info_t *ct_model_tensor(const ct_model_t *m, int i);
/* Bytes of parameters, gradients and activations planned by ct_model_create. */
size_t ct_model_planned_bytes(const ct_model_t *m);

/* Training FLOPs per token: 6 N (N = real parameters) + 12 L T C (attention scores). */
double ct_model_flops_per_token(const ct_model_t *m);

#endif
