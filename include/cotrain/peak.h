/* peak.h — the peak FP32 FLOP rate of this process's OpenMP threads, measured, as the
 * denominator of MFU (model FLOPs utilisation). */
#ifndef COTRAIN_PEAK_H
#define COTRAIN_PEAK_H

/* Runs independent FMA chains on every OpenMP thread for ~30 ms and returns the FLOP/s reached
 * (2 FLOPs per FMA lane). Never fails; the result is > 0. */
double ct_peak_flops(void);

#endif
