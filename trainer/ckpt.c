/* ckpt.c — checkpoint directories: crash-safe save (temp directory, fsync, rename), MANIFEST
 * verification before any use, restore, the newest good checkpoint, and the retention policy.
 *
 * Crash safety rests on one rename: everything is written and fsync'd inside
 * checkpoints/.ckpt-<step>.tmp, then the directory is renamed to ckpt-<step> and its parent
 * fsync'd. Deletion runs the other way (rename to .del-..., then remove), so a ckpt-* directory is
 * never half there. Leftover .tmp and .del directories from a crash are removed at the next save.
 *
 * Speed (docs/PERFORMANCE.md, "Checkpoints"): a save writes the tensors with O_DIRECT from two
 * threads while a third computes the MANIFEST hashes from memory (ckpt_io.c), so no byte goes
 * through the page cache or is read back; a restore hashes optim.h5 on one core and the other
 * files on the other, reading model.h5's tensors as soon as its own hash matched. */
#include "cotrain/ckpt.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_h5.h"
#include "cotrain/fsutil.h"

#define STATE_FORMAT "cotrain-ckpt/1"

/* The files of a checkpoint besides MANIFEST, in MANIFEST (name) order. */
static const char *const FILES[] = {"config.json", "model.h5", "optim.h5", "state.json"};
enum { N_FILES = sizeof FILES / sizeof FILES[0], PATH_MAX_ = 4096 };
enum { MODEL = 1, OPTIM = 2 }; /* FILES[1], FILES[2] */

static int join(char *out, const char *dir, const char *name, ct_err_t *e) {
    if (snprintf(out, PATH_MAX_, "%s/%s", dir, name) >= PATH_MAX_)
        return CT_ERR(e, CT_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

static int fsync_path(const char *path, int dir, ct_err_t *e) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : CT_ERR(e, CT_EIO, "fsync of %s failed: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int rm_tree(const char *path) {
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- state.json ---- */

static cJSON *state_json(const ct_ckpt_info_t *info, ct_trainer_t *t) {
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "format", STATE_FORMAT);
    cJSON_AddNumberToObject(js, "step", (double)info->step);
    cJSON_AddNumberToObject(js, "tokens", (double)info->tokens);
    cJSON_AddNumberToObject(js, "world_size", info->world_size);
    cJSON_AddStringToObject(js, "config_sha256", info->config_sha256);
    cJSON_AddStringToObject(js, "parent", info->parent);
    cJSON_AddItemToObject(js, "data_cursor", ct_data_cursor_to_json(&info->cursor));
    ct_spike_t *sp = ct_trainer_spike(t);
    if (!sp) {
        cJSON_AddNullToObject(js, "spike_guard");
        return js;
    }
    int count, head;
    const double *loss, *norm;
    ct_spike_state(sp, &count, &head, &loss, &norm);
    cJSON *g = cJSON_AddObjectToObject(js, "spike_guard");
    cJSON_AddNumberToObject(g, "count", count);
    cJSON_AddNumberToObject(g, "head", head);
    /* cJSON prints doubles with as many digits as they need to read back exactly */
    cJSON_AddItemToObject(g, "loss", cJSON_CreateDoubleArray(loss, count));
    cJSON_AddItemToObject(g, "grad_norm", cJSON_CreateDoubleArray(norm, count));
    return js;
}

static int64_t int_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    return (int64_t)v->valuedouble;
}

static int copy_hex(char out[CT_SHA256_HEX], const cJSON *obj, const char *key, int may_be_empty) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) return -1;
    size_t n = strlen(v->valuestring);
    if (!(n == 64 && strspn(v->valuestring, "0123456789abcdef") == 64) && !(may_be_empty && n == 0))
        return -1;
    memcpy(out, v->valuestring, n + 1);
    return 0;
}

