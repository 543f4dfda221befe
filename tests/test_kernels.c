/* test_kernels.c — every fast kernel against a naive reference written here with double
 * accumulation, at shapes that are not multiples of any block size; and the deterministic
 * kernels give the same bits with 1 and 2 threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/kernels.h"
#include "cotrain/rng.h"

enum { B = 2, T = 37, C = 48, NH = 3, V = 101, VP = 128, N = B * T };

static float *randn(size_t n, float std, uint64_t stream) {
    float *x = malloc(n * sizeof *x);
    ct_rng_normal_fill(x, n, std, 42, stream);
    return x;
}

static float *zeros(size_t n) {
    return calloc(n, sizeof(float));
}

/* ---- naive references ---- */

static void ref_matmul(float *out, const float *inp, const float *w, const float *bias, int n,
                       int c, int oc) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int k = 0; k < c; k++) s += (double)inp[i * c + k] * w[k * oc + o];
            out[i * oc + o] = (float)s;
        }
}

static void ref_layernorm(float *out, const float *x, const float *w, const float *b, int n,
                          int c) {
    for (int i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int k = 0; k < c; k++) m += x[i * c + k];
        m /= c;
        for (int k = 0; k < c; k++) v += (x[i * c + k] - m) * (x[i * c + k] - m);
        double r = 1.0 / sqrt(v / c + 1e-5);
        for (int k = 0; k < c; k++) out[i * c + k] = (float)((x[i * c + k] - m) * r * w[k] + b[k]);
    }
}

static double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static void ref_attention(float *out, const float *qkv) {
    int hd = C / NH;
    double p[T];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + (b * T + t) * 3 * C + h * hd;
                double mx = -1e300, sum = 0;
                for (int s = 0; s <= t; s++) {
                    const float *k = qkv + (b * T + s) * 3 * C + C + h * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)q[i] * k[i];
                    p[s] = d / sqrt(hd);
                    mx = fmax(mx, p[s]);
                }
                for (int s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                for (int i = 0; i < hd; i++) {
                    double y = 0;
                    for (int s = 0; s <= t; s++) y += p[s] / sum * qkv[(b * T + s) * 3 * C + 2 * C + h * hd + i];
                    out[(b * T + t) * C + h * hd + i] = (float)y;
                }
            }
}

/* Loss L = sum(f(x) * g) for a fixed random g: its gradient w.r.t. x by central differences in
 * double is the reference for every backward kernel below. */
typedef void (*fwd_fn)(float *out, const float *in, const void *ctx);

static void numeric_grad(float *dx, fwd_fn f, const float *x, size_t nx, const float *g,
                         size_t ny, const void *ctx) {
    float *xp = malloc(nx * sizeof *xp), *y = malloc(ny * sizeof *y);
    memcpy(xp, x, nx * sizeof *xp);
    for (size_t i = 0; i < nx; i++) {
        double h = 1e-2 * fmax(1.0, fabs(x[i])), lp = 0, lm = 0;
        xp[i] = (float)(x[i] + h);
        f(y, xp, ctx);
        for (size_t k = 0; k < ny; k++) lp += (double)y[k] * g[k];
        xp[i] = (float)(x[i] - h);
        f(y, xp, ctx);
        for (size_t k = 0; k < ny; k++) lm += (double)y[k] * g[k];
        xp[i] = x[i];
        dx[i] = (float)((lp - lm) / (2 * h));
    }
    free(xp);
    free(y);
}

static void attn_fwd(float *out, const float *qkv, const void *ctx) {
    (void)ctx;
    ref_attention(out, qkv);
}

static void ln_fwd(float *out, const float *x, const void *ctx) {
    const float *const *wb = ctx;
    ref_layernorm(out, x, wb[0], wb[1], N, C);
}

