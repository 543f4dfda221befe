/* check.h — assertion macros for cotrain's C tests: they never compile away, print both sides
 * with file:line, count failures, and the test's main returns CHECK_RESULT(). */
#ifndef COTRAIN_TESTS_CHECK_H
#define COTRAIN_TESTS_CHECK_H

#include <ftw.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int check_failures_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures_++;                                                       \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                   \
    do {                                                                                     \
        long long ca_ = (long long)(a), cb_ = (long long)(b);                                \
        if (ca_ != cb_) {                                                                    \
            fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s = %lld, %s = %lld\n", __FILE__, \
                    __LINE__, #a, ca_, #b, cb_);                                             \
            check_failures_++;                                                               \
        }                                                                                    \
    } while (0)

/* |a - b| <= tol * max(|b|, floor): relative, with an absolute floor for values near 0. */
#define CHECK_NEAR(a, b, tol, floor)                                                           \
    do {                                                                                       \
        double ca_ = (double)(a), cb_ = (double)(b);                                           \
        double scale_ = fabs(cb_) > (floor) ? fabs(cb_) : (floor);                             \
        if (!(fabs(ca_ - cb_) <= (tol) * scale_)) {                                            \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g (tol %g)\n",       \
                    __FILE__, __LINE__, #a, ca_, #b, cb_, (double)(tol));                      \
            check_failures_++;                                                                 \
        }                                                                                      \
    } while (0)

/* The index of the first element of a[0..n) or b[0..n) that is NaN or infinite (*in_b says which
 * of the two holds it), or n when all are finite. */
static inline size_t check_first_nonfinite(const float *a, const float *b, size_t n, int *in_b) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]) || !isfinite(b[i])) return *in_b = isfinite(a[i]), i;
    return n;
}

/* max |a - b| / max |b| over n floats: the relative error of one tensor, as the oracle measures
 * it; +inf when either holds a NaN or an infinity (fmax would drop a NaN and pass it). */
static inline double check_rel_err(const float *a, const float *b, size_t n) {
    int in_b;
    if (check_first_nonfinite(a, b, n, &in_b) < n) return INFINITY;
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

/* Relative error of a vs b (n floats) within tol; a NaN or infinity in either fails, naming the
 * first one's index. */
#define CHECK_CLOSE(a, b, n, tol)                                                              \
    do {                                                                                       \
        const float *cca_ = (a), *ccb_ = (b);                                                  \
        size_t ccn_ = (n), cci_;                                                               \
        int ccb_in_ = 0;                                                                       \
        double r_;                                                                             \
        if ((cci_ = check_first_nonfinite(cca_, ccb_, ccn_, &ccb_in_)) < ccn_) {               \
            fprintf(stderr, "%s:%d: %s vs %s: %s[%zu] = %g is not finite\n", __FILE__,         \
                    __LINE__, #a, #b, ccb_in_ ? #b : #a, cci_,                                 \
                    (double)(ccb_in_ ? ccb_ : cca_)[cci_]);                                    \
            check_failures_++;                                                                 \
        } else if (!((r_ = check_rel_err(cca_, ccb_, ccn_)) <= (tol))) {                       \
            fprintf(stderr, "%s:%d: %s vs %s: relative error %.3g > %g\n", __FILE__, __LINE__, \
                    #a, #b, r_, (double)(tol));                                                \
            check_failures_++;                                                                 \
        }                                                                                      \
    } while (0)

/* hay contains needle (strings); prints all of hay when not. */
#define CHECK_CONTAINS(hay, needle)                                                        \
    do {                                                                                   \
        const char *ch_ = (hay), *cn_ = (needle);                                          \
        if (!strstr(ch_, cn_)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: %s lacks \"%s\"; it is:\n%s\n", \
                    __FILE__, __LINE__, #hay, cn_, ch_);                                   \
            check_failures_++;                                                             \
        }                                                                                  \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                 \
    do {                                                                                   \
        const char *ca_ = (a), *cb_ = (b);                                                 \
        if (strcmp(ca_, cb_) != 0) {                                                       \
            fprintf(stderr, "%s:%d: CHECK_EQ_STR failed:\n  %s = \"%s\"\n  %s = \"%s\"\n", \
                    __FILE__, __LINE__, #a, ca_, #b, cb_);                                 \
            check_failures_++;                                                             \
        }                                                                                  \
    } while (0)

static inline int check_rm_entry_(const char *path, const struct stat *st, int flag,
                                  struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* rm -rf dir (a test's temp folder). */
static inline void check_rm_tree(const char *dir) {
    nftw(dir, check_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

/* XORs the byte at offset `at` of the file at path with mask (a test's tampering). */
static inline void check_flip_byte(const char *path, long at, int mask) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ mask, f);
    fclose(f);
}

#define CHECK_RESULT()                                                               \
    (check_failures_ ? (fprintf(stderr, "%d check(s) failed\n", check_failures_), 1) \
                     : (printf("all checks passed\n"), 0))

#endif
