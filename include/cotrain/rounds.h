/* rounds.h — the coordinator's side of volunteer mode (DESIGN.md, "Volunteer mode"; DiLoCo): the
 * global model, the groups' deltas coming in, and the outer steps that merge them.
 *
 * Version v of the global model is the lineage's checkpoint of step v: RUN_DIR/checkpoints/
 * ckpt-<v>, written by the coordinator, its model.h5 the weights θ_v, its optim.h5 the outer
 * state (m/: the Nesterov momentum; v/: what the last model update's encoding lost, carried into
 * the next one with volunteer.error_feedback; `steps`: v). Version 0 is the initial weights of
 * train.seed (or the weights of `init`), made when the run starts. A run resumes from its head
 * after a restart.
 *
 * A group uploads its delta (θ_base − its weights after volunteer.inner_steps steps, encoded by
 * volunteer.compress) in chunks (`delta`): RUN_DIR/deltas/<group>-<base>-<sha16>.part grows by
 * each chunk that starts where it ends (a retry or a resumed upload is answered with what is
 * there), and once whole it is checked (size, sha256, decodable, every value finite), renamed
 * <group>.delta and fsync'd, and recorded in the ledger with the units it trained on, in the
 * request's transaction: an acknowledged delta survives a kill -9.
 *
 * An outer step is made (ct_rounds_tick) when volunteer.quorum deltas wait, or every group in the
 * run has sent one, or volunteer.deadline_s passed since version v was committed with at least
 * one waiting. Deltas too stale (base older than v − max_staleness) were refused on arrival; at
 * the step, a delta whose file no longer matches its hash, or whose norm passes outlier_ratio
 * times the median norm, is refused with its reason. The rest are aggregated (aggregate, trim;
 * the mean weighted by tokens), the outer Nesterov step computes θ', and the update θ' − θ_v is
 * encoded like the deltas (RUN_DIR/updates/update-<v+1>.bin: what `model_update` serves, so a
 * group downloads the update rather than the model) and decoded again: θ_{v+1} = θ_v +
 * decode(update), on the coordinator and on every group alike. Checkpoint v+1 is saved, then
 * committed with the outer_step record in one ledger transaction: a crash before the commit
 * makes the same step again from the same deltas (the arithmetic is deterministic), one after it
 * finds them applied. */
#ifndef COTRAIN_ROUNDS_H
#define COTRAIN_ROUNDS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cotrain/config.h"
#include "cotrain/err.h"
#include "cotrain/ledger.h"
#include "cotrain/log.h"
#include "cotrain/manifest.h"
#include "cotrain/proto.h"

typedef struct ct_rounds ct_rounds_t;

typedef struct ct_rounds_opts {
    const char *run_dir;     /* the coordinator's: checkpoints/, deltas/, updates/ */
    const ct_config_t *cfg;  /* the run's config (volunteer.enabled) */
    const char *config_json; /* ... canonical: written into every checkpoint */
    const ct_manifest_t *m;  /* the run's data: vocabulary, tokenizer, manifest sha256 */
    ct_ledger_t *l;          /* borrowed */
    const ct_log_t *lg;
    const char *init; /* version 0 from init/model.safetensors (NULL: train.seed's) */
} ct_rounds_opts_t;

/* Loads the head version (or makes version 0 and commits it). Errors: those of ct_ckpt_restore
 * and ct_ckpt_save (a head checkpoint missing or damaged: naming it), CT_ESTATE (the head is not
 * the coordinator's checkpoint), CT_EIO, CT_ENOMEM. */
int ct_rounds_open(ct_rounds_t **out, const ct_rounds_opts_t *o, ct_err_t *e);

/* Frees everything and sets *self_p to NULL; NULL-safe. */
void ct_rounds_close(ct_rounds_t **self_p);

/* 1 once the run's last version (train.steps) is made. */
int ct_rounds_finished(const ct_rounds_t *r);

/* `delta` {base, codec, n, bytes, sha256, offset, tokens, steps, loss?, units [{shard, epoch,
 * fence}]} with its chunk `in` (the bytes from offset), from `group` (CURVE key id `peer` or
 * NULL), inside the caller's ledger transaction: the reply's fields {have (bytes held),
 * complete, version} into f. Errors: CT_EPROTO (a malformed request, or bytes that do not check
 * out: the upload starts over), CT_ESTATE (a stale base, a unit not leased to the group, a delta
 * already waiting), CT_EINVAL (another codec or size than the run's), CT_EIO, CT_ENOMEM. */
int ct_rounds_delta(ct_rounds_t *r, const ct_msg_t *m, const ct_frame_t *in, const char *group,
                    const char *peer, double now, cJSON *f, ct_err_t *e);

/* `model_update` {from, offset, length}: a chunk of the update from version `from` to from + 1
 * as the frame, with {step, codec, n, bytes, sha256, params_sha256 (of θ_{from+1}'s floats),
 * offset, length} in f. Errors: CT_ESTATE (no such update kept: fetch the checkpoint), CT_EPROTO,
 * CT_EIO, CT_ENOMEM. */
int ct_rounds_update(ct_rounds_t *r, const ct_msg_t *m, cJSON *f, ct_frame_t *frame, ct_err_t *e);

/* Makes the outer step when it is due (see above); *stepped gets 1 when it did. Errors: CT_EIO
 * (a checkpoint or update not written, the ledger), CT_ENOMEM; nothing is committed then. */
int ct_rounds_tick(ct_rounds_t *r, double now, int *stepped, ct_err_t *e);

#endif
