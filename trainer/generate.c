/* generate.c — KV-cached incremental GPT-2 forward and the token sampler (contracts in
 * generate.h).
 *
 * The forward here mirrors ct_model_forward (model.c) row for row, reusing its LayerNorm, GEMM and
 * GELU kernels, with two differences: attention reads the keys and values of earlier positions
 * from the cache instead of recomputing them, and only the last row is projected onto the
 * vocabulary. A single new token is a matrix-vector product per weight matrix (cblas_sgemv; a
 * GEMM with one row wastes time packing the weights), so generation is bound by reading the
 * weights once per token.
 *
 * Threads: a prompt's rows go through GEMMs on every OpenMP thread, as training does. Single
 * tokens run on the calling thread alone. Their matrix-vector products are bound by memory, and
 * one thread streams the weights nearly as fast as two (sgemv 768x3072: 0.13 ms on 1 thread and on
 * 2; the 50304x768 wte: 6 ms either way), while a token crosses some 100 parallel regions, each a
 * fork/join that costs more than the work inside it and, when another process holds a core (say
 * a training run beside `cotrain sample`), waits for the descheduled thread. Measured on the
 * 2-core VM: GPT-2 124M 45-56 tokens/s on one thread; on two, 63 when the VM was idle but 3 while
 * another process ran; the tiny model 8000-10000 on one, 100-1400 on two. */
#include "cotrain/generate.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/kernels.h"
#include "cotrain/mem.h"

/* Attention of fewer multiply-adds than this (all rows and heads of a feed) runs serially. */
#define PARALLEL_ATTENTION_MACS (1L << 15)

/* One block's weights, resolved by name from the model's tensor table. */
typedef struct layer_w {
    const float *ln1w, *ln1b;         /* (C), (C) */
    const float *qkvw, *qkvb;         /* (C, 3C), (3C) */
    const float *attprojw, *attprojb; /* (C, C), (C) */
    const float *ln2w, *ln2b;         /* (C), (C) */
    const float *fcw, *fcb;           /* (C, 4C), (4C) */
    const float *fcprojw, *fcprojb;   /* (4C, C), (C) */
} layer_w_t;

struct ct_generator {
    ct_model_t *model; /* borrowed */
    int L, NH, C, T, V, Vp;
    int nthreads;             /* OpenMP threads the attention scratch is sized for */
    int pos;                  /* positions held in the cache */
    const float *wte, *wpe;   /* (Vp, C), (T, C) */
    const float *lnfw, *lnfb; /* (C), (C) */
    layer_w_t *layers;        /* (L) */
    float *kv;                /* (L, 2, T, C): layer l's keys at (2l) T C, values at (2l+1) T C */
    float *x;                 /* (T, C) residual stream of the rows being fed */
    float *ln;                /* (T, C) LayerNorm output */
    float *mean, *rstd;       /* (T), (T) */
    float *qkv;               /* (T, 3C) */
    float *atty;              /* (T, C) attention output before the projection */
    float *fch, *fch_gelu;    /* (T, 4C) each */
    float *scores;            /* (nthreads, T) attention weights of one (row, head) */
    float *logits;            /* (Vp) of the last row fed */
    float *sample_f;          /* (Vp) sampler scratch */
    int *sample_i;            /* (Vp) sampler scratch */
    float *mem;               /* the float buffers above, one allocation of mem_bytes */
    size_t mem_bytes;
};

/* ---- weights ---------------------------------------------------------------------------- */

/* Points *p at tensor `name` of m's parameters after checking its element count. */
static int find_tensor(ct_model_t *m, const char *name, size_t numel, const float **p,
                       ct_err_t *e) {
    for (int i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info_t *t = ct_model_tensor(m, i);
        if (strcmp(t->name, name) != 0) continue;
        if (t->numel != numel)
            return CT_ERR(e, CT_EINVAL, "model tensor %s has %zu elements, generation expects %zu",
                          name, t->numel, numel);
        *p = ct_model_params(m) + t->offset;
        return 0;
    }
    return CT_ERR(e, CT_EINVAL, "the model has no tensor %s: not a GPT-2 tensor table", name);
}

