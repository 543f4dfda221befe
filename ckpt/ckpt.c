/* ckpt.c — checkpoint directories: crash-safe save (temp directory, fsync, rename), verification
 * on every core before any use, restore, the newest good checkpoint, and the retention policy.
 *
 * Crash safety rests on one rename: everything is written and fsync'd inside
 * checkpoints/.ckpt-<step>.tmp, then the directory is renamed to ckpt-<step> and its parent
 * fsync'd. Deletion runs the other way (rename to .del-..., then remove), so a ckpt-* directory is
 * never half there. Leftover .tmp and .del directories from a crash are removed at the next save.
 * A save that fails leaves checkpoints/ as it found it: the temp directory is removed, a
 * checkpoint of the same step that it was replacing is put back, and one already renamed into
 * place whose parent's fsync then failed is withdrawn (the caller was told the save failed). Each
 * write, fsync, rename and allocation on the way can be failed by the fault-injection plan
 * (fault.h); tests/fault_ckpt.c fails each in turn.
 *
 * Speed (docs/PERFORMANCE.md, "Checkpoints"): a save writes the tensors with O_DIRECT from two
 * threads while two more compute the MANIFEST's hashes from memory (ckpt_io.c: one the whole-file
 * hashes, one the 64 MiB pieces), so no byte goes through the page cache or is read back. A
 * verification hashes the pieces on every core, and a restore reads each byte once, into the
 * tensors, hashing as it goes (ckpt_load.c). Nothing in a file is parsed (HDF5 metadata
 * included) or used before its hashes matched. */
#include "cotrain/ckpt.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_h5.h"
#include "ckpt_load.h"
#include "ckpt_sums.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"

#define STATE_FORMAT "cotrain-ckpt/1"

static const char *const *FILES = ct_ckpt_file_names;

/* ---- state.json ---- */

/* doubles as "%.17g", which reads back bit-identical: cJSON's own printing tries 15 digits and
 * keeps them when they read back within an epsilon, so 0.30000000000000004 came back as 0.3 and
 * a resumed spike guard judged steps against a slightly different window. (The guard holds only
 * accepted, finite values.) */
static cJSON *exact_array(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.17g", x[i]);
        cJSON *v = cJSON_CreateRaw(num);
        if (!v || !cJSON_AddItemToArray(a, v)) { /* out of memory: no array with a gap */
            cJSON_Delete(v);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return a;
}

/* state.json as JSON, or NULL when out of memory. Every addition is checked: a key dropped for
 * want of memory would give a checkpoint that verifies but cannot be resumed. */
static cJSON *state_json(const ct_ckpt_info_t *info, const ct_ckpt_guard_t *g) {
    cJSON *js = cJSON_CreateObject();
    int ok = js && cJSON_AddStringToObject(js, "format", STATE_FORMAT) &&
             cJSON_AddNumberToObject(js, "step", (double)info->step) &&
             cJSON_AddNumberToObject(js, "tokens", (double)info->tokens) &&
             cJSON_AddNumberToObject(js, "world_size", info->world_size) &&
             cJSON_AddStringToObject(js, "config_sha256", info->config_sha256) &&
             cJSON_AddStringToObject(js, "tokenizer", info->tokenizer) &&
             cJSON_AddStringToObject(js, "data_sha256", info->data_sha256) &&
             cJSON_AddStringToObject(js, "parent", info->parent) &&
             ct_json_add_owned(js, "data_cursor", ct_data_cursor_to_json(&info->cursor));
    if (ok && g->cap == 0) {
        ok = cJSON_AddNullToObject(js, "spike_guard") != NULL;
    } else if (ok) {
        cJSON *o = cJSON_AddObjectToObject(js, "spike_guard");
        ok = o && cJSON_AddNumberToObject(o, "count", g->count) &&
             cJSON_AddNumberToObject(o, "head", g->head) &&
             ct_json_add_owned(o, "loss", exact_array(g->loss, g->count)) &&
             ct_json_add_owned(o, "grad_norm", exact_array(g->grad_norm, g->count));
    }
    if (!ok) cJSON_Delete(js);
    return ok ? js : NULL;
}

static int copy_hex(char out[CT_SHA256_HEX], const cJSON *obj, const char *key, int may_be_empty) {
    const char *v = ct_json_get_string(obj, key);
    if (!v || !(ct_sha256_hex_valid(v) || (may_be_empty && !*v))) return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* The spike guard's window from state.json into g (whose arrays hold g->cap entries). */
static int parse_guard(const cJSON *js, ct_ckpt_guard_t *g, const char *path, ct_err_t *e) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(js, "spike_guard");
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(o, "grad_norm");
    int64_t count = -1, head = -1;
    ct_json_get_uint53(o, "count", &count);
    ct_json_get_uint53(o, "head", &head);
    if (!cJSON_IsArray(loss) || !cJSON_IsArray(norm) || count < 0 || head < 0 ||
        cJSON_GetArraySize(loss) != count || cJSON_GetArraySize(norm) != count)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: spike_guard is missing or malformed (was the run "
                      "started without train.spike_guard?)",
                      path);
    if (count > g->cap || head >= g->cap)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: the spike guard's window holds %lld steps, more than "
                      "train.spike_window %d",
                      path, (long long)count, g->cap);
    for (int i = 0; i < count; i++) {
        const cJSON *a = cJSON_GetArrayItem(loss, i), *b = cJSON_GetArrayItem(norm, i);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            return CT_ERR(e, CT_ECORRUPT, "%s: spike_guard entry %d is not a number", path, i);
        g->loss[i] = a->valuedouble;
        g->grad_norm[i] = b->valuedouble;
    }
    g->count = (int)count;
    g->head = (int)head;
    return 0;
}

