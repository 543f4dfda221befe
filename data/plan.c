/* plan.c — the data plan (see plan.h): the base shards, the changes, and the order they give.
 *
 * Each shard index keeps where it came from (a manifest and its index there) and the first
 * point it is skipped from, so an epoch's order is a shuffle, an append and a lookup per unit
 * (no change is walked per unit). */
#include "cotrain/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/json.h"

enum { ADD = 1, EXCLUDE = 2 };

typedef struct change {
    int kind;
    int64_t epoch, pos; /* add: pos unused (0) */
    int64_t first, n;   /* add: the indices it adds; exclude: its shards in `excluded` */
    char sha256[CT_SHA256_HEX], *path; /* add: the manifest */
    int64_t *excluded;                 /* exclude: (n) shard indices */
} change_t;

typedef struct source {
    const ct_manifest_t *m; /* the base, or one of `added` */
    int index;              /* in m */
} source_t;

struct ct_plan {
    const ct_manifest_t *base;
    uint64_t seed;
    int64_t n0, n;    /* base shards; all shards */
    source_t *src;    /* (n) */
    int64_t *x_epoch; /* (n) skipped from (x_epoch, x_pos) on; INT64_MAX: never */
    int64_t *x_pos;
    int64_t cap;
    ct_manifest_t **added; /* (n_changes at most) the manifests loaded */
    int n_added;
    change_t *ch;
    int n_changes, cap_changes;
};

int ct_plan_create(ct_plan_t **out, const ct_manifest_t *base, int held_out, uint64_t seed,
                   ct_err_t *e) {
    *out = NULL;
    if (held_out < 0 || held_out >= base->n_shards)
        return CT_ERR(e, CT_EINVAL,
                      "data.eval_shards = %d holds out %s of the %d shard(s) of %s: at least "
                      "one must be left to train on",
                      held_out, held_out < 0 ? "a negative number" : "all", base->n_shards,
                      base->path);
    int rc = 0;
    ct_plan_t *p = NULL;
    CT_ALLOC(e, p, 1, fail);
    p->base = base;
    p->seed = seed;
    p->n = p->n0 = p->cap = base->n_shards - held_out;
    CT_ALLOC(e, p->src, (size_t)p->cap, fail);
    CT_ALLOC(e, p->x_epoch, (size_t)p->cap, fail);
    CT_ALLOC(e, p->x_pos, (size_t)p->cap, fail);
    for (int64_t i = 0; i < p->n; i++) {
        p->src[i] = (source_t){base, (int)i};
        p->x_epoch[i] = p->x_pos[i] = INT64_MAX;
    }
    *out = p;
    return 0;
fail:
    ct_plan_destroy(&p);
    return rc;
}

static void change_clear(change_t *c) {
    free(c->path);
    free(c->excluded);
    memset(c, 0, sizeof *c);
}

void ct_plan_destroy(ct_plan_t **self_p) {
    ct_plan_t *p = *self_p;
    if (!p) return;
    for (int i = 0; i < p->n_changes; i++)
        change_clear(&p->ch[i]);
    for (int i = 0; i < p->n_added; i++)
        ct_manifest_destroy(&p->added[i]);
    free(p->added);
    free(p->ch);
    free(p->src);
    free(p->x_epoch);
    free(p->x_pos);
    free(p);
    *self_p = NULL;
}

int ct_plan_count(const ct_plan_t *p) {
    return p->n_changes;
}

int64_t ct_plan_shards(const ct_plan_t *p) {
    return p->n;
}

const ct_manifest_shard_t *ct_plan_shard(const ct_plan_t *p, int64_t i) {
    return &p->src[i].m->shards[p->src[i].index];
}

int64_t ct_plan_find(const ct_plan_t *p, const char *id) {
    for (int64_t i = 0; i < p->n; i++)
        if (!strcmp(ct_plan_shard(p, i)->id, id)) return i;
    return -1;
}

/* Shards added before epoch `epoch` (the shuffled part of its order), and in it (appended). */
static void epoch_parts(const ct_plan_t *p, int64_t epoch, int64_t *before, int64_t *during) {
    *before = p->n0;
    *during = 0;
    for (int i = 0; i < p->n_changes; i++)
        if (p->ch[i].kind == ADD) {
            if (p->ch[i].epoch < epoch) *before += p->ch[i].n;
            if (p->ch[i].epoch == epoch) *during += p->ch[i].n;
        }
}

