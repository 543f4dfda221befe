/* ckpt_h5.h — private to the checkpoint module: the HDF5 tensor files model.h5 and optim.h5. */
#ifndef COTRAIN_CKPT_H5_H
#define COTRAIN_CKPT_H5_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/model.h"

/* Writes the buffer `a` (the parameters' layout) as model.h5 when b is NULL; else a and b as the
 * groups m/ and v/ of optim.h5 with the attribute `steps`. Errors: CT_EIO naming the file, the
 * tensor and HDF5's reason. The file is not fsync'd here. */
int ct_ckpt_h5_write(const char *path, const ct_model_t *m, const float *a, const float *b,
                     int64_t steps, ct_err_t *e);

/* Reads what ct_ckpt_h5_write wrote back into a (and b, steps). Errors: CT_ECORRUPT naming the
 * file and the tensor that is missing, mis-shaped or unreadable. */
int ct_ckpt_h5_read(const char *path, ct_model_t *m, float *a, float *b, int64_t *steps,
                    ct_err_t *e);

#endif