/* Parses state.json into info (and returns the parsed JSON for the spike guard in *root). */
static int parse_state(const char *path, ct_ckpt_info_t *info, cJSON **root, ct_err_t *e) {
    char *text = NULL;
    size_t len = 0;
    CT_TRY(ct_read_file(path, &text, &len, e));
    cJSON *js = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(js, "format");
    int rc = 0;
    memset(info, 0, sizeof *info);
    info->step = int_field(js, "step");
    info->tokens = int_field(js, "tokens");
    info->world_size = (int)int_field(js, "world_size");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, STATE_FORMAT) != 0 || info->step < 0 ||
        info->tokens < 0 || info->world_size < 1 ||
        copy_hex(info->config_sha256, js, "config_sha256", 0) != 0 ||
        copy_hex(info->parent, js, "parent", 1) != 0)
        rc = CT_ERR(e, CT_ECORRUPT, "%s is not a valid %s state (a field is missing or wrong)",
                    path, STATE_FORMAT);
    else
        rc = ct_data_cursor_from_json(cJSON_GetObjectItemCaseSensitive(js, "data_cursor"),
                                      &info->cursor, e);
    if (rc == 0 && root) {
        *root = js;
        js = NULL;
    }
    cJSON_Delete(js);
    return rc;
}

/* ---- verify ---- */

/* Hashes file k of dir and compares it with its MANIFEST entry. */
static int check_file(const char *dir, int k, const char want[CT_SHA256_HEX], ct_err_t *e) {
    char path[PATH_MAX_], got[CT_SHA256_HEX];
    ct_err_t why = {0};
    CT_TRY(join(path, dir, FILES[k], e));
    if (ct_sha256_file(path, got, &why) != 0)
        return CT_ERR(e, CT_ENOENT, "checkpoint %s is incomplete: %s", dir, why.msg);
    if (strcmp(got, want) != 0)
        return CT_ERR(e, CT_ECORRUPT, "checkpoint %s: %s has sha256 %.16s..., its MANIFEST says "
                      "%.16s...: the file was changed or damaged; use another checkpoint",
                      dir, FILES[k], got, want);
    return 0;
}

/* Reads the tensors of file k (MODEL or OPTIM) of dir into t. */
static int load_tensors(const char *dir, int k, ct_trainer_t *t, int64_t *steps, ct_err_t *e) {
    char path[PATH_MAX_];
    ct_model_t *m = ct_trainer_model(t);
    ct_adamw_t *opt = ct_trainer_optim(t);
    CT_TRY(join(path, dir, FILES[k], e));
    if (k == MODEL) return ct_ckpt_h5_read(path, m, ct_model_params(m), NULL, NULL, e);
    return ct_ckpt_h5_read(path, m, ct_adamw_m(opt), ct_adamw_v(opt), steps, e);
}

/* Checks every file of dir against want[] and, when t is not NULL, reads each tensor file into t
 * once its own hash matched (never before: no unverified byte is parsed or used). One file's
 * hash is one sequential stream, so the work is split by file: thread 0 takes optim.h5, by far
 * the biggest, thread 1 the rest, and reads model.h5's tensors while optim.h5 is still being
 * hashed; optim.h5's tensors follow on both threads. */
static int check_files(const char *dir, char want[N_FILES][CT_SHA256_HEX], ct_trainer_t *t,
                       int64_t *steps, ct_err_t *e) {
    int rc[2] = {0};
    ct_err_t errs[2];
    memset(errs, 0, sizeof errs);
#pragma omp parallel for schedule(static, 1) num_threads(2)
    for (int job = 0; job < 2; job++)
        for (int k = 0; k < N_FILES && rc[job] == 0; k++) {
            if ((k == OPTIM) != (job == 0)) continue;
            rc[job] = check_file(dir, k, want[k], &errs[job]);
            if (rc[job] == 0 && t && k == MODEL)
                rc[job] = load_tensors(dir, k, t, steps, &errs[job]);
        }
    for (int job = 0; job < 2; job++)
        if (rc[job] != 0) {
            *e = errs[job];
            return rc[job];
        }
    /* optim.h5 once both threads are free: its read is shared between them */
    return t ? load_tensors(dir, OPTIM, t, steps, e) : 0;
}