static int resolve_weights(ct_generator_t *g, ct_err_t *e) {
    size_t C = (size_t)g->C;
    CT_TRY(find_tensor(g->model, "transformer.wte.weight", (size_t)g->Vp * C, &g->wte, e));
    CT_TRY(find_tensor(g->model, "transformer.wpe.weight", (size_t)g->T * C, &g->wpe, e));
    CT_TRY(find_tensor(g->model, "transformer.ln_f.weight", C, &g->lnfw, e));
    CT_TRY(find_tensor(g->model, "transformer.ln_f.bias", C, &g->lnfb, e));
    for (int l = 0; l < g->L; l++) {
        layer_w_t *w = &g->layers[l];
        const struct {
            const char *suffix;
            size_t numel;
            const float **p;
        } block[] = {
            {"ln_1.weight", C, &w->ln1w},
            {"ln_1.bias", C, &w->ln1b},
            {"attn.c_attn.weight", 3 * C * C, &w->qkvw},
            {"attn.c_attn.bias", 3 * C, &w->qkvb},
            {"attn.c_proj.weight", C * C, &w->attprojw},
            {"attn.c_proj.bias", C, &w->attprojb},
            {"ln_2.weight", C, &w->ln2w},
            {"ln_2.bias", C, &w->ln2b},
            {"mlp.c_fc.weight", 4 * C * C, &w->fcw},
            {"mlp.c_fc.bias", 4 * C, &w->fcb},
            {"mlp.c_proj.weight", 4 * C * C, &w->fcprojw},
            {"mlp.c_proj.bias", C, &w->fcprojb},
        };
        for (size_t j = 0; j < sizeof block / sizeof block[0]; j++) {
            char name[CT_TENSOR_NAME_MAX];
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, block[j].suffix);
            CT_TRY(find_tensor(g->model, name, block[j].numel, block[j].p, e));
        }
    }
    return 0;
}

/* ---- create / destroy ------------------------------------------------------------------- */

/* Carves the float buffers out of one allocation; with mem == NULL only counts floats. */
static size_t plan_buffers(ct_generator_t *g, float *mem) {
    size_t T = (size_t)g->T, C = (size_t)g->C, used = 0;
#define CARVE(ptr, count)                                                                          \
    do {                                                                                           \
        if (mem) (ptr) = mem + used;                                                               \
        used += ((size_t)(count) + 15) / 16 * 16; /* keep 64-byte alignment */                     \
    } while (0)
    CARVE(g->kv, (size_t)g->L * 2 * T * C);
    CARVE(g->x, T * C);
    CARVE(g->ln, T * C);
    CARVE(g->mean, T);
    CARVE(g->rstd, T);
    CARVE(g->qkv, T * 3 * C);
    CARVE(g->atty, T * C);
    CARVE(g->fch, T * 4 * C);
    CARVE(g->fch_gelu, T * 4 * C);
    CARVE(g->scores, (size_t)g->nthreads * T);
    CARVE(g->logits, (size_t)g->Vp);
    CARVE(g->sample_f, (size_t)g->Vp);
#undef CARVE
    return used;
}

int ct_generator_create(ct_generator_t **out, ct_model_t *model, ct_err_t *e) {
    *out = NULL;
    int rc = 0;
    ct_generator_t *g = NULL;
    const ct_model_dims_t *d = ct_model_dims(model);
    CT_ALLOC(e, g, 1, fail);
    g->model = model;
    g->L = d->n_layer;
    g->NH = d->n_head;
    g->C = d->d_model;
    g->T = d->seq_len;
    g->V = d->vocab_size;
    g->Vp = d->vocab_padded;
    g->nthreads = omp_get_max_threads();
    CT_ALLOC(e, g->layers, g->L, fail);
    CT_ALLOC(e, g->sample_i, g->Vp, fail);
    CT_TRY_GOTO(resolve_weights(g, e), fail);
    g->mem_bytes = plan_buffers(g, NULL) * sizeof(float);
    g->mem = ct_mem_alloc(g->mem_bytes, e);
    if (!g->mem) {
        rc = CT_ENOMEM;
        goto fail;
    }
    plan_buffers(g, g->mem);
    *out = g;
    return 0;
fail:
    ct_generator_destroy(&g);
    return rc;
}

