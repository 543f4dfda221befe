/* oracle_harness.c — drives the real model, optimizer and schedule for the PyTorch oracle
 * (tests/oracle/test_oracle.py), which owns the contract:
 *   ct_oracle_harness --config CFG.json --params PARAMS.bin --tokens TOKENS.bin --steps N
 *                     --out OUT.bin
 * PARAMS.bin: float32 in the model's flat layout; TOKENS.bin: int32 (global_batch, T+1).
 * OUT.bin: float32 logits of step 0 (B,T,V), loss of step 0, gradient of step 0 (flat), the N
 * losses, N grad norms, N learning rates, then the final parameters (flat). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/config.h"
#include "cotrain/train.h"

static int read_exact(const char *path, void *buf, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, bytes, f);
    int extra = fgetc(f);
    fclose(f);
    return got == bytes && extra == EOF ? 0 : -1;
}

static void put(FILE *f, const float *x, size_t n) {
    fwrite(x, sizeof(float), n, f);
}

static void put1(FILE *f, double v) {
    float x = (float)v;
    put(f, &x, 1);
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL, *params_path = NULL, *tokens_path = NULL, *out_path = NULL;
    int steps = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--config")) cfg_path = argv[i + 1];
        else if (!strcmp(argv[i], "--params")) params_path = argv[i + 1];
        else if (!strcmp(argv[i], "--tokens")) tokens_path = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out_path = argv[i + 1];
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    }
    if (!cfg_path || !params_path || !tokens_path || !out_path || steps < 1) {
        fprintf(stderr, "usage: ct_oracle_harness --config F --params F --tokens F --steps N "
                        "--out F\n");
        return 2;
    }
    ct_err_t e = {0};
    ct_config_t cfg;
    ct_trainer_t *tr = NULL;
    int rc = ct_config_load(&cfg, cfg_path, NULL, NULL, 0, &e);
    if (rc == 0) rc = ct_trainer_create(&tr, &cfg, NULL, NULL, &e);
    if (rc != 0) {
        fprintf(stderr, "ct_oracle_harness: %s\n", e.msg);
        return 1;
    }
    ct_model_t *m = ct_trainer_model(tr);
    const ct_model_dims_t *d = ct_model_dims(m);
    int B = cfg.train.global_batch, mb = cfg.train.micro_batch, T = d->seq_len;
    int V = d->vocab_size, Vp = d->vocab_padded;
    size_t np = ct_model_num_params(m);
    int *rows = malloc(sizeof(int) * (size_t)B * (T + 1));
    int *inp = malloc(sizeof(int) * (size_t)mb * T), *tgt = malloc(sizeof(int) * (size_t)mb * T);
    FILE *out = fopen(out_path, "wb");
    if (!rows || !inp || !tgt || !out || read_exact(params_path, ct_model_params(m), np * 4) ||
        read_exact(tokens_path, rows, sizeof(int) * (size_t)B * (T + 1))) {
        fprintf(stderr, "ct_oracle_harness: cannot read inputs or write %s (sizes?)\n", out_path);
        return 1;
    }
    /* step 0 by hand: logits of every micro-batch, then the accumulated gradient */
    double loss = 0.0;
    for (int k = 0; k < B / mb; k++) {
        for (int b = 0; b < mb; b++)
            for (int t = 0; t < T; t++) {
                inp[b * T + t] = rows[(size_t)(k * mb + b) * (T + 1) + t];
                tgt[b * T + t] = rows[(size_t)(k * mb + b) * (T + 1) + t + 1];
            }
        loss += ct_model_forward(m, inp, tgt, mb);
        const float *logits = ct_model_logits(m);
        for (int r = 0; r < mb * T; r++) put(out, logits + (size_t)r * Vp, (size_t)V);
        ct_model_backward(m, inp, tgt, mb, 1.0f / ((float)B * T));
    }
    put1(out, loss / (B / mb));
    put(out, ct_model_grads(m), np);
    /* N real steps (the first recomputes step 0's gradient) */
    double *hist = calloc(3 * (size_t)steps, sizeof(double));
    for (int s = 0; s < steps && hist; s++) {
        ct_step_stats_t st;
        if (ct_trainer_step_tokens(tr, rows, &st, &e) != 0) {
            fprintf(stderr, "ct_oracle_harness: %s\n", e.msg);
            return 1;
        }
        hist[s] = st.loss;
        hist[steps + s] = st.grad_norm;
        hist[2 * steps + s] = st.lr;
    }
    for (int i = 0; hist && i < 3 * steps; i++) put1(out, hist[i]);
    put(out, ct_model_params(m), np);
    int bad = !hist || ferror(out);
    bad |= fclose(out) != 0;
    free(hist);
    free(rows);
    free(inp);
    free(tgt);
    ct_trainer_destroy(&tr);
    return bad ? 1 : 0;
}
