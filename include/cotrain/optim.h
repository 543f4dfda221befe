/* optim.h — AdamW with decoupled weight decay, and the deterministic global gradient norm used
 * for clipping. The moments m and v share the parameter buffer's layout (one buffer each), so
 * checkpoints and sharding see them as one (pointer, length) like the parameters. */
#ifndef COTRAIN_OPTIM_H
#define COTRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/model.h"

typedef struct ct_adamw ct_adamw_t;

typedef struct ct_adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay;
    int decay_bias_and_norm; /* 0: decay only matrices and embeddings (tensor is_matrix) */
} ct_adamw_hparams_t;

/* Creates optimizer state for n parameters (moments zero, step 0). Returns 0 or CT_ENOMEM. */
int ct_adamw_create(ct_adamw_t **out, size_t n, ct_err_t *e);
/* Frees the state and sets *self_p to NULL; NULL-safe. */
void ct_adamw_destroy(ct_adamw_t **self_p);

/* One AdamW update, as torch.optim.AdamW computes it: p *= 1 - lr*wd (for decayed tensors),
 * m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps),
 * with g = grad_scale * grads (grad_scale carries gradient clipping). `tensors` (n_tensors)
 * partitions the buffers and says which tensors decay. Increments the step count. */
void ct_adamw_update(ct_adamw_t *opt, float *params, const float *grads,
                     const ct_tensor_info_t *tensors, int n_tensors, const ct_adamw_hparams_t *hp,
                     float grad_scale);

/* The state a checkpoint saves: the moments (n each, the parameters' layout) and the number of
 * updates taken (bias correction). set_steps is for restoring it. */
float *ct_adamw_m(ct_adamw_t *opt);
float *ct_adamw_v(ct_adamw_t *opt);
int64_t ct_adamw_steps(const ct_adamw_t *opt);
void ct_adamw_set_steps(ct_adamw_t *opt, int64_t t);

/* L2 norm of g (n), summed in fixed chunks in a fixed order: the same bits whatever the number
 * of threads. */
double ct_grad_norm(const float *g, size_t n);

/* The factor that clips a gradient of norm `norm` to `clip` (torch's clip_grad_norm_ rule:
 * min(1, clip / (norm + 1e-6))); 1 when clip <= 0. */
float ct_clip_scale(double norm, double clip);

#endif
