/* ckpt.h — checkpoints: crash-safe directories that hold everything a run needs to go on
 * bit-exactly, verified before anything in them is used. This module knows tensors only as a
 * table (tensor.h), never the model, so the coordinator and `cotrain verify` can check
 * checkpoints without linking it; trainer/snapshot.c maps a trainer onto it.
 *
 * A checkpoint is RUN_DIR/checkpoints/ckpt-<step, 8 digits>/ holding
 *   config.json the run's resolved config, canonical (its sha256 is the run's config hash)
 *   model.h5    fp32 weights, one dataset per tensor, named and shaped as the table says
 *               (for GPT-2: Hugging Face's names, Conv1D layout, wte without its padding rows)
 *   optim.h5    AdamW moments m and v (the same names and shapes under /m and /v), its step
 *               count as the attribute `steps`
 *   state.json  step, tokens, world size, config sha256, tokenizer, data manifest sha256, data
 *               cursor, spike-guard window, parent checkpoint id
 *   MANIFEST    "<sha256>  <file>\n" for each file above, in that order (sha256sum -c works),
 *               then "#chunk <file> <i> <sha256>\n" for each 64 MiB piece i of each file
 * written under a temp name (.ckpt-<step>.tmp), every file and the directory fsync'd, then
 * renamed into place: a ckpt-* directory that exists is complete. A checkpoint's id is the
 * sha256 of its MANIFEST. Verification hashes the pieces on every core (whole files, one stream
 * each, for an older MANIFEST without pieces); a restore reads every byte once, hashing it as it
 * goes; nothing in a file is parsed or used before the hashes covering it matched. */
#ifndef COTRAIN_CKPT_H
#define COTRAIN_CKPT_H

#include <stdint.h>

#include "cotrain/config.h"
#include "cotrain/data.h"
#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/log.h"
#include "cotrain/tensor.h"

enum { CT_CKPT_TOKENIZER_MAX = 32 };

/* What state.json records besides the tensors and the spike guard. */
typedef struct ct_ckpt_info {
    int64_t step;                     /* optimizer steps taken */
    int64_t tokens;                   /* tokens trained on */
    int world_size;                   /* ranks of the group that wrote it */
    char config_sha256[CT_SHA256_HEX];
    char tokenizer[CT_CKPT_TOKENIZER_MAX]; /* the data's tokenizer ("" in older checkpoints) */
    char data_sha256[CT_SHA256_HEX];  /* sha256 of the data manifest ("" in older checkpoints) */
    ct_data_cursor_t cursor;          /* where the data stream goes on */
    char id[CT_SHA256_HEX];           /* sha256 of MANIFEST (filled by save and verify) */
    /* The previous checkpoint of this lineage: the one the run resumed from, or the one it
       saved before this one; "" for the first checkpoint of a run started from scratch. */
    char parent[CT_SHA256_HEX];
    int pieces;                       /* verify: 1 when MANIFEST has per-piece hashes */
    int one_pass;                     /* restore: 1 when every byte was read once */
} ct_ckpt_info_t;

/* The spike guard's window as state.json keeps it (loss and grad_norm in ring order). */
typedef struct ct_ckpt_guard {
    int cap;            /* entries the arrays hold (the window); 0: the run has no guard */
    int count, head;    /* accepted steps held (<= cap) and the next write position */
    double *loss;       /* (cap) not owned */
    double *grad_norm;  /* (cap) not owned */
} ct_ckpt_guard_t;

/* The tensors and the optimizer state of a checkpoint, described without the model: model.h5
 * holds the table's tensors of params; optim.h5 the same tensors of adam_m under m/ and of
 * adam_v under v/, and adam_steps. Buffers are laid out by the table and not owned. */
typedef struct ct_ckpt_body {
    const ct_tensor_info_t *tensors;
    int n_tensors;
    float *params;
    float *adam_m, *adam_v; /* restore: both NULL verifies optim.h5 without loading it */
    int64_t adam_steps;
    ct_ckpt_guard_t guard;
} ct_ckpt_body_t;

