/* layout.c — GPT-2's tensor table and initial weights (see layout.h). */
#include "cotrain/layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/rng.h"

enum { TENSORS_PER_LAYER = 12 };

static void add_tensor(ct_layout_t *l, const char *name, int rows, int cols, int is_matrix) {
    ct_tensor_info_t *t = &l->tensors[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = l->n_params;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t->stored_rows = rows;
    t->is_matrix = is_matrix;
    l->n_params += t->numel;
}

int ct_layout_build(ct_layout_t *out, int n_layer, int d_model, int seq_len, int vocab_size,
                    ct_err_t *e) {
    memset(out, 0, sizeof *out);
    if (n_layer < 1 || d_model < 1 || seq_len < 1 || vocab_size < 1)
        return CT_ERR(e, CT_EINVAL,
                      "model sizes must be at least 1 (n_layer %d, d_model %d, "
                      "seq_len %d, vocab_size %d)",
                      n_layer, d_model, seq_len, vocab_size);
    int rc = 0;
    CT_ALLOC(e, out->tensors, 2 + TENSORS_PER_LAYER * n_layer + 2, fail);
    out->n_layer = n_layer;
    out->d_model = d_model;
    out->seq_len = seq_len;
    out->vocab_size = vocab_size;
    out->vocab_padded = (vocab_size + 63) / 64 * 64;
    int C = d_model;
    add_tensor(out, "transformer.wte.weight", out->vocab_padded, C, 1);
    out->tensors[0].stored_rows = vocab_size; /* the padding rows are never stored */
    add_tensor(out, "transformer.wpe.weight", seq_len, C, 1);
    static const struct {
        const char *suffix;
        int rows_mult, cols_mult; /* in units of C; cols 0 = vector */
        int is_matrix;
    } block[TENSORS_PER_LAYER] = {
        {"ln_1.weight", 1, 0, 0},        {"ln_1.bias", 1, 0, 0},
        {"attn.c_attn.weight", 1, 3, 1}, {"attn.c_attn.bias", 3, 0, 0},
        {"attn.c_proj.weight", 1, 1, 1}, {"attn.c_proj.bias", 1, 0, 0},
        {"ln_2.weight", 1, 0, 0},        {"ln_2.bias", 1, 0, 0},
        {"mlp.c_fc.weight", 1, 4, 1},    {"mlp.c_fc.bias", 4, 0, 0},
        {"mlp.c_proj.weight", 4, 1, 1},  {"mlp.c_proj.bias", 1, 0, 0},
    };
    char name[CT_TENSOR_NAME_MAX];
    for (int i = 0; i < n_layer; i++)
        for (int j = 0; j < TENSORS_PER_LAYER; j++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", i, block[j].suffix);
            add_tensor(out, name, block[j].rows_mult * C, block[j].cols_mult * C,
                       block[j].is_matrix);
        }
    add_tensor(out, "transformer.ln_f.weight", C, 0, 0);
    add_tensor(out, "transformer.ln_f.bias", C, 0, 0);
    out->n_real_params = out->n_params - (size_t)(out->vocab_padded - vocab_size) * C;
    return 0;
fail:
    ct_layout_free(out);
    return rc;
}

void ct_layout_free(ct_layout_t *l) {
    if (!l) return;
    free(l->tensors);
    memset(l, 0, sizeof *l);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void ct_layout_init_weights(const ct_layout_t *l, float *params, uint64_t seed) {
    float resid_std = 0.02f / sqrtf(2.0f * l->n_layer);
    for (int i = 0; i < l->n_tensors; i++) {
        const ct_tensor_info_t *t = &l->tensors[i];
        float *p = params + t->offset;
        if (t->is_matrix) {
            float std = ends_with(t->name, "c_proj.weight") ? resid_std : 0.02f;
            ct_rng_normal_fill(p, t->numel, std, seed, (uint64_t)i);
        } else {
            float v = ends_with(t->name, ".bias") ? 0.0f : 1.0f;
            for (size_t k = 0; k < t->numel; k++)
                p[k] = v;
        }
    }
    size_t real = (size_t)l->vocab_size * l->d_model;
    memset(params + l->tensors[0].offset + real, 0, (l->tensors[0].numel - real) * sizeof(float));
}
