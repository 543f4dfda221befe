/* metrics.h — the public metrics stream RUN_DIR/public/metrics.jsonl: one JSON object per
 * logged step, floats printed %.9g (null when NaN or infinite, which JSON cannot spell: a step
 * the spike guard skipped may have a non-finite loss). Rank 0 of a group formats the lines and
 * sends them to its coordinator, which writes its RUN_DIR/public/metrics.jsonl (the run's, every
 * group's lines); an attached group whose RUN_DIR is its own also writes them there itself. */
#ifndef COTRAIN_METRICS_H
#define COTRAIN_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "cotrain/err.h"

typedef struct ct_metrics_record {
    int64_t step;   /* 1-based count of steps taken */
    int64_t tokens; /* tokens trained on so far */
    double loss, lr, grad_norm;
    double tokens_per_s; /* global-batch tokens / whole-step wall time */
    double mfu;          /* model FLOPs utilisation, 0..1 */
    uint64_t param_hash; /* ct_hash64 of the weights after the step */
    int skipped;         /* the spike guard skipped this step's update */
    double eval_loss;    /* loss on the held-out data; NaN: not evaluated at this step */
    const char *group;   /* the group's name */
} ct_metrics_record_t;

typedef struct ct_metrics ct_metrics_t;

/* Creates RUN_DIR/public/ if needed and starts metrics.jsonl afresh, or, when keep_through > 0
 * (a resumed run), keeps its lines up to that step and appends. Returns 0 or CT_EIO. */
int ct_metrics_open(ct_metrics_t **out, const char *run_dir, int64_t keep_through, ct_err_t *e);
enum { CT_METRICS_LINE_MAX = 768 };

/* r as its metrics line (JSON, no newline): what metrics.jsonl holds and a group sends its
 * coordinator. */
void ct_metrics_format(const ct_metrics_record_t *r, char line[CT_METRICS_LINE_MAX]);

/* Appends one line (from ct_metrics_format) and flushes it. Returns 0 or CT_EIO (disk full, ...).
 */
int ct_metrics_write(ct_metrics_t *m, const char *line, ct_err_t *e);
/* Closes the file and sets *self_p to NULL; NULL-safe. */
void ct_metrics_close(ct_metrics_t **self_p);

#endif