void ct_generator_destroy(ct_generator_t **self_p) {
    ct_generator_t *g = *self_p;
    if (!g) return;
    ct_mem_free(g->mem, g->mem_bytes);
    free(g->sample_i);
    free(g->layers);
    free(g);
    *self_p = NULL;
}

void ct_generator_reset(ct_generator_t *self) {
    self->pos = 0;
}

int ct_generator_pos(const ct_generator_t *self) {
    return self->pos;
}

const float *ct_generator_logits(const ct_generator_t *self) {
    return self->logits;
}

/* ---- forward ---------------------------------------------------------------------------- */

/* out (n,OC) = inp (n,C) @ weight (C,OC) + bias (OC) [+ residual (n,OC)], out may alias
 * residual. One row is a matrix-vector product; more go to matmul_forward's GEMM. */
static void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                           const float *residual, int n, int C, int OC) {
    if (n > 1) {
        matmul_forward(out, inp, weight, bias, residual, n, C, OC);
        return;
    }
    for (int j = 0; j < OC; j++)
        out[j] = (residual ? residual[j] : 0.0f) + bias[j];
    cblas_sgemv(CblasRowMajor, CblasTrans, C, OC, 1.0f, weight, OC, inp, 1, 1.0f, out, 1);
}

/* Causal attention of n new rows at positions p0..p0+n-1 over the cached keys and values
 * k, v (T, C) of one layer, which already hold those rows. out (n, C); q read from qkv (n, 3C). */
static void attention_cached(ct_generator_t *g, float *out, const float *qkv, const float *k,
                             const float *v, int n, int p0) {
    int C = g->C, NH = g->NH, hs = C / NH, T = g->T;
    float scale = 1.0f / sqrtf((float)hs);
    int threads = omp_get_max_threads() < g->nthreads ? omp_get_max_threads() : g->nthreads;
    long macs = 2L * n * (p0 + n) * C;
#pragma omp parallel for schedule(static) num_threads(threads) if (macs >= PARALLEL_ATTENTION_MACS)
    for (int ih = 0; ih < n * NH; ih++) {
        int i = ih / NH, h = ih % NH, p = p0 + i;
        const float *q = qkv + (size_t)i * 3 * C + (size_t)h * hs;
        float *s = g->scores + (size_t)omp_get_thread_num() * T;
        float mx = -INFINITY;
        for (int t = 0; t <= p; t++) {
            const float *kt = k + (size_t)t * C + (size_t)h * hs;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int c = 0; c < hs; c++)
                dot += q[c] * kt[c];
            s[t] = dot * scale;
            mx = s[t] > mx ? s[t] : mx;
        }
        float sum = 0.0f;
        for (int t = 0; t <= p; t++) {
            s[t] = expf(s[t] - mx);
            sum += s[t];
        }
        float inv = 1.0f / sum;
        float *y = out + (size_t)i * C + (size_t)h * hs;
        memset(y, 0, sizeof(float) * hs);
        for (int t = 0; t <= p; t++) {
            const float *vt = v + (size_t)t * C + (size_t)h * hs;
            float w = s[t] * inv;
#pragma omp simd
            for (int c = 0; c < hs; c++)
                y[c] += w * vt[c];
        }
    }
}

