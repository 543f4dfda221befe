/* fault_ckpt.c — the checkpoint save under fault injection, the SQLite way: a small trained
 * model is saved through ct_snapshot_save with its Nth allocation, write, fsync or rename failed
 * (N = 1, 2, ... until a save runs with no fault hit; each kind alone, then persistent: every
 * call from the Nth on), once as a new step beside an earlier checkpoint and once replacing the
 * checkpoint of the same step. After every failed save:
 *   - it returned CT_EIO with "(injected)" in its message, or CT_ENOMEM with "out of memory";
 *   - checkpoints/ holds exactly what it held before (no ckpt-*, .ckpt-*.tmp or .del-* left);
 *   - the earlier checkpoint still verifies (ct_ckpt_verify), with the same id;
 *   - the next save, unfaulted, succeeds and verifies.
 * Prints how many calls of each kind one save makes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/config.h"
#include "cotrain/fault.h"
#include "cotrain/snapshot.h"

typedef struct fixture {
    char run[256], ckpt1[512];
    ct_trainer_t *t;
    char *config_json;
    ct_ckpt_info_t info;
    char id1[CT_SHA256_HEX]; /* ckpt-00000001 as it must stay */
    float w0;                /* the first weight, which "replacing" saves change */
} fixture_t;

/* Makes the weights those of ckpt-00000001 (changed = 0) or different (1). */
static void change_weights(fixture_t *f, int changed) {
    float *w = ct_model_params(ct_trainer_model(f->t));
    w[0] = changed ? f->w0 + 1.0f : f->w0;
}

/* The entries of run/checkpoints, sorted, space-separated. */
static void listing(const fixture_t *f, char *out, size_t n) {
    char root[600], names[16][256];
    int k = 0;
    snprintf(root, sizeof root, "%s/checkpoints", f->run);
    out[0] = '\0';
    DIR *d = opendir(root);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d)) && k < 16;)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            snprintf(names[k++], sizeof names[0], "%s", de->d_name);
    closedir(d);
    for (int i = 1; i < k; i++) /* insertion sort */
        for (int j = i; j > 0 && strcmp(names[j], names[j - 1]) < 0; j--) {
            char x[256];
            memcpy(x, names[j], sizeof x);
            memcpy(names[j], names[j - 1], sizeof x);
            memcpy(names[j - 1], x, sizeof x);
        }
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s ", names[i]);
}

static int save(fixture_t *f, int64_t step, char *path, ct_err_t *e) {
    ct_trainer_set_steps(f->t, step);
    return ct_snapshot_save(f->run, f->t, f->config_json, &f->info, path, 512, e);
}

/* A trained tiny model (two steps, so the moments and the spike guard's window hold values) and
 * its checkpoint of step 1. */
static int setup(fixture_t *f) {
    static const char *const sets[] = {"model.n_layer=1",      "model.n_head=2",
                                       "model.d_model=32",     "model.seq_len=16",
                                       "model.vocab_size=256", "train.global_batch=1",
                                       "train.micro_batch=1",  "train.spike_guard=true"};
    ct_config_t cfg;
    ct_err_t e = {0};
    int rc = ct_hash_init(&e);
    if (rc == 0) rc = ct_config_load(&cfg, "tiny", CT_CONFIG_DIR, sets, 8, &e);
    if (rc == 0) rc = ct_trainer_create(&f->t, &cfg, NULL, NULL, &e);
    if (rc == 0 && !(f->config_json = ct_config_canonical(&cfg, &e))) rc = CT_ENOMEM;
    int rows[17];
    for (int s = 0; s < 2 && rc == 0; s++) {
        for (int i = 0; i < 17; i++)
            rows[i] = (i * 37 + s * 11) % 256;
        ct_step_stats_t st;
        rc = ct_trainer_step_tokens(f->t, rows, &st, &e);
    }
    f->info = (ct_ckpt_info_t){.world_size = 1, .tokens = 32};
    snprintf(f->info.cursor.shard_id, sizeof f->info.cursor.shard_id, "fault");
    if (rc == 0) ct_sha256_hex(f->config_json, strlen(f->config_json), f->info.config_sha256);
    if (rc == 0) f->w0 = ct_model_params(ct_trainer_model(f->t))[0];
    if (rc == 0) rc = save(f, 1, f->ckpt1, &e);
    if (rc == 0) memcpy(f->id1, f->info.id, sizeof f->id1);
    if (rc != 0) fprintf(stderr, "setup: %s\n", e.msg);
    return rc;
}

/* One faulted save of `step` (1: replacing ckpt-00000001, whose weights then differ). Returns
 * whether the fault fired. */