/* Parses dir/state.json into info (and, when guard is not NULL and has room, the guard). */
static int parse_state(const char *dir, ct_ckpt_info_t *info, ct_ckpt_guard_t *guard, ct_err_t *e) {
    char path[CT_PATH_MAX], *text = NULL;
    size_t len = 0;
    CT_TRY(ct_path_join(path, sizeof path, dir, "state.json", e));
    CT_TRY(ct_read_file(path, &text, &len, e));
    cJSON *js = cJSON_ParseWithLength(text, len);
    free(text);
    const char *fmt = ct_json_get_string(js, "format"), *tok = ct_json_get_string(js, "tokenizer");
    int64_t world = 0;
    int rc = 0;
    memset(info, 0, sizeof *info);
    info->step = info->tokens = -1;
    ct_json_get_uint53(js, "step", &info->step);
    ct_json_get_uint53(js, "tokens", &info->tokens);
    ct_json_get_uint53(js, "world_size", &world);
    info->world_size = world <= 1 << 30 ? (int)world : 0;
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0 || info->step < 0 || info->tokens < 0 ||
        info->world_size < 1 || copy_hex(info->config_sha256, js, "config_sha256", 0) != 0 ||
        copy_hex(info->parent, js, "parent", 1) != 0 ||
        (cJSON_HasObjectItem(js, "data_sha256") &&
         copy_hex(info->data_sha256, js, "data_sha256", 1) != 0) ||
        (tok && strlen(tok) >= sizeof info->tokenizer))
        rc = CT_ERR(e, CT_ECORRUPT, "%s is not a valid %s state (a field is missing or wrong)",
                    path, STATE_FORMAT);
    if (rc == 0 && tok) snprintf(info->tokenizer, sizeof info->tokenizer, "%s", tok);
    if (rc == 0)
        rc = ct_data_cursor_from_json(cJSON_GetObjectItemCaseSensitive(js, "data_cursor"),
                                      &info->cursor, e);
    if (rc == 0 && guard && guard->cap > 0) rc = parse_guard(js, guard, path, e);
    cJSON_Delete(js);
    return rc;
}

/* ---- verify ---- */

/* Reads MANIFEST and checks the files (ckpt_load.h's `what`); fills info (may be NULL). */
static int check_dir(const char *dir, int what, ct_ckpt_info_t *info, ct_err_t *e) {
    ct_ckpt_sums_t sums;
    CT_TRY(ct_ckpt_sums_read(dir, &sums, e));
    int rc = ct_ckpt_check(dir, &sums, what, e);
    if (rc == 0 && info) {
        rc = parse_state(dir, info, NULL, e);
        memcpy(info->id, sums.id, sizeof info->id);
        info->pieces = sums.has_pieces;
    }
    ct_ckpt_sums_free(&sums);
    return rc;
}

int ct_ckpt_verify(const char *dir, ct_ckpt_info_t *info, ct_err_t *e) {
    return check_dir(dir, CT_CKPT_CHECK_ALL, info, e);
}

int ct_ckpt_check_small(const char *dir, ct_ckpt_info_t *info, ct_err_t *e) {
    return check_dir(dir, CT_CKPT_CHECK_SMALL, info, e);
}

int ct_ckpt_load_config(const char *dir, ct_config_t *cfg, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(ct_path_join(path, sizeof path, dir, "config.json", e));
    return ct_config_load(cfg, path, NULL, NULL, 0, e);
}

/* ---- save ---- */

