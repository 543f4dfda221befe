/* test_delta.c — what the oracle (tests/oracle/test_outer.py) does not cover of the delta codecs
 * and the outer step: error feedback (the sum of what is sent tracks the sum of the deltas within
 * one encoding's error, after any number of deltas), refusals (non-finite input; encodings cut
 * short, with non-finite or negative scales, or non-finite values), int8 at the float range's
 * end, the outlier check by norm, the robustness of the trimmed mean and the median against bad
 * deltas, and bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/config.h"
#include "cotrain/delta.h"
#include "cotrain/outer.h"
#include "cotrain/rng.h"

enum { N = 1000, ROUNDS = 50 };

static float uniform(ct_rng_t *r) {
    return (float)((double)ct_rng_below(r, 1u << 24) / (double)(1u << 23) - 1.0);
}

/* error feedback: after ROUNDS deltas, sum(decoded) = sum(x) - err, |err| within one step */
static void test_error_feedback(ct_delta_codec_t c) {
    static float x[N], err[N], back[N];
    static double sent[N], truth[N];
    unsigned char *enc = malloc(ct_delta_encoded_size(c, N));
    ct_rng_t r;
    ct_rng_seed(&r, 11);
    memset(err, 0, sizeof err);
    memset(sent, 0, sizeof sent);
    memset(truth, 0, sizeof truth);
    ct_err_t e = {0};
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < N; i++) {
            x[i] = uniform(&r) * (i % 7 == 0 ? 1e-4f : 1e-2f); /* small ones get lost alone */
            truth[i] += x[i];
        }
        CHECK_EQ_INT(ct_delta_encode(c, x, err, N, enc, &e), 0);
        CHECK_EQ_INT(ct_delta_decode(c, enc, ct_delta_encoded_size(c, N), back, N, &e), 0);
        for (int i = 0; i < N; i++)
            sent[i] += back[i];
    }
    double worst = 0.0, without = 0.0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(sent[i] + err[i] - truth[i]));
        without = fmax(without, fabs(sent[i] - truth[i]));
    }
    CHECK(worst < 1e-5);     /* the telescoping sum: only float rounding */
    CHECK(without < 2.5e-4); /* what is still owed is within about one step of a block */
    free(enc);
}

