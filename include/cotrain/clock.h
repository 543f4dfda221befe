/* clock.h — the one monotonic clock every timing in cotrain reads (steps, waits, progress), and
 * the wall clock for times that outlive a process (lease expiries, commit times). */
#ifndef COTRAIN_CLOCK_H
#define COTRAIN_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. Never fails. */
double ct_now_s(void);

/* Seconds since the epoch on CLOCK_REALTIME: comparable across restarts and reboots (it may
 * step when the system time is set). Never fails. */
double ct_wall_s(void);

#endif
