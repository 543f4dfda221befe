/* data.c — the loader: a deterministic sample stream over the shards of a manifest, produced a
 * few steps ahead by a background thread so the training step never waits on disk.
 *
 * The stream (see data.h for its definition) is walked by the reading thread only; the consumer
 * sees finished steps through a small ring of slots, each carrying the cursor that follows it, so
 * ct_data_cursor always describes what the trainer has consumed, not what was read ahead. Two
 * shards are kept in memory: the one being read and the next one, loaded while the ring is full. */
#include "cotrain/clock.h"
#include "cotrain/data.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/mem.h"
#include "cotrain/plan.h"
#include "cotrain/rng.h"
#include "cotrain/shard.h"
#include "cotrain/thread.h"

typedef struct loaded {
    int64_t index;    /* plan index, -1 = empty */
    uint32_t *tokens; /* (tok_cap) */
} loaded_t;

typedef struct slot {
    int *rows; /* (local, W) */
    ct_data_cursor_t after;
    int rc;
    ct_err_t err;
} slot_t;

/* The reading thread's position and caches. */
typedef struct stream {
    int64_t epoch, pos, offset, samples;
    int64_t len;         /* units in `epoch` */
    int64_t *order;      /* (cap) shard order of `epoch` */
    int64_t *next_order; /* (cap) scratch: the order of epoch + 1 */
    int64_t *perm;       /* window order of (perm_shard, perm_epoch) */
    int64_t perm_cap, perm_shard, perm_epoch;
    loaded_t cache[2];
    int mru; /* cache entry used last */
} stream_t;

struct ct_data {
    ct_manifest_t *m;
    ct_plan_t *plan; /* the shards trained on (the manifest's first ones, and any added) */
    int64_t cap;     /* shards n_win and the orders have room for */
    ct_data_opts_t o;
    int W, local;   /* window (seq_len + 1) and rows per rank per step */
    int64_t *n_win; /* (cap) windows per shard */
    /* Buffers sized for the largest shard, faulted in once at open and reused for every shard
       (a fresh page costs ~11 us on first touch: per shard that would dominate loading). */
    char *file_buf; /* (file_cap) a shard file's bytes, reader thread only */
    size_t file_cap;
    int64_t tok_cap; /* tokens of the largest shard */
    int64_t total_windows;
    stream_t st;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t can_put, can_take;
    slot_t *slots; /* (K) ring */
    int K, head, count, stop;
    ct_data_cursor_t cur; /* consumer side */
    double waited;
    int failed;
};

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void shuffle(int64_t *a, int64_t n, uint64_t seed) {
    ct_rng_t rng;
    ct_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++)
        a[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void ct_data_shard_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order) {
    shuffle(order, n, mix64(seed ^ mix64(0x5eed0001ULL + (uint64_t)epoch)));
}

void ct_data_window_order(uint64_t seed, int64_t epoch, const char *shard_id, int64_t n,
                          int64_t *order) {
    shuffle(order, n, mix64(seed ^ ct_hash64(shard_id, strlen(shard_id)) ^ mix64((uint64_t)epoch)));
}

static void enter_epoch(ct_data_t *d, int64_t epoch) {
    stream_t *s = &d->st;
    s->epoch = epoch;
    s->len = ct_plan_epoch_len(d->plan, epoch);
    ct_plan_order(d->plan, epoch, s->order);
}

/* The windows of the unit at position pos of epoch (shard idx): none once it is excluded. */
static int64_t unit_windows(const ct_data_t *d, int64_t epoch, int64_t pos, int64_t idx) {
    return ct_plan_excluded(d->plan, epoch, pos, idx) ? 0 : d->n_win[idx];
}

/* Moves past exhausted, empty and excluded units (there is at least one window somewhere). */
static void normalize(ct_data_t *d) {
    stream_t *s = &d->st;
    while (s->offset >= unit_windows(d, s->epoch, s->pos, s->order[s->pos])) {
        s->offset = 0;
        if (++s->pos == s->len) {
            s->pos = 0;
            enter_epoch(d, s->epoch + 1);
        }
    }
}