static void test_matmul(void) {
    float *x = randn(N * C, 1, 1), *w = randn(C * 3 * C, 0.2f, 2), *b = randn(3 * C, 0.1f, 3);
    float *res = randn(N * 3 * C, 1, 4), *out = zeros(N * 3 * C), *ref = zeros(N * 3 * C);
    matmul_forward(out, x, w, b, NULL, N, C, 3 * C);
    ref_matmul(ref, x, w, b, N, C, 3 * C);
    CHECK_CLOSE(out, ref, N * 3 * C, 1e-5);
    matmul_forward(out, x, w, b, res, N, C, 3 * C);
    for (int i = 0; i < N * 3 * C; i++) ref[i] += res[i];
    CHECK_CLOSE(out, ref, N * 3 * C, 1e-5);
    /* backward: dinp = dout W^T, dW += x^T dout, db += colsum(dout) (accumulating onto 1s) */
    float *dout = randn(N * 3 * C, 1, 5), *dinp = zeros(N * C), *dw = zeros(C * 3 * C);
    float *db = zeros(3 * C), *scratch = zeros(ct_reduce_scratch_floats(N, 3 * C));
    float *rdinp = zeros(N * C), *rdw = zeros(C * 3 * C), *rdb = zeros(3 * C);
    for (int i = 0; i < C * 3 * C; i++) dw[i] = rdw[i] = 1.0f;
    for (int i = 0; i < 3 * C; i++) db[i] = rdb[i] = 1.0f;
    matmul_backward(dinp, dw, db, scratch, dout, x, w, N, C, 3 * C);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C; k++) {
            double s = 0;
            for (int o = 0; o < 3 * C; o++) s += (double)dout[i * 3 * C + o] * w[k * 3 * C + o];
            rdinp[i * C + k] = (float)s;
        }
    for (int k = 0; k < C; k++)
        for (int o = 0; o < 3 * C; o++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += (double)x[i * C + k] * dout[i * 3 * C + o];
            rdw[k * 3 * C + o] += (float)s;
        }
    for (int o = 0; o < 3 * C; o++)
        for (int i = 0; i < N; i++) rdb[o] += dout[i * 3 * C + o];
    CHECK_CLOSE(dinp, rdinp, N * C, 1e-5);
    CHECK_CLOSE(dw, rdw, C * 3 * C, 1e-5);
    CHECK_CLOSE(db, rdb, 3 * C, 1e-5);
    free(x), free(w), free(b), free(res), free(out), free(ref), free(dout), free(dinp);
    free(dw), free(db), free(scratch), free(rdinp), free(rdw), free(rdb);
}

static void test_layernorm(void) {
    float *x = randn(N * C, 2, 10), *w = randn(C, 1, 11), *b = randn(C, 1, 12);
    float *out = zeros(N * C), *ref = zeros(N * C), *mean = zeros(N), *rstd = zeros(N);
    layernorm_forward(out, mean, rstd, x, w, b, N, C);
    ref_layernorm(ref, x, w, b, N, C);
    CHECK_CLOSE(out, ref, N * C, 1e-5);
    float *g = randn(N * C, 1, 13), *dx = zeros(N * C), *dw = zeros(C), *db = zeros(C);
    float *scratch = zeros(ct_reduce_scratch_floats(N, 2 * C)), *rdx = zeros(N * C);
    layernorm_backward(dx, dw, db, scratch, g, x, w, mean, rstd, N, C);
    const float *wb[2] = {w, b};
    numeric_grad(rdx, ln_fwd, x, N * C, g, N * C, wb);
    CHECK_CLOSE(dx, rdx, N * C, 2e-3);
    /* dweight = sum over rows g * xhat, dbias = sum g */
    for (int k = 0; k < C; k++) {
        double sw = 0, sb = 0;
        for (int i = 0; i < N; i++) {
            sw += (double)g[i * C + k] * (x[i * C + k] - mean[i]) * rstd[i];
            sb += g[i * C + k];
        }
        CHECK_NEAR(dw[k], sw, 1e-4, 1.0);
        CHECK_NEAR(db[k], sb, 1e-4, 1.0);
    }
    free(x), free(w), free(b), free(out), free(ref), free(mean), free(rstd), free(g), free(dx);
    free(dw), free(db), free(scratch), free(rdx);
}

static void test_gelu(void) {
    size_t n = 4099;
    float *x = randn(n, 3, 20), *y = zeros(n), *dy = randn(n, 1, 21), *dx = zeros(n);
    gelu_forward(y, x, n);
    gelu_backward(dx, x, dy, n);
    for (size_t i = 0; i < n; i++) {
        CHECK_NEAR(y[i], ref_gelu(x[i]), 2e-6, 1e-3);
        double h = 1e-4, d = (ref_gelu(x[i] + h) - ref_gelu(x[i] - h)) / (2 * h);
        CHECK_NEAR(dx[i], dy[i] * d, 1e-5, 1e-2);
    }
    /* far tails: no NaN, exact limits */
    float big[4] = {-100.0f, 100.0f, -1e30f, 1e30f}, gb[4];
    gelu_forward(gb, big, 4);
    CHECK(gb[0] == 0.0f || fabsf(gb[0]) < 1e-30f);
    CHECK_NEAR(gb[1], 100.0, 1e-7, 1.0);
    CHECK(!isnan(gb[2]) && !isnan(gb[3]));
    free(x), free(y), free(dy), free(dx);
}

