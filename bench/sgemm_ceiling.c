/* sgemm_ceiling.c — how fast this machine's cblas_sgemm runs at the GEMM shapes of one GPT-2
 * training step: the ceiling that the trainer's throughput is compared against.
 *
 * Almost all of a GPT-2 step's FLOPs are in its linear layers, and the trainer hands those to
 * OpenBLAS. So the best a CPU trainer can do is roughly "the step's linear-layer FLOPs at the speed
 * sgemm reaches on exactly those shapes". This program measures that speed. For each linear layer
 * (c_attn, attn c_proj, c_fc, mlp c_proj, and the tied lm head) it times the three GEMMs of a
 * training step in the trainer's layouts (row-major; weights in the Hugging Face Conv1D layout
 * (in, out); wte (Vp, C)):
 *
 *   forward   Y  (BT,out) = X (BT,in) @ W (in,out)            beta 0
 *   backward  dX (BT,in)  = dY (BT,out) @ W^T                 beta 0 (overwritten)
 *             dW (in,out) += X^T @ dY                          beta 1 (accumulated)
 *   lm head   logits (BT,Vp) = X (BT,C) @ wte^T, dX = dlogits @ wte, dwte += dlogits^T @ X
 *
 * Each shape is warmed up, then timed over several repeats; its best and median times are kept.
 * The ceiling is FLOP-weighted: the step's total GEMM FLOPs (block shapes counted n_layer times)
 * divided by the total of the best times. Attention's own small GEMMs are not included.
 *
 * Threads: OpenBLAS (OpenMP build) uses OMP_NUM_THREADS, or every CPU when it is unset.
 * The last line printed is one JSON object, {"sgemm_gflops": ..., ...}, for scripts/bench. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cotrain/clock.h"

enum { MAX_SHAPES = 64 };

typedef struct shape {
    char name[32];
    int m, n, k;   /* C (m,n) = op(A) (m,k) @ op(B) (k,n) */
    int ta, tb;    /* 1 = that operand is transposed */
    float beta;    /* 0 overwrites C, 1 accumulates into it */
    int count;     /* times this GEMM occurs in one training step */
    double best_s; /* fastest timed call */
    double med_s;  /* median timed call */
} shape_t;

typedef struct opts {
    int n_layer, d_model, vocab, vocab_pad, tokens;
    int repeats, warmup;
    shape_t shapes[MAX_SHAPES];
    int n_shapes;
    int explicit_shapes; /* 1 = shapes came from --shape, not from the model dims */
} opts_t;

static void usage(FILE *f) {
    fprintf(f,
            "Usage: ct_bench_sgemm [--n-layer L] [--d-model C] [--vocab V] [--vocab-pad P]\n"
            "                      [--tokens BT] [--repeats R] [--warmup W]\n"
            "       ct_bench_sgemm --shape M,N,K,TA,TB [--shape ...] [--repeats R] [--warmup W]\n"
            "\n"
            "Measures cblas_sgemm GFLOP/s at the GEMM shapes of one GPT-2 training step with\n"
            "the given dims (default GPT-2 124M: L=12 C=768 V=50257, BT=1024 tokens), or at the\n"
            "shapes given with --shape (TA/TB: N or T; row-major C(M,N) = op(A) @ op(B)).\n"
            "The lm head has the vocabulary rounded up to a multiple of P rows (default 64,\n"
            "as the trainer pads it).\n"
            "Prints one line per shape, then a JSON line {\"sgemm_gflops\": ...}: the step's\n"
            "GEMM FLOPs divided by the sum of the best times. Threads follow OMP_NUM_THREADS.\n");
}

