/* metrics.c — appends metrics records to public/metrics.jsonl. */
#include "cotrain/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fsutil.h"

struct ct_metrics {
    FILE *f;
    char path[4096];
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
    char dir[4000];
    *out = NULL;
    snprintf(dir, sizeof dir, "%s/public", run_dir);
    CT_TRY(ct_mkdirs(dir, e));
    CT_ALLOC(e, m, 1, fail);
    snprintf(m->path, sizeof m->path, "%s/metrics.jsonl", dir);
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

int ct_metrics_write(ct_metrics_t *m, const ct_metrics_record_t *r, ct_err_t *e) {
    fprintf(m->f,
            "{\"step\":%" PRId64 ",\"tokens\":%" PRId64 ",\"loss\":%.9g,\"lr\":%.9g,"
            "\"grad_norm\":%.9g,\"tokens_per_s\":%.9g,\"mfu\":%.9g,\"param_hash\":\"%016" PRIx64
            "\",\"skipped\":%d,\"group\":\"%s\"}\n",
            r->step, r->tokens, r->loss, r->lr, r->grad_norm, r->tokens_per_s, r->mfu,
            r->param_hash, r->skipped, r->group);
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
