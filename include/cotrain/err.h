/* err.h — the one error convention of cotrain: negative codes, names and messages from one table,
 * and a context that carries the details (file, key, value, what to do) to whoever reports them.
 *
 * A function that can fail returns int: 0 on success or a negative CT_E... code. When it fails it
 * also fills the caller's ct_err_t with a message that says what went wrong and what to do; the
 * first failure wins, so the innermost, most specific message is the one the user sees. Only main()
 * prints it and exits, with ct_exit_code(): 2 for bad usage or input, 1 for runtime failures. */
#ifndef COTRAIN_ERR_H
#define COTRAIN_ERR_H

#include <stddef.h>

#include "cotrain/fault.h"

/* X(name, value, exit_code, description) */
#define CT_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, 2, "invalid argument")                                       \
    X(ECONFIG, -2, 2, "invalid configuration")                                 \
    X(ENOENT, -3, 2, "no such file or object")                                 \
    X(ENOMEM, -4, 1, "out of memory")                                          \
    X(EIO, -5, 1, "input/output error")                                        \
    X(ECORRUPT, -6, 2, "corrupt or inconsistent data")                         \
    X(EPROTO, -7, 1, "protocol error")                                         \
    X(ETIMEDOUT, -8, 1, "timed out")                                           \
    X(ECOMM, -9, 1, "communication failure")                                   \
    X(ESTATE, -10, 1, "invalid state")                                         \
    X(ENUMERIC, -11, 1, "numerical failure (NaN or Inf)")                      \
    X(EINTR, -12, 1, "interrupted")

enum {
    CT_OK = 0,
#define CT_ERR_ENUM(name, value, exit_code, desc) CT_##name = (value),
    CT_ERRNO_MAP(CT_ERR_ENUM)
#undef CT_ERR_ENUM
};

enum { CT_ERR_MSG_MAX = 1024 };

/* The details of the first failure. Zero-initialise it (ct_err_t e = {0}) before use. */
typedef struct ct_err {
    int code;                  /* 0 or the first CT_E... recorded */
    const char *file;          /* source location that recorded it */
    int line;
    char msg[CT_ERR_MSG_MAX];  /* human message: what, where, what to do */
} ct_err_t;

/* Short name ("EINVAL") and description of a code; unknown codes give "EUNKNOWN". Never NULL. */
const char *ct_strerror(int code);
const char *ct_errname(int code);

/* Process exit code for a result: 0 for >= 0, 2 for bad usage/input, 1 otherwise. */
int ct_exit_code(int code);

/* Records a failure in *e (if e is non-NULL and holds none yet) and returns code, so callers can
 * write `return CT_ERR(e, CT_EINVAL, "...")`. */
int ct_err_set(ct_err_t *e, int code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define CT_ERR(e, code, ...) ct_err_set((e), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Clears a context for reuse. */
void ct_err_clear(ct_err_t *e);

/* Return on failure; the callee already filled the context. */
#define CT_TRY(expr)                                                           \
    do {                                                                       \
        int ct_try_rc_ = (expr);                                               \
        if (ct_try_rc_ < 0) return ct_try_rc_;                                 \
    } while (0)

/* Store the result in the function's `rc` and jump to its cleanup label on failure. */
#define CT_TRY_GOTO(expr, label)                                               \
    do {                                                                       \
        rc = (expr);                                                           \
        if (rc < 0) goto label;                                                \
    } while (0)

/* Allocate n zeroed elements of *ptr's type into ptr; on failure record ENOMEM with the
 * expression and size, set rc and jump to label. A fault-injection plan can make it fail
 * (fault.h). */
#define CT_ALLOC(e, ptr, n, label)                                             \
    do {                                                                       \
        size_t ct_alloc_n_ = (size_t)(n);                                      \
        (ptr) = ct_fault_calloc(ct_alloc_n_ ? ct_alloc_n_ : 1, sizeof *(ptr)); \
        if (!(ptr)) {                                                          \
            rc = CT_ERR((e), CT_ENOMEM, "out of memory allocating %zu x %zu bytes for %s", \
                        ct_alloc_n_, sizeof *(ptr), #ptr);                     \
            goto label;                                                        \
        }                                                                      \
    } while (0)

#endif
