/* model.c — GPT-2 on the CPU: the memory plan, forward and backward over the buffer laid out
 * by the tensor table of layout.h (which also initialises it).
 * Reads top to bottom: block pointers, the memory plan, create/destroy, forward, backward,
 * accessors.
 * The kernels themselves live in kernels.c. */
#include "cotrain/model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/kernels.h"
#include "cotrain/layout.h"
#include "cotrain/mem.h"

enum { TENSORS_PER_LAYER = 12, LAYER_BASE = 2 };
/* A block's tensors, in the order of the tensor table (Hugging Face's order) */
enum { LN1_W, LN1_B, QKV_W, QKV_B, ATTPROJ_W, ATTPROJ_B, LN2_W, LN2_B, FC_W, FC_B, FCPROJ_W };

/* Pointers to one block's parameters (or gradients: same layout, another base). */
typedef struct layer_params {
    float *ln1w, *ln1b;         /* (C), (C) */
    float *qkvw, *qkvb;         /* (C, 3C), (3C) */
    float *attprojw, *attprojb; /* (C, C), (C) */
    float *ln2w, *ln2b;         /* (C), (C) */
    float *fcw, *fcb;           /* (C, 4C), (4C) */
    float *fcprojw, *fcprojb;   /* (4C, C), (C) */
} layer_params_t;

/* One block's saved activations, for a micro-batch of B sequences (N = B*T rows). */
typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *qkv;                       /* (N, 3C) */
    float *att;                       /* (B, NH, T, T) softmax probabilities */
    float *atty;                      /* (N, C) attention output before projection */
    float *res2;                      /* (N, C) residual stream after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fch, *fch_gelu;            /* (N, 4C) each */
    float *res3;                      /* (N, C) block output */
} layer_acts_t;

struct ct_model {
    ct_model_dims_t d;
    int max_batch;
    ct_layout_t lay;       /* the tensor table (layout.h) */
    float *params, *grads; /* (lay.n_params) each */
    /* activations */
    layer_acts_t *acts;            /* (L) */
    float *encoded;                /* (N, C) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (N, C), (N), (N) */
    float *logits;                 /* (N, Vp); dlogits after backward */
    float *lse, *losses;           /* (N), (N) */
    /* backward scratch, reused by every block */
    float *dres;        /* (N, C) gradient of the residual stream */
    float *dbuf;        /* (N, C) gradient of a LayerNorm output or attention output */
    float *dqkv;        /* (N, 3C) */
    float *dfch;        /* (N, 4C) */
    float *att_scratch; /* ct_attention_scratch_floats(T, threads) */
    float *red_scratch; /* ct_reduce_scratch_floats(N, 4C) */
    size_t param_bytes, act_bytes;
    float *act_mem;
    ct_grads_ready_fn grads_ready; /* NULL: no hook */
    void *grads_ready_ctx;
};

static void layer_ptrs(const ct_model_t *m, float *base, int l, layer_params_t *p) {
    float **fields[TENSORS_PER_LAYER] = {&p->ln1w, &p->ln1b, &p->qkvw,  &p->qkvb,
                                         &p->attprojw, &p->attprojb, &p->ln2w, &p->ln2b,
                                         &p->fcw,  &p->fcb,  &p->fcprojw, &p->fcprojb};
    for (int j = 0; j < TENSORS_PER_LAYER; j++)
        *fields[j] = base + m->lay.tensors[LAYER_BASE + l * TENSORS_PER_LAYER + j].offset;
}

static float *tensor_ptr(const ct_model_t *m, float *base, int i) {
    return base + m->lay.tensors[i].offset;
}

