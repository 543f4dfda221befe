/* windows.h — a dataset read as consecutive, non-overlapping windows of seq_len+1 tokens: the
 * shards of a manifest (or a run of them) concatenated in manifest order, a window possibly
 * spanning two shards, a trailing partial window dropped. This is what `cotrain eval` and the
 * trainer's periodic eval loss read (DESIGN.md, `cotrain eval`): nothing is sampled, so two
 * evaluations of one model on one dataset agree.
 *
 * Windows are read by index, so several ranks can each take their share; each shard is checked
 * against the manifest's sha256 before its tokens are used. */
#ifndef COTRAIN_WINDOWS_H
#define COTRAIN_WINDOWS_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/manifest.h"

typedef struct ct_windows ct_windows_t;

/* Windows of seq_len+1 tokens over shards [first, first + n_shards) of m (borrowed: it must
 * outlive the reader). Checks that the files exist; reads nothing yet. Errors: CT_EINVAL (bad
 * range or seq_len), CT_ENOENT (a shard file missing), CT_ENOMEM. *out is owned by the caller. */
int ct_windows_open(ct_windows_t **out, const ct_manifest_t *m, int first, int n_shards,
                    int seq_len, ct_err_t *e);

/* Frees the reader and sets *self_p to NULL; NULL-safe. */
void ct_windows_destroy(ct_windows_t **self_p);

/* Complete windows in the range. */
int64_t ct_windows_count(const ct_windows_t *w);

/* Tokens in the range. */
int64_t ct_windows_tokens(const ct_windows_t *w);

/* Writes windows [first, first + n) into rows (n, seq_len+1). Reading in increasing order reads
 * each shard once. Errors: CT_EINVAL (out of range), those of ct_manifest_read_shard. */
int ct_windows_read(ct_windows_t *w, int64_t first, int n, int *rows, ct_err_t *e);

#endif
