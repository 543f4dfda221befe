/* replay.h — `cotrain verify --replay CKPT_A CKPT_B --data MANIFEST`: checkpoint B of a run's
 * verified lineage follows from checkpoint A and the data, bit for bit.
 *
 * Why a replay, beyond the hashes: a checkpoint's id proves which bytes were committed, not that
 * they came from training. Any third party with the data can train steps A+1..B again and compare
 * — and since a run is bit-exact across resumes (the same world size sums in the same order), an
 * honest B is reproduced exactly. The training is cotrain-worker's: this module runs it as a
 * separate process, so `cotrain verify` still never links the model. */
#ifndef COTRAIN_TOOLS_REPLAY_H
#define COTRAIN_TOOLS_REPLAY_H

#include "cotrain/err.h"
#include "cotrain/log.h"
#include "history.h"

/* What to replay. Pointers are borrowed. */
typedef struct ct_replay_opts {
    const char *a, *b;        /* checkpoint directories, both in L's lineage, a's step below b's */
    const char *data;         /* the run's data (manifest.json or its folder) */
    int np;                   /* ranks to replay on (mpirun); 0: b's world size */
    const char *worker;       /* the cotrain-worker binary; NULL: the one beside this program */
    const char *const *added; /* (n_added) the data the run added (manifest files), by which the
                                 log's data_added records are found (their sha256) */
    int n_added;
} ct_replay_opts_t;

/* Verifies both checkpoints (files against MANIFEST, ids in L's lineage), trains from a to b's
 * step in a temporary run directory ($TMPDIR, removed after) with `b`'s config and the run's data
 * changes (the log's data_added / data_excluded, the added manifests found among o->added:
 * cotrain-worker --data-changes), the worker's log on stderr, and compares model.h5, optim.h5
 * and the data cursor with b's. Prints the verdict on
 * stdout. Errors: CT_ECORRUPT (b does not follow: naming what differs, and the world sizes when
 * they differ), CT_EINVAL (a checkpoint outside the lineage, or a after b; an added manifest
 * not given), CT_EIO (the worker
 * failed: its exit status), those of ct_ckpt_verify. */
int ct_replay(const ct_history_t *L, const ct_replay_opts_t *o, const ct_log_t *lg, ct_err_t *e);

#endif
