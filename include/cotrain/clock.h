/* clock.h — the one monotonic clock every timing in cotrain reads (steps, waits, progress). */
#ifndef COTRAIN_CLOCK_H
#define COTRAIN_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. Never fails. */
double ct_now_s(void);

#endif
