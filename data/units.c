/* units.c — one unit's windows in the sample order (see units.h). */
#include "cotrain/units.h"

#include <stdlib.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/mem.h"

struct ct_units {
    const ct_manifest_t *m;
    int n_shards, W; /* shards trained on; window length seq_len + 1 */
    uint64_t seed;
    char *file_buf;
    size_t file_cap;
    uint32_t *tokens;
    int64_t tok_cap;
    int loaded;     /* the shard in tokens, -1: none */
    int64_t *order; /* (tok_cap / W) window order of the unit */
    int64_t n_win, next;
};

int ct_units_open(ct_units_t **out, const ct_manifest_t *m, int n_shards, int seq_len,
                  uint64_t seed, ct_err_t *e) {
    int rc = 0;
    ct_units_t *u = NULL;
    *out = NULL;
    if (n_shards < 1 || n_shards > m->n_shards || seq_len < 1)
        return CT_ERR(e, CT_EINVAL, "units: %d shard(s) of %d, seq_len %d", n_shards, m->n_shards,
                      seq_len);
    CT_ALLOC(e, u, 1, fail);
    u->m = m;
    u->n_shards = n_shards;
    u->W = seq_len + 1;
    u->seed = seed;
    u->loaded = -1;
    CT_TRY_GOTO(ct_manifest_check_files(m, 0, n_shards, &u->file_cap, &u->tok_cap, e), fail);
    if (!(u->file_buf = ct_mem_alloc(u->file_cap, e)) ||
        !(u->tokens = ct_mem_alloc((size_t)u->tok_cap * sizeof(uint32_t), e))) {
        rc = e->code;
        goto fail;
    }
    CT_ALLOC(e, u->order, u->tok_cap / u->W + 1, fail);
    *out = u;
    return 0;
fail:
    ct_units_close(&u);
    return rc;
}

void ct_units_close(ct_units_t **self_p) {
    ct_units_t *u = *self_p;
    if (!u) return;
    ct_mem_free(u->file_buf, u->file_cap);
    ct_mem_free(u->tokens, (size_t)u->tok_cap * sizeof(uint32_t));
    free(u->order);
    free(u);
    *self_p = NULL;
}

int ct_units_start(ct_units_t *u, int shard, int64_t epoch, ct_err_t *e) {
    if (shard < 0 || shard >= u->n_shards)
        return CT_ERR(e, CT_EINVAL, "units: shard %d is not one of the %d trained on", shard,
                      u->n_shards);
    u->n_win = u->next = 0;
    if (u->loaded != shard) {
        u->loaded = -1;
        CT_TRY(ct_manifest_read_shard(u->m, shard, u->file_buf, u->file_cap, u->tokens, u->tok_cap,
                                      e));
        u->loaded = shard;
    }
    u->n_win = u->m->shards[shard].n_tokens / u->W;
    ct_data_window_order(u->seed, epoch, u->m->shards[shard].id, u->n_win, u->order);
    return 0;
}

int64_t ct_units_left(const ct_units_t *u) {
    return u->n_win - u->next;
}

void ct_units_take(ct_units_t *u, int *row) {
    if (row) {
        const uint32_t *w = u->tokens + u->order[u->next] * u->W;
        for (int k = 0; k < u->W; k++)
            row[k] = (int)w[k];
    }
    u->next++;
}

void ct_units_drop(ct_units_t *u) {
    u->n_win = u->next = 0;
}

int ct_units_find(const ct_units_t *u, const char *shard_id) {
    for (int i = 0; i < u->n_shards; i++)
        if (!strcmp(u->m->shards[i].id, shard_id)) return i;
    return -1;
}