/* Removes leftovers of interrupted saves and deletions under checkpoints/. */
static void clean_leftovers(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    char path[CT_PATH_MAX];
    ct_err_t ignored = {0};
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        int tmp = !strncmp(de->d_name, ".ckpt-", 6) && n > 4 && !strcmp(de->d_name + n - 4, ".tmp");
        if ((tmp || !strncmp(de->d_name, ".del-", 5)) &&
            ct_path_join(path, sizeof path, root, de->d_name, &ignored) == 0)
            ct_rm_tree(path);
    }
    closedir(d);
}

/* Writes n bytes to dir/name (not yet synced: write_and_hash syncs every file). */
static int write_small(const char *dir, const char *name, const char *text, size_t n, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(ct_path_join(path, sizeof path, dir, name, e));
    int injected = ct_fault_hit(CT_FAULT_WRITE); /* creating the file */
    int fd = injected ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return CT_ERR(e, CT_EIO, "cannot create %s: %s (is the disk full?)", path,
                      ct_fault_strerror(injected, errno));
    int rc = ct_write_all(fd, text, n, -1, path, e);
    if (close(fd) != 0 && rc == 0)
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s (is the disk full?)", path, strerror(errno));
    return rc;
}

static int write_state(const char *dir, const ct_ckpt_info_t *info, const ct_ckpt_guard_t *g,
                       ct_err_t *e) {
    cJSON *js = state_json(info, g);
    char *text = js ? cJSON_Print(js) : NULL;
    cJSON_Delete(js);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory writing %s/state.json", dir);
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: the file ends with a newline */
    int rc = write_small(dir, "state.json", text, n + 1, e);
    free(text);
    return rc;
}

/* Writes the tensors of the laid-out model.h5 and optim.h5 (lay[0], lay[1]) and fsyncs every
 * file of tmp, while computing every hash of the MANIFEST into sums: the tensor files' from
 * memory (ct_ckpt_io_hash), the small ones from the files. Two threads write (the direct writes
 * mostly wait for the disk, and two in flight keep it busier than one), one computes the
 * whole-file hashes, one the pieces' and the small files'. */
static int write_and_hash(const char *tmp, const ct_ckpt_layout_t lay[2], ct_ckpt_sums_t *sums,
                          ct_err_t *e) {
    enum { WRITERS = 2, JOBS = 4 };
    int rc[JOBS] = {0};
    ct_err_t errs[JOBS];
    memset(errs, 0, sizeof errs);
    CT_TRY(ct_ckpt_sums_reserve(sums, MODEL, lay[0].size, e));
    CT_TRY(ct_ckpt_sums_reserve(sums, OPTIM, lay[1].size, e));
    ct_ckpt_writer_t *w = NULL;
    CT_TRY(ct_ckpt_writer_create(&w, lay, 2, e));
#pragma omp parallel for schedule(static, 1) num_threads(JOBS)
    for (int job = 0; job < JOBS; job++) {
        ct_err_t *je = &errs[job];
        if (job < WRITERS) {
            rc[job] = ct_ckpt_writer_work(w, je);
        } else if (job == WRITERS) {
            rc[job] = ct_ckpt_io_hash(&lay[0], sums->file[MODEL], NULL, je);
            if (rc[job] == 0) rc[job] = ct_ckpt_io_hash(&lay[1], sums->file[OPTIM], NULL, je);
        } else {
            char path[CT_PATH_MAX];
            rc[job] = ct_ckpt_io_hash(&lay[0], NULL, sums->piece[MODEL], je);
            if (rc[job] == 0) rc[job] = ct_ckpt_io_hash(&lay[1], NULL, sums->piece[OPTIM], je);
            for (int k = 0; k < N_FILES && rc[job] == 0; k++)
                if (k != MODEL && k != OPTIM &&
                    (rc[job] = ct_path_join(path, sizeof path, tmp, FILES[k], je)) == 0)
                    rc[job] = ct_ckpt_sums_hash_file(path, sums, k, je);
        }
    }
    for (int job = 0; job < JOBS; job++)
        if (rc[job] != 0) {
            ct_ckpt_writer_destroy(&w);
            *e = errs[job];
            return rc[job];
        }
    CT_TRY(ct_ckpt_writer_finish(&w, e));
    char path[CT_PATH_MAX];
    for (int k = 0; k < N_FILES; k++)
        if (k != MODEL && k != OPTIM) {
            CT_TRY(ct_path_join(path, sizeof path, tmp, FILES[k], e));
            CT_TRY(ct_fsync_path(path, e));
        }
    return 0;
}

