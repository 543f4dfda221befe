/* log.c — formats log lines with an ISO-8601 UTC time, the role and rank, and the level. */
#include "cotrain/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *level_name(ct_log_level_t level) {
    switch (level) {
    case CT_LOG_ERROR: return "ERROR";
    case CT_LOG_WARN: return "WARN";
    case CT_LOG_INFO: return "INFO";
    case CT_LOG_DEBUG: return "DEBUG";
    }
    return "?";
}

void ct_log_write(const ct_log_t *lg, ct_log_level_t level, const char *fmt, ...) {
    char stamp[32], msg[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FILE *out = lg->out ? lg->out : stderr;
    if (lg->rank >= 0)
        fprintf(out, "%s.%03ldZ %s[%d] %s %s\n", stamp, ts.tv_nsec / 1000000, lg->role, lg->rank,
                level_name(level), msg);
    else
        fprintf(out, "%s.%03ldZ %s %s %s\n", stamp, ts.tv_nsec / 1000000, lg->role,
                level_name(level), msg);
    fflush(out);
}

ct_log_level_t ct_log_level_from_env(void) {
    const char *s = getenv("CT_LOG");
    if (!s) return CT_LOG_INFO;
    if (!strcmp(s, "error")) return CT_LOG_ERROR;
    if (!strcmp(s, "warn")) return CT_LOG_WARN;
    if (!strcmp(s, "debug")) return CT_LOG_DEBUG;
    return CT_LOG_INFO;
}