/* ct_ckpt_verify, and with t also the loading of the tensors (see check_files). */
static int verify_dir(const char *dir, ct_ckpt_info_t *info, ct_trainer_t *t, int64_t *steps,
                      ct_err_t *e) {
    char path[PATH_MAX_], *text = NULL;
    size_t len = 0;
    CT_TRY(join(path, dir, "MANIFEST", e));
    ct_err_t why = {0};
    if (ct_read_file(path, &text, &len, &why) != 0)
        return CT_ERR(e, CT_ENOENT, "%s is not a checkpoint: %s", dir, why.msg);
    int rc = 0;
    /* exactly one line per file, in order: "<64 hex>  <name>\n" */
    char want[N_FILES][CT_SHA256_HEX];
    const char *p = text;
    for (int i = 0; i < N_FILES && rc == 0; i++) {
        char line[128];
        int n = snprintf(line, sizeof line, "  %s\n", FILES[i]);
        if ((size_t)(p - text) + 64 + (size_t)n > len ||
            strspn(p, "0123456789abcdef") < 64 || strncmp(p + 64, line, (size_t)n) != 0) {
            rc = CT_ERR(e, CT_ECORRUPT, "%s/MANIFEST is malformed at the entry for %s", dir,
                        FILES[i]);
            break;
        }
        memcpy(want[i], p, 64);
        want[i][64] = '\0';
        p += 64 + n;
    }
    if (rc == 0 && (size_t)(p - text) != len)
        rc = CT_ERR(e, CT_ECORRUPT, "%s/MANIFEST has extra content after its %d entries", dir,
                    N_FILES);
    if (rc == 0) rc = check_files(dir, want, t, steps, e);
    if (rc == 0 && info) {
        CT_TRY_GOTO(join(path, dir, "state.json", e), out);
        rc = parse_state(path, info, NULL, e);
        if (rc == 0) ct_sha256_hex(text, len, info->id);
    }
out:
    free(text);
    return rc;
}

int ct_ckpt_verify(const char *dir, ct_ckpt_info_t *info, ct_err_t *e) {
    return verify_dir(dir, info, NULL, NULL, e);
}

/* ---- open a model (tools) ---- */

static int load_config(const char *dir, ct_config_t *cfg, ct_err_t *e) {
    char path[PATH_MAX_];
    CT_TRY(join(path, dir, "config.json", e));
    return ct_config_load(cfg, path, NULL, NULL, 0, e);
}

int ct_ckpt_open_model(const char *dir, ct_config_t *cfg, ct_model_t **model, int max_batch,
                       ct_err_t *e) {
    char path[PATH_MAX_];
    *model = NULL;
    CT_TRY(ct_ckpt_verify(dir, NULL, e));
    CT_TRY(load_config(dir, cfg, e));
    ct_model_dims_t dims = {.n_layer = cfg->model.n_layer, .n_head = cfg->model.n_head,
                            .d_model = cfg->model.d_model, .seq_len = cfg->model.seq_len,
                            .vocab_size = cfg->model.vocab_size};
    CT_TRY(ct_model_create(model, &dims, max_batch, e));
    int rc = join(path, dir, "model.h5", e);
    if (rc == 0) rc = ct_ckpt_h5_read(path, *model, ct_model_params(*model), NULL, NULL, e);
    if (rc != 0) ct_model_destroy(model);
    return rc;
}

/* ---- save ---- */

/* Removes leftovers of interrupted saves and deletions under checkpoints/. */
static void clean_leftovers(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    char path[PATH_MAX_];
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        int tmp = !strncmp(de->d_name, ".ckpt-", 6) && n > 4 && !strcmp(de->d_name + n - 4, ".tmp");
        if ((tmp || !strncmp(de->d_name, ".del-", 5)) &&
            snprintf(path, sizeof path, "%s/%s", root, de->d_name) < (int)sizeof path)
            rm_tree(path);
    }
    closedir(d);
}

static int write_json(const char *path, cJSON *js, ct_err_t *e) {
    char *text = cJSON_Print(js);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory writing %s", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: the file ends with a newline */
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (!f || fwrite(text, 1, n + 1, f) != n + 1)
        rc = CT_ERR(e, CT_EIO, "writing %s failed: %s (is the disk full?)", path, strerror(errno));
    if (f && fclose(f) != 0 && rc == 0)
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s (is the disk full?)", path, strerror(errno));
    free(text);
    return rc;
}

/* Writes the tensors of the laid-out model.h5 and optim.h5 (lay[0], lay[1]) and fsyncs every
 * file of tmp, while computing every file's sha256 into hex: the tensor files' from memory
 * (ct_ckpt_io_hash), the small ones from the files. Two threads write (the direct writes mostly
 * wait for the disk, and two in flight keep it busier than one), one hashes. */
