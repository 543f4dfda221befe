/* metrics.c — appends metrics records to public/metrics.jsonl. */
#include "cotrain/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fsutil.h"

struct ct_metrics {
    FILE *f;
    char path[CT_PATH_MAX];
};

/* Keeps the lines of path whose "step" is at most `through` (a resumed run: lines a killed run
 * logged after its checkpoint would otherwise appear twice). Rewritten atomically. */
static int keep_lines_through(const char *path, int64_t through, ct_err_t *e) {
    char *text = NULL;
    size_t len = 0;
    ct_err_t missing = {0};
    if (ct_read_file(path, &text, &len, &missing) != 0) return 0; /* nothing logged yet */
    size_t kept = 0;
    for (char *line = text; line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        end = end ? end + 1 : text + len;
        long long step = -1;
        if (sscanf(line, "{\"step\":%lld", &step) == 1 && step <= through) {
            memmove(text + kept, line, (size_t)(end - line));
            kept += (size_t)(end - line);
        }
        line = end;
    }
    int rc = ct_write_file_atomic(path, text, kept, e);
    free(text);
    return rc;
}

int ct_metrics_open(ct_metrics_t **out, const char *run_dir, int64_t keep_through, ct_err_t *e) {
    int rc = 0;
    ct_metrics_t *m = NULL;
    char dir[CT_PATH_MAX];
    *out = NULL;
    CT_TRY(ct_path_join(dir, sizeof dir, run_dir, "public", e));
    CT_TRY(ct_mkdirs(dir, e));
    CT_ALLOC(e, m, 1, fail);
    CT_TRY_GOTO(ct_path_join(m->path, sizeof m->path, dir, "metrics.jsonl", e), fail);
    if (keep_through > 0) CT_TRY_GOTO(keep_lines_through(m->path, keep_through, e), fail);
    m->f = fopen(m->path, keep_through > 0 ? "a" : "w");
    if (!m->f) {
        rc = CT_ERR(e, CT_EIO, "cannot create %s: %s", m->path, strerror(errno));
        goto fail;
    }
    *out = m;
    return 0;
fail:
    ct_metrics_close(&m);
    return rc;
}

/* x as a JSON number (%.9g), or null when it is NaN or infinite: JSON has no spelling for those,
 * and a step the spike guard skipped may have a non-finite loss or gradient norm. */
static const char *json_number(double x, char buf[32]) {
    if (!isfinite(x)) return "null";
    snprintf(buf, 32, "%.9g", x);
    return buf;
}

void ct_metrics_format(const ct_metrics_record_t *r, char line[CT_METRICS_LINE_MAX]) {
    char loss[32], lr[32], norm[32], tps[32], mfu[32], ev[32], eval[48] = "";
    if (!isnan(r->eval_loss))
        snprintf(eval, sizeof eval, ",\"eval_loss\":%s", json_number(r->eval_loss, ev));
    snprintf(line, CT_METRICS_LINE_MAX,
             "{\"step\":%" PRId64 ",\"tokens\":%" PRId64 ",\"loss\":%s,\"lr\":%s,"
             "\"grad_norm\":%s,\"tokens_per_s\":%s,\"mfu\":%s,\"param_hash\":\"%016" PRIx64
             "\",\"skipped\":%d,\"group\":\"%.96s\"%s}",
             r->step, r->tokens, json_number(r->loss, loss), json_number(r->lr, lr),
             json_number(r->grad_norm, norm), json_number(r->tokens_per_s, tps),
             json_number(r->mfu, mfu), r->param_hash, r->skipped, r->group, eval);
}

int ct_metrics_write(ct_metrics_t *m, const char *line, ct_err_t *e) {
    fprintf(m->f, "%s\n", line);
    if (fflush(m->f) != 0 || ferror(m->f))
        return CT_ERR(e, CT_EIO, "writing %s failed: %s (is the disk full?)", m->path,
                      strerror(errno));
    return 0;
}

void ct_metrics_close(ct_metrics_t **self_p) {
    ct_metrics_t *m = *self_p;
    if (!m) return;
    if (m->f) fclose(m->f);
    free(m);
    *self_p = NULL;
}
