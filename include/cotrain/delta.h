/* delta.h — a volunteer group's update on the wire: its pseudo-gradient (the global model it
 * started from minus its parameters after the inner steps; DESIGN.md, "Volunteer mode"),
 * compressed both ways (deltas up, model updates down).
 *
 * Codecs, little-endian:
 *   f32   the floats as they are: 4 bytes a value
 *   bf16  the top 16 bits of each float, rounded to nearest-even (finite values too large for
 *         bf16 are clamped to its largest finite value): 2 bytes a value
 *   int8  blocks of CT_DELTA_BLOCK values, each with a float scale = max|x| / 127 and
 *         q = round-half-even(x / scale) in [-127, 127]; laid out as all the scales, then all the
 *         q's: 4 bytes a block plus 1 a value (~1.02 bytes a value)
 * Error feedback (optional): the encoder adds what the previous encodings lost before encoding
 * and keeps what this one loses, so the sum of what is sent tracks the sum of the deltas within
 * one encoding's error however many are sent.
 *
 * Why blocks of 256 for int8: one outlier then coarsens only its block, and the scales cost 1.6%
 * of the payload. Nothing decoded is trusted: sizes must match and every value be finite. */
#ifndef COTRAIN_DELTA_H
#define COTRAIN_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

typedef enum ct_delta_codec {
    CT_DELTA_F32,
    CT_DELTA_BF16,
    CT_DELTA_INT8,
    CT_DELTA_NCODECS
} ct_delta_codec_t;

enum { CT_DELTA_BLOCK = 256 };

/* The codec's name ("f32", "bf16", "int8"), and back: -1 for an unknown name. */
const char *ct_delta_codec_name(ct_delta_codec_t c);
int ct_delta_codec_parse(const char *name);

/* Bytes of n values encoded. */
size_t ct_delta_encoded_size(ct_delta_codec_t c, int64_t n);

/* Encodes x[0..n) into out[0..ct_delta_encoded_size). With err (n floats; NULL: no error
 * feedback) it encodes x + err and leaves in err what that encoding lost. Errors: CT_EINVAL (a
 * value not finite: naming its index; nothing is encoded and err is unchanged). */
int ct_delta_encode(ct_delta_codec_t c, const float *x, float *err, int64_t n, void *out,
                    ct_err_t *e);

/* Decodes in[0..len) into x[0..n). Errors: CT_ECORRUPT (len is not the size of n values, or a
 * scale or value is not finite: naming it). */
int ct_delta_decode(ct_delta_codec_t c, const void *in, size_t len, float *x, int64_t n,
                    ct_err_t *e);

#endif
