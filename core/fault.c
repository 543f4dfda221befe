/* fault.c — the fault-injection plan behind ct_fault_hit (see fault.h): which call of which kind
 * fails, and how many calls of each kind ran.
 *
 * Why a process-wide plan, against the house rule of no mutable globals: the calls that fail sit at
 * the bottom of every I/O path (ct_write_all, CT_ALLOC, ct_commit_file, ...), below any context but
 * the caller's error record, which is copied and zeroed freely and cannot carry a plan. Threading
 * a plan through every signature for a test-only feature would cost more than it checks, and the
 * real binaries must be armed from their environment anyway. The plan holds no pointers, changes
 * only when a test arms or disarms it, and is read with atomics, so writer threads may hit it
 * concurrently. Unarmed, the whole cost is one relaxed load of `armed`.
 *
 * While armed, cJSON's allocations go through ct_fault_malloc too (cJSON_InitHooks is cJSON's own
 * process-wide setting; it is set on arming and left there: unarmed, the hooks are plain malloc).
 */
#include "cotrain/fault.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/err.h"

static const char *const KIND_NAMES[CT_FAULT_NKINDS] = {"alloc", "write", "fsync", "rename",
                                                        "send"};

static struct {
    atomic_int armed;                       /* 0: ct_fault_hit returns 0 at once */
    atomic_long target[CT_FAULT_NKINDS];    /* the call that fails (1-based); 0: never */
    atomic_int persistent[CT_FAULT_NKINDS]; /* fail every call from target on */
    atomic_long count[CT_FAULT_NKINDS];     /* calls since arming */
    atomic_long fired;                      /* failures injected since arming */
    char spec[128];                         /* what armed it, for the summary line */
} plan;

int ct_fault_hit(ct_fault_kind_t kind) {
    if (!atomic_load_explicit(&plan.armed, memory_order_relaxed)) return 0;
    if ((unsigned)kind >= CT_FAULT_NKINDS) return 0;
    long n = atomic_fetch_add(&plan.count[kind], 1) + 1;
    long t = atomic_load(&plan.target[kind]);
    if (t <= 0 || n < t || (n > t && !atomic_load(&plan.persistent[kind]))) return 0;
    atomic_fetch_add(&plan.fired, 1);
    return 1;
}

const char *ct_fault_strerror(int injected, int err) {
    return injected ? "Input/output error (injected)" : strerror(err);
}

static void *json_malloc(size_t n) {
    return ct_fault_malloc(n);
}

/* Zeroes the counts; leaves targets alone. */
static void restart_counts(void) {
    for (int k = 0; k < CT_FAULT_NKINDS; k++)
        atomic_store(&plan.count[k], 0);
    atomic_store(&plan.fired, 0);
}

static void start(void) {
    cJSON_Hooks hooks = {json_malloc, free};
    cJSON_InitHooks(&hooks);
    restart_counts();
    atomic_store(&plan.armed, 1);
}

void ct_fault_arm(ct_fault_kind_t kind, long n, int persistent) {
    if ((unsigned)kind >= CT_FAULT_NKINDS || n < 1) return;
    atomic_store(&plan.target[kind], n);
    atomic_store(&plan.persistent[kind], persistent != 0);
    snprintf(plan.spec, sizeof plan.spec, "%s:%ld%s", KIND_NAMES[kind], n, persistent ? "+" : "");
    start();
}

void ct_fault_disarm(void) {
    atomic_store(&plan.armed, 0);
    for (int k = 0; k < CT_FAULT_NKINDS; k++) {
        atomic_store(&plan.target[k], 0);
        atomic_store(&plan.persistent[k], 0);
    }
}

/* One part of a spec, p[0..len): KIND:N or KIND:N+ into *kind, *n, *plus. 0 or -1. */
static int parse_part(const char *p, size_t len, int *kind, long *n, int *plus) {
    for (int k = 0; k < CT_FAULT_NKINDS; k++) {
        size_t kn = strlen(KIND_NAMES[k]);
        if (len <= kn + 1 || strncmp(p, KIND_NAMES[k], kn) != 0 || p[kn] != ':') continue;
        char *end;
        *n = strtol(p + kn + 1, &end, 10);
        *plus = *end == '+';
        *kind = k;
        return *n >= 1 && end == p + len - *plus ? 0 : -1;
    }
    return -1;
}

int ct_fault_arm_spec(const char *spec, ct_err_t *e) {
    long target[CT_FAULT_NKINDS] = {0};
    int persistent[CT_FAULT_NKINDS] = {0};
    if (strlen(spec) >= sizeof plan.spec)
        return CT_ERR(e, CT_EINVAL, "fault spec '%.40s...' is too long", spec);
    for (const char *p = spec; *spec && strcmp(spec, "count") != 0;) {
        size_t len = strcspn(p, ",");
        int k, plus;
        long n;
        if (parse_part(p, len, &k, &n, &plus) != 0)
            return CT_ERR(e, CT_EINVAL,
                          "fault spec '%s': bad part '%.*s' (give KIND:N or "
                          "KIND:N+ with KIND alloc, write, fsync, rename or send and N >= 1, "
                          "comma-separated, or count)",
                          spec, (int)len, p);
        target[k] = n;
        persistent[k] = plus;
        if (p[len] != ',') break;
        p += len + 1;
    }
    for (int k = 0; k < CT_FAULT_NKINDS; k++) {
        atomic_store(&plan.target[k], target[k]);
        atomic_store(&plan.persistent[k], persistent[k]);
    }
    snprintf(plan.spec, sizeof plan.spec, "%s", spec);
    start();
    return 0;
}

int ct_fault_arm_env(ct_err_t *e) {
    const char *spec = getenv("COTRAIN_FAULT");
    if (!spec || !*spec) return 0;
    ct_err_t why = {0};
    if (ct_fault_arm_spec(spec, &why) != 0)
        return CT_ERR(e, CT_EINVAL, "COTRAIN_FAULT: %s", why.msg);
    return 1;
}

long ct_fault_count(ct_fault_kind_t kind) {
    return (unsigned)kind < CT_FAULT_NKINDS ? atomic_load(&plan.count[kind]) : 0;
}

long ct_fault_fired(void) {
    return atomic_load(&plan.fired);
}

int ct_fault_armed(void) {
    return atomic_load(&plan.armed);
}

const char *ct_fault_kind_name(ct_fault_kind_t kind) {
    return (unsigned)kind < CT_FAULT_NKINDS ? KIND_NAMES[kind] : "?";
}

const char *ct_fault_summary(char *buf, size_t n) {
    long fired = ct_fault_fired();
    snprintf(buf, n,
             "fault injection (%s): %ld failure%s injected; calls: alloc %ld, write %ld, "
             "fsync %ld, rename %ld, send %ld",
             plan.spec, fired, fired == 1 ? "" : "s", ct_fault_count(CT_FAULT_ALLOC),
             ct_fault_count(CT_FAULT_WRITE), ct_fault_count(CT_FAULT_FSYNC),
             ct_fault_count(CT_FAULT_RENAME), ct_fault_count(CT_FAULT_SEND));
    return buf;
}
