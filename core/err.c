/* err.c — names, messages and exit codes of cotrain's error codes, and the error context. */
#include "cotrain/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ct_strerror(int code) {
    switch (code) {
    case CT_OK: return "success";
#define CT_ERR_DESC(name, value, exit_code, desc) case CT_##name: return desc;
        CT_ERRNO_MAP(CT_ERR_DESC)
#undef CT_ERR_DESC
    }
    return "unknown error";
}

const char *ct_errname(int code) {
    switch (code) {
    case CT_OK: return "OK";
#define CT_ERR_NAME(name, value, exit_code, desc) case CT_##name: return #name;
        CT_ERRNO_MAP(CT_ERR_NAME)
#undef CT_ERR_NAME
    }
    return "EUNKNOWN";
}

int ct_exit_code(int code) {
    if (code >= 0) return 0;
    switch (code) {
#define CT_ERR_EXIT(name, value, exit_code, desc) case CT_##name: return exit_code;
        CT_ERRNO_MAP(CT_ERR_EXIT)
#undef CT_ERR_EXIT
    }
    return 1;
}

int ct_err_set(ct_err_t *e, int code, const char *file, int line, const char *fmt, ...) {
    if (!e || e->code != 0) return code;
    e->code = code;
    e->file = file;
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void ct_err_clear(ct_err_t *e) {
    if (e) memset(e, 0, sizeof *e);
}
