/* log.h — cotrain's one logging call. A line is "ISO-time role[rank] LEVEL message" on stderr (or
 * the logger's stream). The level is tested before the arguments are evaluated. User-facing
 * output such as the progress line is not logging and does not go through here. */
#ifndef COTRAIN_LOG_H
#define COTRAIN_LOG_H

#include <stdio.h>

typedef enum { CT_LOG_ERROR = 0, CT_LOG_WARN = 1, CT_LOG_INFO = 2, CT_LOG_DEBUG = 3 } ct_log_level_t;

typedef struct ct_log {
    ct_log_level_t level; /* lines above this level are dropped */
    const char *role;     /* "worker", "coordinator", "cotrain" (not owned) */
    int rank;             /* -1 when not part of a group */
    FILE *out;            /* NULL means stderr (not owned) */
} ct_log_t;

/* Writes one line; use the ct_log macro, which skips argument evaluation when filtered. */
void ct_log_write(const ct_log_t *lg, ct_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ct_log(lg, lvl, ...)                                                   \
    do {                                                                       \
        if ((lvl) <= (lg)->level) ct_log_write((lg), (lvl), __VA_ARGS__);      \
    } while (0)

/* Level from the CT_LOG environment variable ("error", "warn", "info", "debug"); INFO if unset
 * or unrecognised. */
ct_log_level_t ct_log_level_from_env(void);

#endif