static int faulted_save(fixture_t *f, int64_t step, ct_fault_kind_t kind, long n, int persistent,
                        const char *before) {
    char path[512], after[2048], ckpt2[600];
    const char *kname = ct_fault_kind_name(kind);
    ct_err_t e = {0};
    ct_fault_arm(kind, n, persistent);
    int rc = save(f, step, path, &e);
    long fired = ct_fault_fired();
    ct_fault_disarm();
    snprintf(ckpt2, sizeof ckpt2, "%s/checkpoints/ckpt-00000002", f->run);
    if (!fired) { /* the save made every call of this kind and none failed: done */
        CHECK_EQ_INT(rc, 0);
        if (rc != 0) fprintf(stderr, "  %s:%ld unfaulted: %s\n", kname, n, e.msg);
        CHECK_EQ_INT(ct_ckpt_verify(step == 1 ? f->ckpt1 : ckpt2, NULL, &e), 0);
        return 0;
    }
    ct_ckpt_info_t got;
    ct_err_t why = {0};
    int clear = (rc == CT_EIO && strstr(e.msg, "(injected)")) ||
                (rc == CT_ENOMEM && strstr(e.msg, "out of memory"));
    if (!clear)
        fprintf(stderr, "  %s:%ld%s: rc %d (%s), message: %s\n", kname, n, persistent ? "+" : "",
                rc, ct_errname(rc), e.msg);
    CHECK(clear);
    listing(f, after, sizeof after);
    if (strcmp(after, before) != 0)
        fprintf(stderr, "  %s:%ld%s (%s) left: %s\n", kname, n, persistent ? "+" : "", e.msg,
                after);
    CHECK_EQ_STR(after, before);
    CHECK_EQ_INT(ct_ckpt_verify(f->ckpt1, &got, &why), 0);
    CHECK_EQ_STR(got.id, f->id1);
    /* the next save, unfaulted, goes through */
    ct_err_t e2 = {0};
    CHECK_EQ_INT(save(f, step, path, &e2), 0);
    CHECK_EQ_INT(ct_ckpt_verify(path, NULL, &e2), 0);
    if (step == 1) { /* put the earlier ckpt-00000001 back for the next run */
        change_weights(f, 0);
        CHECK_EQ_INT(save(f, 1, path, &e2), 0);
        CHECK_EQ_STR(f->info.id, f->id1);
        change_weights(f, 1);
    } else {
        check_rm_tree(ckpt2);
    }
    if (e2.code) fprintf(stderr, "  after %s:%ld: %s\n", kname, n, e2.msg);
    return 1;
}

/* Sweeps N for one kind; returns the calls of that kind one save makes. */
static long sweep(fixture_t *f, int64_t step, ct_fault_kind_t kind, int persistent) {
    char before[2048];
    listing(f, before, sizeof before);
    long n = 1;
    while (faulted_save(f, step, kind, n, persistent, before) && n < 100000)
        n++;
    if (step == 2) {
        char ckpt2[600];
        snprintf(ckpt2, sizeof ckpt2, "%s/checkpoints/ckpt-00000002", f->run);
        check_rm_tree(ckpt2);
    } else { /* the unfaulted replacing save went through: restore the earlier one */
        char path[512];
        ct_err_t e = {0};
        change_weights(f, 0);
        CHECK_EQ_INT(save(f, 1, path, &e), 0);
        CHECK_EQ_STR(f->info.id, f->id1);
        change_weights(f, 1);
    }
    return n - 1;
}

/* The kinds of call a save makes: allocations, writes, fsyncs and renames (it sends nothing). */
enum { SAVE_KINDS = CT_FAULT_RENAME + 1 };

/* Every sweep in a fresh run directory under base: all kinds, or (writes_only) the writes of a
 * new step's save alone, in single mode. */
static void sweeps_in(const char *base, int writes_only) {
    fixture_t f = {0};
    snprintf(f.run, sizeof f.run, "%s/ct_fault_ckpt_XXXXXX", base);
    if (!mkdtemp(f.run)) {
        fprintf(stderr, "cannot make a directory under %s\n", base);
        check_failures_++;
        return;
    }
    CHECK_EQ_INT(setup(&f), 0);
    static const char *const what[2] = {"a new step", "replacing the same step"};
    for (int replace = 0; replace < (writes_only ? 1 : 2) && check_failures_ == 0; replace++) {
        /* replacing: the weights differ, so the new checkpoint differs from the earlier */
        change_weights(&f, replace);
        for (int persistent = 0; persistent < (writes_only ? 1 : 2); persistent++) {
            long calls[SAVE_KINDS] = {0};
            for (int k = 0; k < SAVE_KINDS; k++)
                if (!writes_only || k == CT_FAULT_WRITE)
                    calls[k] = sweep(&f, replace ? 1 : 2, (ct_fault_kind_t)k, persistent);
            printf("%s, save of %s, %s faults: %ld allocations, %ld writes, %ld fsyncs, %ld "
                   "renames failed in turn\n",
                   base, what[replace], persistent ? "persistent" : "single", calls[0], calls[1],
                   calls[2], calls[3]);
            for (int k = 0; k < SAVE_KINDS; k++)
                CHECK(calls[k] > 0 || (writes_only && k != CT_FAULT_WRITE));
        }
    }
    ct_trainer_destroy(&f.t);
    free(f.config_json);
    check_rm_tree(f.run);
}

/* Usage: fault_ckpt [FAST_DIR [DISK_DIR]]. Every sweep runs in FAST_DIR (default /dev/shm:
 * tmpfs, where an fsync costs nothing, so the ~1500 saves take seconds); the writes are swept
 * again in DISK_DIR (default /tmp), a file system with O_DIRECT, whose direct writes tmpfs has
 * not. (CTest runs it with OMP_WAIT_POLICY=passive: with more writer threads than cores, spinning
 * threads doubled its time.) */
int main(int argc, char **argv) {
    const char *fast = argc > 1 ? argv[1] : "/dev/shm", *disk = argc > 2 ? argv[2] : "/tmp";
    if (access(fast, W_OK) != 0) fast = disk;
    sweeps_in(fast, 0);
    if (strcmp(fast, disk) != 0) sweeps_in(disk, 1);
    return CHECK_RESULT();
}
