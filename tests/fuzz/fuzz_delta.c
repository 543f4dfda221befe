/* fuzz_delta.c — libFuzzer target: a volunteer's delta as the coordinator decodes it
 * (comm/delta.c). The first byte picks the codec and the value count's rounding; the rest is the
 * payload. A payload that decodes holds only finite values and encodes again (f32 and bf16: to
 * the very same bytes and values; int8: to bytes that decode). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ct_delta_codec_t c = (ct_delta_codec_t)(data[0] % CT_DELTA_NCODECS);
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    int64_t n = c == CT_DELTA_F32    ? (int64_t)(len / 4)
                : c == CT_DELTA_BF16 ? (int64_t)(len / 2)
                                     : (int64_t)len * CT_DELTA_BLOCK / (CT_DELTA_BLOCK + 4);
    n += (data[0] / CT_DELTA_NCODECS) % 3 - 1; /* now and then a count that does not fit */
    if (n < 0 || n > (1 << 20)) return 0;
    float *x = malloc((size_t)n * 4 + 4), *y = malloc((size_t)n * 4 + 4);
    unsigned char *enc = malloc(ct_delta_encoded_size(c, n) + 1);
    ct_err_t e = {0};
    if (x && y && enc && ct_delta_decode(c, p, len, x, n, &e) == 0) {
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(x[i])) __builtin_trap();
        if (ct_delta_encode(c, x, NULL, n, enc, &e) != 0) __builtin_trap();
        if (c != CT_DELTA_INT8 && memcmp(enc, p, len) != 0) __builtin_trap();
        if (ct_delta_decode(c, enc, ct_delta_encoded_size(c, n), y, n, &e) != 0) __builtin_trap();
        if (c != CT_DELTA_INT8 && memcmp(x, y, (size_t)n * 4) != 0) __builtin_trap();
    }
    free(x);
    free(y);
    free(enc);
    return 0;
}