/* Carves the activation buffers out of one allocation; with mem == NULL only counts floats. */
static size_t plan_activations(ct_model_t *m, float *mem) {
    size_t N = (size_t)m->max_batch * m->d.seq_len, C = m->d.d_model, T = m->d.seq_len;
    size_t att = (size_t)m->max_batch * m->d.n_head * T * T;
    size_t used = 0;
#define CARVE(ptr, count)                                                      \
    do {                                                                       \
        if (mem) (ptr) = mem + used;                                           \
        used += ((size_t)(count) + 15) / 16 * 16; /* keep 64-byte alignment */ \
    } while (0)
    for (int l = 0; l < m->d.n_layer; l++) {
        layer_acts_t *a = &m->acts[l];
        CARVE(a->ln1, N * C);
        CARVE(a->ln1_mean, N);
        CARVE(a->ln1_rstd, N);
        CARVE(a->qkv, N * 3 * C);
        CARVE(a->att, att);
        CARVE(a->atty, N * C);
        CARVE(a->res2, N * C);
        CARVE(a->ln2, N * C);
        CARVE(a->ln2_mean, N);
        CARVE(a->ln2_rstd, N);
        CARVE(a->fch, N * 4 * C);
        CARVE(a->fch_gelu, N * 4 * C);
        CARVE(a->res3, N * C);
    }
    CARVE(m->encoded, N * C);
    CARVE(m->lnf, N * C);
    CARVE(m->lnf_mean, N);
    CARVE(m->lnf_rstd, N);
    CARVE(m->logits, N * (size_t)m->d.vocab_padded);
    CARVE(m->lse, N);
    CARVE(m->losses, N);
    CARVE(m->dres, N * C);
    CARVE(m->dbuf, N * C);
    CARVE(m->dqkv, N * 3 * C);
    CARVE(m->dfch, N * 4 * C);
    CARVE(m->att_scratch, ct_attention_scratch_floats((int)T, omp_get_max_threads()));
    CARVE(m->red_scratch, ct_reduce_scratch_floats((int)N, 4 * (int)C));
#undef CARVE
    return used;
}

static int check_dims(const ct_model_dims_t *d, int max_batch, ct_err_t *e) {
    struct {
        const char *key;
        long value, lo, hi;
    } checks[] = {
        {"model.n_layer", d->n_layer, 1, 1024},   {"model.n_head", d->n_head, 1, 1024},
        {"model.d_model", d->d_model, 1, 65536},  {"model.seq_len", d->seq_len, 1, 1 << 20},
        {"model.vocab_size", d->vocab_size, 1, 1 << 24}, {"train.micro_batch", max_batch, 1, 1 << 20},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].value < checks[i].lo || checks[i].value > checks[i].hi)
            return CT_ERR(e, CT_EINVAL, "%s = %ld is out of range [%ld, %ld]", checks[i].key,
                          checks[i].value, checks[i].lo, checks[i].hi);
    if (d->d_model % d->n_head)
        return CT_ERR(e, CT_EINVAL, "model.d_model = %d is not a multiple of model.n_head = %d",
                      d->d_model, d->n_head);
    return 0;
}

int ct_model_create(ct_model_t **out, const ct_model_dims_t *dims, int max_batch, ct_err_t *e) {
    *out = NULL;
    CT_TRY(check_dims(dims, max_batch, e));
    int rc = 0;
    ct_model_t *m = NULL;
    CT_ALLOC(e, m, 1, fail);
    m->d = *dims;
    m->d.vocab_padded = (dims->vocab_size + 63) / 64 * 64;
    m->max_batch = max_batch;
    CT_ALLOC(e, m->acts, dims->n_layer, fail);
    rc = ct_layout_build(&m->lay, dims->n_layer, dims->d_model, dims->seq_len, dims->vocab_size, e);
    if (rc) goto fail;
    m->param_bytes = m->lay.n_params * sizeof(float);
    m->params = ct_mem_alloc(m->param_bytes, e);
    m->grads = ct_mem_alloc(m->param_bytes, e);
    m->act_bytes = plan_activations(m, NULL) * sizeof(float);
    m->act_mem = ct_mem_alloc(m->act_bytes, e);
    if (!m->params || !m->grads || !m->act_mem) {
        rc = CT_ENOMEM;
        goto fail;
    }
    plan_activations(m, m->act_mem);
    *out = m;
    return 0;
fail:
    ct_model_destroy(&m);
    return rc;
}