static void stream_cursor(const ct_data_t *d, ct_data_cursor_t *c) {
    const stream_t *s = &d->st;
    memset(c, 0, sizeof *c);
    c->seed = d->o.seed;
    c->epoch = s->epoch;
    c->shard_pos = s->pos;
    snprintf(c->shard_id, sizeof c->shard_id, "%s", ct_plan_shard(d->plan, s->order[s->pos])->id);
    c->offset = s->offset;
    c->samples = s->samples;
}

/* Reads shard `index` into the cache entry `l` (its token buffer is reused), checking the file
 * against the manifest's sha256 first and its contents after. On failure `l` is left empty. */
static int load_shard(ct_data_t *d, int64_t index, loaded_t *l, ct_err_t *e) {
    l->index = -1;
    CT_TRY(ct_plan_read_shard(d->plan, index, d->file_buf, d->file_cap, l->tokens, d->tok_cap, e));
    l->index = index;
    return 0;
}

/* The tokens of shard `index`, loading it into the least recently used cache entry if needed. */
static int shard_tokens(ct_data_t *d, int64_t index, const uint32_t **tokens, ct_err_t *e) {
    stream_t *s = &d->st;
    for (int k = 0; k < 2; k++)
        if (s->cache[k].index == index) {
            s->mru = k;
            *tokens = s->cache[k].tokens;
            return 0;
        }
    int k = 1 - s->mru;
    CT_TRY(load_shard(d, index, &s->cache[k], e));
    s->mru = k;
    *tokens = s->cache[k].tokens;
    return 0;
}

/* Takes the next global sample; copies its W tokens into row unless row is NULL (another rank's
 * sample: nothing is read for it). */
static int take(ct_data_t *d, int *row, ct_err_t *e) {
    stream_t *s = &d->st;
    normalize(d);
    int64_t idx = s->order[s->pos];
    if (row) {
        if (s->perm_shard != idx || s->perm_epoch != s->epoch) {
            if (d->n_win[idx] > s->perm_cap) {
                int64_t *p = realloc(s->perm, (size_t)d->n_win[idx] * sizeof *p);
                if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory ordering shard windows");
                s->perm = p;
                s->perm_cap = d->n_win[idx];
            }
            ct_data_window_order(d->o.seed, s->epoch, ct_plan_shard(d->plan, idx)->id,
                                 d->n_win[idx], s->perm);
            s->perm_shard = idx;
            s->perm_epoch = s->epoch;
        }
        const uint32_t *tok;
        CT_TRY(shard_tokens(d, idx, &tok, e));
        const uint32_t *w = tok + s->perm[s->offset] * d->W;
        for (int k = 0; k < d->W; k++)
            row[k] = (int)w[k];
    }
    s->offset++;
    s->samples++;
    return 0;
}

/* The plan index of the next shard with windows after the current one (possibly itself). */
static int64_t next_shard(ct_data_t *d) {
    stream_t *s = &d->st;
    for (int64_t p = s->pos + 1; p < s->len; p++)
        if (unit_windows(d, s->epoch, p, s->order[p]) > 0) return s->order[p];
    int64_t len = ct_plan_epoch_len(d->plan, s->epoch + 1);
    ct_plan_order(d->plan, s->epoch + 1, s->next_order);
    for (int64_t p = 0; p < len; p++)
        if (unit_windows(d, s->epoch + 1, p, s->next_order[p]) > 0) return s->next_order[p];
    return -1;
}

/* Fills one step's slot: this rank's slice of the next global batch. */
static void fill(ct_data_t *d, slot_t *sl) {
    int lo = d->o.rank * d->local, hi = lo + d->local;
    sl->rc = 0;
    for (int i = 0; i < d->o.global_batch && sl->rc == 0; i++)
        sl->rc = take(d, i >= lo && i < hi ? sl->rows + (size_t)(i - lo) * d->W : NULL, &sl->err);
    stream_cursor(d, &sl->after);
}

