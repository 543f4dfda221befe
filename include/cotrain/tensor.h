/* tensor.h — a named fp32 tensor inside a flat buffer: how the model describes its parameters,
 * and all that checkpoint and safetensors files need to know of them, so that ckpt/ never needs
 * the model (a lower library never includes a higher one; see docs/ARCHITECTURE.md).
 *
 * A table of these describes one buffer: tensor i occupies buf[offset, offset + numel). Files
 * store each tensor's first `stored_rows` rows; rows past them are padding that is always zero
 * (the model pads its vocabulary to a multiple of 64 rows) and reading a file zeroes them. */
#ifndef COTRAIN_TENSOR_H
#define COTRAIN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum { CT_TENSOR_NAME_MAX = 64 };

typedef struct ct_tensor_info {
    char name[CT_TENSOR_NAME_MAX]; /* e.g. "transformer.h.3.attn.c_attn.weight" */
    size_t offset;                 /* in floats, into the buffer */
    size_t numel;                  /* shape[0] * shape[1], padding rows included */
    int ndim;                      /* 1 or 2 */
    int shape[2];                  /* row-major shape in memory; shape[1] is 0 when ndim is 1 */
    int stored_rows;               /* rows kept in files: shape[0] unless the last are padding */
    int is_matrix;                 /* 2-D weight or embedding (weight decay applies) */
} ct_tensor_info_t;

/* Floats of tensor t that files hold: stored_rows whole rows. */
static inline size_t ct_tensor_stored_numel(const ct_tensor_info_t *t) {
    return (size_t)t->stored_rows * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

#endif
