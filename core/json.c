/* json.c — integer and string fields from cJSON trees, checked the one way, and canonical JSON
 * (see json.h). */
#include "cotrain/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ct_json_uint53(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= CT_JSON_INT_MAX) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

int ct_json_get_uint53(const cJSON *obj, const char *key, int64_t *out) {
    return ct_json_uint53(cJSON_GetObjectItemCaseSensitive(obj, key), out);
}

const char *ct_json_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int ct_json_add_owned(cJSON *obj, const char *key, cJSON *item) {
    int added = item && obj &&
                (key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item));
    if (added) return 1;
    cJSON_Delete(item);
    return 0;
}

/* ---- canonical JSON (RFC 8785) ---- */

/* A growing output buffer; `failed` once an allocation failed (later appends do nothing). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* The next code point of UTF-8 text s (advancing *s), or -1 when the bytes are not UTF-8. */
static long next_code_point(const unsigned char **s) {
    const unsigned char *p = *s;
    long c = p[0];
    int n = c < 0x80             ? 0
            : (c & 0xe0) == 0xc0 ? 1
            : (c & 0xf0) == 0xe0 ? 2
            : (c & 0xf8) == 0xf0 ? 3
                                 : -1;
    if (n < 0) return -1;
    if (n) c &= 0x3f >> n;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) return -1;
        c = c << 6 | (p[i] & 0x3f);
    }
    static const long min[] = {0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return -1;
    *s = p + n + 1;
    return c;
}

/* RFC 8785 orders members by their names' UTF-16 code units. */
static int utf16_cmp(const char *a, const char *b) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *y) {
        long cx = next_code_point(&x), cy = next_code_point(&y);
        if (cx < 0 || cy < 0) return strcmp((const char *)x, (const char *)y);
        /* a code point past the BMP is a surrogate pair, whose first unit is 0xd800..0xdbff */
        long ux = cx >= 0x10000 ? 0xd800 + ((cx - 0x10000) >> 10) : cx;
        long uy = cy >= 0x10000 ? 0xd800 + ((cy - 0x10000) >> 10) : cy;
        if (ux != uy) return ux < uy ? -1 : 1;
        if (cx != cy) { /* the same first unit: the second one decides */
            long lx = 0xdc00 + ((cx - 0x10000) & 0x3ff), ly = 0xdc00 + ((cy - 0x10000) & 0x3ff);
            return lx < ly ? -1 : 1;
        }
    }
    return *x ? 1 : *y ? -1 : 0;
}

static int put_string(sbuf_t *b, const char *s, ct_err_t *e) {
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        const unsigned char *start = p;
        long c = next_code_point(&p);
        if (c < 0) return CT_ERR(e, CT_EINVAL, "a string that is not UTF-8: \"%.40s\"", s);
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            const char *k = c == '\b'   ? "b"
                            : c == '\t' ? "t"
                            : c == '\n' ? "n"
                            : c == '\f' ? "f"
                            : c == '\r' ? "r"
                                        : NULL;
            if (k)
                snprintf(esc, sizeof esc, "\\%s", k);
            else
                snprintf(esc, sizeof esc, "\\u%04lx", c);
            put(b, esc, strlen(esc));
        } else {
            put(b, (const char *)start, (size_t)(p - start));
        }
    }
    put(b, "\"", 1);
    return 0;
}

static int cmp_members(const void *a, const void *b) {
    return utf16_cmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static int put_value(sbuf_t *b, const cJSON *v, int depth, ct_err_t *e) {
    if (depth > 64) return CT_ERR(e, CT_EINVAL, "JSON nested deeper than 64 levels");
    if (cJSON_IsNull(v)) {
        put(b, "null", 4);
    } else if (cJSON_IsTrue(v)) {
        put(b, "true", 4);
    } else if (cJSON_IsFalse(v)) {
        put(b, "false", 5);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(fabs(d) <= CT_JSON_INT_MAX) || d != floor(d))
            return CT_ERR(e, CT_EINVAL,
                          "%s%s%s is %.17g: signed records hold integers up to 2^53 only "
                          "(other numbers go as strings)",
                          v->string ? "\"" : "a number", v->string ? v->string : "",
                          v->string ? "\"" : "", d);
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)d);
        put(b, num, strlen(num));
    } else if (cJSON_IsString(v)) {
        CT_TRY(put_string(b, v->valuestring, e));
    } else if (cJSON_IsArray(v)) {
        put(b, "[", 1);
        int i = 0;
        for (const cJSON *it = v->child; it; it = it->next, i++) {
            if (i) put(b, ",", 1);
            CT_TRY(put_value(b, it, depth + 1, e));
        }
        put(b, "]", 1);
    } else if (cJSON_IsObject(v)) {
        int n = cJSON_GetArraySize(v), rc = 0;
        const cJSON **m = malloc((size_t)(n ? n : 1) * sizeof *m);
        if (!m) return CT_ERR(e, CT_ENOMEM, "out of memory writing canonical JSON");
        int i = 0;
        for (const cJSON *it = v->child; it; it = it->next)
            m[i++] = it;
        qsort(m, (size_t)n, sizeof *m, cmp_members);
        put(b, "{", 1);
        for (i = 0; i < n && rc == 0; i++) {
            if (i && !utf16_cmp(m[i - 1]->string, m[i]->string))
                rc = CT_ERR(e, CT_EINVAL, "member \"%.40s\" appears twice", m[i]->string);
            if (i) put(b, ",", 1);
            if (rc == 0) rc = put_string(b, m[i]->string, e);
            put(b, ":", 1);
            if (rc == 0) rc = put_value(b, m[i], depth + 1, e);
        }
        put(b, "}", 1);
        free(m);
        return rc;
    } else {
        return CT_ERR(e, CT_EINVAL, "a JSON value of an unknown kind");
    }
    return 0;
}

char *ct_json_canonical(const cJSON *v, ct_err_t *e) {
    sbuf_t b = {0};
    int rc = put_value(&b, v, 0, e);
    if (rc == 0 && (b.failed || !b.p))
        rc = CT_ERR(e, CT_ENOMEM, "out of memory writing canonical JSON");
    if (rc != 0) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