static void *reader_main(void *arg) {
    ct_data_t *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        if (d->count < d->K) {
            slot_t *sl = &d->slots[(d->head + d->count) % d->K];
            pthread_mutex_unlock(&d->mu);
            fill(d, sl);
            pthread_mutex_lock(&d->mu);
            d->count++;
            pthread_cond_signal(&d->can_take);
            if (sl->rc != 0) break; /* the consumer reports it; nothing follows */
            continue;
        }
        /* The ring is full: the time to load the next shard, off the consumer's path. */
        int64_t next = next_shard(d);
        stream_t *s = &d->st;
        if (next >= 0 && s->cache[0].index != next && s->cache[1].index != next) {
            pthread_mutex_unlock(&d->mu);
            ct_err_t ignored = {0};
            /* A failure leaves the entry empty: it is met again, and reported, when the stream
               reaches the shard. */
            load_shard(d, next, &s->cache[1 - s->mru], &ignored);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        pthread_cond_wait(&d->can_put, &d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int check_opts(const ct_data_opts_t *o, ct_err_t *e) {
    if (o->seq_len < 1 || o->global_batch < 1 || o->world < 1 || o->rank < 0 ||
        o->rank >= o->world || o->prefetch < 0)
        return CT_ERR(e, CT_EINVAL,
                      "data loader: invalid options (seq_len %d, global_batch %d, "
                      "rank %d of %d, prefetch %d)",
                      o->seq_len, o->global_batch, o->rank, o->world, o->prefetch);
    if (o->global_batch % o->world != 0)
        return CT_ERR(e, CT_EINVAL,
                      "train.global_batch = %d is not divisible by the %d ranks: "
                      "choose a multiple of %d",
                      o->global_batch, o->world, o->world);
    return 0;
}

/* Positions the stream at cursor c, checking that it belongs to this data. */
static int seek(ct_data_t *d, const ct_data_cursor_t *c, ct_err_t *e) {
    stream_t *s = &d->st;
    if (c->seed != d->o.seed)
        return CT_ERR(e, CT_EINVAL, "the data cursor was made with seed %llu, this run has %llu",
                      (unsigned long long)c->seed, (unsigned long long)d->o.seed);
    int64_t len = c->epoch >= 0 ? ct_plan_epoch_len(d->plan, c->epoch) : 0;
    if (c->epoch < 0 || c->shard_pos < 0 || c->shard_pos >= len || c->offset < 0 || c->samples < 0)
        return CT_ERR(e, CT_EINVAL,
                      "the data cursor (epoch %lld, shard %lld, offset %lld) does "
                      "not fit %s, which has %lld shards to train on in that epoch",
                      (long long)c->epoch, (long long)c->shard_pos, (long long)c->offset,
                      d->m->path, (long long)len);
    enter_epoch(d, c->epoch);
    int64_t idx = s->order[c->shard_pos];
    const char *id = ct_plan_shard(d->plan, idx)->id;
    if (strcmp(id, c->shard_id) != 0 || c->offset > d->n_win[idx])
        return CT_ERR(e, CT_EINVAL,
                      "the data changed since the cursor was saved: position %lld "
                      "of epoch %lld was shard %s (offset %lld), in %s it is shard %s with %lld "
                      "windows; resume with the manifest the run started with",
                      (long long)c->shard_pos, (long long)c->epoch, c->shard_id,
                      (long long)c->offset, d->m->path, id, (long long)d->n_win[idx]);
    s->pos = c->shard_pos;
    s->offset = c->offset;
    s->samples = c->samples;
    return 0;
}

/* Makes room for the plan's shards past the first `known` (checking their files, counting their
 * windows) and grows the shard buffers when one of them is larger than any before. */
static int fit(ct_data_t *d, int64_t known, ct_err_t *e) {
    int64_t n = ct_plan_shards(d->plan);
    size_t file_cap = d->file_cap;
    int64_t tok_cap = d->tok_cap;
    CT_TRY(ct_plan_check_files(d->plan, known, n - known, &file_cap, &tok_cap, e));
    if (n > d->cap) {
        int64_t *a = realloc(d->n_win, (size_t)n * sizeof *a);
        if (a) d->n_win = a;
        int64_t *b = a ? realloc(d->st.order, (size_t)n * sizeof *b) : NULL;
        if (b) d->st.order = b;
        int64_t *c = b ? realloc(d->st.next_order, (size_t)n * sizeof *c) : NULL;
        if (!c)
            return CT_ERR(e, CT_ENOMEM, "out of memory for the data's %lld shards", (long long)n);
        d->st.next_order = c;
        d->cap = n;
    }
    for (int64_t i = known; i < n; i++) {
        d->n_win[i] = ct_plan_shard(d->plan, i)->n_tokens / d->W;
        d->total_windows += d->n_win[i];
    }
    if (file_cap > d->file_cap) {
        ct_mem_free(d->file_buf, d->file_cap);
        d->file_cap = 0;
        if (!(d->file_buf = ct_mem_alloc(file_cap, e))) return e->code;
        d->file_cap = file_cap;
    }
    if (tok_cap > d->tok_cap) {
        for (int k = 0; k < 2; k++) {
            ct_mem_free(d->st.cache[k].tokens, (size_t)d->tok_cap * sizeof(uint32_t));
            d->st.cache[k].tokens = NULL;
            d->st.cache[k].index = -1;
        }
        d->tok_cap = 0;
        for (int k = 0; k < 2; k++)
            if (!(d->st.cache[k].tokens = ct_mem_alloc((size_t)tok_cap * sizeof(uint32_t), e)))
                return e->code;
        d->tok_cap = tok_cap;
    }
    return 0;
}

/* Positions the stream at cursor c (NULL: the beginning) and reads the shard it starts in, so a
 * missing or corrupted one is reported before training. */
static int start_at(ct_data_t *d, const ct_data_cursor_t *c, ct_err_t *e) {
    if (c)
        CT_TRY(seek(d, c, e));
    else
        enter_epoch(d, 0);
    stream_cursor(d, &d->cur);
    normalize(d);
    const uint32_t *first;
    return shard_tokens(d, d->st.order[d->st.pos], &first, e);
}

static void stop_reader(ct_data_t *d) {
    if (!d->started) return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->can_put);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    d->started = 0;
    d->stop = 0;
}

static int start_reader(ct_data_t *d, ct_err_t *e) {
    d->head = d->count = 0;
    CT_TRY(ct_thread_start(&d->thread, reader_main, d, "the data reading thread", e));
    d->started = 1;
    return 0;
}

int ct_data_open(ct_data_t **out, const char *manifest, const ct_data_opts_t *o, ct_err_t *e) {
    int rc = 0;
    ct_data_t *d = NULL;
    *out = NULL;
    CT_TRY(check_opts(o, e));
    CT_ALLOC(e, d, 1, fail);
    d->o = *o;
    d->o.start = NULL;
    d->o.changes = NULL;
    d->W = o->seq_len + 1;
    d->local = o->global_batch / o->world;
    d->K = o->prefetch ? o->prefetch : 2;
    d->st.cache[0].index = d->st.cache[1].index = -1;
    d->st.perm_shard = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->can_put, NULL);
    pthread_cond_init(&d->can_take, NULL);
    CT_TRY_GOTO(ct_manifest_load(&d->m, manifest, e), fail);
    CT_TRY_GOTO(ct_plan_create(&d->plan, d->m, o->held_out, o->seed, e), fail);
    if (o->changes) CT_TRY_GOTO(ct_plan_apply(d->plan, o->changes, NULL, e), fail);
    CT_TRY_GOTO(fit(d, 0, e), fail);
    if (d->total_windows == 0) {
        rc = CT_ERR(e, CT_EINVAL,
                    "%s has %lld tokens and no shard to train on holds one sample "
                    "of model.seq_len + 1 = %d tokens: use more text or a smaller model.seq_len",
                    d->m->path, (long long)d->m->n_tokens, d->W);
        goto fail;
    }
    CT_TRY_GOTO(start_at(d, o->start, e), fail);
    CT_ALLOC(e, d->slots, (size_t)d->K, fail);
    for (int k = 0; k < d->K; k++)
        CT_ALLOC(e, d->slots[k].rows, (size_t)d->local * (size_t)d->W, fail);
    CT_TRY_GOTO(start_reader(d, e), fail);
    *out = d;
    return 0;
fail:
    ct_data_destroy(&d);
    return rc;
}

int ct_data_replan(ct_data_t *d, const cJSON *changes, ct_err_t *e) {
    stop_reader(d);
    int64_t known = ct_plan_shards(d->plan);
    ct_data_cursor_t at = d->cur;
    int rc = ct_plan_apply(d->plan, changes, NULL, e);
    if (rc == 0) rc = fit(d, known, e);
    if (rc == 0) rc = start_at(d, &at, e);
    if (rc == 0) rc = start_reader(d, e);
    if (rc != 0) { /* every later ct_data_next fails with this */
        d->slots[0].rc = rc;
        d->slots[0].err = *e;
        d->head = 0;
        d->count = 1;
    }
    return rc;
}

void ct_data_destroy(ct_data_t **self_p) {
    ct_data_t *d = *self_p;
    if (!d) return;
    stop_reader(d);
    if (d->slots)
        for (int k = 0; k < d->K; k++)
            free(d->slots[k].rows);
    free(d->slots);
    for (int k = 0; k < 2; k++)
        ct_mem_free(d->st.cache[k].tokens, (size_t)d->tok_cap * sizeof(uint32_t));
    ct_mem_free(d->file_buf, d->file_cap);
    free(d->st.order);
    free(d->st.next_order);
    free(d->st.perm);
    free(d->n_win);
    ct_plan_destroy(&d->plan);
    ct_manifest_destroy(&d->m);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->can_put);
    pthread_cond_destroy(&d->can_take);
    free(d);
    *self_p = NULL;
}

