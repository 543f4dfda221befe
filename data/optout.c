/* optout.c — the opt-out list: parsing with line-numbered errors, and an open-addressing hash set
 * of its entries that several tokenizing threads query at once. */
#include "cotrain/optout.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fsutil.h"
#include "cotrain/unicode.h"

struct ct_optout {
    char **keys;            /* (cap) NULL = empty slot */
    atomic_char *matched;   /* (cap) 1 once a document matched the entry */
    int64_t cap, n;
    char sha256[CT_SHA256_HEX];
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Slot of `key`, or of the empty slot where it would go. cap is a power of two, never full. */
static int64_t find_slot(const ct_optout_t *o, const char *key) {
    int64_t i = (int64_t)(hash_str(key) & (uint64_t)(o->cap - 1));
    while (o->keys[i] && strcmp(o->keys[i], key) != 0) i = (i + 1) & (o->cap - 1);
    return i;
}

int ct_doc_id_valid(const char *id, size_t len) {
    if (len == 0 || len > CT_DOC_ID_MAX) return 0;
    const unsigned char *s = (const unsigned char *)id;
    for (size_t i = 0; i < len;) {
        if (s[i] <= 0x20 || s[i] == 0x7f) return 0;
        uint32_t cp;
        i += (size_t)ct_utf8_decode(s + i, len - i, &cp);
        /* C1 controls, and every space the pre-tokenizer knows (NBSP, U+2000.., U+3000, ...) */
        if (cp == CT_UTF8_INVALID || (cp >= 0x80 && cp < 0xA0) ||
            ct_unicode_class(cp) == CT_UC_SPACE)
            return 0;
    }
    return 1;
}

/* Grows the table so that it stays at most half full. */
static int reserve(ct_optout_t *o, ct_err_t *e) {
    if (2 * (o->n + 1) <= o->cap) return 0;
    int64_t old_cap = o->cap;
    char **old = o->keys;
    int rc = 0;
    o->cap = old_cap ? 2 * old_cap : 64;
    o->keys = NULL;
    free(o->matched);
    o->matched = NULL;
    CT_ALLOC(e, o->keys, (size_t)o->cap, fail);
    CT_ALLOC(e, o->matched, (size_t)o->cap, fail);
    for (int64_t i = 0; i < old_cap; i++)
        if (old[i]) o->keys[find_slot(o, old[i])] = old[i];
    free(old);
    return 0;
fail:
    free(o->keys);
    o->keys = old; /* keep the entries so destroy frees them */
    o->cap = old_cap;
    return rc;
}

static int parse(ct_optout_t *o, const char *path, char *text, size_t len, ct_err_t *e) {
    int line_no = 0;
    char *line = text;
    /* a UTF-8 byte order mark (Windows editors write one) is not part of the first entry */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) line += 3;
    while (line < text + len) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        char *next = end + 1;
        line_no++;
        if (end > line && end[-1] == '\r') end--;
        while (line < end && (*line == ' ' || *line == '\t')) line++;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t')) end--;
        if (line == end || *line == '#') {
            line = next;
            continue;
        }
        if (!ct_doc_id_valid(line, (size_t)(end - line)))
            return CT_ERR(e, CT_EINVAL,
                          "%s:%d: not a document id or sha256: an entry is one id or 64-hex "
                          "content hash per line, 1..%d bytes of printable UTF-8 without spaces "
                          "or control characters ('#' starts a comment line)",
                          path, line_no, CT_DOC_ID_MAX);
        *end = '\0';
        /* content hashes are matched in lowercase hex, however the list spells them */
        if (end - line == 64 && strspn(line, "0123456789abcdefABCDEF") == 64)
            for (char *c = line; c < end; c++) *c = (char)tolower((unsigned char)*c);
        CT_TRY(reserve(o, e));
        int64_t slot = find_slot(o, line);
        if (!o->keys[slot]) {
            if (!(o->keys[slot] = strdup(line)))
                return CT_ERR(e, CT_ENOMEM, "out of memory reading %s", path);
            o->n++;
        }
        line = next;
    }
    return 0;
}

int ct_optout_load(ct_optout_t **out, const char *path, ct_err_t *e) {
    int rc = 0;
    ct_optout_t *o = NULL;
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    CT_ALLOC(e, o, 1, fail);
    CT_TRY_GOTO(ct_read_file(path, &text, &len, e), fail);
    ct_sha256_hex(text, len, o->sha256);
    CT_TRY_GOTO(reserve(o, e), fail);
    CT_TRY_GOTO(parse(o, path, text, len, e), fail);
    free(text);
    *out = o;
    return 0;
fail:
    free(text);
    ct_optout_destroy(&o);
    return rc;
}

void ct_optout_destroy(ct_optout_t **self_p) {
    ct_optout_t *o = *self_p;
    if (!o) return;
    for (int64_t i = 0; i < o->cap; i++) free(o->keys[i]);
    free(o->keys);
    free(o->matched);
    free(o);
    *self_p = NULL;
}

static int match_one(ct_optout_t *o, const char *key) {
    if (!key) return 0;
    int64_t slot = find_slot(o, key);
    if (!o->keys[slot]) return 0;
    atomic_store_explicit(&o->matched[slot], 1, memory_order_relaxed);
    return 1;
}

int ct_optout_match(ct_optout_t *self, const char *id, const char *content_sha256) {
    int by_id = match_one(self, id);
    int by_hash = match_one(self, content_sha256);
    return by_id || by_hash;
}

int64_t ct_optout_entries(const ct_optout_t *self) {
    return self->n;
}

int64_t ct_optout_matched(const ct_optout_t *self) {
    int64_t m = 0;
    for (int64_t i = 0; i < self->cap; i++)
        m += self->keys[i] && atomic_load_explicit(&self->matched[i], memory_order_relaxed);
    return m;
}

const char *ct_optout_sha256(const ct_optout_t *self) {
    return self->sha256;
}
