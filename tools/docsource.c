/* docsource.c — splits one prep input (text or JSONL) into documents, reading a memory map. */
#include "docsource.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/fault.h"
#include "cotrain/optout.h"

struct doc_source {
    const char *path;
    const char *data; /* (size) the mapping, NULL when the file is empty */
    size_t size, pos;
    int64_t line;     /* lines before pos */
    int jsonl, skip_bad, done;
    doc_split_t split;
    int64_t bad_lines;
};

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int doc_source_open(doc_source_t **out, const char *path, doc_split_t split, int skip_bad,
                    ct_err_t *e) {
    int rc = 0;
    doc_source_t *s = NULL;
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return CT_ERR(e, CT_ENOENT, "cannot open input %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CT_ERR(e, CT_EINVAL, "input %s is not a regular file", path);
        goto out;
    }
    CT_ALLOC(e, s, 1, out);
    s->path = path;
    s->size = (size_t)st.st_size;
    s->jsonl = ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
    s->split = split;
    s->skip_bad = skip_bad;
    if (s->size > 0) {
        void *p = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = CT_ERR(e, CT_EIO, "cannot map input %s: %s", path, strerror(errno));
            goto out;
        }
        madvise(p, s->size, MADV_SEQUENTIAL);
        s->data = p;
    }
    *out = s;
    s = NULL;
out:
    free(s);
    close(fd);
    return rc;
}

void doc_source_destroy(doc_source_t **self_p) {
    doc_source_t *s = *self_p;
    if (!s) return;
    if (s->data) munmap((void *)s->data, s->size);
    free(s);
    *self_p = NULL;
}

/* The line starting at pos: [*start, *end) without its newline (or \r\n); advances pos. */
static int take_line(doc_source_t *s, const char **start, const char **end) {
    if (s->pos >= s->size) return 0;
    const char *p = s->data + s->pos, *stop = s->data + s->size;
    const char *nl = memchr(p, '\n', (size_t)(stop - p));
    *start = p;
    *end = nl ? nl : stop;
    s->pos = (size_t)((nl ? nl + 1 : stop) - s->data);
    s->line++;
    if (*end > *start && (*end)[-1] == '\r') (*end)--;
    return 1;
}

static int blank(const char *p, const char *end) {
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\f' && *p != '\v') return 0;
    return 1;
}

static int next_paragraph(doc_source_t *s, doc_t *d) {
    const char *a, *b;
    do {
        if (!take_line(s, &a, &b)) return 0;
    } while (blank(a, b));
    d->text = a;
    d->line = s->line;
    const char *last_end = b;
    while (take_line(s, &a, &b) && !blank(a, b)) last_end = b;
    d->len = (size_t)(last_end - d->text);
    return 1;
}

/* 1 when the JSON text [p, end) has a \u0000 escape: cJSON's strings end at a NUL, so such a
 * text would be cut short silently. Every backslash outside strings is invalid JSON anyway. */
static int has_nul_escape(const char *p, const char *end) {
    for (; p + 1 < end; p++)
        if (*p == '\\') {
            if (p[1] == 'u' && end - p >= 6 && !memcmp(p + 2, "0000", 4)) return 1;
            p++; /* the escaped character */
        }
    return 0;
}

/* A JSON integer id as decimal text, or a string id; NULL when absent. */
static int json_id(const cJSON *v, char **id) {
    *id = NULL;
    if (!v) return 0;
    char buf[32];
    const char *text = NULL;
    if (cJSON_IsString(v)) {
        text = v->valuestring;
    } else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble &&
               fabs(v->valuedouble) < 9007199254740992.0) {
        /* below 2^53 only: larger integers are rounded by the double cJSON parses them into,
           so two ids could become one (such ids must be strings) */
        snprintf(buf, sizeof buf, "%lld", (long long)v->valuedouble);
        text = buf;
    }
    if (!text || !ct_doc_id_valid(text, strlen(text))) return -1;
    *id = strdup(text);
    return *id ? 0 : -2;
}

/* Parses one line. cJSON returns NULL both for bad JSON and when it runs out of memory, and only
 * the first is the line's fault (with --skip-bad the second would drop a good document): a failed
 * parse is tried again (a passing shortage), and when it fails again, an allocation of about what
 * a parse needs tells the two apart. Returns the value, or NULL with *oom 0 (bad JSON) or 1. */
static cJSON *parse_line(const char *a, size_t n, int *oom) {
    *oom = 0;
    cJSON *obj = cJSON_ParseWithLength(a, n);
    if (obj || (obj = cJSON_ParseWithLength(a, n))) return obj;
    void *probe = ct_fault_malloc(2 * n + 4096);
    *oom = probe == NULL;
    free(probe);
    return NULL;
}

static int next_jsonl(doc_source_t *s, doc_t *d, ct_err_t *e) {
    const char *a, *b;
    for (;;) {
        if (!take_line(s, &a, &b)) return 0;
        if (blank(a, b)) continue;
        int oom;
        cJSON *obj = parse_line(a, (size_t)(b - a), &oom);
        if (oom)
            return CT_ERR(e, CT_ENOMEM, "out of memory reading line %lld of %s", (long long)s->line,
                          s->path);
        cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const char *why = NULL;
        char *id = NULL;
        int idrc = 0;
        if (!cJSON_IsObject(obj))
            why = "not a JSON object";
        else if (!cJSON_IsString(text))
            why = "no string field \"text\"";
        else if (has_nul_escape(a, b))
            why = "the line contains \\u0000 (a NUL character), which cotrain's JSON reader "
                  "would cut the text at: remove or replace it";
        else if ((idrc = json_id(cJSON_GetObjectItemCaseSensitive(obj, "id"), &id)) == -1)
            why = "\"id\" is not a string of 1..512 printable UTF-8 bytes without spaces, nor an "
                  "integer below 2^53";
        if (idrc == -2) {
            cJSON_Delete(obj);
            return CT_ERR(e, CT_ENOMEM, "out of memory reading %s", s->path);
        }
        if (why) {
            cJSON_Delete(obj);
            if (s->skip_bad) {
                s->bad_lines++;
                continue;
            }
            return CT_ERR(e, CT_EINVAL, "%s:%lld: %s: fix the line, or pass --skip-bad to skip "
                          "(and count) such lines", s->path, (long long)s->line, why);
        }
        d->owned = text->valuestring;
        text->valuestring = NULL; /* keep it past cJSON_Delete */
        d->text = d->owned;
        d->len = strlen(d->owned);
        d->id = id;
        d->line = s->line;
        cJSON_Delete(obj);
        return 1;
    }
}

int doc_source_next(doc_source_t *s, doc_t *d, ct_err_t *e) {
    memset(d, 0, sizeof *d);
    if (s->jsonl) return next_jsonl(s, d, e);
    if (s->split == DOC_SPLIT_PARAGRAPHS) return next_paragraph(s, d);
    if (s->done) return 0;
    d->text = s->data ? s->data : ""; /* an empty file is one empty document */
    d->len = s->size;
    d->line = 1;
    s->pos = s->size;
    s->done = 1;
    return 1;
}

size_t doc_source_size(const doc_source_t *s) {
    return s->size;
}

size_t doc_source_pos(const doc_source_t *s) {
    return s->pos;
}

int64_t doc_source_bad_lines(const doc_source_t *s) {
    return s->bad_lines;
}

void doc_source_sha256(const doc_source_t *s, char hex[CT_SHA256_HEX]) {
    ct_sha256_hex(s->data ? s->data : "", s->size, hex);
}