/* Writes the five files into the empty directory tmp and fsyncs them; fills info->id. */
static int write_files(const char *tmp, const ct_ckpt_body_t *b, const char *config_json,
                       ct_ckpt_info_t *info, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(write_small(tmp, "config.json", config_json, strlen(config_json), e));
    CT_TRY(write_state(tmp, info, &b->guard, e));
    /* HDF5 writes the metadata; the tensors follow in write_and_hash */
    ct_ckpt_layout_t lay[2] = {{.n = 0}, {.n = 0}};
    ct_ckpt_sums_t sums = {.has_pieces = 1};
    ct_ckpt_group_t model[1] = {{"", b->params}};
    ct_ckpt_group_t optim[2] = {{"m", b->adam_m}, {"v", b->adam_v}};
    int rc = 0;
    CT_TRY_GOTO(ct_path_join(path, sizeof path, tmp, "model.h5", e), out);
    CT_TRY_GOTO(ct_ckpt_h5_create(path, b->tensors, b->n_tensors, model, 1, NULL, &lay[0], e), out);
    CT_TRY_GOTO(ct_path_join(path, sizeof path, tmp, "optim.h5", e), out);
    CT_TRY_GOTO(
        ct_ckpt_h5_create(path, b->tensors, b->n_tensors, optim, 2, &b->adam_steps, &lay[1], e),
        out);
    CT_TRY_GOTO(write_and_hash(tmp, lay, &sums, e), out);
    CT_TRY_GOTO(ct_ckpt_sums_write(tmp, &sums, e), out);
    memcpy(info->id, sums.id, sizeof info->id);
    rc = ct_fsync_path(tmp, e);
out:
    ct_ckpt_sums_free(&sums);
    ct_ckpt_layout_free(&lay[0]);
    ct_ckpt_layout_free(&lay[1]);
    return rc;
}

int ct_ckpt_save(const char *run_dir, const ct_ckpt_body_t *body, const char *config_json,
                 ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e) {
    char root[CT_PATH_MAX], tmp[CT_PATH_MAX], final[CT_PATH_MAX], del[CT_PATH_MAX];
    long long step = (long long)info->step;
    CT_TRY(ct_path_join(root, sizeof root, run_dir, "checkpoints", e));
    CT_TRY(ct_mkdirs(root, e));
    clean_leftovers(root);
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s/.ckpt-%08lld.tmp", root, step));
    CT_TRY(ct_path_fmt(final, sizeof final, e, "%s/ckpt-%08lld", root, step));
    CT_TRY(ct_path_fmt(del, sizeof del, e, "%s/.del-ckpt-%08lld", root, step));
    if (out_path && strlen(final) >= n)
        return CT_ERR(e, CT_EINVAL, "checkpoint path %s does not fit the caller's buffer", final);
    int injected = ct_fault_hit(CT_FAULT_WRITE);
    if (injected || mkdir(tmp, 0755) != 0)
        return CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, ct_fault_strerror(injected, errno));
    int rc = write_files(tmp, body, config_json, info, e), set_aside = 0;
    struct stat st;
    /* a checkpoint of this step exists (a resumed run repeating a step): set it aside, and remove
       it only once the new one is in place */
    if (rc == 0 && stat(final, &st) == 0) {
        injected = ct_fault_hit(CT_FAULT_RENAME);
        if (injected || rename(final, del) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot move %s aside to replace it: %s", final,
                        ct_fault_strerror(injected, errno));
        else
            set_aside = 1;
    }
    if (rc == 0) {
        injected = ct_fault_hit(CT_FAULT_RENAME);
        if (injected || rename(tmp, final) != 0)
            rc = CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", tmp, final,
                        ct_fault_strerror(injected, errno));
        /* the rename is done, but not durable until the parent is synced: without that, the
           save failed, so the new checkpoint is withdrawn (the step is saved again later) */
        else if ((rc = ct_fsync_path(root, e)) != 0 && rename(final, tmp) != 0)
            ct_rm_tree(final);
    }
    if (rc != 0) {
        ct_rm_tree(tmp);
        /* the rollback renames are not fault points: they undo what a failure interrupted */
        if (set_aside) rename(del, final);
        return rc;
    }
    if (set_aside) ct_rm_tree(del);
    if (out_path) snprintf(out_path, n, "%s", final);
    return 0;
}

/* ---- restore ---- */

int ct_ckpt_restore(const char *dir, ct_ckpt_body_t *body, ct_ckpt_info_t *info, ct_err_t *e) {
    ct_ckpt_sums_t sums;
    CT_TRY(ct_ckpt_sums_read(dir, &sums, e));
    int one_pass = 0;
    int rc = ct_ckpt_load(dir, &sums, body, &one_pass, e);
    if (rc == 0) rc = parse_state(dir, info, &body->guard, e);
    if (rc == 0) {
        memcpy(info->id, sums.id, sizeof info->id);
        info->pieces = sums.has_pieces;
        info->one_pass = one_pass;
    }
    ct_ckpt_sums_free(&sums);
    return rc;
}