/* Checks ckpt_dir: MANIFEST present and well-formed, every listed file present and matching its
 * hashes (pieces on every core when listed), no file missing; fills info (may be NULL) from
 * state.json. Errors: CT_ENOENT (no such checkpoint / a listed file missing, naming it),
 * CT_ECORRUPT (a hash mismatch or malformed MANIFEST/state.json, naming the file, the piece and
 * what differs). Reads every byte once. */
int ct_ckpt_verify(const char *ckpt_dir, ct_ckpt_info_t *info, ct_err_t *e);

/* The quick check of a checkpoint about to be restored (which then hashes the rest): MANIFEST
 * well-formed, config.json and state.json match it, model.h5 and optim.h5 exist with the sizes
 * their pieces need; fills info (may be NULL). Errors: as ct_ckpt_verify. */
int ct_ckpt_check_small(const char *ckpt_dir, ct_ckpt_info_t *info, ct_err_t *e);

/* Finds the newest checkpoint under RUN_DIR/checkpoints of a step below `before` (INT64_MAX:
 * any) that passes ct_ckpt_verify (full) or ct_ckpt_check_small (!full: a resume, whose restore
 * hashes the tensor files, so they are hashed once); newer ones that do not are skipped, each
 * logged to lg (may be NULL) as a warning with the reason. Writes its path into out[n] and its
 * state into info (may be NULL); *skipped (may be NULL) gets how many were passed over. Errors:
 * CT_ENOENT (none passes: the message lists why each failed), CT_EINVAL (out too small). */
int ct_ckpt_latest(const char *run_dir, int64_t before, int full, char *out, size_t n,
                   int *skipped, ct_ckpt_info_t *info, const ct_log_t *lg, ct_err_t *e);

/* Saves body as RUN_DIR/checkpoints/ckpt-<info->step>. `config_json` is the run's canonical
 * config; info supplies step, tokens, world_size, config_sha256, tokenizer, data_sha256, cursor
 * and parent, and gets id. out_path (may be NULL) receives the directory. On failure (CT_EIO
 * saying which file and why, e.g. a full disk; CT_ENOMEM) nothing new is left and earlier
 * checkpoints are untouched (tests/fault_ckpt.c fails every call of a save in turn to hold it to
 * that). A checkpoint of the same step is replaced, and removed only once the new one is in
 * place. */
int ct_ckpt_save(const char *run_dir, const ct_ckpt_body_t *body, const char *config_json,
                 ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e);

/* Restores body (tensors, AdamW moments and steps, spike-guard window) and info from ckpt_dir,
 * verifying every file on the way: each 64 MiB piece is read once, straight into the tensors,
 * on every core, and hashed as it is read; the restore fails if any hash differs (body->adam_m
 * NULL: optim.h5 is verified, not loaded). Errors: those of ct_ckpt_verify; CT_ECORRUPT (a
 * tensor missing or mis-shaped, or a guard window larger than guard.cap: naming it). On failure
 * the buffers hold unspecified bytes: do not use them. */
int ct_ckpt_restore(const char *ckpt_dir, ct_ckpt_body_t *body, ct_ckpt_info_t *info,
                    ct_err_t *e);

/* Reads ckpt_dir/config.json (a tool's first step before it builds a model). Errors: those of
 * ct_config_load. Unverified: check the checkpoint first (ct_ckpt_check_small or
 * ct_ckpt_verify). */
int ct_ckpt_load_config(const char *ckpt_dir, ct_config_t *cfg, ct_err_t *e);

/* Deletes the checkpoints the policy does not keep: all but the newest keep_last (0: keep all),
 * except those whose step is a multiple of keep_every (> 0). Errors: CT_EIO. */
int ct_ckpt_prune(const char *run_dir, int keep_last, int64_t keep_every, ct_err_t *e);

/* Checks that `now` may resume the run of ckpt_dir: every key equal except those the config
 * schema marks as changeable on resume (ct_config_resume_diff). Errors: CT_ECONFIG listing each
 * key that differs with both values. */
int ct_ckpt_check_config(const char *ckpt_dir, const ct_config_t *now, ct_err_t *e);

#endif