/* Parses a decimal int in [lo, hi] into *out. Returns 0, or -1 (and says why on stderr). */
static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "ct_bench_sgemm: %s: '%s' is not an integer in [%d, %d]\n", flag, s, lo,
                hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int add_shape(opts_t *o, const char *name, int m, int n, int k, int ta, int tb, float beta,
                     int count) {
    if (o->n_shapes >= MAX_SHAPES) {
        fprintf(stderr, "ct_bench_sgemm: at most %d shapes\n", MAX_SHAPES);
        return -1;
    }
    shape_t *s = &o->shapes[o->n_shapes++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->m = m, s->n = n, s->k = k, s->ta = ta, s->tb = tb, s->beta = beta, s->count = count;
    return 0;
}

/* Parses "M,N,K,TA,TB" (TA, TB: N or T) into a new shape. Returns 0 or -1. */
static int parse_shape(opts_t *o, const char *spec) {
    int m, n, k;
    char ta, tb, extra;
    if (sscanf(spec, "%d,%d,%d,%c,%c%c", &m, &n, &k, &ta, &tb, &extra) != 5 || m < 1 || n < 1 ||
        k < 1 || (ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T')) {
        fprintf(stderr,
                "ct_bench_sgemm: --shape '%s': expected M,N,K,TA,TB with positive sizes and "
                "TA/TB N or T, e.g. 1024,2304,768,N,N\n",
                spec);
        return -1;
    }
    char name[32];
    snprintf(name, sizeof(name), "shape%d", o->n_shapes + 1);
    return add_shape(o, name, m, n, k, ta == 'T', tb == 'T', 0.0f, 1);
}

/* The three GEMMs of a linear layer y (BT,out) = x (BT,in) @ w (in,out), `count` times a step. */
static int add_linear(opts_t *o, const char *name, int bt, int in, int out, int count) {
    char buf[32];
    int rc = 0;
    snprintf(buf, sizeof(buf), "%s.fwd", name);
    rc |= add_shape(o, buf, bt, out, in, 0, 0, 0.0f, count);
    snprintf(buf, sizeof(buf), "%s.dx", name);
    rc |= add_shape(o, buf, bt, in, out, 0, 1, 0.0f, count);
    snprintf(buf, sizeof(buf), "%s.dw", name);
    rc |= add_shape(o, buf, in, out, bt, 1, 0, 1.0f, count);
    return rc;
}

static int add_model_shapes(opts_t *o) {
    int C = o->d_model, L = o->n_layer, BT = o->tokens;
    long vp = ((long)o->vocab + o->vocab_pad - 1) / o->vocab_pad * o->vocab_pad;
    if (vp > INT_MAX || (long)C * 4 > INT_MAX) {
        fprintf(stderr, "ct_bench_sgemm: model dims too large\n");
        return -1;
    }
    int Vp = (int)vp;
    int rc = 0;
    rc |= add_linear(o, "c_attn", BT, C, 3 * C, L);
    rc |= add_linear(o, "attn.c_proj", BT, C, C, L);
    rc |= add_linear(o, "c_fc", BT, C, 4 * C, L);
    rc |= add_linear(o, "mlp.c_proj", BT, 4 * C, C, L);
    /* The tied lm head keeps wte as (Vp, C), so its GEMMs are transposed relative to Conv1D. */
    rc |= add_shape(o, "lm_head.fwd", BT, Vp, C, 0, 1, 0.0f, 1);
    rc |= add_shape(o, "lm_head.dx", BT, C, Vp, 0, 0, 0.0f, 1);
    rc |= add_shape(o, "lm_head.dw", Vp, C, BT, 1, 0, 1.0f, 1);
    return rc;
}

/* Parses argv into *o. Returns 0, 1 for --help (usage printed), or -1 (bad usage, said why). */
static int parse_args(opts_t *o, int argc, char **argv) {
    *o = (opts_t){.n_layer = 12,
                  .d_model = 768,
                  .vocab = 50257,
                  .vocab_pad = 64,
                  .tokens = 1024,
                  .repeats = 5,
                  .warmup = 2};
    struct {
        const char *flag;
        int *dst, lo, hi, model; /* model = 1: a model dim (excludes --shape) */
    } ints[] = {
        {"--n-layer", &o->n_layer, 1, 1000, 1},  {"--d-model", &o->d_model, 1, 65536, 1},
        {"--vocab", &o->vocab, 1, 1 << 24, 1},   {"--vocab-pad", &o->vocab_pad, 1, 4096, 1},
        {"--tokens", &o->tokens, 1, 1 << 20, 1}, {"--repeats", &o->repeats, 1, 10000, 0},
        {"--warmup", &o->warmup, 0, 10000, 0},
    };
    int model_flag = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ct_bench_sgemm: unknown argument or missing value: '%s'\n", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--shape")) {
            if (parse_shape(o, v) != 0) return -1;
            o->explicit_shapes = 1;
            continue;
        }
        size_t j = 0;
        while (j < sizeof(ints) / sizeof(ints[0]) && strcmp(a, ints[j].flag))
            j++;
        if (j == sizeof(ints) / sizeof(ints[0])) {
            fprintf(stderr, "ct_bench_sgemm: unknown argument '%s' (try --help)\n", a);
            return -1;
        }
        if (parse_int(a, v, ints[j].lo, ints[j].hi, ints[j].dst) != 0) return -1;
        model_flag |= ints[j].model;
    }
    if (o->explicit_shapes && model_flag) {
        fprintf(stderr, "ct_bench_sgemm: --shape and the model dims (--n-layer, --d-model, "
                        "--vocab, --vocab-pad, --tokens) exclude each other\n");
        return -1;
    }
    if (!o->explicit_shapes && add_model_shapes(o) != 0) return -1;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A 64-byte aligned buffer of n floats, every element written (so its pages are resident before
 * any timing) with small values from a fixed LCG. Returns NULL on allocation failure. */
