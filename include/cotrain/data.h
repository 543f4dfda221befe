/* data.h — the token source of a training run and the order of its samples.
 *
 * A sample is a window of seq_len+1 consecutive tokens; windows are cut at stride seq_len+1.
 * Epoch e visits every window once in a permutation that depends only on (seed, e), so global
 * sample g is the same whatever the world size: rank r of a group takes its slice of each global
 * batch. For now the source is a plain file whose bytes are the tokens (the `bytes` tokenizer,
 * vocabulary 256); the HDF5 shards of the data issue replace the source behind this interface. */
#ifndef COTRAIN_DATA_H
#define COTRAIN_DATA_H

#include <stdint.h>

#include "cotrain/err.h"

typedef struct ct_data ct_data_t;

/* Opens `path` as a byte-token file for windows of seq_len+1 tokens, samples ordered by `seed`.
 * Errors: CT_ENOENT (missing/unreadable, with the path), CT_EINVAL (fewer than seq_len+1
 * tokens: says how many are needed). *out is owned by the caller. */
int ct_data_open_bytes(ct_data_t **out, const char *path, int seq_len, uint64_t seed,
                       ct_err_t *e);

/* Frees the source and sets *self_p to NULL; NULL-safe. */
void ct_data_destroy(ct_data_t **self_p);

/* Vocabulary size of the source's tokenizer (256 for bytes). */
int ct_data_vocab_size(const ct_data_t *d);

/* Windows per epoch. */
int64_t ct_data_num_windows(const ct_data_t *d);

/* Writes global samples first..first+count-1 as token rows into out (count, seq_len+1).
 * Sample g is window perm_e[g mod W] of epoch e = g / W. */
void ct_data_samples(ct_data_t *d, int64_t first, int count, int *out);

#endif
