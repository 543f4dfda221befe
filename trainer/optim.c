/* optim.c — AdamW (decoupled weight decay, bias-corrected moments) and gradient norms. */
#include "cotrain/optim.h"

#include <math.h>
#include <stdlib.h>

#include "cotrain/mem.h"

enum { NORM_CHUNK = 1 << 16 };

struct ct_adamw {
    size_t n;
    float *m, *v; /* (n) each */
    int64_t t;
};

int ct_adamw_create(ct_adamw_t **out, size_t n, ct_err_t *e) {
    int rc = 0;
    ct_adamw_t *o = NULL;
    *out = NULL;
    CT_ALLOC(e, o, 1, fail);
    o->n = n;
    o->m = ct_mem_alloc(n * sizeof(float), e);
    o->v = ct_mem_alloc(n * sizeof(float), e);
    if (!o->m || !o->v) {
        rc = CT_ENOMEM;
        goto fail;
    }
    *out = o;
    return 0;
fail:
    ct_adamw_destroy(&o);
    return rc;
}

void ct_adamw_destroy(ct_adamw_t **self_p) {
    ct_adamw_t *o = *self_p;
    if (!o) return;
    ct_mem_free(o->m, o->n * sizeof(float));
    ct_mem_free(o->v, o->n * sizeof(float));
    free(o);
    *self_p = NULL;
}

void ct_adamw_update(ct_adamw_t *opt, float *params, const float *grads,
                     const ct_tensor_info_t *tensors, int n_tensors, const ct_adamw_hparams_t *hp,
                     float grad_scale) {
    opt->t++;
    float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    float step_size = hp->lr / (1.0f - powf(b1, (float)opt->t));
    float bc2_sqrt = sqrtf(1.0f - powf(b2, (float)opt->t));
    for (int i = 0; i < n_tensors; i++) {
        const ct_tensor_info_t *t = &tensors[i];
        int decays = t->is_matrix || hp->decay_bias_and_norm;
        float keep = decays ? 1.0f - hp->lr * hp->weight_decay : 1.0f;
        float *p = params + t->offset, *m = opt->m + t->offset, *v = opt->v + t->offset;
        const float *g = grads + t->offset;
#pragma omp parallel for simd schedule(static)
        for (size_t k = 0; k < t->numel; k++) {
            float gk = g[k] * grad_scale;
            m[k] = b1 * m[k] + (1.0f - b1) * gk;
            v[k] = b2 * v[k] + (1.0f - b2) * gk * gk;
            float denom = sqrtf(v[k]) / bc2_sqrt + eps;
            p[k] = p[k] * keep - step_size * m[k] / denom;
        }
    }
}

double ct_grad_norm(const float *g, size_t n) {
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double total = 0.0;
    /* ordered reduction: chunk sums in a fixed order regardless of the thread that made them */
#pragma omp parallel for schedule(static) ordered
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t k = lo; k < hi; k++) s += g[k] * g[k];
#pragma omp ordered
        total += s;
    }
    return sqrt(total);
}

float ct_clip_scale(double norm, double clip) {
    if (clip <= 0.0) return 1.0f;
    double s = clip / (norm + 1e-6);
    return s < 1.0 ? (float)s : 1.0f;
}

float *ct_adamw_m(ct_adamw_t *opt) {
    return opt->m;
}

float *ct_adamw_v(ct_adamw_t *opt) {
    return opt->v;
}

int64_t ct_adamw_steps(const ct_adamw_t *opt) {
    return opt->t;
}

void ct_adamw_set_steps(ct_adamw_t *opt, int64_t t) {
    opt->t = t;
}
