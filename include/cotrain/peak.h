/* peak.h — the peak FP32 FLOP rate of one rank (this process's OpenMP threads): the denominator
 * of MFU (model FLOPs utilisation), and where the figure came from.
 *
 * A 30 ms measurement at start read 990-1246% MFU when other work shared the cores, so the
 * figure is either given (train.peak_gflops) or measured once per machine — CPU model and
 * thread count — for about a second (the best of many short runs) and cached in a small JSON
 * file, so every later run divides by the same number. */
#ifndef COTRAIN_PEAK_H
#define COTRAIN_PEAK_H

#include "cotrain/fsutil.h"
#include "cotrain/log.h"

typedef struct ct_peak {
    double flops;                   /* FLOP/s of one rank, > 0 */
    char source[CT_PATH_MAX + 128]; /* "train.peak_gflops", "measured ..., cached in PATH" */
} ct_peak_t;

/* Runs independent FMA chains on every OpenMP thread for ~30 ms and returns the FLOP/s reached
 * (2 FLOPs per FMA lane). Never fails; the result is > 0. */
double ct_peak_flops(void);

/* The peak to divide by: config_gflops * 1e9 when > 0; else the cached figure for this CPU model
 * and thread count, from $COTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/cotrain, else
 * $HOME/.cache/cotrain; else measured now (~1 s) and cached there. Never fails: a cache that
 * cannot be read or written is logged to lg (may be NULL) as a warning and the measurement is
 * used. */
void ct_peak_get(double config_gflops, const ct_log_t *lg, ct_peak_t *out);

#endif