/* ct_generator_feed on the threads the caller has set. */
static int feed_rows(ct_generator_t *g, const int *tokens, int n, ct_err_t *e) {
    int C = g->C, T = g->T, p0 = g->pos;
    if (n < 1) return CT_ERR(e, CT_EINVAL, "feeding %d tokens: feed at least one", n);
    if (n > T - p0)
        return CT_ERR(e, CT_EINVAL,
                      "the context is full: %d tokens are cached, %d more would exceed the "
                      "model's seq_len of %d (generation does not slide the window)",
                      p0, n, T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->V)
            return CT_ERR(e, CT_EINVAL,
                          "token %d (at %d of %d fed) is outside the model's "
                          "vocabulary 0..%d",
                          tokens[i], i, n, g->V - 1);
    for (int i = 0; i < n; i++) {
        const float *te = g->wte + (size_t)tokens[i] * C, *pe = g->wpe + (size_t)(p0 + i) * C;
        float *xi = g->x + (size_t)i * C;
        for (int c = 0; c < C; c++)
            xi[c] = te[c] + pe[c];
    }
    for (int l = 0; l < g->L; l++) {
        const layer_w_t *w = &g->layers[l];
        float *kc = g->kv + (size_t)2 * l * T * C, *vc = kc + (size_t)T * C;
        layernorm_forward(g->ln, g->mean, g->rstd, g->x, w->ln1w, w->ln1b, n, C);
        linear_forward(g->qkv, g->ln, w->qkvw, w->qkvb, NULL, n, C, 3 * C);
        for (int i = 0; i < n; i++) {
            const float *row = g->qkv + (size_t)i * 3 * C;
            memcpy(kc + (size_t)(p0 + i) * C, row + C, sizeof(float) * C);
            memcpy(vc + (size_t)(p0 + i) * C, row + 2 * C, sizeof(float) * C);
        }
        attention_cached(g, g->atty, g->qkv, kc, vc, n, p0);
        linear_forward(g->x, g->atty, w->attprojw, w->attprojb, g->x, n, C, C);
        layernorm_forward(g->ln, g->mean, g->rstd, g->x, w->ln2w, w->ln2b, n, C);
        linear_forward(g->fch, g->ln, w->fcw, w->fcb, NULL, n, C, 4 * C);
        gelu_forward(g->fch_gelu, g->fch, (size_t)n * 4 * C);
        linear_forward(g->x, g->fch_gelu, w->fcprojw, w->fcprojb, g->x, n, 4 * C, C);
    }
    /* Only the last row's logits are wanted: one LayerNorm row, one (Vp, C) matrix-vector. */
    layernorm_forward(g->ln, g->mean, g->rstd, g->x + (size_t)(n - 1) * C, g->lnfw, g->lnfb, 1, C);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, g->Vp, C, 1.0f, g->wte, C, g->ln, 1, 0.0f, g->logits,
                1);
    g->pos = p0 + n;
    return 0;
}

/* Sets the calling thread's OpenMP team size (a per-thread setting, which OpenBLAS's OpenMP
 * build follows) and returns the previous one, for the caller to restore. ct_generate sets it
 * once around its decode loop rather than per token. */
static int set_threads(int n) {
    int before = omp_get_max_threads();
    if (n != before) omp_set_num_threads(n);
    return before;
}

int ct_generator_feed(ct_generator_t *self, const int *tokens, int n, ct_err_t *e) {
    if (n != 1) return feed_rows(self, tokens, n, e);
    int before = set_threads(1);
    int rc = feed_rows(self, tokens, n, e);
    set_threads(before);
    return rc;
}

/* ---- sampling --------------------------------------------------------------------------- */

static int check_opts(const ct_sample_opts_t *o, ct_err_t *e) {
    if (!(o->temperature >= 0.0f) || !isfinite(o->temperature))
        return CT_ERR(e, CT_EINVAL, "temperature %g: use a finite number >= 0 (0 = greedy)",
                      (double)o->temperature);
    if (o->top_k < 0)
        return CT_ERR(e, CT_EINVAL, "top-k %d: use a number >= 0 (0 = all tokens)", o->top_k);
    return 0;
}

