/* snapshot.c — maps a trainer onto a checkpoint's tensor table and back (see snapshot.h). */
#include "cotrain/snapshot.h"

#include <stdlib.h>
#include <string.h>

/* The body of t: its tensors, moments and guard window (the guard's own arrays: a save only
 * reads them). */
static void body_of(ct_trainer_t *t, ct_ckpt_body_t *b) {
    ct_model_t *m = ct_trainer_model(t);
    ct_adamw_t *opt = ct_trainer_optim(t);
    memset(b, 0, sizeof *b);
    b->tensors = ct_model_tensor(m, 0);
    b->n_tensors = ct_model_num_tensors(m);
    b->params = ct_model_params(m);
    b->adam_m = ct_adamw_m(opt);
    b->adam_v = ct_adamw_v(opt);
    b->adam_steps = ct_adamw_steps(opt);
    ct_spike_t *sp = ct_trainer_spike(t);
    if (sp) {
        const double *loss, *norm;
        ct_spike_state(sp, &b->guard.cap, &b->guard.count, &b->guard.head, &loss, &norm);
        b->guard.loss = (double *)loss;
        b->guard.grad_norm = (double *)norm;
    }
}

int ct_snapshot_save(const char *run_dir, ct_trainer_t *t, const char *config_json,
                     ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e) {
    ct_ckpt_body_t b;
    body_of(t, &b);
    info->step = ct_trainer_steps(t);
    return ct_ckpt_save(run_dir, &b, config_json, info, out_path, n, e);
}

int ct_snapshot_restore(const char *dir, ct_trainer_t *t, ct_ckpt_info_t *info, ct_err_t *e) {
    ct_ckpt_body_t b;
    body_of(t, &b);
    int rc = 0;
    /* the window is read into arrays of our own, then handed to the guard, which checks it */
    double *loss = NULL, *norm = NULL;
    if (b.guard.cap > 0) {
        CT_ALLOC(e, loss, b.guard.cap, out);
        CT_ALLOC(e, norm, b.guard.cap, out);
        b.guard.loss = loss;
        b.guard.grad_norm = norm;
        b.guard.count = b.guard.head = 0;
    }
    CT_TRY_GOTO(ct_ckpt_restore(dir, &b, info, e), out);
    if (b.guard.cap > 0)
        CT_TRY_GOTO(
            ct_spike_restore(ct_trainer_spike(t), b.guard.count, b.guard.head, loss, norm, e), out);
    ct_adamw_set_steps(ct_trainer_optim(t), b.adam_steps);
    ct_trainer_set_steps(t, info->step);
out:
    free(loss);
    free(norm);
    return rc;
}

int ct_snapshot_open_model(const char *dir, ct_config_t *cfg, ct_ckpt_info_t *info_out,
                           ct_model_t **model, int max_batch, ct_err_t *e) {
    ct_ckpt_info_t info;
    *model = NULL;
    /* config.json verified before it is read; the restore verifies the rest as it reads it */
    CT_TRY(ct_ckpt_check_small(dir, &info, e));
    CT_TRY(ct_ckpt_load_config(dir, cfg, e));
    ct_model_dims_t dims = {.n_layer = cfg->model.n_layer,
                            .n_head = cfg->model.n_head,
                            .d_model = cfg->model.d_model,
                            .seq_len = cfg->model.seq_len,
                            .vocab_size = cfg->model.vocab_size};
    CT_TRY(ct_model_create(model, &dims, max_batch, e));
    ct_ckpt_body_t b = {.tensors = ct_model_tensor(*model, 0),
                        .n_tensors = ct_model_num_tensors(*model),
                        .params = ct_model_params(*model)};
    int rc = ct_ckpt_restore(dir, &b, &info, e);
    if (rc != 0) ct_model_destroy(model);
    if (rc == 0 && info_out) *info_out = info;
    return rc;
}