static int write_and_hash(const char *tmp, const ct_ckpt_layout_t lay[2],
                          char hex[N_FILES][CT_SHA256_HEX], ct_err_t *e) {
    enum { HASHER = 2 };
    int rc[3] = {0};
    ct_err_t errs[3];
    memset(errs, 0, sizeof errs);
    ct_ckpt_writer_t *w = NULL;
    CT_TRY(ct_ckpt_writer_create(&w, lay, 2, e));
#pragma omp parallel for schedule(static, 1) num_threads(3)
    for (int job = 0; job < 3; job++) {
        char path[PATH_MAX_];
        ct_err_t *je = &errs[job];
        if (job != HASHER) {
            rc[job] = ct_ckpt_writer_work(w, je);
            continue;
        }
        rc[job] = ct_ckpt_io_hash(&lay[0], hex[MODEL], je);
        if (rc[job] == 0) rc[job] = ct_ckpt_io_hash(&lay[1], hex[OPTIM], je);
        for (int k = 0; k < N_FILES && rc[job] == 0; k++)
            if (k != MODEL && k != OPTIM && (rc[job] = join(path, tmp, FILES[k], je)) == 0)
                rc[job] = ct_sha256_file(path, hex[k], je);
    }
    for (int job = 0; job < 3; job++)
        if (rc[job] != 0) {
            ct_ckpt_writer_destroy(&w);
            *e = errs[job];
            return rc[job];
        }
    CT_TRY(ct_ckpt_writer_finish(&w, e));
    char path[PATH_MAX_];
    for (int k = 0; k < N_FILES; k++)
        if (k != MODEL && k != OPTIM) {
            CT_TRY(join(path, tmp, FILES[k], e));
            CT_TRY(fsync_path(path, 0, e));
        }
    return 0;
}

/* Writes the five files into the empty directory tmp and fsyncs them; fills info->id. */
static int write_files(const char *tmp, ct_trainer_t *t, const char *config_json,
                       ct_ckpt_info_t *info, ct_err_t *e) {
    char path[PATH_MAX_], manifest[N_FILES * 128];
    ct_model_t *m = ct_trainer_model(t);
    ct_adamw_t *opt = ct_trainer_optim(t);
    CT_TRY(join(path, tmp, "config.json", e));
    FILE *f = fopen(path, "wb");
    size_t n = strlen(config_json);
    int rc = !f || fwrite(config_json, 1, n, f) != n ? CT_ERR(e, CT_EIO, "writing %s failed: %s",
                                                              path, strerror(errno))
                                                     : 0;
    if (f && fclose(f) != 0 && rc == 0)
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s (is the disk full?)", path, strerror(errno));
    CT_TRY(rc);
    CT_TRY(join(path, tmp, "state.json", e));
    cJSON *js = state_json(info, t);
    rc = js ? write_json(path, js, e) : CT_ERR(e, CT_ENOMEM, "out of memory");
    cJSON_Delete(js);
    CT_TRY(rc);
    /* HDF5 writes the metadata; the tensors follow in write_and_hash */
    ct_ckpt_layout_t lay[2] = {{.n = 0}, {.n = 0}};
    char hex[N_FILES][CT_SHA256_HEX];
    CT_TRY_GOTO(join(path, tmp, "model.h5", e), out);
    CT_TRY_GOTO(ct_ckpt_h5_create(path, m, ct_model_params(m), NULL, 0, &lay[0], e), out);
    CT_TRY_GOTO(join(path, tmp, "optim.h5", e), out);
    CT_TRY_GOTO(ct_ckpt_h5_create(path, m, ct_adamw_m(opt), ct_adamw_v(opt),
                                  ct_adamw_steps(opt), &lay[1], e), out);
    CT_TRY_GOTO(write_and_hash(tmp, lay, hex, e), out);
    size_t used = 0;
    for (int i = 0; i < N_FILES; i++)
        used += (size_t)snprintf(manifest + used, sizeof manifest - used, "%s  %s\n", hex[i],
                                 FILES[i]);
    CT_TRY_GOTO(join(path, tmp, "MANIFEST", e), out);
    CT_TRY_GOTO(ct_write_file_atomic(path, manifest, used, e), out);
    ct_sha256_hex(manifest, used, info->id);
    rc = fsync_path(tmp, 1, e);
out:
    ct_ckpt_layout_free(&lay[0]);
    ct_ckpt_layout_free(&lay[1]);
    return rc;
}

