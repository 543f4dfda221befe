/* fuzz_safetensors.c — libFuzzer target: a model.safetensors as `cotrain-worker --init` and
 * `cotrain-coordinator --init` read it (ckpt/safetensors.c), for a one-layer model (d_model 8,
 * seq_len 4, vocabulary 16: its tensor table from ckpt/layout.c). Whatever the bytes, a refusal
 * says why, and a file that loads leaves the vocabulary's padding rows at zero (the reader must
 * never let a file fill rows the model does not have). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/layout.h"
#include "cotrain/safetensors.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ct_layout_t lay;
    static float *buf;
    if (!buf) {
        ct_err_t e = {0};
        if (ct_layout_build(&lay, 1, 8, 4, 16, &e) != 0 ||
            !(buf = malloc(lay.n_params * sizeof *buf)))
            abort();
    }
    const char *path = fuzz_file(data, size, "model.safetensors");
    if (!path) return 0;
    memset(buf, 0xff, lay.n_params * sizeof *buf); /* NaNs: what the reader leaves shows */
    ct_err_t e = {0};
    if (ct_safetensors_read(path, lay.tensors, lay.n_tensors, buf, &e) == 0) {
        for (int t = 0; t < lay.n_tensors; t++) {
            const ct_tensor_info_t *x = &lay.tensors[t];
            size_t kept = ct_tensor_stored_numel(x);
            for (size_t i = kept; i < x->numel; i++) /* padding rows (wte's) */
                if (buf[x->offset + i] != 0.0f) __builtin_trap();
        }
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    return 0;
}