int64_t ct_plan_epoch_len(const ct_plan_t *p, int64_t epoch) {
    int64_t before, during;
    epoch_parts(p, epoch, &before, &during);
    return before + during;
}

/* The k-th of the shards epoch `epoch` shuffles: the base's, then those of the adds before the
 * epoch in the order of their changes (when changes took effect in epoch order, as they do
 * unless a run went back to an earlier checkpoint, that is shard k itself). */
static int64_t shuffled(const ct_plan_t *p, int64_t epoch, int64_t k) {
    if (k < p->n0) return k;
    k -= p->n0;
    for (int i = 0; i < p->n_changes; i++)
        if (p->ch[i].kind == ADD && p->ch[i].epoch < epoch) {
            if (k < p->ch[i].n) return p->ch[i].first + k;
            k -= p->ch[i].n;
        }
    return -1; /* not reached: k < the count epoch_parts gives */
}

void ct_plan_order(const ct_plan_t *p, int64_t epoch, int64_t *order) {
    int64_t before, during;
    epoch_parts(p, epoch, &before, &during);
    ct_data_shard_order(p->seed, epoch, before, order);
    for (int64_t k = 0; k < before; k++)
        order[k] = shuffled(p, epoch, order[k]);
    int64_t k = before;
    for (int i = 0; i < p->n_changes; i++)
        if (p->ch[i].kind == ADD && p->ch[i].epoch == epoch)
            for (int64_t j = 0; j < p->ch[i].n; j++)
                order[k++] = p->ch[i].first + j;
}

int ct_plan_excluded(const ct_plan_t *p, int64_t epoch, int64_t pos, int64_t shard) {
    return epoch > p->x_epoch[shard] || (epoch == p->x_epoch[shard] && pos >= p->x_pos[shard]);
}

/* ---- changes ---- */

/* The manifest of an add: loaded, checked against its hash, the run's tokenizer and vocabulary,
 * and the shards the plan has (none may come twice). */
static int load_added(const ct_plan_t *p, const change_t *c, ct_manifest_t **out, ct_err_t *e) {
    CT_TRY(ct_manifest_load(out, c->path, e));
    ct_manifest_t *m = *out;
    int rc = 0;
    if (strcmp(m->sha256, c->sha256) != 0)
        rc = CT_ERR(e, CT_ECORRUPT,
                    "the data added to this run was %s with sha256 %.16s..., that file now has "
                    "%.16s...: put the manifest the run added back",
                    c->path, c->sha256, m->sha256);
    else if (strcmp(m->tokenizer, p->base->tokenizer) != 0 || m->vocab_size != p->base->vocab_size)
        rc = CT_ERR(e, CT_EINVAL,
                    "%s holds %s tokens of vocabulary %d, the run trains on %s tokens of "
                    "vocabulary %d: prepare the data with the run's tokenizer",
                    m->path, m->tokenizer, m->vocab_size, p->base->tokenizer, p->base->vocab_size);
    else if (m->n_shards != c->n)
        rc = CT_ERR(e, CT_ECORRUPT, "%s has %d shard(s), the change that added it says %lld",
                    m->path, m->n_shards, (long long)c->n);
    for (int i = 0; rc == 0 && i < m->n_shards; i++)
        if (ct_plan_find(p, m->shards[i].id) >= 0)
            rc = CT_ERR(e, CT_EINVAL,
                        "shard %s of %s is already in this run (shards are named by their "
                        "contents: this data is there already)",
                        m->shards[i].id, m->path);
    if (rc != 0) ct_manifest_destroy(out);
    return rc;
}

/* A change from its JSON; its shards are looked up in (or, for an add, counted after) the
 * plan's. */
