/* windows.c — consecutive windows over a run of shards (see windows.h). One shard's tokens are
 * held at a time; the shard a window starts in is found by binary search over the running token
 * counts. */
#include "cotrain/windows.h"

#include <stdlib.h>

#include "cotrain/mem.h"

struct ct_windows {
    const ct_manifest_t *m;
    int first, n;   /* the shards */
    int W;          /* seq_len + 1 */
    int64_t *start; /* (n + 1) tokens before shard first + i */
    char *file_buf; /* (file_cap) */
    size_t file_cap;
    uint32_t *tokens; /* (tok_cap) the shard `held` */
    int64_t tok_cap;
    int held; /* index into the range, or -1 */
};

int ct_windows_open(ct_windows_t **out, const ct_manifest_t *m, int first, int n_shards,
                    int seq_len, ct_err_t *e) {
    int rc = 0;
    ct_windows_t *w = NULL;
    *out = NULL;
    if (first < 0 || n_shards < 1 || first + n_shards > m->n_shards || seq_len < 1)
        return CT_ERR(e, CT_EINVAL,
                      "windows over shards %d..%d of %s (which has %d), seq_len "
                      "%d: out of range",
                      first, first + n_shards - 1, m->path, m->n_shards, seq_len);
    CT_ALLOC(e, w, 1, fail);
    w->m = m;
    w->first = first;
    w->n = n_shards;
    w->W = seq_len + 1;
    w->held = -1;
    CT_ALLOC(e, w->start, n_shards + 1, fail);
    for (int i = 0; i < n_shards; i++)
        w->start[i + 1] = w->start[i] + m->shards[first + i].n_tokens;
    CT_TRY_GOTO(ct_manifest_check_files(m, first, n_shards, &w->file_cap, &w->tok_cap, e), fail);
    if (!(w->file_buf = ct_mem_alloc(w->file_cap, e)) ||
        !(w->tokens = ct_mem_alloc((size_t)w->tok_cap * sizeof *w->tokens, e))) {
        rc = e->code;
        goto fail;
    }
    *out = w;
    return 0;
fail:
    ct_windows_destroy(&w);
    return rc;
}

void ct_windows_destroy(ct_windows_t **self_p) {
    ct_windows_t *w = *self_p;
    if (!w) return;
    ct_mem_free(w->file_buf, w->file_cap);
    ct_mem_free(w->tokens, (size_t)w->tok_cap * sizeof *w->tokens);
    free(w->start);
    free(w);
    *self_p = NULL;
}

int64_t ct_windows_count(const ct_windows_t *w) {
    return w->start[w->n] / w->W;
}

int64_t ct_windows_tokens(const ct_windows_t *w) {
    return w->start[w->n];
}

/* The shard (index into the range) holding token t of the range. */
static int shard_of(const ct_windows_t *w, int64_t t) {
    int lo = 0, hi = w->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (w->start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int ct_windows_read(ct_windows_t *w, int64_t first, int n, int *rows, ct_err_t *e) {
    if (first < 0 || n < 0 || first + n > ct_windows_count(w))
        return CT_ERR(e, CT_EINVAL, "windows %lld..%lld requested, %s has %lld", (long long)first,
                      (long long)(first + n - 1), w->m->path, (long long)ct_windows_count(w));
    int64_t t = first * w->W, end = (first + n) * w->W;
    while (t < end) {
        int s = shard_of(w, t);
        if (s != w->held) {
            w->held = -1;
            CT_TRY(ct_manifest_read_shard(w->m, w->first + s, w->file_buf, w->file_cap, w->tokens,
                                          w->tok_cap, e));
            w->held = s;
        }
        int64_t stop = w->start[s + 1] < end ? w->start[s + 1] : end;
        for (; t < stop; t++)
            rows[t - first * w->W] = (int)w->tokens[t - w->start[s]];
    }
    return 0;
}