static void test_attention(void) {
    float *qkv = randn(N * 3 * C, 1, 30), *out = zeros(N * C), *ref = zeros(N * C);
    float *att = zeros((size_t)B * NH * T * T);
    attention_forward(out, att, qkv, B, T, C, NH);
    ref_attention(ref, qkv);
    CHECK_CLOSE(out, ref, N * C, 1e-5);
    float *g = randn(N * C, 1, 31), *dqkv = randn(N * 3 * C, 1, 32), *rd = zeros(N * 3 * C);
    float *scratch = zeros(ct_attention_scratch_floats(T, omp_get_max_threads()));
    attention_backward(dqkv, scratch, g, qkv, att, B, T, C, NH);
    numeric_grad(rd, attn_fwd, qkv, N * 3 * C, g, N * C, NULL);
    CHECK_CLOSE(dqkv, rd, N * 3 * C, 2e-3);
    free(qkv), free(out), free(ref), free(att), free(g), free(dqkv), free(rd), free(scratch);
}

static void test_crossentropy(void) {
    float *logits = randn(N * VP, 3, 40), *losses = zeros(N), *lse = zeros(N);
    int targets[N];
    for (int i = 0; i < N; i++) targets[i] = (i * 37) % V;
    crossentropy_forward(losses, lse, logits, targets, N, V, VP);
    float dloss = 0.25f;
    float *d = malloc(sizeof(float) * N * VP);
    memcpy(d, logits, sizeof(float) * N * VP);
    crossentropy_backward(d, lse, targets, dloss, N, V, VP);
    for (int i = 0; i < N; i++) {
        double mx = -1e300, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits[i * VP + v]);
        for (int v = 0; v < V; v++) s += exp(logits[i * VP + v] - mx);
        double z = mx + log(s);
        CHECK_NEAR(losses[i], z - logits[i * VP + targets[i]], 1e-5, 1.0);
        for (int v = 0; v < VP; v++) {
            double ref = v < V ? (exp(logits[i * VP + v] - z) - (v == targets[i])) * dloss : 0.0;
            CHECK_NEAR(d[i * VP + v], ref, 1e-5, 1e-2);
        }
    }
    free(logits), free(losses), free(lse), free(d);
}

static void test_encoder(void) {
    float *wte = randn(V * C, 1, 50), *wpe = randn(T * C, 1, 51), *out = zeros(N * C);
    int tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (i * 7) % 5; /* many repeats */
    encoder_forward(out, tokens, wte, wpe, N, T, C);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C; k++)
            CHECK(out[i * C + k] == wte[tokens[i] * C + k] + wpe[(i % T) * C + k]);
    float *g = randn(N * C, 1, 52), *dwte = zeros(V * C), *dwpe = zeros(T * C);
    encoder_backward(dwte, dwpe, g, tokens, N, T, C);
    for (int v = 0; v < 5; v++)
        for (int k = 0; k < C; k++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                if (tokens[i] == v) s += g[i * C + k];
            CHECK_NEAR(dwte[v * C + k], s, 1e-5, 1.0);
        }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < C; k++)
            CHECK_NEAR(dwpe[t * C + k], (double)g[t * C + k] + g[(T + t) * C + k], 1e-6, 1.0);
    free(wte), free(wpe), free(out), free(g), free(dwte), free(dwpe);
}

/* The reductions sum fixed chunks in a fixed order: 1 and 2 threads give the same bits. */
static void test_thread_independence(void) {
    int n = 1000, c = 40;
    float *x = randn((size_t)n * c, 1, 60), *w = randn(c, 1, 61), *b = randn(c, 1, 62);
    float *g = randn((size_t)n * c, 1, 63), *mean = zeros(n), *rstd = zeros(n);
    float *out = zeros((size_t)n * c), *scratch = zeros(ct_reduce_scratch_floats(n, 2 * c));
    float *r[2][3];
    layernorm_forward(out, mean, rstd, x, w, b, n, c);
    for (int th = 0; th < 2; th++) {
        omp_set_num_threads(th + 1);
        r[th][0] = zeros((size_t)n * c), r[th][1] = zeros(c), r[th][2] = zeros(c);
        layernorm_backward(r[th][0], r[th][1], r[th][2], scratch, g, x, w, mean, rstd, n, c);
    }
    CHECK(!memcmp(r[0][0], r[1][0], sizeof(float) * n * c));
    CHECK(!memcmp(r[0][1], r[1][1], sizeof(float) * c));
    CHECK(!memcmp(r[0][2], r[1][2], sizeof(float) * c));
    for (int th = 0; th < 2; th++)
        for (int k = 0; k < 3; k++) free(r[th][k]);
    free(x), free(w), free(b), free(g), free(mean), free(rstd), free(out), free(scratch);
}

int main(void) {
    test_matmul();
    test_layernorm();
    test_gelu();
    test_attention();
    test_crossentropy();
    test_encoder();
    test_thread_independence();
    return CHECK_RESULT();
}