static int parse_change(const ct_plan_t *p, const cJSON *js, int i, change_t *c, ct_err_t *e) {
    memset(c, 0, sizeof *c);
    const char *kind = ct_json_get_string(js, "kind");
    if (!kind || !ct_json_get_uint53(js, "epoch", &c->epoch))
        return CT_ERR(e, CT_ECORRUPT, "data change %d: \"kind\" or \"epoch\" is missing", i);
    if (!strcmp(kind, "add")) {
        const char *path = ct_json_get_string(js, "manifest");
        const char *sha = ct_json_get_string(js, "sha256");
        if (!path || !sha || strlen(sha) != CT_SHA256_HEX - 1 ||
            !ct_json_get_uint53(js, "shards", &c->n) || c->n < 1)
            return CT_ERR(e, CT_ECORRUPT,
                          "data change %d (add): \"manifest\", \"sha256\" or \"shards\" is "
                          "missing or wrong",
                          i);
        c->kind = ADD;
        c->first = p->n;
        snprintf(c->sha256, sizeof c->sha256, "%s", sha);
        if (!(c->path = strdup(path))) return CT_ERR(e, CT_ENOMEM, "out of memory");
        return 0;
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(js, "shards");
    if (strcmp(kind, "exclude") != 0 || !ct_json_get_uint53(js, "pos", &c->pos) ||
        !cJSON_IsArray(ids) || cJSON_GetArraySize(ids) < 1)
        return CT_ERR(e, CT_ECORRUPT,
                      "data change %d: not an add, nor an exclude with \"pos\" and \"shards\"", i);
    c->kind = EXCLUDE;
    c->n = cJSON_GetArraySize(ids);
    if (!(c->excluded = malloc((size_t)c->n * sizeof *c->excluded)))
        return CT_ERR(e, CT_ENOMEM, "out of memory");
    int64_t k = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, ids) {
        int64_t s = cJSON_IsString(id) ? ct_plan_find(p, id->valuestring) : -1;
        if (s < 0) {
            int rc =
                CT_ERR(e, CT_EINVAL, "data change %d excludes %s, which this run does not have", i,
                       cJSON_IsString(id) ? id->valuestring : "(not a string)");
            change_clear(c);
            return rc;
        }
        c->excluded[k++] = s;
    }
    return 0;
}

/* 1 when change c is what js says (a change the plan applied before). */
static int same_change(const ct_plan_t *p, const change_t *c, const cJSON *js, int i) {
    change_t d;
    ct_err_t ignored = {0};
    if (parse_change(p, js, i, &d, &ignored) != 0) return 0;
    int same = d.kind == c->kind && d.epoch == c->epoch && d.pos == c->pos && d.n == c->n;
    if (same && c->kind == ADD) same = !strcmp(d.sha256, c->sha256) && !strcmp(d.path, c->path);
    for (int64_t k = 0; same && c->kind == EXCLUDE && k < c->n; k++)
        same = d.excluded[k] == c->excluded[k];
    change_clear(&d);
    return same;
}

static int grow(ct_plan_t *p, int64_t n, ct_err_t *e) {
    if (n > p->cap) {
        int64_t cap = n > 2 * p->cap ? n : 2 * p->cap;
        source_t *s = realloc(p->src, (size_t)cap * sizeof *s);
        if (s) p->src = s;
        int64_t *xe = s ? realloc(p->x_epoch, (size_t)cap * sizeof *xe) : NULL;
        if (xe) p->x_epoch = xe;
        int64_t *xp = xe ? realloc(p->x_pos, (size_t)cap * sizeof *xp) : NULL;
        if (!xp) return CT_ERR(e, CT_ENOMEM, "out of memory adding data");
        p->x_pos = xp;
        p->cap = cap;
    }
    if (p->n_changes == p->cap_changes) {
        int cap = p->cap_changes ? 2 * p->cap_changes : 4;
        change_t *c = realloc(p->ch, (size_t)cap * sizeof *c);
        if (c) p->ch = c;
        ct_manifest_t **a = c ? realloc(p->added, (size_t)cap * sizeof *a) : NULL;
        if (!a) return CT_ERR(e, CT_ENOMEM, "out of memory adding data");
        p->added = a;
        p->cap_changes = cap;
    }
    return 0;
}

/* Exclusion c's shards are skipped from its point on, unless an earlier point skips them. */
static void mark_excluded(ct_plan_t *p, const change_t *c) {
    for (int64_t k = 0; k < c->n; k++) {
        int64_t s = c->excluded[k];
        if (c->epoch < p->x_epoch[s] || (c->epoch == p->x_epoch[s] && c->pos < p->x_pos[s])) {
            p->x_epoch[s] = c->epoch;
            p->x_pos[s] = c->pos;
        }
    }
}