void ct_model_destroy(ct_model_t **self_p) {
    ct_model_t *m = *self_p;
    if (!m) return;
    ct_mem_free(m->params, m->param_bytes);
    ct_mem_free(m->grads, m->param_bytes);
    ct_mem_free(m->act_mem, m->act_bytes);
    free(m->acts);
    ct_layout_free(&m->lay);
    free(m);
    *self_p = NULL;
}

void ct_model_init_weights(ct_model_t *m, uint64_t seed) {
    ct_layout_init_weights(&m->lay, m->params, seed);
}

float ct_model_forward(ct_model_t *m, const int *inputs, const int *targets, int B) {
    int T = m->d.seq_len, C = m->d.d_model, NH = m->d.n_head, L = m->d.n_layer;
    int V = m->d.vocab_size, Vp = m->d.vocab_padded, N = B * T;
    float *wte = tensor_ptr(m, m->params, 0), *wpe = tensor_ptr(m, m->params, 1);
    encoder_forward(m->encoded, inputs, wte, wpe, N, T, C);
    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        layer_params_t p;
        layer_acts_t *a = &m->acts[l];
        layer_ptrs(m, m->params, l, &p);
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p.ln1w, p.ln1b, N, C);
        matmul_forward(a->qkv, a->ln1, p.qkvw, p.qkvb, NULL, N, C, 3 * C);
        attention_forward(a->atty, a->att, a->qkv, B, T, C, NH);
        matmul_forward(a->res2, a->atty, p.attprojw, p.attprojb, x, N, C, C);
        layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, p.ln2w, p.ln2b, N, C);
        matmul_forward(a->fch, a->ln2, p.fcw, p.fcb, NULL, N, C, 4 * C);
        gelu_forward(a->fch_gelu, a->fch, (size_t)N * 4 * C);
        matmul_forward(a->res3, a->fch_gelu, p.fcprojw, p.fcprojb, a->res2, N, 4 * C, C);
        x = a->res3;
    }
    int lnf = m->lay.n_tensors - 2;
    layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, x, tensor_ptr(m, m->params, lnf),
                      tensor_ptr(m, m->params, lnf + 1), N, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Vp, C, 1.0f, m->lnf, C, wte, C, 0.0f,
                m->logits, Vp);
    if (!targets) return 0.0f;
    crossentropy_forward(m->losses, m->lse, m->logits, targets, N, V, Vp);
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += m->losses[n];
    return (float)(sum / N);
}

/* Tells the hook that the gradients from tensor i to the end of the buffer are final. */
static void grads_final_from(const ct_model_t *m, int i) {
    if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, m->lay.tensors[i].offset);
}