int ct_data_next(ct_data_t *d, int *rows, ct_err_t *e) {
    pthread_mutex_lock(&d->mu);
    if (d->count == 0) {
        double t0 = ct_now_s();
        while (d->count == 0)
            pthread_cond_wait(&d->can_take, &d->mu);
        d->waited += ct_now_s() - t0;
    }
    slot_t *sl = &d->slots[d->head];
    pthread_mutex_unlock(&d->mu);
    if (sl->rc != 0 || d->failed) {
        d->failed = 1; /* the reader stopped after this slot: every later call fails the same */
        *e = sl->err;
        return sl->rc;
    }
    memcpy(rows, sl->rows, (size_t)d->local * (size_t)d->W * sizeof *rows);
    d->cur = sl->after;
    pthread_mutex_lock(&d->mu);
    d->head = (d->head + 1) % d->K;
    d->count--;
    pthread_cond_signal(&d->can_put);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

void ct_data_cursor(const ct_data_t *d, ct_data_cursor_t *c) {
    *c = d->cur;
}

const ct_manifest_t *ct_data_manifest(const ct_data_t *d) {
    return d->m;
}

int64_t ct_data_num_windows(const ct_data_t *d) {
    return d->total_windows;
}

double ct_data_wait_seconds(const ct_data_t *d) {
    return d->waited;
}

cJSON *ct_data_cursor_to_json(const ct_data_cursor_t *c) {
    cJSON *js = cJSON_CreateObject();
    if (!js) return NULL;
    /* every addition checked: a cursor missing a key would be saved and then refused on resume */
    if (!cJSON_AddNumberToObject(js, "seed", (double)c->seed) ||
        !cJSON_AddNumberToObject(js, "epoch", (double)c->epoch) ||
        !cJSON_AddNumberToObject(js, "shard_pos", (double)c->shard_pos) ||
        !cJSON_AddStringToObject(js, "shard", c->shard_id) ||
        !cJSON_AddNumberToObject(js, "offset", (double)c->offset) ||
        !cJSON_AddNumberToObject(js, "samples", (double)c->samples)) {
        cJSON_Delete(js);
        return NULL;
    }
    return js;
}

int ct_data_cursor_from_json(const cJSON *js, ct_data_cursor_t *c, ct_err_t *e) {
    static const char *const keys[] = {"seed", "epoch", "shard_pos", "offset", "samples"};
    int64_t v[5];
    for (int k = 0; k < 5; k++)
        if (!ct_json_get_uint53(js, keys[k], &v[k]))
            return CT_ERR(e, CT_ECORRUPT,
                          "data cursor: \"%s\" is missing or not a non-negative "
                          "integer",
                          keys[k]);
    const char *id = ct_json_get_string(js, "shard");
    if (!id || !ct_shard_id_valid(id))
        return CT_ERR(e, CT_ECORRUPT, "data cursor: \"shard\" is missing or not a shard id");
    memset(c, 0, sizeof *c);
    c->seed = (uint64_t)v[0];
    c->epoch = v[1];
    c->shard_pos = v[2];
    c->offset = v[3];
    c->samples = v[4];
    snprintf(c->shard_id, sizeof c->shard_id, "%s", id);
    return 0;
}