int ct_ckpt_save(const char *run_dir, ct_trainer_t *t, const char *config_json,
                 ct_ckpt_info_t *info, char *out_path, size_t n, ct_err_t *e) {
    char root[PATH_MAX_], tmp[PATH_MAX_], final[PATH_MAX_], name[32];
    CT_TRY(join(root, run_dir, "checkpoints", e));
    CT_TRY(ct_mkdirs(root, e));
    clean_leftovers(root);
    info->step = ct_trainer_steps(t);
    snprintf(name, sizeof name, ".ckpt-%08lld.tmp", (long long)info->step);
    CT_TRY(join(tmp, root, name, e));
    CT_TRY(join(final, root, name + 1, e));
    final[strlen(final) - 4] = '\0'; /* drop ".tmp" */
    if (mkdir(tmp, 0755) != 0)
        return CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
    int rc = write_files(tmp, t, config_json, info, e);
    struct stat st;
    if (rc == 0 && stat(final, &st) == 0) {
        /* a checkpoint of this step exists (a resumed run repeating a step): keep the old one */
        char del[PATH_MAX_];
        snprintf(name, sizeof name, ".del-ckpt-%08lld", (long long)info->step);
        if (join(del, root, name, e) == 0 && rename(final, del) == 0) rm_tree(del);
    }
    if (rc == 0 && rename(tmp, final) != 0)
        rc = CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", tmp, final, strerror(errno));
    if (rc != 0) {
        rm_tree(tmp);
        return rc;
    }
    CT_TRY(fsync_path(root, 1, e));
    if (out_path) snprintf(out_path, n, "%s", final);
    return 0;
}

/* ---- restore ---- */

static int restore_spike(ct_trainer_t *t, const cJSON *root, const char *dir, ct_err_t *e) {
    ct_spike_t *sp = ct_trainer_spike(t);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "spike_guard");
    if (!sp) return 0;
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(g, "loss");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(g, "grad_norm");
    int64_t count = int_field(g, "count"), head = int_field(g, "head");
    if (!cJSON_IsArray(loss) || !cJSON_IsArray(norm) || count < 0 || count > 1 << 20 ||
        cJSON_GetArraySize(loss) != count || cJSON_GetArraySize(norm) != count)
        return CT_ERR(e, CT_ECORRUPT, "%s/state.json: spike_guard is missing or malformed", dir);
    double *l = calloc((size_t)count + 1, sizeof *l), *g2 = calloc((size_t)count + 1, sizeof *g2);
    int rc = 0;
    if (!l || !g2) rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    for (int i = 0; i < count && rc == 0; i++) {
        const cJSON *a = cJSON_GetArrayItem(loss, i), *b = cJSON_GetArrayItem(norm, i);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            rc = CT_ERR(e, CT_ECORRUPT, "%s/state.json: spike_guard entry %d is not a number",
                        dir, i);
        else
            l[i] = a->valuedouble, g2[i] = b->valuedouble;
    }
    if (rc == 0) rc = ct_spike_restore(sp, (int)count, (int)head, l, g2, e);
    free(l);
    free(g2);
    return rc;
}