static void test_refusals(void) {
    float x[300] = {0}, back[300];
    unsigned char enc[4 * 300 + 8];
    ct_err_t e = {0};
    x[5] = NAN;
    CHECK_EQ_INT(ct_delta_encode(CT_DELTA_INT8, x, NULL, 300, enc, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "value 5 is not finite");
    ct_err_clear(&e);
    x[5] = 1.0f;
    size_t len = ct_delta_encoded_size(CT_DELTA_INT8, 300);
    CHECK_EQ_INT((int)len, 2 * 4 + 300);
    CHECK_EQ_INT(ct_delta_encode(CT_DELTA_INT8, x, NULL, 300, enc, &e), 0);
    CHECK_EQ_INT(ct_delta_decode(CT_DELTA_INT8, enc, len - 1, back, 300, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "cut short");
    ct_err_clear(&e);
    float bad[] = {NAN, -1.0f, INFINITY};
    for (int i = 0; i < 3; i++) {
        unsigned char copy[sizeof enc];
        memcpy(copy, enc, len);
        memcpy(copy + 4, &bad[i], 4); /* block 1's scale */
        CHECK_EQ_INT(ct_delta_decode(CT_DELTA_INT8, copy, len, back, 300, &e), CT_ECORRUPT);
        CHECK_CONTAINS(e.msg, "block 1 has scale");
        ct_err_clear(&e);
    }
    uint16_t inf_bf16 = 0x7f80; /* bf16 +inf */
    unsigned char b16[4];
    memcpy(b16, &inf_bf16, 2);
    memcpy(b16 + 2, &inf_bf16, 2);
    CHECK_EQ_INT(ct_delta_decode(CT_DELTA_BF16, b16, 4, back, 2, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "value 0 is not finite");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_delta_codec_parse("int8"), CT_DELTA_INT8);
    CHECK_EQ_INT(ct_delta_codec_parse("int4"), -1);
}

/* what int8 encodes, it decodes: a block holding FLT_MAX (fuzz_delta found 127 x (FLT_MAX / 127)
 * rounding past FLT_MAX, so the decoder refused the encoder's own output as not finite) */
static void test_int8_extremes(void) {
    float x[3] = {3.4028235e38f, -3.4028235e38f, 1.0f}, back[3];
    unsigned char enc[4 + 3];
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_delta_encode(CT_DELTA_INT8, x, NULL, 3, enc, &e), 0);
    CHECK_EQ_INT(ct_delta_decode(CT_DELTA_INT8, enc, sizeof enc, back, 3, &e), 0);
    CHECK(back[0] > 3.3e38f && back[1] < -3.3e38f);
}

/* 7 honest deltas near 1, 2 bad ones far off: the trimmed mean (trim 0.25 drops 2 at each end)
 * and the median stay within the honest range; the mean does not; the norm check names them */
static void test_robust(void) {
    enum { K = 9, M = 64 };
    static float v[K][M], out[M];
    const float *d[K];
    ct_rng_t r;
    ct_rng_seed(&r, 5);
    for (int i = 0; i < K; i++) {
        for (int j = 0; j < M; j++)
            v[i][j] = i < 7 ? 1.0f + 0.01f * uniform(&r) : (i == 7 ? 1e4f : -1e4f * uniform(&r));
        d[i] = v[i];
    }
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_TRIMMED_MEAN, 0.25, d, NULL, K, M, out, &e), 0);
    for (int j = 0; j < M; j++)
        CHECK(out[j] > 0.99f && out[j] < 1.01f);
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_MEDIAN, 0, d, NULL, K, M, out, &e), 0);
    for (int j = 0; j < M; j++)
        CHECK(out[j] > 0.99f && out[j] < 1.01f);
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_MEAN, 0, d, NULL, K, M, out, &e), 0);
    CHECK(out[0] > 100.0f);
    double norms[K];
    int bad[K];
    ct_outer_norms(d, K, M, norms);
    CHECK(fabs(norms[0] - 8.0) < 0.1); /* sqrt(64 * ~1) */
    CHECK_EQ_INT(ct_outer_outliers(norms, K, 3.0, bad, NULL), 2);
    CHECK(bad[7] && bad[8] && !bad[0]);
    CHECK_EQ_INT(ct_outer_outliers(norms, K, 0.0, bad, NULL), 0);
    /* bad arguments */
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_TRIMMED_MEAN, 0.5, d, NULL, K, M, out, &e), CT_EINVAL);
    ct_err_clear(&e);
    double w[K] = {1, 1, 1, 0, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_MEAN, 0, d, w, K, M, out, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "delta 3 has weight 0");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_outer_aggregate(CT_AGG_MEDIAN, 0, d, NULL, 0, M, out, &e), CT_EINVAL);
    CHECK_EQ_INT(ct_agg_rule_parse("median"), CT_AGG_MEDIAN);
    CHECK_EQ_INT(ct_agg_rule_parse("mode"), -1);
}

/* The config names volunteer.aggregate and volunteer.compress by the enums' values: each name
 * set must load as the enum value of that name. */
static void test_config_names(void) {
    ct_config_t c;
    ct_err_t e = {0};
    char set[2][64];
    const char *sets[2] = {set[0], set[1]};
    for (int i = 0; i < CT_AGG_NRULES && i < CT_DELTA_NCODECS + 1; i++) {
        int codec = i < CT_DELTA_NCODECS ? i : 0;
        snprintf(set[0], sizeof set[0], "volunteer.aggregate=%s", ct_agg_rule_name(i));
        snprintf(set[1], sizeof set[1], "volunteer.compress=%s", ct_delta_codec_name(codec));
        CHECK_EQ_INT(ct_config_load(&c, NULL, NULL, sets, 2, &e), 0);
        CHECK_EQ_INT(c.volunteer.aggregate, i);
        CHECK_EQ_INT(c.volunteer.compress, codec);
    }
    CHECK_EQ_INT(CT_AGG_NRULES, 3);
    CHECK_EQ_INT(CT_DELTA_NCODECS, 3);
}

int main(void) {
    test_config_names();
    test_error_feedback(CT_DELTA_INT8);
    test_error_feedback(CT_DELTA_BF16);
    test_refusals();
    test_int8_extremes();
    test_robust();
    return CHECK_RESULT();
}
