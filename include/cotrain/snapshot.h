/* snapshot.h — a trainer's state as a checkpoint, and a model read back from one.
 *
 * ckpt.h knows tensors only as a table (so the coordinator and `cotrain verify` need no model);
 * this maps the model's parameters, the AdamW moments and step count, the spike guard's window
 * and the trainer's step onto that table and back. */
#ifndef COTRAIN_SNAPSHOT_H
#define COTRAIN_SNAPSHOT_H

#include <stddef.h>

#include "cotrain/ckpt.h"
#include "cotrain/config.h"
#include "cotrain/err.h"
#include "cotrain/model.h"
#include "cotrain/train.h"

/* Saves t as RUN_DIR/checkpoints/ckpt-<steps taken> (ct_ckpt_save; info->step is set here, the
 * rest of info as ct_ckpt_save asks). Errors: those of ct_ckpt_save. */
int ct_snapshot_save(const char *run_dir, ct_trainer_t *t, const char *config_json,
                     ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e);

/* Restores a trainer built from a matching config (check it first: ct_ckpt_check_config):
 * weights, AdamW moments and step count, the spike guard's window and the step, verifying every
 * byte as ct_ckpt_restore does; fills info. Errors: those of ct_ckpt_restore, CT_ENOMEM. On
 * failure the trainer holds unspecified weights: destroy it. */
int ct_snapshot_restore(const char *ckpt_dir, ct_trainer_t *t, ct_ckpt_info_t *info, ct_err_t *e);

/* Verifies ckpt_dir, reads its config.json into *cfg (and state.json into *info, when not NULL:
 * the tokenizer, step, ...) and builds a model of that shape (room for max_batch sequences)
 * holding the checkpoint's weights. For tools: eval, export, sample. Errors: those of
 * ct_ckpt_verify, CT_ECORRUPT (a tensor missing or of the wrong shape, naming it), CT_ENOMEM.
 * *model is owned by the caller. */
int ct_snapshot_open_model(const char *ckpt_dir, ct_config_t *cfg, ct_ckpt_info_t *info,
                           ct_model_t **model, int max_batch, ct_err_t *e);

#endif
