/* replay.c — train again from one checkpoint to another and compare (see replay.h). */
#include "replay.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cotrain/ckpt.h"
#include "cotrain/clock.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"

/* The index of checkpoint `id` in L's lineage, or -1. */
static int in_lineage(const ct_history_t *L, const char *id) {
    for (int i = 0; i < L->n_ck; i++)
        if (!strcmp(L->ck[i].id, id)) return i;
    return -1;
}

/* The sha256 MANIFEST gives for the whole of file `name` in checkpoint dir (verified). */
static int file_sha(const char *dir, const char *name, char sha[CT_SHA256_HEX], ct_err_t *e) {
    char path[CT_PATH_MAX], *text = NULL;
    size_t len = 0, n = strlen(name);
    CT_TRY(ct_path_join(path, sizeof path, dir, "MANIFEST", e));
    CT_TRY(ct_read_file(path, &text, &len, e));
    int rc = CT_ERR(e, CT_ECORRUPT, "%s lists no %s", path, name);
    for (char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (line[0] != '#' && !strncmp(line + 64, "  ", 2) && !strncmp(line + 66, name, n) &&
            (line[66 + n] == '\n' || line[66 + n] == '\0')) {
            snprintf(sha, CT_SHA256_HEX, "%.64s", line);
            ct_err_clear(e);
            rc = 0;
            break;
        }
    free(text);
    return rc;
}

/* The cotrain-worker beside this program (/proc/self/exe's folder), else the one on PATH. */
static void find_worker(char out[CT_PATH_MAX]) {
    char self[CT_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    snprintf(out, CT_PATH_MAX, "cotrain-worker");
    if (n <= 0) return;
    self[n] = '\0';
    char beside[CT_PATH_MAX];
    if (snprintf(beside, sizeof beside, "%s/cotrain-worker", dirname(self)) < (int)sizeof beside &&
        access(beside, X_OK) == 0)
        snprintf(out, CT_PATH_MAX, "%s", beside);
}

/* Runs argv (argv[0] looked up on PATH), its stdout onto this process's stderr; its exit status
 * into *status (-1: it could not start). */
static void run_child(char *const argv[], int *status) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        if (geteuid() == 0) { /* Open MPI refuses root unless told: the replay is ours */
            setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
            setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st = 0;
    *status = pid < 0 || waitpid(pid, &st, 0) < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The run's data changes as its coordinator had them (plan.h), into DIR/changes.json (path). */
static int write_changes(const ct_history_t *L, const ct_replay_opts_t *o, const char *dir,
                         char path[CT_PATH_MAX], ct_err_t *e) {
    cJSON *all = NULL;
    int rc = ct_history_changes(L, o->added, o->n_added, &all, e);
    char *text = rc == 0 ? cJSON_PrintUnformatted(all) : NULL;
    cJSON_Delete(all);
    if (rc == 0 && !text) rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    if (rc == 0) rc = ct_path_join(path, CT_PATH_MAX, dir, "changes.json", e);
    if (rc == 0) rc = ct_write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

int ct_replay(const ct_history_t *L, const ct_replay_opts_t *o, const ct_log_t *lg, ct_err_t *e) {
    ct_ckpt_info_t ia, ib, ir;
    CT_TRY(ct_ckpt_verify(o->a, &ia, e));
    CT_TRY(ct_ckpt_verify(o->b, &ib, e));
    int ka = in_lineage(L, ia.id), kb = in_lineage(L, ib.id);
    if (ka < 0 || kb < 0)
        return CT_ERR(e, CT_EINVAL, "%s (id %.16s...) is not in the run's verified lineage",
                      ka < 0 ? o->a : o->b, ka < 0 ? ia.id : ib.id);
    if (ka >= kb)
        return CT_ERR(e, CT_EINVAL,
                      "%s (step %lld) does not come before %s (step %lld) in the lineage: give "
                      "the earlier checkpoint first",
                      o->a, (long long)ia.step, o->b, (long long)ib.step);
    int np = o->np > 0 ? o->np : ib.world_size > 0 ? ib.world_size : 1;
    char worker[CT_PATH_MAX], tmp[CT_PATH_MAX], out[CT_PATH_MAX], config[CT_PATH_MAX];
    char until[32], ranks[16], got[CT_PATH_MAX];
    if (o->worker)
        snprintf(worker, sizeof worker, "%s", o->worker);
    else
        find_worker(worker);
    const char *base = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s/cotrain-replay-XXXXXX", base));
    if (!mkdtemp(tmp)) return CT_ERR(e, CT_EIO, "cannot make %s: %s", tmp, strerror(errno));
    int rc = ct_path_join(out, sizeof out, tmp, "run", e);
    char changes[CT_PATH_MAX] = "";
    if (rc == 0 && L->changes) rc = write_changes(L, o, tmp, changes, e);
    if (rc == 0) rc = ct_path_join(config, sizeof config, o->b, "config.json", e);
    if (rc == 0)
        rc = ct_path_fmt(got, sizeof got, e, "%s/checkpoints/ckpt-%08lld", out, (long long)ib.step);
    snprintf(until, sizeof until, "%lld", (long long)ib.step);
    snprintf(ranks, sizeof ranks, "%d", np);
    if (rc == 0) {
        /* the run's data changes, when it had any, go last */
        char *one[] = {worker,          "--config", config, "--data",
                       (char *)o->data, "--out",    out,    "--resume",
                       (char *)o->a,    "--until",  until,  changes[0] ? "--data-changes" : NULL,
                       changes,         NULL};
        char *many[] = {"mpirun",        "-np",      ranks,  "--oversubscribe",
                        worker,          "--config", config, "--data",
                        (char *)o->data, "--out",    out,    "--resume",
                        (char *)o->a,    "--until",  until,  changes[0] ? "--data-changes" : NULL,
                        changes,         NULL};
        ct_log(lg, CT_LOG_INFO,
               "replay: training steps %lld..%lld again from %s on %d rank(s) "
               "in %s (the worker's log follows)",
               (long long)ia.step + 1, (long long)ib.step, o->a, np, tmp);
        double t0 = ct_now_s();
        int status;
        run_child(np > 1 ? many : one, &status);
        if (status != 0)
            rc = CT_ERR(e, CT_EIO, "the replay's worker (%s) %s %d: see its log above", worker,
                        status < 0 ? "could not start:" : "failed with exit status", status);
        else
            ct_log(lg, CT_LOG_INFO, "replay: %lld step(s) in %.1f s",
                   (long long)(ib.step - ia.step), ct_now_s() - t0);
    }
    if (rc == 0) rc = ct_ckpt_verify(got, &ir, e);
    static const char *const files[] = {"model.h5", "optim.h5"};
    for (size_t i = 0; rc == 0 && i < sizeof files / sizeof files[0]; i++) {
        char want[CT_SHA256_HEX], have[CT_SHA256_HEX];
        if ((rc = file_sha(o->b, files[i], want, e)) == 0 &&
            (rc = file_sha(got, files[i], have, e)) == 0 && strcmp(want, have) != 0)
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s does not follow from %s: its %s (sha256 %.16s...) is not what "
                        "training again gives (%.16s...)%s",
                        o->b, o->a, files[i], want, have,
                        np != ib.world_size ? " — the replay ran on another number of ranks than "
                                              "the run, and sums in another order differ in the "
                                              "last bits: replay on as many (--np)"
                                            : "");
    }
    if (rc == 0 && (ir.cursor.samples != ib.cursor.samples || ir.tokens != ib.tokens))
        rc = CT_ERR(e, CT_ECORRUPT,
                    "%s does not follow from %s: its data cursor (%lld samples) is "
                    "not the replay's (%lld)",
                    o->b, o->a, (long long)ib.cursor.samples, (long long)ir.cursor.samples);
    if (rc == 0)
        printf("  replay: %s (step %lld) follows from %s (step %lld) and the data: model and "
               "optimizer state identical after training again on %d rank(s)\n",
               o->b, (long long)ib.step, o->a, (long long)ia.step, np);
    if (ct_rm_tree(tmp) != 0)
        ct_log(lg, CT_LOG_WARN, "replay: could not remove %s: %s", tmp, strerror(errno));
    return rc;
}