/* ---- listing, latest, pruning ---- */

/* Steps of the ckpt-<8 digits> directories under root, newest first, in *steps (malloc'd). */
static int list_steps(const char *root, int64_t **steps, int *n, ct_err_t *e) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return 0;
    int cap = 0, rc = 0;
    for (struct dirent *de; (de = readdir(d));) {
        const char *s = de->d_name;
        if (strncmp(s, "ckpt-", 5) != 0 || strlen(s) != 13 || strspn(s + 5, "0123456789") != 8)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *p = realloc(*steps, (size_t)cap * sizeof *p);
            if (!p) {
                rc = CT_ERR(e, CT_ENOMEM, "out of memory listing %s", root);
                break;
            }
            *steps = p;
        }
        (*steps)[(*n)++] = strtoll(s + 5, NULL, 10);
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* insertion sort, newest first */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t x = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = x;
        }
    return rc;
}

int ct_ckpt_latest(const char *run_dir, int64_t before, int full, char *out, size_t n, int *skipped,
                   ct_ckpt_info_t *info, const ct_log_t *lg, ct_err_t *e) {
    char root[CT_PATH_MAX], reasons[CT_ERR_MSG_MAX / 2] = "";
    int64_t *steps = NULL;
    int count = 0, bad = 0;
    size_t used = 0;
    CT_TRY(ct_path_join(root, sizeof root, run_dir, "checkpoints", e));
    CT_TRY(list_steps(root, &steps, &count, e));
    int rc = CT_ENOENT;
    for (int i = 0; i < count && rc != 0; i++) {
        if (steps[i] >= before) continue;
        if (ct_path_fmt(out, n, e, "%s/ckpt-%08lld", root, (long long)steps[i]) != 0) {
            rc = CT_EINVAL;
            break;
        }
        ct_err_t why = {0};
        if (check_dir(out, full ? CT_CKPT_CHECK_ALL : CT_CKPT_CHECK_SMALL, info, &why) == 0) {
            rc = 0;
            break;
        }
        bad++;
        if (lg) ct_log(lg, CT_LOG_WARN, "skipping checkpoint %s: %s", out, why.msg);
        if (used < sizeof reasons)
            used += (size_t)snprintf(reasons + used, sizeof reasons - used, "\n  %s", why.msg);
    }
    free(steps);
    if (skipped) *skipped = bad;
    if (rc == CT_ENOENT)
        return CT_ERR(e, CT_ENOENT,
                      "no checkpoint under %s verifies (%d found, %d damaged): "
                      "start without --resume, or give a checkpoint directory%s",
                      root, count, bad, reasons);
    return rc;
}

int ct_ckpt_prune(const char *run_dir, int keep_last, int64_t keep_every, ct_err_t *e) {
    char root[CT_PATH_MAX], path[CT_PATH_MAX], del[CT_PATH_MAX];
    int64_t *steps = NULL;
    int count = 0, rc = 0;
    if (keep_last <= 0) return 0;
    CT_TRY(ct_path_join(root, sizeof root, run_dir, "checkpoints", e));
    CT_TRY(list_steps(root, &steps, &count, e));
    for (int i = keep_last; i < count && rc == 0; i++) {
        if (keep_every > 0 && steps[i] % keep_every == 0) continue;
        long long s = (long long)steps[i];
        if ((rc = ct_path_fmt(path, sizeof path, e, "%s/ckpt-%08lld", root, s)) != 0 ||
            (rc = ct_path_fmt(del, sizeof del, e, "%s/.del-ckpt-%08lld", root, s)) != 0)
            break;
        if (rename(path, del) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot remove %s: %s", path, strerror(errno));
        else
            ct_rm_tree(del);
    }
    free(steps);
    return rc;
}

/* ---- resuming with a config ---- */

int ct_ckpt_check_config(const char *dir, const ct_config_t *now, ct_err_t *e) {
    ct_config_t was;
    char diff[CT_ERR_MSG_MAX / 2];
    CT_TRY(ct_ckpt_load_config(dir, &was, e));
    if (ct_config_diff(&was, now, CT_CHANGE_RESUME, diff, sizeof diff) > 0)
        return CT_ERR(e, CT_ECONFIG,
                      "cannot resume %s with this config: only the keys "
                      "--help-config marks [may change on resume] may differ; these differ:%s",
                      dir, diff);
    return 0;
}
