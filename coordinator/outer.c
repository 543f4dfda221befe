/* outer.c — checking, aggregating and applying the groups' deltas (see outer.h). */
#include "cotrain/outer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_MAX = 1024 }; /* deltas one outer step aggregates at most (the per-coordinate scratch) */

static const char *const NAMES[CT_AGG_NRULES] = {"mean", "trimmed_mean", "median"};

const char *ct_agg_rule_name(ct_agg_rule_t r) {
    return r >= 0 && r < CT_AGG_NRULES ? NAMES[r] : "?";
}

int ct_agg_rule_parse(const char *name) {
    for (int r = 0; r < CT_AGG_NRULES; r++)
        if (!strcmp(name, NAMES[r])) return r;
    return -1;
}

void ct_outer_norms(const float *const *d, int k, int64_t n, double *norms) {
    for (int i = 0; i < k; i++) {
        double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (int64_t j = 0; j < n; j++)
            s += (double)d[i][j] * (double)d[i][j];
        norms[i] = sqrt(s);
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int ct_outer_outliers(const double *norms, int k, double ratio, int *out, double *median_out) {
    int n = 0;
    memset(out, 0, (size_t)k * sizeof *out);
    if (median_out) *median_out = 0;
    if (k < 1) return 0;
    double sorted[K_MAX];
    int m = k < K_MAX ? k : K_MAX;
    memcpy(sorted, norms, (size_t)m * sizeof *sorted);
    qsort(sorted, (size_t)m, sizeof *sorted, by_value);
    double median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    if (median_out) *median_out = median;
    if (ratio <= 0.0) return 0;
    for (int i = 0; i < k; i++)
        if (norms[i] > ratio * median) n += out[i] = 1;
    return n;
}

/* v[0..k) sorted in place (insertion: k is small, a few dozen at most in practice). */
static void sort_small(float *v, int k) {
    for (int i = 1; i < k; i++) {
        float x = v[i];
        int j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

int ct_outer_aggregate(ct_agg_rule_t rule, double trim, const float *const *d, const double *w,
                       int k, int64_t n, float *out, ct_err_t *e) {
    if (k < 1 || k > K_MAX)
        return CT_ERR(e, CT_EINVAL, "an outer step aggregates 1 to %d deltas, not %d", K_MAX, k);
    int t = rule == CT_AGG_TRIMMED_MEAN ? (int)floor(trim * k) : 0;
    if (rule == CT_AGG_TRIMMED_MEAN && (trim < 0.0 || trim >= 0.5 || 2 * t >= k))
        return CT_ERR(e, CT_EINVAL,
                      "trimmed mean: trim %g of %d deltas leaves none (give trim in [0, 0.5))",
                      trim, k);
    if (rule == CT_AGG_MEAN) {
        double total = 0.0;
        for (int i = 0; i < k; i++) {
            if (w && !(w[i] > 0.0))
                return CT_ERR(e, CT_EINVAL, "delta %d has weight %g: weights must be positive", i,
                              w[i]);
            total += w ? w[i] : 1.0;
        }
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int i = 0; i < k; i++)
                s += (w ? w[i] : 1.0) * (double)d[i][j];
            out[j] = (float)(s / total);
        }
        return 0;
    }
#pragma omp parallel
    {
        float v[K_MAX];
#pragma omp for schedule(static)
        for (int64_t j = 0; j < n; j++) {
            for (int i = 0; i < k; i++)
                v[i] = d[i][j];
            sort_small(v, k);
            if (rule == CT_AGG_MEDIAN) {
                out[j] =
                    k % 2 ? v[k / 2] : (float)(0.5 * ((double)v[k / 2 - 1] + (double)v[k / 2]));
            } else {
                double s = 0.0;
                for (int i = t; i < k - t; i++)
                    s += (double)v[i];
                out[j] = (float)(s / (double)(k - 2 * t));
            }
        }
    }
    return 0;
}

void ct_outer_step(float *theta, float *mom, const float *g, int64_t n, float lr, float mu) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        mom[j] = mu * mom[j] + g[j];
        theta[j] -= lr * (g[j] + mu * mom[j]);
    }
}
