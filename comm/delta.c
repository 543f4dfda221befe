/* delta.c — the codecs of a volunteer group's updates (see delta.h). */
#include "cotrain/delta.h"

#include <math.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

static const char *const NAMES[CT_DELTA_NCODECS] = {"f32", "bf16", "int8"};

const char *ct_delta_codec_name(ct_delta_codec_t c) {
    return c >= 0 && c < CT_DELTA_NCODECS ? NAMES[c] : "?";
}

int ct_delta_codec_parse(const char *name) {
    for (int c = 0; c < CT_DELTA_NCODECS; c++)
        if (!strcmp(name, NAMES[c])) return c;
    return -1;
}

static int64_t blocks(int64_t n) {
    return (n + CT_DELTA_BLOCK - 1) / CT_DELTA_BLOCK;
}

size_t ct_delta_encoded_size(ct_delta_codec_t c, int64_t n) {
    switch (c) {
    case CT_DELTA_F32: return (size_t)n * 4;
    case CT_DELTA_BF16: return (size_t)n * 2;
    default: return (size_t)blocks(n) * 4 + (size_t)n;
    }
}

static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t r = u + 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    if (((r >> 23) & 0xffu) == 0xffu)            /* rounded past the largest finite */
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7f7fu);
    return (uint16_t)(r >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* y[0..n) encoded into out (the values are finite). */
static void encode(ct_delta_codec_t c, const float *y, int64_t n, unsigned char *out) {
    if (c == CT_DELTA_F32) {
        memcpy(out, y, (size_t)n * 4);
    } else if (c == CT_DELTA_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = to_bf16(y[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    } else {
        int64_t nb = blocks(n);
        int8_t *q = (int8_t *)(out + 4 * nb);
        for (int64_t b = 0; b < nb; b++) {
            int64_t lo = b * CT_DELTA_BLOCK, hi = lo + CT_DELTA_BLOCK < n ? lo + CT_DELTA_BLOCK : n;
            float amax = 0.0f;
            for (int64_t i = lo; i < hi; i++)
                amax = fmaxf(amax, fabsf(y[i]));
            float scale = amax / 127.0f;
            while (!isfinite(127.0f * scale)) /* amax near FLT_MAX: 127 x scale must decode */
                scale = nextafterf(scale, 0.0f);
            memcpy(out + 4 * b, &scale, 4);
            for (int64_t i = lo; i < hi; i++) {
                float v = scale > 0.0f ? rintf(y[i] / scale) : 0.0f;
                q[i] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
            }
        }
    }
}

/* Values [lo, lo + m) of the n values encoded in p. */
static void decode_range(ct_delta_codec_t c, const unsigned char *p, int64_t n, int64_t lo,
                         int64_t m, float *x) {
    if (c == CT_DELTA_F32) {
        memcpy(x, p + 4 * lo, (size_t)m * 4);
    } else if (c == CT_DELTA_BF16) {
        for (int64_t i = 0; i < m; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (lo + i), 2);
            x[i] = from_bf16(h);
        }
    } else {
        const int8_t *q = (const int8_t *)(p + 4 * blocks(n));
        for (int64_t i = 0; i < m; i++) {
            float scale;
            memcpy(&scale, p + 4 * ((lo + i) / CT_DELTA_BLOCK), 4);
            x[i] = (float)q[lo + i] * scale;
        }
    }
}

int ct_delta_decode(ct_delta_codec_t c, const void *in, size_t len, float *x, int64_t n,
                    ct_err_t *e) {
    const unsigned char *p = in;
    if (c < 0 || c >= CT_DELTA_NCODECS)
        return CT_ERR(e, CT_ECORRUPT, "unknown delta codec %d", (int)c);
    if (len != ct_delta_encoded_size(c, n))
        return CT_ERR(e, CT_ECORRUPT,
                      "a %s delta of %lld values is %zu bytes, not %zu: cut short or not a delta "
                      "of this model",
                      NAMES[c], (long long)n, ct_delta_encoded_size(c, n), len);
    for (int64_t b = 0; c == CT_DELTA_INT8 && b < blocks(n); b++) {
        float scale;
        memcpy(&scale, p + 4 * b, 4);
        if (!isfinite(scale) || scale < 0.0f)
            return CT_ERR(e, CT_ECORRUPT, "int8 delta: block %lld has scale %g", (long long)b,
                          (double)scale);
    }
    decode_range(c, p, n, 0, n, x);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return CT_ERR(e, CT_ECORRUPT, "%s delta: value %lld is not finite", NAMES[c],
                          (long long)i);
    return 0;
}

int ct_delta_encode(ct_delta_codec_t c, const float *x, float *err, int64_t n, void *out,
                    ct_err_t *e) {
    if (c < 0 || c >= CT_DELTA_NCODECS)
        return CT_ERR(e, CT_EINVAL, "unknown delta codec %d", (int)c);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || (err && !isfinite(x[i] + err[i])))
            return CT_ERR(e, CT_EINVAL,
                          "delta value %lld is not finite: the group's training diverged (its "
                          "update is not sent)",
                          (long long)i);
    if (!err) {
        encode(c, x, n, out);
        return 0;
    }
    /* error feedback: encode y = x + err, keep y - decode(y); y lives in err meanwhile */
    for (int64_t i = 0; i < n; i++)
        err[i] += x[i];
    encode(c, err, n, out);
    enum { CHUNK = 4096 };
    float back[CHUNK];
    for (int64_t lo = 0; lo < n; lo += CHUNK) {
        int64_t m = n - lo < CHUNK ? n - lo : CHUNK;
        decode_range(c, out, n, lo, m, back);
        for (int64_t i = 0; i < m; i++)
            err[lo + i] -= back[i];
    }
    return 0;
}
