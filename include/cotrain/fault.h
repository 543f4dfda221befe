/* fault.h — test-only fault injection, the SQLite way: fail the Nth allocation, write, fsync,
 * rename or message send of the process, so a test can sweep N over a checkpoint save, a
 * `cotrain prep` run, a coordinator transaction or a log append and check that every failure
 * gives a clear error and leaves nothing half-written behind.
 *
 * The I/O paths ask ct_fault_hit(kind) just before each real call (malloc, write, fsync, rename,
 * zmq_send) and, when it says 1, fail as the real call would: CT_ENOMEM, or CT_EIO (CT_ECOMM)
 * whose message carries ct_fault_strerror()'s "(injected)". The points are on the paths that
 * write checkpoints, shards and manifests (core/fsutil.c, ckpt/, data/shard.c, tools/prep.c),
 * the coordinator's ledger (SQLite's writes, syncs and allocations: coordinator/ledger_vfs.c)
 * and public log (coordinator/public.c), and the protocol's sends; what each kind counts:
 *   alloc   CT_ALLOC (everywhere) and the ct_fault_malloc/calloc/realloc/aligned_alloc/strdup
 *           wrappers below (and cJSON's allocations while a plan is armed)
 *   write   each write()/pwrite() of file data, ftruncate() that extends a file, each call that
 *           puts a new name on disk (creating a file or directory, H5Fcreate), a shard's H5Dwrite
 *           calls, and the metadata flush of closing an HDF5 file
 *   fsync   each fsync() of a file or directory
 *   rename  each rename() (not the ones that undo a failed save: those are recovery)
 *   send    each message part a client or the coordinator's server sends over ZeroMQ (fails
 *           as zmq_send failing: CT_ECOMM from a client, a reply lost from the server)
 * Unarmed, ct_fault_hit costs one relaxed atomic load. Armed (ct_fault_arm, or COTRAIN_FAULT in
 * the environment of a binary whose main() calls ct_fault_arm_env), calls of every kind are
 * counted from the moment of arming, and the armed kinds fail at their Nth call (or, persistent,
 * at every call from the Nth on, like a disk that stays full).
 *
 * Always compiled in, not behind a build option: the sweeps then test the very Release binaries
 * users run (no second build, no #ifdef'd path only tests see), for a call and a relaxed load per
 * allocation or system call on these paths, which a syscall or malloc dwarfs.
 *
 * The plan is process-wide; fault.c says why it breaks the house rule of no mutable globals. */
#ifndef COTRAIN_FAULT_H
#define COTRAIN_FAULT_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ct_err; /* err.h includes this header: the typedef is not declared yet */

typedef enum ct_fault_kind {
    CT_FAULT_ALLOC,
    CT_FAULT_WRITE,
    CT_FAULT_FSYNC,
    CT_FAULT_RENAME,
    CT_FAULT_SEND,
    CT_FAULT_NKINDS
} ct_fault_kind_t;

/* 1 when this call of `kind` must fail (the plan's Nth, or any from the Nth when persistent),
 * else 0. Thread-safe; counts the call while a plan is armed. */
int ct_fault_hit(ct_fault_kind_t kind);

/* The reason to print for a failed system call: strerror(err), or "Input/output error
 * (injected)" when `injected`. Never NULL. */
const char *ct_fault_strerror(int injected, int err);

/* Arms `kind` to fail at its nth call from now (n >= 1; persistent: every call from the nth on)
 * and restarts every count. Kinds armed before stay armed. Not to be called while other threads
 * are inside ct_fault_hit's callers (a test arms between runs). */
void ct_fault_arm(ct_fault_kind_t kind, long n, int persistent);

/* Disarms every kind; the counts and the fired total stay readable until the next arming. */
void ct_fault_disarm(void);

/* Arms the plan a spec describes: comma-separated KIND:N or KIND:N+ (persistent), KIND one of
 * alloc, write, fsync, rename, send; "count" (or "") fails nothing but counts every kind (to learn
 * how many calls a run makes). Kinds the spec leaves out are disarmed. Errors: CT_EINVAL naming the
 * bad part (the plan is then left as it was). */
int ct_fault_arm_spec(const char *spec, struct ct_err *e);

/* Arms the plan in the environment variable COTRAIN_FAULT, if set and not empty (for the real
 * binaries: a test sweeps them from a script). Returns 1 when it armed a plan, 0 when the
 * variable is unset, or CT_EINVAL (bad spec). */
int ct_fault_arm_env(struct ct_err *e);

/* Calls of `kind` counted since the plan was armed (all kinds are counted while armed). */
long ct_fault_count(ct_fault_kind_t kind);

/* Failures injected since the plan was armed. */
long ct_fault_fired(void);

/* 1 while a plan is armed (or counting). */
int ct_fault_armed(void);

/* "alloc", "write", "fsync", "rename", "send" ("?" for anything else). */
const char *ct_fault_kind_name(ct_fault_kind_t kind);

/* One line for a binary to print at exit when a plan was armed:
 * "fault injection (write:17): 1 failure injected; calls: alloc 120, write 17, fsync 0, rename 0,
 * send 0".
 * Writes at most n bytes (NUL-terminated) into buf; returns buf. */
const char *ct_fault_summary(char *buf, size_t n);

/* The C library's allocators, failing (NULL, errno ENOMEM) when the plan says so: for the I/O
 * paths of checkpoints, shards and manifests, so the sweep reaches their out-of-memory paths. */
static inline void *ct_fault_malloc(size_t n) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return errno = ENOMEM, (void *)0;
    return malloc(n);
}
static inline void *ct_fault_calloc(size_t n, size_t size) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return errno = ENOMEM, (void *)0;
    return calloc(n, size);
}
/* On failure *p is untouched, as with realloc. */
static inline void *ct_fault_realloc(void *p, size_t n) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return errno = ENOMEM, (void *)0;
    return realloc(p, n);
}
static inline void *ct_fault_aligned_alloc(size_t align, size_t n) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return errno = ENOMEM, (void *)0;
    return aligned_alloc(align, n);
}
static inline char *ct_fault_strdup(const char *s) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return errno = ENOMEM, (char *)0;
    return strdup(s);
}

#endif