/* Token a ranks before token b: higher logit, then lower id, so the order is total. */
static int ranks_before(const float *logits, int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

/* Sift heap[i] down a heap of size n whose root is the token ranked last. */
static void sift_down(int *heap, int n, int i, const float *logits) {
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_before(logits, heap[worst], heap[l])) worst = l;
        if (r < n && ranks_before(logits, heap[worst], heap[r])) worst = r;
        if (worst == i) return;
        int t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* top[0..k) = the k highest-ranked ids of logits[0..n), best first; k < n. A heap of the k
 * best so far (root: the worst of them) costs O(n log k), then heapsort orders it. */
static void select_top_k(int *top, const float *logits, int n, int k) {
    for (int i = 0; i < k; i++)
        top[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(top, k, i, logits);
    for (int i = k; i < n; i++)
        if (ranks_before(logits, i, top[0])) {
            top[0] = i;
            sift_down(top, k, 0, logits);
        }
    for (int size = k - 1; size > 0; size--) {
        int t = top[0];
        top[0] = top[size];
        top[size] = t;
        sift_down(top, size, 0, logits);
    }
}

int ct_sample_logits(const float *logits, int n, const ct_sample_opts_t *o, ct_rng_t *rng,
                     float *scratch_f, int *scratch_i, ct_err_t *e) {
    if (n < 1) return CT_ERR(e, CT_EINVAL, "sampling from %d logits: need at least one", n);
    CT_TRY(check_opts(o, e));
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(logits[i]))
            return CT_ERR(e, CT_ENUMERIC,
                          "logit of token %d is %g: the model's outputs are not finite (its "
                          "weights diverged?); sample from an earlier checkpoint",
                          i, (double)logits[i]);
        if (logits[i] > logits[best]) best = i;
    }
    if (o->temperature == 0.0f) return best;
    int k = o->top_k == 0 || o->top_k >= n ? n : o->top_k;
    int *cand = scratch_i;
    if (k < n)
        select_top_k(cand, logits, n, k);
    else
        for (int i = 0; i < n; i++)
            cand[i] = i;
    /* softmax(logits / temperature) over the candidates, shifted by the maximum so the largest
     * term is exp(0) = 1 and the sum cannot overflow, whatever the temperature */
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
        scratch_f[j] = expf((logits[cand[j]] - logits[best]) / o->temperature);
        sum += scratch_f[j];
    }
    double target = (double)(ct_rng_next(rng) >> 11) * 0x1.0p-53 * sum; /* in [0, sum) */
    double acc = 0.0;
    int last = best;
    for (int j = 0; j < k; j++) {
        if (scratch_f[j] <= 0.0f) continue;
        acc += scratch_f[j];
        last = cand[j];
        if (target < acc) return cand[j];
    }
    return last; /* rounding left target just above the running sum */
}

int ct_generate(ct_generator_t *self, const int *prompt, int n_prompt, int n_new,
                const ct_sample_opts_t *o, uint64_t seed, int *out, ct_token_fn on_token, void *ctx,
                ct_err_t *e) {
    ct_generator_t *g = self;
    CT_TRY(check_opts(o, e));
    int n_vocab = o->n_vocab ? o->n_vocab : g->V;
    if (n_vocab < 1 || n_vocab > g->V)
        return CT_ERR(e, CT_EINVAL,
                      "sampling vocabulary of %d ids: must be 1..%d, the model's vocab_size",
                      n_vocab, g->V);
    if (n_prompt < 1)
        return CT_ERR(e, CT_EINVAL,
                      "the prompt is empty: generation needs at least one token "
                      "to start from (e.g. <|endoftext|>)");
    if (n_new < 0) return CT_ERR(e, CT_EINVAL, "asked for %d new tokens: use >= 0", n_new);
    if (n_new > g->T - n_prompt)
        return CT_ERR(e, CT_EINVAL,
                      "%d prompt tokens + %d new tokens exceed the model's context of %d tokens "
                      "(seq_len; generation does not slide the window): ask for at most %d",
                      n_prompt, n_new, g->T, g->T - n_prompt > 0 ? g->T - n_prompt : 0);
    ct_generator_reset(g);
    CT_TRY(ct_generator_feed(g, prompt, n_prompt, e));
    ct_rng_t rng;
    ct_rng_seed(&rng, seed);
    int rc = 0, before = set_threads(1);
    for (int i = 0; i < n_new; i++) {
        int tok = ct_sample_logits(g->logits, n_vocab, o, &rng, g->sample_f, g->sample_i, e);
        if (tok < 0) {
            rc = tok;
            break;
        }
        out[i] = tok;
        if (on_token) CT_TRY_GOTO(on_token(ctx, tok, e), done);
        if (i + 1 < n_new) CT_TRY_GOTO(feed_rows(g, &tok, 1, e), done);
    }
done:
    set_threads(before);
    return rc;
}
