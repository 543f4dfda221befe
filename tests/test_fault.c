/* test_fault.c — the fault-injection plan (core/fault.c): the Nth call of a kind fails once (or,
 * persistent, every call from the Nth on), every kind is counted while armed and none when not,
 * specs and COTRAIN_FAULT parse or are refused naming the bad part, the count is exact with many
 * threads hitting it at once; CT_ALLOC and cJSON fail under an allocation fault; and the atomic
 * file write of core/fsutil.c, swept over every write, fsync and rename it makes, fails with
 * "(injected)" in its message, leaves no temp file and the old file whole (or, when only the
 * directory's last fsync failed, the whole new one). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/err.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"

static void unarmed_counts_nothing(void) {
    ct_fault_disarm();
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(ct_fault_hit(CT_FAULT_WRITE), 0);
    CHECK_EQ_INT(ct_fault_armed(), 0);
}

static void nth_call_fails_once(void) {
    ct_fault_arm(CT_FAULT_WRITE, 3, 0);
    int got[6];
    for (int i = 0; i < 6; i++)
        got[i] = ct_fault_hit(CT_FAULT_WRITE);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_FSYNC), 0); /* other kinds are counted, not failed */
    ct_fault_disarm();
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_WRITE), 0);
    int want[6] = {0, 0, 1, 0, 0, 0};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(got[i], want[i]);
    CHECK_EQ_INT(ct_fault_count(CT_FAULT_WRITE), 6);
    CHECK_EQ_INT(ct_fault_count(CT_FAULT_FSYNC), 1);
    CHECK_EQ_INT(ct_fault_fired(), 1);

    ct_fault_arm(CT_FAULT_RENAME, 2, 1);
    for (int i = 0; i < 5; i++)
        got[i] = ct_fault_hit(CT_FAULT_RENAME);
    ct_fault_disarm();
    int want_p[5] = {0, 1, 1, 1, 1};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(got[i], want_p[i]);
    CHECK_EQ_INT(ct_fault_fired(), 4);

    char line[256];
    ct_fault_arm(CT_FAULT_ALLOC, 1, 0);
    (void)ct_fault_hit(CT_FAULT_ALLOC);
    ct_fault_disarm();
    CHECK_CONTAINS(ct_fault_summary(line, sizeof line), "alloc:1");
    CHECK_CONTAINS(line, "1 failure injected");
    CHECK_EQ_STR(ct_fault_strerror(1, 0), "Input/output error (injected)");
}

static void specs(void) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_fault_arm_spec("fsync:2,alloc:1+", &e), 0);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_ALLOC), 1);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_ALLOC), 1);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_FSYNC), 0);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_FSYNC), 1);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_FSYNC), 0);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_WRITE), 0);
    ct_fault_disarm();

    CHECK_EQ_INT(ct_fault_arm_spec("count", &e), 0);
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(ct_fault_hit(CT_FAULT_WRITE), 0);
    CHECK_EQ_INT(ct_fault_count(CT_FAULT_WRITE), 7);
    ct_fault_disarm();

    const char *bad[] = {"write",    "write:0",  "disk:3",     "write:3x",
                         "write:-1", "write:3,", "rename:2++", ":4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ct_err_t why = {0};
        CHECK_EQ_INT(ct_fault_arm_spec(bad[i], &why), CT_EINVAL);
        CHECK_CONTAINS(why.msg, "bad part");
        CHECK_EQ_INT(ct_fault_armed(), 0);
    }

    setenv("COTRAIN_FAULT", "rename:2", 1);
    CHECK_EQ_INT(ct_fault_arm_env(&e), 1);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_RENAME), 0);
    CHECK_EQ_INT(ct_fault_hit(CT_FAULT_RENAME), 1);
    ct_fault_disarm();
    setenv("COTRAIN_FAULT", "rename=2", 1);
    ct_err_t why = {0};
    CHECK_EQ_INT(ct_fault_arm_env(&why), CT_EINVAL);
    CHECK_CONTAINS(why.msg, "COTRAIN_FAULT");
    unsetenv("COTRAIN_FAULT");
    CHECK_EQ_INT(ct_fault_arm_env(&why), 0);
}

enum { THREADS = 4, HITS = 20000 };

