/* units.h — the windows of one unit of data (a shard in an epoch), in the sample order
 * (DESIGN.md, "Sample order"): what a volunteer group trains on, unit by unit as the
 * coordinator leases them (a cluster group's loader, data.h, walks the whole stream instead).
 *
 * The shard is read and checked against the manifest's sha256 before any of its tokens is used;
 * its windows of seq_len + 1 tokens are taken in ct_data_window_order(seed, epoch, shard id).
 * Buffers are sized for the largest shard once and reused. */
#ifndef COTRAIN_UNITS_H
#define COTRAIN_UNITS_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/manifest.h"

typedef struct ct_units ct_units_t;

/* A reader over the first n_shards shards of m (borrowed; the rest are held out) for windows of
 * seq_len + 1 tokens and the run's seed. Errors: CT_ENOENT (a shard file missing: naming it),
 * CT_EINVAL, CT_ENOMEM. */
int ct_units_open(ct_units_t **out, const ct_manifest_t *m, int n_shards, int seq_len,
                  uint64_t seed, ct_err_t *e);

/* Frees the reader and sets *self_p to NULL; NULL-safe. */
void ct_units_close(ct_units_t **self_p);

/* Starts unit (shard, epoch): reads and checks the shard (unless it is the one loaded). Errors:
 * CT_EINVAL (no such shard), those of ct_manifest_read_shard. */
int ct_units_start(ct_units_t *u, int shard, int64_t epoch, ct_err_t *e);

/* Windows of the unit not taken yet (0 before the first start). */
int64_t ct_units_left(const ct_units_t *u);

/* Takes the unit's next window, copying its seq_len + 1 tokens into row (NULL: skipped, as
 * another rank's sample is). Call only while ct_units_left > 0. */
void ct_units_take(ct_units_t *u, int *row);

/* Forgets the unit in progress (its lease went back): ct_units_left is 0 after. */
void ct_units_drop(ct_units_t *u);

/* The manifest index of a shard id, or -1. */
int ct_units_find(const ct_units_t *u, const char *shard_id);

#endif