int ct_ckpt_restore(const char *dir, ct_trainer_t *t, ct_ckpt_info_t *info, ct_err_t *e) {
    char path[PATH_MAX_];
    cJSON *root = NULL;
    int64_t steps = 0;
    CT_TRY(verify_dir(dir, info, t, &steps, e));
    char id[CT_SHA256_HEX];
    memcpy(id, info->id, sizeof id); /* parse_state clears info */
    CT_TRY(join(path, dir, "state.json", e));
    CT_TRY(parse_state(path, info, &root, e));
    memcpy(info->id, id, sizeof id);
    int rc = restore_spike(t, root, dir, e);
    cJSON_Delete(root);
    CT_TRY(rc);
    ct_adamw_set_steps(ct_trainer_optim(t), steps);
    ct_trainer_set_steps(t, info->step);
    return 0;
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

int ct_ckpt_latest(const char *run_dir, char *out, size_t n, int *skipped, ct_ckpt_info_t *info,
                   ct_err_t *e) {
    char root[PATH_MAX_];
    int64_t *steps = NULL;
    int count = 0, bad = 0;
    CT_TRY(join(root, run_dir, "checkpoints", e));
    CT_TRY(list_steps(root, &steps, &count, e));
    int rc = CT_ENOENT;
    for (int i = 0; i < count && rc != 0; i++) {
        snprintf(out, n, "%s/ckpt-%08lld", root, (long long)steps[i]);
        ct_err_t why = {0};
        if (ct_ckpt_verify(out, info, &why) == 0)
            rc = 0;
        else
            bad++;
    }
    free(steps);
    if (skipped) *skipped = bad;
    if (rc != 0)
        return CT_ERR(e, CT_ENOENT, "no checkpoint under %s verifies (%d found, %d damaged): "
                      "start without --resume, or give a checkpoint directory", root, count, bad);
    return 0;
}

int ct_ckpt_prune(const char *run_dir, int keep_last, int64_t keep_every, ct_err_t *e) {
    char root[PATH_MAX_], path[PATH_MAX_], del[PATH_MAX_];
    int64_t *steps = NULL;
    int count = 0, rc = 0;
    if (keep_last <= 0) return 0;
    CT_TRY(join(root, run_dir, "checkpoints", e));
    CT_TRY(list_steps(root, &steps, &count, e));
    for (int i = keep_last; i < count && rc == 0; i++) {
        if (keep_every > 0 && steps[i] % keep_every == 0) continue;
        char name[32];
        snprintf(name, sizeof name, ".del-ckpt-%08lld", (long long)steps[i]);
        if (join(path, root, name + 5, e) != 0 || join(del, root, name, e) != 0) {
            rc = e->code;
            break;
        }
        if (rename(path, del) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot remove %s: %s", path, strerror(errno));
        else
            rm_tree(del);
    }
    free(steps);
    return rc;
}

/* ---- resuming with a config ---- */

/* Appends "section.key: checkpoint A, now B" for every leaf that differs between two canonical
 * configs. */
static void list_differences(const cJSON *a, const cJSON *b, char *out, size_t n) {
    size_t used = strlen(out);
    for (const cJSON *sa = a->child; sa; sa = sa->next) {
        const cJSON *sb = cJSON_GetObjectItemCaseSensitive(b, sa->string);
        for (const cJSON *ka = sa->child; ka && used < n; ka = ka->next) {
            const cJSON *kb = cJSON_GetObjectItemCaseSensitive(sb, ka->string);
            char *va = cJSON_PrintUnformatted(ka), *vb = kb ? cJSON_PrintUnformatted(kb) : NULL;
            if (va && (!vb || strcmp(va, vb) != 0))
                used += (size_t)snprintf(out + used, n - used, "\n  %s.%s: checkpoint %s, now %s",
                                         sa->string, ka->string, va, vb ? vb : "(none)");
            free(va);
            free(vb);
        }
    }
}

int ct_ckpt_check_config(const char *dir, const ct_config_t *now, ct_err_t *e) {
    ct_config_t was, a, b;
    CT_TRY(load_config(dir, &was, e));
    a = was;
    b = *now;
    /* what may change on resume */
    b.ckpt = a.ckpt;
    b.comm = a.comm;
    b.log = a.log;
    b.train.micro_batch = a.train.micro_batch;
    char *ta = ct_config_canonical(&a, e), *tb = ta ? ct_config_canonical(&b, e) : NULL;
    int rc = 0;
    if (!ta || !tb) {
        rc = CT_ENOMEM;
    } else if (strcmp(ta, tb) != 0) {
        char diff[2048] = "";
        cJSON *ja = cJSON_Parse(ta), *jb = cJSON_Parse(tb);
        if (ja && jb) list_differences(ja, jb, diff, sizeof diff);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        rc = CT_ERR(e, CT_ECONFIG, "cannot resume %s with this config: only ckpt.*, comm.*, log.* "
                    "and train.micro_batch may change on resume; these differ:%s", dir, diff);
    }
    free(ta);
    free(tb);
    return rc;
}
