/* ckpt_h5.h — private to the checkpoint module: the HDF5 tensor files model.h5 and optim.h5.
 *
 * A file holds groups of tensors, each group one buffer laid out by the same tensor table
 * (tensor.h): model.h5 has the parameters at its root, optim.h5 the AdamW moments under m/ and
 * v/ and the attribute `steps`. Only the first stored_rows rows of a tensor are kept. */
#ifndef COTRAIN_CKPT_H5_H
#define COTRAIN_CKPT_H5_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/tensor.h"
#include "ckpt_io.h"
#include "cotrain/ckpt.h"

/* The checkpoint's files (ckpt.h's CT_CKPT_*), by short names inside this module. */
enum {
    CONFIG = CT_CKPT_CONFIG,
    MODEL = CT_CKPT_MODEL,
    OPTIM = CT_CKPT_OPTIM,
    STATE = CT_CKPT_STATE,
    N_FILES = CT_CKPT_NFILES
};

/* One group: the tensors of `buf` under the HDF5 group `name` ("" for the root). */
typedef struct ct_ckpt_group {
    const char *name;
    float *buf; /* laid out by the table; not owned */
} ct_ckpt_group_t;

/* Creates the HDF5 file at path for the groups (tensors t[0..n) of each), with the int64
 * attribute `steps` when steps is not NULL: the metadata is written and every tensor's space
 * allocated, but no tensor bytes. Fills *L (sealed for writing; the caller frees it) with where
 * each tensor's bytes go: the writer puts them there, ct_ckpt_io_hash gives the finished file's
 * sha256. Errors: CT_EIO naming the file, the tensor and HDF5's reason; CT_ENOMEM. On failure *L
 * holds nothing. */
int ct_ckpt_h5_create(const char *path, const ct_tensor_info_t *t, int n, const ct_ckpt_group_t *g,
                      int n_groups, const int64_t *steps, ct_ckpt_layout_t *L, ct_err_t *e);

/* Opens a file ct_ckpt_h5_create wrote and finds where each tensor of each group lies; fills
 * *L (sealed for reading: ct_ckpt_io_read then moves the bytes) and *steps (when not NULL),
 * and zeroes the padding rows of every tensor. Errors: CT_ECORRUPT naming the file and the
 * tensor that is missing, mis-shaped or not stored as contiguous fp32; CT_EIO; CT_ENOMEM. Safe
 * to call from two threads at once (HDF5 is built thread-safe). On failure *L holds nothing. */
int ct_ckpt_h5_locate(const char *path, const ct_tensor_info_t *t, int n, const ct_ckpt_group_t *g,
                      int n_groups, int64_t *steps, ct_ckpt_layout_t *L, ct_err_t *e);

/* Like ct_ckpt_h5_locate, but HDF5 parses `image` (size bytes: the file's first bytes, verified,
 * and zeros after them; read in place, never written) instead of the file, so nothing unverified
 * is parsed; L still names and is sealed against the file at path. A file whose metadata lies
 * beyond the verified bytes fails to parse here (CT_ECORRUPT): read it with ct_ckpt_h5_locate
 * once all of it is verified. */
int ct_ckpt_h5_locate_image(const char *path, void *image, size_t size, const ct_tensor_info_t *t,
                            int n, const ct_ckpt_group_t *g, int n_groups, int64_t *steps,
                            ct_ckpt_layout_t *L, ct_err_t *e);

#endif