static void *hammer(void *arg) {
    long *fired = arg;
    for (int i = 0; i < HITS; i++)
        *fired += ct_fault_hit(CT_FAULT_WRITE);
    return NULL;
}

/* Writer threads share the plan: the count is exact and exactly one call fails. */
static void threads_share_the_count(void) {
    pthread_t th[THREADS];
    long fired[THREADS] = {0};
    ct_fault_arm(CT_FAULT_WRITE, 31337, 0);
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ_INT(pthread_create(&th[t], NULL, hammer, &fired[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    ct_fault_disarm();
    long total = 0;
    for (int t = 0; t < THREADS; t++)
        total += fired[t];
    CHECK_EQ_INT(total, 1);
    CHECK_EQ_INT(ct_fault_count(CT_FAULT_WRITE), THREADS * HITS);
}

static int alloc_some(double **p, ct_err_t *e) {
    int rc = 0;
    CT_ALLOC(e, *p, 16, out);
out:
    return rc;
}

static void allocations_fail(void) {
    ct_err_t e = {0};
    double *p = NULL;
    ct_fault_arm(CT_FAULT_ALLOC, 1, 0);
    CHECK_EQ_INT(alloc_some(&p, &e), CT_ENOMEM);
    CHECK(p == NULL);
    CHECK_CONTAINS(e.msg, "out of memory");
    CHECK_EQ_INT(alloc_some(&p, &e), 0); /* the 2nd one goes through */
    free(p);
    ct_fault_arm(CT_FAULT_ALLOC, 1, 0);
    cJSON *js = cJSON_CreateObject(); /* cJSON allocates through the plan while armed */
    ct_fault_disarm();
    CHECK(js == NULL);
    cJSON_Delete(js);
    char *x = ct_fault_strdup("x"); /* disarmed: the real allocator */
    CHECK(x != NULL);
    free(x);
}

/* Names in dir other than "." and ".." into out (space-separated, sorted by readdir order). */
static void list_dir(const char *dir, char *out, size_t n) {
    DIR *d = opendir(dir);
    out[0] = '\0';
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            snprintf(out + strlen(out), n - strlen(out), "%s ", de->d_name);
    closedir(d);
}

static void read_back(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, 1, n - 1, f) : 0;
    buf[got] = '\0';
    if (f) fclose(f);
}

/* ct_write_file_atomic over an old file, each of its calls failed in turn. */
static void atomic_write_sweep(const char *dir) {
    char path[512], names[1024], got[64];
    snprintf(path, sizeof path, "%s/f.json", dir);
    for (int kind = CT_FAULT_WRITE; kind <= CT_FAULT_RENAME; kind++) {
        long n = 1;
        for (;; n++) {
            ct_err_t e = {0};
            CHECK_EQ_INT(ct_write_file_atomic(path, "old", 3, &e), 0);
            ct_fault_arm((ct_fault_kind_t)kind, n, 0);
            int rc = ct_write_file_atomic(path, "new!", 4, &e);
            long fired = ct_fault_fired();
            ct_fault_disarm();
            list_dir(dir, names, sizeof names);
            CHECK_EQ_STR(names, "f.json "); /* never a temp file left */
            read_back(path, got, sizeof got);
            if (!fired) {
                CHECK_EQ_INT(rc, 0);
                CHECK_EQ_STR(got, "new!");
                break;
            }
            CHECK_EQ_INT(rc, CT_EIO);
            CHECK_CONTAINS(e.msg, "(injected)");
            /* the directory's fsync after the rename is the only failure that leaves the new
               file (fsync is the last kind of call there) */
            int after_rename =
                kind == CT_FAULT_FSYNC && strstr(e.msg, "fsync of") && !strstr(e.msg, ".tmp.");
            CHECK_EQ_STR(got, after_rename ? "new!" : "old");
        }
        /* write: create + write; fsync: the file, the directory; rename: one */
        CHECK_EQ_INT(n, kind == CT_FAULT_RENAME ? 2 : 3);
    }
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/ct_test_fault_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    unarmed_counts_nothing();
    nth_call_fails_once();
    specs();
    threads_share_the_count();
    allocations_fail();
    atomic_write_sweep(dir);
    unarmed_counts_nothing();
    check_rm_tree(dir);
    return CHECK_RESULT();
}
