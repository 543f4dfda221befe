/* outer.h — the coordinator's outer step in volunteer mode (DESIGN.md, "Volunteer mode"; DiLoCo):
 * the groups' deltas for one version of the global model checked, aggregated, and applied with
 * SGD with Nesterov momentum.
 *
 * Why robust rules: a volunteer can send anything. The plain mean lets one group move the model
 * as far as it likes; the coordinate-wise trimmed mean drops, for every parameter, the t largest
 * and t smallest values of the k deltas (t = floor(trim * k)), and the median keeps the middle,
 * so fewer than t (half, for the median) bad groups cannot pull any coordinate outside the range
 * of the honest ones. Before that, deltas whose L2 norm is far above the median norm are set
 * aside (scaled attacks), with the reason logged. */
#ifndef COTRAIN_OUTER_H
#define COTRAIN_OUTER_H

#include <stdint.h>

#include "cotrain/err.h"

typedef enum ct_agg_rule {
    CT_AGG_MEAN,
    CT_AGG_TRIMMED_MEAN,
    CT_AGG_MEDIAN,
    CT_AGG_NRULES
} ct_agg_rule_t;

/* The rule's name ("mean", "trimmed_mean", "median"), and back: -1 for an unknown name. */
const char *ct_agg_rule_name(ct_agg_rule_t r);
int ct_agg_rule_parse(const char *name);

/* norms[i] = the L2 norm of d[i][0..n) (summed in double), for i < k. */
void ct_outer_norms(const float *const *d, int k, int64_t n, double *norms);

/* Marks out[i] = 1 for each delta whose norm is above ratio times the median of the k norms
 * (ratio <= 0: none); returns how many. *median (may be NULL) gets that median. */
int ct_outer_outliers(const double *norms, int k, double ratio, int *out, double *median);

/* Aggregates the k deltas d[0..k) of n values each into out[0..n) by `rule`: the mean weighted by
 * w[0..k) (NULL: equal weights; for instance the tokens each group trained), or unweighted the
 * coordinate-wise trimmed mean (`trim` in [0, 0.5): the share dropped at each end) or median (the
 * mean of the two middle values when k is even). Sums in double; parallel over coordinates
 * (OpenMP). Errors: CT_EINVAL (k < 1, a trim that drops every value, weights not positive). */
int ct_outer_aggregate(ct_agg_rule_t rule, double trim, const float *const *d, const double *w,
                       int k, int64_t n, float *out, ct_err_t *e);

/* One outer step on the global parameters theta[0..n) with the aggregated pseudo-gradient g and
 * the momentum buffer mom (zeros at first; kept in the coordinator's checkpoint), as PyTorch's
 * SGD(lr, momentum=mu, nesterov=True): mom = mu * mom + g; theta -= lr * (g + mu * mom). */
void ct_outer_step(float *theta, float *mom, const float *g, int64_t n, float lr, float mu);

#endif