static float *alloc_touched(size_t n, uint32_t seed) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (float)(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return p;
}

static void run_gemm(const shape_t *s, const float *a, const float *b, float *c) {
    int lda = s->ta ? s->m : s->k;
    int ldb = s->tb ? s->k : s->n;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                s->m, s->n, s->k, 1.0f, a, lda, b, ldb, s->beta, c, s->n);
}

/* Times every shape: o->warmup untimed calls, then o->repeats timed ones. Returns 0, or -1 when
 * the buffers cannot be allocated (said on stderr). */
static int measure(opts_t *o) {
    size_t na = 1, nb = 1, nc = 1;
    for (int i = 0; i < o->n_shapes; i++) {
        const shape_t *s = &o->shapes[i];
        size_t a = (size_t)s->m * s->k, b = (size_t)s->k * s->n, c = (size_t)s->m * s->n;
        na = a > na ? a : na, nb = b > nb ? b : nb, nc = c > nc ? c : nc;
    }
    int rc = -1;
    double *times = malloc((size_t)o->repeats * sizeof(double));
    float *a = alloc_touched(na, 1), *b = alloc_touched(nb, 2), *c = alloc_touched(nc, 3);
    if (!times || !a || !b || !c) {
        fprintf(stderr, "ct_bench_sgemm: cannot allocate %.1f MiB of buffers\n",
                (double)(na + nb + nc) * sizeof(float) / (1 << 20));
        goto out;
    }
    for (int i = 0; i < o->n_shapes; i++) {
        shape_t *s = &o->shapes[i];
        for (int r = 0; r < o->warmup; r++)
            run_gemm(s, a, b, c);
        for (int r = 0; r < o->repeats; r++) {
            double t0 = ct_now_s();
            run_gemm(s, a, b, c);
            times[r] = ct_now_s() - t0;
        }
        qsort(times, (size_t)o->repeats, sizeof(double), cmp_double);
        s->best_s = times[0];
        s->med_s = o->repeats % 2 ? times[o->repeats / 2]
                                  : 0.5 * (times[o->repeats / 2 - 1] + times[o->repeats / 2]);
        double gf = 2.0 * s->m * s->n * s->k * 1e-9;
        printf("%-16s %6d %6d %6d %c%c x%-3d %9.2f GFLOP/s best %9.2f median\n", s->name, s->m,
               s->n, s->k, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->count, gf / s->best_s,
               gf / s->med_s);
        fflush(stdout);
    }
    rc = 0;
out:
    free(times);
    free(a);
    free(b);
    free(c);
    return rc;
}

int main(int argc, char **argv) {
    static opts_t o; /* ~3 KiB of shapes: kept off the stack */
    int rc = parse_args(&o, argc, argv);
    if (rc != 0) return rc > 0 ? 0 : 2;

    char *config = openblas_get_config();
    char *core = openblas_get_corename();
    int threads = openblas_get_num_threads();
    printf("# OpenBLAS %s, core %s, %d threads, %d repeats after %d warm-up calls\n",
           config ? config : "?", core ? core : "?", threads, o.repeats, o.warmup);
    if (!o.explicit_shapes)
        printf("# GPT-2 step GEMMs: n_layer %d, d_model %d, vocab %d (lm head %d rows: a multiple "
               "of %d), %d tokens\n",
               o.n_layer, o.d_model, o.vocab, o.shapes[o.n_shapes - 1].m, o.vocab_pad, o.tokens);
    printf("%-16s %6s %6s %6s %2s %4s\n", "# gemm", "M", "N", "K", "op", "cnt");
    if (measure(&o) != 0) return 1;

    double flops = 0, best = 0, med = 0;
    for (int i = 0; i < o.n_shapes; i++) {
        const shape_t *s = &o.shapes[i];
        double f = 2.0 * s->m * s->n * s->k * s->count;
        flops += f;
        best += s->best_s * s->count;
        med += s->med_s * s->count;
    }
    printf("# step GEMMs: %.2f GFLOP in %.3f s (best) / %.3f s (median)\n", flops * 1e-9, best,
           med);
    printf("{\"sgemm_gflops\": %.2f, \"sgemm_gflops_median\": %.2f, \"step_gflop\": %.3f, "
           "\"threads\": %d, \"openblas_core\": \"%s\", \"shapes\": %d}\n",
           flops / best * 1e-9, flops / med * 1e-9, flops * 1e-9, threads, core ? core : "?",
           o.n_shapes);
    return 0;
}
