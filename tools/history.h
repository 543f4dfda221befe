/* history.h — a run's public log read back and checked (tools' own module: `cotrain verify` and
 * `cotrain lineage` share it): run.json's signature, every line (canonical form, seq, chain,
 * hash, signature by the run's key), the signed head reached, and the lineage the records
 * describe — the committed checkpoints in order and the units of data each committed, each unit
 * once, with reverts taken back. Uses only core/: never the model. */
#ifndef COTRAIN_TOOLS_HISTORY_H
#define COTRAIN_TOOLS_HISTORY_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/publog.h"

enum { CT_HIST_NAME = 96 }; /* a group name or key id, with room */

/* A checkpoint of the lineage: its id, step and the line that committed it, and who did: the
 * group, and the CURVE key id its last group_joined named ("" on loopback). */
typedef struct ct_hist_ckpt {
    char id[CT_SHA256_HEX];
    int64_t step, line;
    char group[CT_HIST_NAME], key[CT_HIST_NAME];
} ct_hist_ckpt_t;

/* A contributor's credit for the lineage: by key id when its group joined with one, else by
 * group; the checkpoints it committed and the optimizer steps they added (a checkpoint's step
 * minus its parent's); in volunteer mode, its deltas the outer steps accepted. */
typedef struct ct_hist_credit {
    char who[CT_HIST_NAME + 8]; /* "key <id>" or "group <name>" */
    int64_t commits, steps;
    int64_t tokens; /* volunteer mode: the tokens of its accepted deltas */
} ct_hist_credit_t;

/* A unit of data the lineage holds: "<shard id>:<epoch>", the checkpoint (index) and line that
 * committed it. */
typedef struct ct_hist_unit {
    char *name;
    int ckpt;
    int64_t line;
} ct_hist_unit_t;

/* A shard excluded from the run (a data_excluded record): from unit `pos` of epoch `epoch`. */
typedef struct ct_hist_exclusion {
    char shard[CT_HIST_NAME];
    int64_t epoch, pos, line;
} ct_hist_exclusion_t;

typedef struct ct_history {
    ct_publog_head_t head; /* run.json */
    char fingerprint[CT_PUBLOG_FP];
    int64_t records;    /* lines read (the last seq) */
    ct_hist_ckpt_t *ck; /* the lineage, first to head */
    int n_ck, cap_ck;
    ct_hist_unit_t *units; /* the units it committed, in commit order */
    int n_units, cap_units;
    int64_t finished; /* run_finished's line, or 0 */
    /* volunteer mode: each contributor's accepted deltas (commits), inner steps and tokens, from
       the outer_step records */
    ct_hist_credit_t *outer;
    int n_outer, cap_outer;
    int64_t excluded, added; /* data_excluded and data_added records */
    int64_t changed_epoch;   /* the first epoch a data change took effect in (INT64_MAX: none) */
    /* the data changes in log order, as plan.h writes them, adds without their manifest's path
       (the log names it by sha256): {"kind":"add","epoch","sha256","shards":N} or
       {"kind":"exclude","epoch","pos","shards":[...]} */
    cJSON *changes;
    ct_hist_exclusion_t *exclusions; /* each excluded shard, in log order */
    int n_exclusions, cap_exclusions;
    /* the key id each group last joined with, while reading */
    struct {
        char group[CT_HIST_NAME], key[CT_HIST_NAME];
    } * joined;
    int n_joined, cap_joined;
} ct_history_t;

/* Reads PUBLIC_DIR (run.json, log.jsonl) into *h, checking everything above; with pin, the key's
 * fingerprint must be it. Errors: CT_ECORRUPT (the first problem, naming the file and line),
 * CT_ENOENT, CT_ENOMEM. *h is filled as far as it got; ct_history_free it either way. */
int ct_history_read(ct_history_t *h, const char *public_dir, const char *pin, ct_err_t *e);

/* The lineage's credit, most steps first, into *out (malloc'd, *n entries; the caller frees).
 * Errors: CT_ENOMEM. */
int ct_history_credit(const ct_history_t *h, ct_hist_credit_t **out, int *n, ct_err_t *e);

/* The run's data changes as its coordinator had them (plan.h), into *out (the caller deletes
 * it): the log's, each add's manifest found among added[0..n_added) (manifest files or their
 * folders) by its sha256. Errors: CT_EINVAL (an add whose manifest is not among them: saying
 * which to give with --added), CT_EIO, CT_ENOENT, CT_ENOMEM. */
int ct_history_changes(const ct_history_t *h, const char *const *added, int n_added, cJSON **out,
                       ct_err_t *e);

/* The unit `name` in the lineage: its index into h->units, or -1. */
int ct_history_find_unit(const ct_history_t *h, const char *name);

void ct_history_free(ct_history_t *h);

#endif