/* Applies change c (taking its contents) to the plan. */
static int apply_one(ct_plan_t *p, change_t *c, ct_err_t *e) {
    ct_manifest_t *m = NULL;
    if (c->kind == ADD) CT_TRY(load_added(p, c, &m, e));
    int rc = grow(p, p->n + (c->kind == ADD ? c->n : 0), e);
    if (rc != 0) {
        ct_manifest_destroy(&m);
        return rc;
    }
    if (c->kind == ADD) {
        for (int64_t j = 0; j < c->n; j++) {
            p->src[p->n + j] = (source_t){m, (int)j};
            p->x_epoch[p->n + j] = p->x_pos[p->n + j] = INT64_MAX;
        }
        p->n += c->n;
        p->added[p->n_added++] = m;
    } else {
        mark_excluded(p, c);
    }
    p->ch[p->n_changes++] = *c;
    memset(c, 0, sizeof *c);
    return 0;
}

/* Undoes the changes past the first `keep` (after a failed ct_plan_apply). */
static void truncate_to(ct_plan_t *p, int keep) {
    while (p->n_changes > keep) {
        change_t *c = &p->ch[--p->n_changes];
        if (c->kind == ADD) {
            p->n -= c->n;
            ct_manifest_destroy(&p->added[--p->n_added]);
        }
        change_clear(c);
    }
    for (int64_t s = 0; s < p->n; s++)
        p->x_epoch[s] = p->x_pos[s] = INT64_MAX;
    for (int i = 0; i < p->n_changes; i++)
        if (p->ch[i].kind == EXCLUDE) mark_excluded(p, &p->ch[i]);
}

int ct_plan_apply(ct_plan_t *p, const cJSON *changes, int *applied, ct_err_t *e) {
    if (applied) *applied = 0;
    if (!cJSON_IsArray(changes))
        return CT_ERR(e, CT_ECORRUPT, "the data changes are not a JSON array");
    int n = cJSON_GetArraySize(changes), keep = p->n_changes, rc = 0;
    if (n < keep)
        return CT_ERR(e, CT_ECORRUPT,
                      "the run's data plan has %d change(s), this list only %d: a plan only grows",
                      keep, n);
    const cJSON *js = changes->child;
    for (int i = 0; i < keep; i++, js = js->next)
        if (!same_change(p, &p->ch[i], js, i))
            return CT_ERR(e, CT_ECORRUPT,
                          "data change %d differs from the one this run applied before", i);
    for (int i = keep; rc == 0 && i < n; i++, js = js->next) {
        change_t c;
        rc = parse_change(p, js, i, &c, e);
        if (rc == 0 && (rc = apply_one(p, &c, e)) != 0) change_clear(&c);
    }
    if (rc != 0) {
        truncate_to(p, keep);
        return rc;
    }
    if (applied) *applied = n - keep;
    return 0;
}

cJSON *ct_plan_changes_json(const ct_plan_t *p) {
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (int i = 0; ok && i < p->n_changes; i++) {
        const change_t *c = &p->ch[i];
        cJSON *o = cJSON_CreateObject(), *ids = NULL;
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        ok = cJSON_AddStringToObject(o, "kind", c->kind == ADD ? "add" : "exclude") &&
             cJSON_AddNumberToObject(o, "epoch", (double)c->epoch);
        if (ok && c->kind == ADD)
            ok = cJSON_AddStringToObject(o, "manifest", c->path) &&
                 cJSON_AddStringToObject(o, "sha256", c->sha256) &&
                 cJSON_AddNumberToObject(o, "shards", (double)c->n);
        else if (ok)
            ok = cJSON_AddNumberToObject(o, "pos", (double)c->pos) &&
                 (ids = cJSON_AddArrayToObject(o, "shards"));
        for (int64_t k = 0; ok && ids && k < c->n; k++)
            ok =
                cJSON_AddItemToArray(ids, cJSON_CreateString(ct_plan_shard(p, c->excluded[k])->id));
    }
    if (!ok) { /* out of memory on the way */
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

/* ---- shard files ---- */

int ct_plan_check_files(const ct_plan_t *p, int64_t first, int64_t n, size_t *file_cap,
                        int64_t *tok_cap, ct_err_t *e) {
    for (int64_t i = first; i < first + n; i++)
        CT_TRY(ct_manifest_check_files(p->src[i].m, p->src[i].index, 1, file_cap, tok_cap, e));
    return 0;
}

int ct_plan_read_shard(const ct_plan_t *p, int64_t i, void *buf, size_t buf_cap, uint32_t *tokens,
                       int64_t tok_cap, ct_err_t *e) {
    return ct_manifest_read_shard(p->src[i].m, p->src[i].index, buf, buf_cap, tokens, tok_cap, e);
}
