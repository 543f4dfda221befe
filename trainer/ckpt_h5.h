/* ckpt_h5.h — private to the checkpoint module: the HDF5 tensor files model.h5 and optim.h5. */
#ifndef COTRAIN_CKPT_H5_H
#define COTRAIN_CKPT_H5_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/model.h"
#include "ckpt_io.h"

/* Creates the HDF5 file at path for the buffer `a` (the parameters' layout) as model.h5 when b
 * is NULL, else for a and b as the groups m/ and v/ of optim.h5 with the attribute `steps`: the
 * metadata is written and every tensor's space allocated, but no tensor bytes. Fills *L (sealed
 * for writing; the caller frees it) with where each tensor's bytes go: ct_ckpt_io_write puts them
 * there, ct_ckpt_io_hash gives the finished file's sha256. Errors: CT_EIO naming the file, the
 * tensor and HDF5's reason; CT_ENOMEM. On failure *L holds nothing. */
int ct_ckpt_h5_create(const char *path, const ct_model_t *m, const float *a, const float *b,
                      int64_t steps, ct_ckpt_layout_t *L, ct_err_t *e);

/* Reads what ct_ckpt_h5_create and ct_ckpt_io_write wrote back into a (and b, steps). Errors:
 * CT_ECORRUPT naming the file and the tensor that is missing, mis-shaped or not stored as
 * contiguous fp32; CT_EIO. Safe to call from two threads at once (HDF5 is built thread-safe;
 * the bulk reads run outside it). */
int ct_ckpt_h5_read(const char *path, ct_model_t *m, float *a, float *b, int64_t *steps,
                    ct_err_t *e);

#endif
