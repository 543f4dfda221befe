/* plan.h — the run's data plan: which shards a run trains on and the order its epochs visit
 * them, once data has been added or excluded while it runs (DESIGN.md, invariant 1: "shards
 * added mid-run follow the current ones").
 *
 * A plan starts as the base: the first n0 shards of the run's manifest (its last data.eval_shards
 * are held out for evaluation), indices 0..n0-1. Changes follow, in the order the coordinator made
 * them take effect:
 *  - add (a manifest, in epoch E): its shards take the next indices; epoch E visits them after
 *    its other shards, in the manifest's order; from epoch E+1 on they are shuffled with the rest.
 *  - exclude (shards, from position P of epoch E): those units are skipped from there on, and in
 *    every later epoch.
 * Epoch e's order: ct_data_shard_order(seed, e, N_e) over the N_e shards of the base and of the
 * adds before epoch e (in the order of their changes), then the shards added in epoch e, in the
 * order of their changes. (Changes may take effect out of epoch order after a run went back to
 * an earlier checkpoint; the order stays a function of the changes.) A change only appends to the
 * epoch it takes effect in, or skips from a position on: positions already visited never move, so
 * a run resumed from any cursor sees what it saw before, and from each change's point on what the
 * change says. The loader (data.h), the coordinator's ledger and a group's side of the protocol
 * each keep a plan built from the same changes, so they agree on every unit.
 *
 * Changes travel as JSON (the coordinator's welcome and commit replies, the ledger):
 *   {"kind":"add","epoch":E,"manifest":PATH,"sha256":HEX,"shards":N}
 *   {"kind":"exclude","epoch":E,"pos":P,"shards":[ID,...]}
 * An added manifest must use the run's tokenizer and vocabulary and hold no shard the run has;
 * its files are read where PATH says (a cluster's shared storage). */
#ifndef COTRAIN_PLAN_H
#define COTRAIN_PLAN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/manifest.h"

typedef struct ct_plan ct_plan_t;

/* A plan of the first n_shards - held_out shards of `base` (borrowed: it must outlive the plan)
 * and no change. Errors: CT_EINVAL (held_out leaves no shard to train on), CT_ENOMEM. */
int ct_plan_create(ct_plan_t **out, const ct_manifest_t *base, int held_out, uint64_t seed,
                   ct_err_t *e);

/* Frees the plan (and the manifests it loaded) and sets *self_p to NULL; NULL-safe. */
void ct_plan_destroy(ct_plan_t **self_p);

/* Brings the plan to `changes` (a JSON array as above): the plan's own changes must be its first
 * entries, unchanged (a plan only grows); the rest are applied in order, loading each added
 * manifest and checking it against its sha256, the run's tokenizer and vocabulary and the shards
 * the plan has. *applied (may be NULL) gets how many were new. On error the plan is unchanged.
 * Errors: CT_ECORRUPT (a malformed change, or one that differs from the plan's: naming it),
 * CT_ENOENT (an added manifest missing), CT_EINVAL (an added manifest that does not fit the run,
 * an unknown shard excluded: saying why), CT_ENOMEM. */
int ct_plan_apply(ct_plan_t *p, const cJSON *changes, int *applied, ct_err_t *e);

/* The plan's changes as a JSON array (caller owns it; NULL when out of memory). */
cJSON *ct_plan_changes_json(const ct_plan_t *p);

/* How many changes the plan holds. */
int ct_plan_count(const ct_plan_t *p);

/* How many shards the plan has ever held (the base and every one added): indices 0..n-1. */
int64_t ct_plan_shards(const ct_plan_t *p);

/* Shard i (0 <= i < ct_plan_shards): its manifest entry. */
const ct_manifest_shard_t *ct_plan_shard(const ct_plan_t *p, int64_t i);

/* The index of the shard called `id`, or -1. */
int64_t ct_plan_find(const ct_plan_t *p, const char *id);

/* Units in epoch `epoch` (skipped ones included): at most ct_plan_shards. */
int64_t ct_plan_epoch_len(const ct_plan_t *p, int64_t epoch);

/* Epoch `epoch`'s order: order[0..ct_plan_epoch_len) gets shard indices. */
void ct_plan_order(const ct_plan_t *p, int64_t epoch, int64_t *order);

/* 1 when shard `shard` at position `pos` of epoch `epoch` is skipped (excluded by then). */
int ct_plan_excluded(const ct_plan_t *p, int64_t epoch, int64_t pos, int64_t shard);

/* As ct_manifest_check_files and ct_manifest_read_shard, for plan shards [first, first + n) and
 * shard i. Errors: as theirs. */
int ct_plan_check_files(const ct_plan_t *p, int64_t first, int64_t n, size_t *file_cap,
                        int64_t *tok_cap, ct_err_t *e);
int ct_plan_read_shard(const ct_plan_t *p, int64_t i, void *buf, size_t buf_cap, uint32_t *tokens,
                       int64_t tok_cap, ct_err_t *e);

#endif
