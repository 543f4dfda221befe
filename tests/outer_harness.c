/* outer_harness.c — drives the delta codecs (comm/delta.c) and the outer step (coordinator/
 * outer.c) for their oracle, tests/oracle/test_outer.py (NumPy and PyTorch), which owns the
 * contract. Files are raw little-endian float32 (weights float64):
 *   outer_harness codec NAME N IN OUT.enc OUT.dec   encode N values, and decode what was encoded
 *   outer_harness aggregate RULE TRIM K N IN W|- OUT   K deltas of N values (IN: K*N), weights W
 *   outer_harness step LR MU N STEPS THETA GRADS OUT   STEPS outer steps (GRADS: STEPS*N)
 * Exit status 0, 1 on an error (printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/delta.h"
#include "cotrain/outer.h"

static void *load(const char *path, size_t bytes) {
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes ? bytes : 1);
    size_t got = f && p ? fread(p, 1, bytes, f) : 0;
    int extra = f ? fgetc(f) : 0;
    if (f) fclose(f);
    if (got != bytes || extra != EOF) {
        fprintf(stderr, "outer_harness: %s is not %zu bytes\n", path, bytes);
        exit(1);
    }
    return p;
}

static void save(const char *path, const void *p, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "outer_harness: cannot write %s\n", path);
        exit(1);
    }
}

static int fail(const ct_err_t *e) {
    fprintf(stderr, "outer_harness: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv) {
    ct_err_t e = {0};
    if (argc == 7 && !strcmp(argv[1], "codec")) {
        int c = ct_delta_codec_parse(argv[2]);
        int64_t n = atoll(argv[3]);
        float *x = load(argv[4], (size_t)n * 4), *back = malloc((size_t)n * 4 + 1);
        size_t len = ct_delta_encoded_size(c, n);
        void *enc = malloc(len + 1);
        int rc = c < 0 || !back || !enc;
        if (rc == 0 && (ct_delta_encode(c, x, NULL, n, enc, &e) != 0 ||
                        ct_delta_decode(c, enc, len, back, n, &e) != 0))
            rc = fail(&e);
        if (rc == 0) {
            save(argv[5], enc, len);
            save(argv[6], back, (size_t)n * 4);
        }
        free(x);
        free(back);
        free(enc);
        return rc;
    }
    if (argc == 9 && !strcmp(argv[1], "aggregate")) {
        int rule = ct_agg_rule_parse(argv[2]), k = atoi(argv[4]);
        int64_t n = atoll(argv[5]);
        float *all = load(argv[6], (size_t)k * (size_t)n * 4), *out = malloc((size_t)n * 4 + 1);
        double *w = strcmp(argv[7], "-") ? load(argv[7], (size_t)k * 8) : NULL;
        const float **d = malloc((size_t)k * sizeof *d);
        int rc = rule < 0 || !out || !d;
        for (int i = 0; rc == 0 && i < k; i++)
            d[i] = all + (size_t)i * (size_t)n;
        if (rc == 0 && ct_outer_aggregate(rule, atof(argv[3]), d, w, k, n, out, &e) != 0)
            rc = fail(&e);
        if (rc == 0) save(argv[8], out, (size_t)n * 4);
        free(all);
        free(out);
        free(w);
        free(d);
        return rc;
    }
    if (argc == 9 && !strcmp(argv[1], "step")) {
        int64_t n = atoll(argv[4]), steps = atoll(argv[5]);
        float *theta = load(argv[6], (size_t)n * 4);
        float *g = load(argv[7], (size_t)(steps * n) * 4), *mom = calloc((size_t)n + 1, 4);
        for (int64_t s = 0; mom && s < steps; s++)
            ct_outer_step(theta, mom, g + s * n, n, (float)atof(argv[2]), (float)atof(argv[3]));
        if (mom) save(argv[8], theta, (size_t)n * 4);
        free(theta);
        free(g);
        free(mom);
        return !mom;
    }
    fprintf(stderr, "usage: see the head of outer_harness.c\n");
    return 1;
}
