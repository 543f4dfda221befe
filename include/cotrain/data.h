/* data.h — the training data loader: the samples of a step, read from the shards of a manifest
 * ahead of time on a background thread.
 *
 * The order of global samples depends only on the seed and the shards (DESIGN.md, invariant 1):
 * epoch e visits the manifest's shards in a permutation seeded by (seed, e); inside a shard,
 * windows of seq_len+1 tokens at stride seq_len+1 (a trailing partial window is dropped) are taken
 * in a permutation seeded by (seed, e, shard id). Global batch b is samples
 * [b*global_batch, (b+1)*global_batch) of that stream; rank r of N takes the r-th of N equal,
 * consecutive slices of it. So N ranks together see exactly what one rank sees, and a run resumed
 * from a cursor sees exactly what it would have seen without stopping.
 *
 * With held_out = K the manifest's last K shards are left out of this stream (they are the
 * evaluation data, read by windows.h); the order is then that of the first n - K shards. Data
 * added or excluded while a run goes on changes the order from a point on as plan.h says: the
 * loader follows the run's plan, given at open and brought up to date by ct_data_replan.
 *
 * Every shard is checked against the manifest's sha256 before its tokens are used. */
#ifndef COTRAIN_DATA_H
#define COTRAIN_DATA_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/manifest.h"

/* A position in the sample stream, between two global batches: what a checkpoint stores. */
typedef struct ct_data_cursor {
    uint64_t seed;
    int64_t epoch;
    int64_t shard_pos;              /* index into epoch's shard order */
    char shard_id[CT_SHARD_ID_MAX]; /* the shard at shard_pos: checked on resume */
    int64_t offset;                 /* windows of that shard already taken */
    int64_t samples;                /* global samples taken since the run began */
} ct_data_cursor_t;

typedef struct ct_data_opts {
    int seq_len;
    uint64_t seed;
    int global_batch;              /* samples per step, all ranks together */
    int rank, world;               /* world must divide global_batch */
    int prefetch;                  /* steps read ahead (0 = 2) */
    int held_out;                  /* the manifest's last N shards are not trained on (eval) */
    const ct_data_cursor_t *start; /* resume here; NULL = the beginning */
    const cJSON *changes;          /* the run's data changes (plan.h); NULL = none */
} ct_data_opts_t;

typedef struct ct_data ct_data_t;

/* Opens the manifest at `manifest` (a manifest.json or its folder), checks that every shard file
 * exists, reads and verifies the first shard this rank needs, and starts the reading thread.
 * Errors: CT_ENOENT (no manifest, or a shard file missing: naming it), CT_ECORRUPT (manifest
 * invalid, or a shard whose sha256 differs from the manifest's: naming it), CT_EINVAL (options
 * invalid; no window of seq_len+1 tokens anywhere; a start cursor that does not fit this data:
 * saying what differs), CT_ENOMEM. *out is owned by the caller. */
int ct_data_open(ct_data_t **out, const char *manifest, const ct_data_opts_t *o, ct_err_t *e);

/* Brings the loader's plan to `changes` (plan.h: the ones it has, then new ones) and reads on
 * from the step the consumer is at, by the new plan: what was read ahead is read again. The
 * changes must leave the units before the cursor as they were (the coordinator makes them take
 * effect after it). Errors: as ct_plan_apply and ct_data_open's for the new shards; the loader
 * is then failed (ct_data_next returns the same error). */
int ct_data_replan(ct_data_t *self, const cJSON *changes, ct_err_t *e);

/* Stops the reading thread, frees everything and sets *self_p to NULL; NULL-safe. */
void ct_data_destroy(ct_data_t **self_p);

/* Writes this rank's rows of the next step, (global_batch / world, seq_len+1) tokens, into rows.
 * Waits only when the reading thread is behind. Errors: whatever reading hit (CT_ECORRUPT for a
 * shard that fails its hash, CT_EIO, CT_ENOMEM), with the shard named; the loader stays failed. */
int ct_data_next(ct_data_t *self, int *rows, ct_err_t *e);

/* The position after the last step ct_data_next returned (the start cursor before the first). */
void ct_data_cursor(const ct_data_t *self, ct_data_cursor_t *c);

/* The manifest the loader reads (for vocab_size, tokenizer, hashes). */
const ct_manifest_t *ct_data_manifest(const ct_data_t *self);

/* Windows (samples) in one epoch over all shards. */
int64_t ct_data_num_windows(const ct_data_t *self);

/* Seconds ct_data_next has spent waiting for the reading thread, in total. */
double ct_data_wait_seconds(const ct_data_t *self);

/* The order in which epoch `epoch` visits shards 0..n-1 (the manifest's indices) for `seed`:
 * order[0..n) (DESIGN.md, "Sample order"). The coordinator leases shards in this order. */
void ct_data_shard_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order);

/* The order in which epoch `epoch` takes the n windows of shard `shard_id`: order[k] is the k-th
 * window taken (window w is the shard's tokens [w*(seq_len+1), (w+1)*(seq_len+1))). */
void ct_data_window_order(uint64_t seed, int64_t epoch, const char *shard_id, int64_t n,
                          int64_t *order);

/* The cursor as a JSON object {"seed","epoch","shard_pos","shard","offset","samples"} (caller
 * owns it; NULL when out of memory), and back. Errors: CT_ECORRUPT naming the bad field. */
cJSON *ct_data_cursor_to_json(const ct_data_cursor_t *c);
int ct_data_cursor_from_json(const cJSON *js, ct_data_cursor_t *c, ct_err_t *e);

#endif
