/* ckpt.h — checkpoints: crash-safe directories that hold everything a run needs to go on
 * bit-exactly, verified before anything in them is used.
 *
 * A checkpoint is RUN_DIR/checkpoints/ckpt-<step, 8 digits>/ holding
 *   model.h5    fp32 weights, one dataset per tensor, named and shaped as Hugging Face GPT-2
 *               (transformer.h.0.attn.c_attn.weight is (C, 3C), Conv1D layout; wte is
 *               (vocab_size, C) without the padding rows, which are always zero)
 *   optim.h5    AdamW moments m and v (same names and shapes under /m and /v), its step count
 *   config.json the run's resolved config, canonical (its sha256 is the run's config hash)
 *   state.json  step, tokens, world size, config sha256, data cursor, spike-guard window,
 *               parent checkpoint id
 *   MANIFEST    "<sha256>  <file>\n" for every other file (sha256sum's format, sorted by name)
 * written under a temp name (.ckpt-<step>.tmp), every file and the directory fsync'd, then
 * renamed into place: a ckpt-* directory that exists is complete. A checkpoint's id is the
 * sha256 of its MANIFEST. Loading verifies every hash in MANIFEST before reading anything. */
#ifndef COTRAIN_CKPT_H
#define COTRAIN_CKPT_H

#include <stdint.h>

#include "cotrain/config.h"
#include "cotrain/data.h"
#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "cotrain/model.h"
#include "cotrain/train.h"

/* What state.json records besides the tensors. */
typedef struct ct_ckpt_info {
    int64_t step;                     /* optimizer steps taken */
    int64_t tokens;                   /* tokens trained on */
    int world_size;                   /* ranks of the group that wrote it */
    char config_sha256[CT_SHA256_HEX];
    ct_data_cursor_t cursor;          /* where the data stream goes on */
    char id[CT_SHA256_HEX];           /* sha256 of MANIFEST (filled by save and verify) */
    char parent[CT_SHA256_HEX];       /* id of the checkpoint this run resumed from, or "" */
} ct_ckpt_info_t;

/* Checks ckpt_dir: MANIFEST present and well-formed, every listed file present with that sha256,
 * no file missing from it; fills info (may be NULL) from state.json. Errors: CT_ENOENT (no such
 * checkpoint / a listed file missing, naming it), CT_ECORRUPT (a hash mismatch or malformed
 * MANIFEST/state.json, naming the file and what differs). Reads every byte once. */
int ct_ckpt_verify(const char *ckpt_dir, ct_ckpt_info_t *info, ct_err_t *e);

/* Verifies ckpt_dir, reads its config.json into *cfg and builds a model of that shape (room for
 * max_batch sequences) holding the checkpoint's weights. For tools: eval, export, sample,
 * inspect. Errors: those of ct_ckpt_verify, CT_ECORRUPT (a tensor missing or of the wrong shape,
 * naming it), CT_ENOMEM. *model is owned by the caller. */
int ct_ckpt_open_model(const char *ckpt_dir, ct_config_t *cfg, ct_model_t **model, int max_batch,
                       ct_err_t *e);

/* Finds the newest checkpoint under RUN_DIR/checkpoints that verifies (newer ones that do not are
 * skipped; their count goes to *skipped, which may be NULL). Writes its path into out[n] and, when
 * info is not NULL, what ct_ckpt_verify read from it. Errors: CT_ENOENT (none that verifies). */
int ct_ckpt_latest(const char *run_dir, char *out, size_t n, int *skipped, ct_ckpt_info_t *info,
                   ct_err_t *e);

/* Saves the trainer's state as RUN_DIR/checkpoints/ckpt-<step> (step = the trainer's steps
 * taken). `config_json` is the run's canonical config; info supplies tokens, world_size,
 * config_sha256, cursor and parent, and gets step and id. out_path (may be NULL) receives the
 * directory. On failure (CT_EIO saying which file and why, e.g. a full disk) nothing new is left
 * and earlier checkpoints are untouched. A checkpoint of the same step is replaced. */
int ct_ckpt_save(const char *run_dir, ct_trainer_t *t, const char *config_json,
                 ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e);

/* Restores a trainer built from a matching config: the weights, AdamW moments and step count,
 * the spike guard's history and the step; fills info. Each file is verified against MANIFEST
 * before anything in it is read (model.h5's tensors load while optim.h5 is still being hashed).
 * Errors: those of ct_ckpt_verify; CT_ECORRUPT (a tensor missing or mis-shaped: naming it). On
 * failure the trainer may hold part of the checkpoint: destroy it. The caller checks the config
 * (ct_ckpt_check_config) before building the trainer. */
int ct_ckpt_restore(const char *ckpt_dir, ct_trainer_t *t, ct_ckpt_info_t *info, ct_err_t *e);

/* Deletes the checkpoints the policy does not keep: all but the newest keep_last (0: keep all),
 * except those whose step is a multiple of keep_every (> 0). Errors: CT_EIO. */
int ct_ckpt_prune(const char *run_dir, int keep_last, int64_t keep_every, ct_err_t *e);

/* Checks that `now` may resume the run of ckpt_dir: every key equal except ckpt.*, log.* and
 * train.micro_batch. Errors: CT_ECONFIG listing each key that differs with both values. */
int ct_ckpt_check_config(const char *ckpt_dir, const ct_config_t *now, ct_err_t *e);

#endif
