/* kernels.c — CPU kernels of the GPT-2 forward and backward passes (contracts in kernels.h).
 *
 * GEMMs go to OpenBLAS; everything else is written so that GCC vectorises it (no calls to libm
 * in inner loops: exp is a Cephes-style polynomial that vectorises, tanh is derived from it) and
 * OpenMP spreads rows across threads. Column reductions (bias and LayerNorm gradients, position
 * embedding gradients) sum fixed 64-row chunks in a fixed order, so results do not depend on the
 * number of threads. Attention is computed per (sequence, head) with causal 64-row blocks; inside
 * those parallel loops OpenBLAS (the OpenMP build) runs single-threaded. */
#include "cotrain/kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

enum { ATT_BLOCK = 64 };

/* exp(x) for x in float range, ~1-2 ulp; written without branches or libm so loops vectorise.
 * Inputs below -87 give exp(-87) (~1.6e-38) instead of denormals or 0; NaN gives NaN. The
 * exponent k comes out of the rounding constant's low mantissa bits with unsigned arithmetic, so
 * no input (NaN included) reaches an undefined float-to-int conversion or shift. */
static inline float vexpf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float kr = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23 + round(x / ln 2) */
    float k = kr - 12582912.0f;
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t kbits, bits;
    memcpy(&kbits, &kr, sizeof kbits);
    bits = (kbits - 0x4b400000u + 127u) << 23; /* 2^k */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline int imin(int a, int b) {
    return a < b ? a : b;
}

size_t ct_reduce_scratch_floats(int N, int C) {
    return (size_t)((N + CT_ROW_CHUNK - 1) / CT_ROW_CHUNK) * (size_t)C;
}

/* dst (C) += sum over chunks of partial (nchunks rows of `stride` floats, the first C used),
 * chunks in order. */
static void reduce_chunks(float *dst, const float *partial, int nchunks, int C, int stride) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float s = 0.0f;
        for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * stride + c];
        dst[c] += s;
    }
}

void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int N,
                     int T, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *te = wte + (size_t)tokens[n] * C;
        const float *pe = wpe + (size_t)(n % T) * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int N, int T,
                      int C) {
    int nseq = N / T;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *dp = dwpe + (size_t)t * C;
        for (int b = 0; b < nseq; b++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) dp[c] += d[c];
        }
    }
    /* Several rows may share a token: each thread owns a column block and walks every row in
     * order, which is race-free and deterministic. */
    int nblk = (C + 63) / 64;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 64, c1 = imin(C, c0 + 64);
        for (int n = 0; n < N; n++) {
            float *dt = dwte + (size_t)tokens[n] * C;
            const float *d = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dt[c] += d[c];
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                        const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C) {
    int nchunks = (N + CT_ROW_CHUNK - 1) / CT_ROW_CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        float *pw = scratch + (size_t)k * 2 * C, *pb = pw + C;
        memset(pw, 0, sizeof(float) * 2 * C);
        for (int n = k * CT_ROW_CHUNK; n < imin(N, (k + 1) * CT_ROW_CHUNK); n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            float sum_dn = 0.0f, sum_dn_n = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dn_n)
            for (int c = 0; c < C; c++) {
                float xn = (x[c] - m) * r;
                float dn = dy[c] * weight[c];
                sum_dn += dn;
                sum_dn_n += dn * xn;
            }
            float mdn = sum_dn / C, mdnn = sum_dn_n / C;
            for (int c = 0; c < C; c++) {
                float xn = (x[c] - m) * r;
                float dn = dy[c] * weight[c];
                dx[c] += (dn - mdn - xn * mdnn) * r;
                pw[c] += dy[c] * xn;
                pb[c] += dy[c];
            }
        }
    }
    /* partial rows are [dweight chunk | dbias chunk] */
    reduce_chunks(dweight, scratch, nchunks, C, 2 * C);
    reduce_chunks(dbias, scratch + C, nchunks, C, 2 * C);
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const float *residual, int N, int C, int OC) {
    float beta = 0.0f;
    if (bias || residual) {
        /* Prefill with residual + bias so the GEMM accumulates onto it: the residual add and
         * the bias cost no extra pass over the output. */
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            const float *res = residual ? residual + (size_t)n * OC : NULL;
            for (int j = 0; j < OC; j++) o[j] = (res ? res[j] : 0.0f) + (bias ? bias[j] : 0.0f);
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, weight, OC,
                beta, out, OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                     const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, 1.0f, dout, OC, weight, OC,
                0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f,
                dweight, OC);
    if (!dbias) return;
    int nchunks = (N + CT_ROW_CHUNK - 1) / CT_ROW_CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        float *p = scratch + (size_t)k * OC;
        memset(p, 0, sizeof(float) * OC);
        for (int n = k * CT_ROW_CHUNK; n < imin(N, (k + 1) * CT_ROW_CHUNK); n++) {
            const float *d = dout + (size_t)n * OC;
            for (int j = 0; j < OC; j++) p[j] += d[j];
        }
    }
    reduce_chunks(dbias, scratch, nchunks, OC, OC);
}

/* gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
#define GELU_S 0.7978845608028654f
#define GELU_A 0.044715f

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_S * (x + GELU_A * x * x * x);
        out[i] = x / (1.0f + vexpf(-2.0f * u));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    /* With h = (1 + tanh u)/2 = 1/(1 + exp(-2u)): 1 - tanh^2 u = 4 h (1 - h) and
     * 1 - h = exp(-2u) h, which avoids the cancellation of 1 - tanh^2 in the tails. */
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_S * (x + GELU_A * x * x * x);
        float ex = vexpf(-2.0f * u);
        float h = 1.0f / (1.0f + ex);
        float du = GELU_S * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] = dout[i] * (h + 2.0f * x * h * (ex * h) * du);
    }
}

size_t ct_attention_scratch_floats(int T, int nthreads) {
    return (size_t)ATT_BLOCK * (size_t)T * (size_t)nthreads;
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hd;
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + (size_t)bh * T * T;
        float *y = out + (size_t)b * T * C + (size_t)h * hd;
        for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
            int i1 = imin(T, i0 + ATT_BLOCK), m = i1 - i0;
            float *ab = a + (size_t)i0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, i1, hd, scale,
                        q + (size_t)i0 * C3, C3, k, C3, 0.0f, ab, T);
            for (int t = i0; t < i1; t++) {
                float *row = a + (size_t)t * T;
                float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
                for (int s = 0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int s = 0; s <= t; s++) {
                    row[s] = vexpf(row[s] - mx);
                    sum += row[s];
                }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < i1; s++) row[s] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, i1, 1.0f, ab, T, v, C3,
                        0.0f, y + (size_t)i0 * C, C);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t off = (size_t)b * T * C3 + (size_t)h * hd;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + (size_t)bh * T * T;
        const float *dy = dout + (size_t)b * T * C + (size_t)h * hd;
        float *ds = scratch + (size_t)omp_get_thread_num() * ATT_BLOCK * T; /* (64, T) */
        for (int t = 0; t < T; t++) {
            memset(dk + (size_t)t * C3, 0, sizeof(float) * hd);
            memset(dv + (size_t)t * C3, 0, sizeof(float) * hd);
        }
        for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
            int i1 = imin(T, i0 + ATT_BLOCK), m = i1 - i0;
            const float *ab = a + (size_t)i0 * T;
            /* dP = dY V^T ; dV += P^T dY */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, i1, hd, 1.0f,
                        dy + (size_t)i0 * C, C, v, C3, 0.0f, ds, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, m, 1.0f, ab, T,
                        dy + (size_t)i0 * C, C, 1.0f, dv, C3);
            /* dS = P * (dP - rowsum(P * dP)), zero above the diagonal */
            for (int t = i0; t < i1; t++) {
                const float *p = a + (size_t)t * T;
                float *d = ds + (size_t)(t - i0) * T;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int s = 0; s <= t; s++) dot += p[s] * d[s];
                for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot);
                for (int s = t + 1; s < i1; s++) d[s] = 0.0f;
            }
            /* dQ = scale dS K ; dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, i1, scale, ds, T, k,
                        C3, 0.0f, dq + (size_t)i0 * C3, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, m, scale, ds, T,
                        q + (size_t)i0 * C3, C3, 1.0f, dk, C3);
        }
    }
}

void crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                          int N, int V, int Vp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * Vp;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++) sum += vexpf(l[i] - mx);
        lse[n] = mx + logf(sum);
        losses[n] = lse[n] - l[targets[n]];
    }
}

void crossentropy_backward(float *logits, const float *lse, const int *targets, float dloss,
                           int N, int V, int Vp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * Vp;
        float z = lse[n];
#pragma omp simd
        for (int i = 0; i < V; i++) l[i] = vexpf(l[i] - z) * dloss;
        for (int i = V; i < Vp; i++) l[i] = 0.0f;
        l[targets[n]] -= dloss;
    }
}