void ct_model_backward(ct_model_t *m, const int *inputs, const int *targets, int B, float dloss) {
    int T = m->d.seq_len, C = m->d.d_model, NH = m->d.n_head, L = m->d.n_layer;
    int V = m->d.vocab_size, Vp = m->d.vocab_padded, N = B * T;
    float *wte = tensor_ptr(m, m->params, 0), *dwte = tensor_ptr(m, m->grads, 0);
    float *scratch = m->red_scratch;
    crossentropy_backward(m->logits, m->lse, targets, dloss, N, V, Vp); /* logits := dlogits */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, Vp, 1.0f, m->logits, Vp, wte, C,
                0.0f, m->dbuf, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Vp, C, N, 1.0f, m->logits, Vp, m->lnf, C,
                1.0f, dwte, C);
    memset(m->dres, 0, sizeof(float) * (size_t)N * C);
    int lnf = m->lay.n_tensors - 2;
    const float *xL = L ? m->acts[L - 1].res3 : m->encoded;
    layernorm_backward(m->dres, tensor_ptr(m, m->grads, lnf), tensor_ptr(m, m->grads, lnf + 1),
                       scratch, m->dbuf, xL, tensor_ptr(m, m->params, lnf), m->lnf_mean,
                       m->lnf_rstd, N, C);
    grads_final_from(m, lnf);
    for (int l = L - 1; l >= 0; l--) {
        int t0 = LAYER_BASE + l * TENSORS_PER_LAYER; /* this block's first tensor */
        layer_params_t p, g;
        layer_acts_t *a = &m->acts[l];
        const float *x = l ? m->acts[l - 1].res3 : m->encoded;
        layer_ptrs(m, m->params, l, &p);
        layer_ptrs(m, m->grads, l, &g);
        /* MLP: res3 = res2 + gelu(ln2(res2) Wfc + bfc) Wproj + bproj */
        matmul_backward(m->dfch, g.fcprojw, g.fcprojb, scratch, m->dres, a->fch_gelu, p.fcprojw,
                        N, 4 * C, C);
        grads_final_from(m, t0 + FCPROJ_W);
        gelu_backward(m->dfch, a->fch, m->dfch, (size_t)N * 4 * C);
        matmul_backward(m->dbuf, g.fcw, g.fcb, scratch, m->dfch, a->ln2, p.fcw, N, C, 4 * C);
        grads_final_from(m, t0 + FC_W);
        layernorm_backward(m->dres, g.ln2w, g.ln2b, scratch, m->dbuf, a->res2, p.ln2w,
                           a->ln2_mean, a->ln2_rstd, N, C);
        grads_final_from(m, t0 + LN2_W);
        /* attention: res2 = x + attn(ln1(x) Wqkv + bqkv) Wproj + bproj */
        matmul_backward(m->dbuf, g.attprojw, g.attprojb, scratch, m->dres, a->atty, p.attprojw,
                        N, C, C);
        grads_final_from(m, t0 + ATTPROJ_W);
        attention_backward(m->dqkv, m->att_scratch, m->dbuf, a->qkv, a->att, B, T, C, NH);
        matmul_backward(m->dbuf, g.qkvw, g.qkvb, scratch, m->dqkv, a->ln1, p.qkvw, N, C, 3 * C);
        grads_final_from(m, t0 + QKV_W);
        layernorm_backward(m->dres, g.ln1w, g.ln1b, scratch, m->dbuf, x, p.ln1w, a->ln1_mean,
                           a->ln1_rstd, N, C);
        grads_final_from(m, t0 + LN1_W);
    }
    encoder_backward(dwte, tensor_ptr(m, m->grads, 1), m->dres, inputs, N, T, C);
    grads_final_from(m, 0);
}

void ct_model_set_grads_ready(ct_model_t *m, ct_grads_ready_fn fn, void *ctx) {
    m->grads_ready = fn;
    m->grads_ready_ctx = ctx;
}

void ct_model_zero_grads(ct_model_t *m) {
    memset(m->grads, 0, m->param_bytes);
}

const ct_model_dims_t *ct_model_dims(const ct_model_t *m) {
    return &m->d;
}
float *ct_model_params(ct_model_t *m) {
    return m->params;
}
float *ct_model_grads(ct_model_t *m) {
    return m->grads;
}
size_t ct_model_num_params(const ct_model_t *m) {
    return m->lay.n_params;
}
size_t ct_model_num_real_params(const ct_model_t *m) {
    return m->lay.n_real_params;
}
const float *ct_model_logits(const ct_model_t *m) {
    return m->logits;
}
int ct_model_num_tensors(const ct_model_t *m) {
    return m->lay.n_tensors;
}
const ct_tensor_info_t *ct_model_tensor(const ct_model_t *m, int i) {
    return &m->lay.tensors[i];
}
size_t ct_model_planned_bytes(const ct_model_t *m) {
    return 2 * m->param_bytes + m->act_bytes;
}
double ct_model_flops_per_token(const ct_model_t *m) {
    return 6.0 * (double)m->lay.n_real_params +
           12.0 * m->d.n_layer * (double)m->d.seq_len * m->d.d_model;
}
