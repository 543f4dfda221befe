/* ckpt_load.h — private to the checkpoint module: verifying a checkpoint's files against its
 * MANIFEST on every core, and loading its tensors while doing so (see ckpt_load.c for how). */
#ifndef COTRAIN_CKPT_LOAD_H
#define COTRAIN_CKPT_LOAD_H

#include "ckpt_sums.h"
#include "cotrain/ckpt.h"
#include "cotrain/err.h"

/* Which files to check. */
enum { CT_CKPT_CHECK_ALL, CT_CKPT_CHECK_SMALL };

/* Checks the files of dir against sums. CT_CKPT_CHECK_ALL hashes every byte, on every core;
 * CT_CKPT_CHECK_SMALL hashes config.json and state.json (on the calling thread) and checks that
 * the tensor files exist with the size their pieces say (a candidate for a restore, which then
 * hashes them). Errors:
 * CT_ENOENT (a file missing), CT_ECORRUPT (a hash or size differs: naming the file and piece),
 * CT_EIO, CT_ENOMEM. */
int ct_ckpt_check(const char *dir, const ct_ckpt_sums_t *sums, int what, ct_err_t *e);

/* Verifies every file of dir against sums and loads body's tensors (and adam_steps; optim.h5 is
 * only verified when body->adam_m is NULL). No byte of a file is parsed or left in body's
 * buffers as loaded before the hash covering it matched. *one_pass is 1 when every byte was
 * read once (else a file was read again after it verified). Errors: those of ct_ckpt_check, and
 * CT_ECORRUPT for a tensor missing or mis-shaped (naming it). On failure the buffers hold
 * unspecified bytes. */
int ct_ckpt_load(const char *dir, const ct_ckpt_sums_t *sums, ct_ckpt_body_t *body, int *one_pass,
                 ct_err_t *e);

#endif
