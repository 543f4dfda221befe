/* data.c — byte-token files and the seeded, world-size-independent order of their windows. */
#include "cotrain/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/rng.h"

struct ct_data {
    unsigned char *tokens; /* (n_tokens) */
    int64_t n_tokens;
    int window;       /* seq_len + 1 */
    int64_t n_windows;
    uint64_t seed;
    int64_t perm_epoch; /* epoch whose permutation is in perm, -1 = none */
    int64_t *perm;      /* (n_windows) */
};

static int read_file(const char *path, unsigned char **buf, int64_t *len, ct_err_t *e) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return CT_ERR(e, CT_ENOENT, "cannot open data file %s: %s", path, strerror(errno));
    int rc = 0;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = CT_ERR(e, CT_EIO, "cannot determine the size of data file %s", path);
        goto out;
    }
    *buf = malloc(n ? (size_t)n : 1);
    if (!*buf) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %ld bytes of %s", n, path);
        goto out;
    }
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        rc = CT_ERR(e, CT_EIO, "short read on data file %s", path);
        free(*buf);
        *buf = NULL;
        goto out;
    }
    *len = n;
out:
    fclose(f);
    return rc;
}

int ct_data_open_bytes(ct_data_t **out, const char *path, int seq_len, uint64_t seed,
                       ct_err_t *e) {
    int rc = 0;
    ct_data_t *d = NULL;
    *out = NULL;
    CT_ALLOC(e, d, 1, fail);
    CT_TRY_GOTO(read_file(path, &d->tokens, &d->n_tokens, e), fail);
    d->window = seq_len + 1;
    d->n_windows = d->n_tokens / d->window;
    d->seed = seed;
    d->perm_epoch = -1;
    if (d->n_windows == 0) {
        rc = CT_ERR(e, CT_EINVAL,
                    "data file %s has %lld tokens, fewer than one sample (model.seq_len + 1 = "
                    "%d): use more text or a smaller model.seq_len",
                    path, (long long)d->n_tokens, d->window);
        goto fail;
    }
    CT_ALLOC(e, d->perm, d->n_windows, fail);
    *out = d;
    return 0;
fail:
    ct_data_destroy(&d);
    return rc;
}

void ct_data_destroy(ct_data_t **self_p) {
    ct_data_t *d = *self_p;
    if (!d) return;
    free(d->tokens);
    free(d->perm);
    free(d);
    *self_p = NULL;
}

int ct_data_vocab_size(const ct_data_t *d) {
    (void)d;
    return 256;
}

int64_t ct_data_num_windows(const ct_data_t *d) {
    return d->n_windows;
}

/* Fisher–Yates permutation of the windows for one epoch, seeded by (seed, epoch). */
static void make_permutation(ct_data_t *d, int64_t epoch) {
    ct_rng_t rng;
    ct_rng_seed(&rng, d->seed ^ (0x5851f42d4c957f2dULL * (uint64_t)(epoch + 1)));
    for (int64_t i = 0; i < d->n_windows; i++) d->perm[i] = i;
    for (int64_t i = d->n_windows - 1; i > 0; i--) {
        int64_t j = (int64_t)ct_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = d->perm[i];
        d->perm[i] = d->perm[j];
        d->perm[j] = t;
    }
    d->perm_epoch = epoch;
}

void ct_data_samples(ct_data_t *d, int64_t first, int count, int *out) {
    for (int i = 0; i < count; i++) {
        int64_t g = first + i, epoch = g / d->n_windows;
        if (epoch != d->perm_epoch) make_permutation(d, epoch);
        const unsigned char *w = d->tokens + d->perm[g % d->n_windows] * d->window;
        for (int k = 0; k < d->window; k++) out[(size_t)i * d->window + k] = w[k];
    }
}
