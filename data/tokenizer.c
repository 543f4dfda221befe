/* tokenizer.c — the `bytes` and `gpt2` tokenizers: pre-tokenization, byte-pair merging with a
 * per-encoder cache, parallel encoding, decoding (bpe_vocab.c reads GPT-2's files).
 *
 * gpt2 follows OpenAI's encoder.py exactly, the definition the npm references (gpt-3-encoder,
 * gpt-tokenizer) reproduce: the text is split by the regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (hand-written below as pretoken_end, with node's Unicode classes from unicode.h), each piece's
 * UTF-8 bytes become single-byte tokens, and the adjacent pair with the lowest merge rank is
 * merged until no mergeable pair is left. Bytes that are not valid UTF-8 take part as one
 * "other" code point each, so any byte string encodes and decodes back to itself.
 *
 * Speed comes from three things. Pieces repeat (words), so each encoder keeps a hash cache from a
 * piece's bytes to its ids. Merging keeps ids, not strings, and looks pairs up in one hash table
 * (pair of ids -> rank and merged id). And a long text is cut at places where the regex must
 * start a new piece whatever came before (see safe_split), so its parts encode on separate
 * threads and concatenate to exactly the single-threaded result. */
#include "cotrain/tokenizer.h"

#include <inttypes.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_vocab.h"
#include "cotrain/unicode.h"

enum {
    CACHE_SLOTS = 1 << 16,       /* power of two */
    CACHE_MAX_ENTRIES = 1 << 15, /* cleared when reached: load factor <= 1/2 */
    CACHE_KEY_BYTES = 1 << 20,   /* arena for the cached pieces' bytes */
    CACHE_VAL_IDS = 1 << 18,     /* arena for their ids */
    CACHE_MAX_KEY = 64,          /* longer pieces are rare and not cached */
    SMALL_PIECE = 48,            /* pieces up to this many bytes merge by scanning; longer: heap */
    PARALLEL_MIN_BYTES = 1 << 16,
    CHUNKS_PER_THREAD = 4,
};
#define NO_RANK INT32_MAX

typedef enum { TOK_BYTES, TOK_GPT2 } tok_kind_t;

/* Read-only once ct_tokenizer_open returns. */
struct ct_tokenizer {
    tok_kind_t kind;
    int vocab, eot;
    uint8_t ascii_class[128]; /* ct_unicode_class of each ASCII code point */
    ct_bpe_vocab_t bpe;       /* gpt2 only */
};

/* One cached piece of key_len bytes. Its first 8 bytes are in the slot and only the rest in the
 * key arena; a piece that is one token keeps the id in the slot. So the usual hit (a word of up
 * to 8 bytes that is one token) reads one slot and nothing else. */
typedef struct cache_slot {
    uint64_t head; /* the piece's first 8 bytes, zero-padded */
    uint32_t tag;  /* the high half of the piece's hash, made non-zero; 0: a free slot */
    uint16_t key_len, n_val;
    uint32_t key_off; /* key_len > 8: bytes 8.. are keys[key_off ..] */
    int32_t val;      /* n_val == 1: the id; else its ids are vals[val ..] */
} cache_slot_t;

struct ct_encoder {
    const ct_tokenizer_t *tok;
    cache_slot_t *slots; /* (CACHE_SLOTS) */
    uint8_t *keys;       /* (CACHE_KEY_BYTES) */
    int32_t *vals;       /* (CACHE_VAL_IDS) */
    size_t n_entries, keys_used, vals_used;
    /* Merge scratch for one piece, grown to the longest piece seen. */
    int32_t *sym;         /* (scratch_cap) current token ids */
    int32_t *rank;        /* (scratch_cap) small path: rank of (sym[i], sym[i+1]) */
    int32_t *merged;      /* (scratch_cap) small path: id that pair merges into */
    int32_t *next, *prev; /* (scratch_cap) heap path: linked list over symbol slots */
    uint64_t *heap;       /* (2 * scratch_cap) heap path: rank << 32 | left slot, a min-heap */
    size_t scratch_cap;
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers */

/* The slot of pair (a, b), or NULL when (a, b) is not a merge. */
static const ct_pair_slot_t *pair_find(const ct_tokenizer_t *t, int32_t a, int32_t b) {
    uint64_t key = ct_pair_key(a, b);
    for (uint64_t i = ct_mix64(key) & t->bpe.pair_mask;; i = (i + 1) & t->bpe.pair_mask) {
        const ct_pair_slot_t *s = &t->bpe.pairs[i];
        if (s->key == key) return s;
        if (s->key == CT_PAIR_EMPTY) return NULL;
    }
}

static int32_t pair_rank(const ct_tokenizer_t *t, int32_t a, int32_t b, int32_t *merged) {
    const ct_pair_slot_t *s = pair_find(t, a, b);
    if (!s) return NO_RANK;
    *merged = s->id;
    return s->rank;
}

/* Makes room for n more ids; on failure out is unchanged. */
static int ids_reserve(ct_ids_t *out, size_t n, ct_err_t *e) {
    if (out->cap - out->n >= n) return 0;
    size_t cap = out->cap ? out->cap : 1024;
    while (cap - out->n < n)
        cap *= 2;
    int32_t *p = realloc(out->ids, cap * sizeof *p);
    if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory growing an id array to %zu ids", cap);
    out->ids = p;
    out->cap = cap;
    return 0;
}

/* Appends n ids; on failure out is unchanged. */
static inline int ids_append(ct_ids_t *out, const int32_t *ids, size_t n, ct_err_t *e) {
    if (out->cap - out->n < n) CT_TRY(ids_reserve(out, n, e));
    memcpy(out->ids + out->n, ids, n * sizeof *ids);
    out->n += n;
    return 0;
}

void ct_ids_free(ct_ids_t *ids) {
    if (!ids) return;
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

/* ---------------------------------------------------------------------------------------------
 * Tokenizers */

int ct_tokenizer_open(ct_tokenizer_t **out, const char *name, ct_err_t *e) {
    *out = NULL;
    int rc = 0;
    ct_tokenizer_t *t = NULL;
    if (!name || (strcmp(name, "bytes") && strcmp(name, "gpt2")))
        return CT_ERR(e, CT_EINVAL, "unknown tokenizer '%s': the known ones are bytes, gpt2",
                      name ? name : "(null)");
    CT_ALLOC(e, t, 1, fail);
    for (int c = 0; c < 128; c++)
        t->ascii_class[c] = (uint8_t)ct_unicode_class((uint32_t)c);
    if (!strcmp(name, "bytes")) {
        t->kind = TOK_BYTES;
        t->vocab = 256;
        t->eot = -1;
    } else {
        t->kind = TOK_GPT2;
        const char *dir = getenv("COTRAIN_GPT2_DIR");
        CT_TRY_GOTO(ct_bpe_vocab_load(&t->bpe, dir && *dir ? dir : CT_GPT2_DIR, e), fail);
        t->vocab = t->bpe.vocab;
        t->eot = t->bpe.eot;
    }
    *out = t;
    return 0;
fail:
    ct_tokenizer_destroy(&t);
    return rc;
}

void ct_tokenizer_destroy(ct_tokenizer_t **self_p) {
    if (!self_p || !*self_p) return;
    ct_tokenizer_t *t = *self_p;
    ct_bpe_vocab_free(&t->bpe);
    free(t);
    *self_p = NULL;
}

const char *ct_tokenizer_name(const ct_tokenizer_t *self) {
    return self->kind == TOK_BYTES ? "bytes" : "gpt2";
}

int ct_tokenizer_vocab_size(const ct_tokenizer_t *self) {
    return self->vocab;
}

int ct_tokenizer_eot(const ct_tokenizer_t *self) {
    return self->eot;
}

/* ---------------------------------------------------------------------------------------------
 * Encoders */

int ct_encoder_create(ct_encoder_t **out, const ct_tokenizer_t *tok, ct_err_t *e) {
    *out = NULL;
    int rc = 0;
    ct_encoder_t *enc = NULL;
    CT_ALLOC(e, enc, 1, fail);
    enc->tok = tok;
    if (tok->kind == TOK_GPT2) {
        CT_ALLOC(e, enc->slots, CACHE_SLOTS, fail);
        /* The arenas are written before they are read: no need to zero them. */
        enc->keys = malloc(CACHE_KEY_BYTES);
        enc->vals = malloc(CACHE_VAL_IDS * sizeof *enc->vals);
        if (!enc->keys || !enc->vals) {
            rc = CT_ERR(e, CT_ENOMEM, "out of memory for an encoder's cache (%d MiB)",
                        (CACHE_KEY_BYTES + CACHE_VAL_IDS * 4) >> 20);
            goto fail;
        }
    }
    *out = enc;
    return 0;
fail:
    ct_encoder_destroy(&enc);
    return rc;
}

void ct_encoder_destroy(ct_encoder_t **self_p) {
    if (!self_p || !*self_p) return;
    ct_encoder_t *enc = *self_p;
    free(enc->slots);
    free(enc->keys);
    free(enc->vals);
    free(enc->sym);
    free(enc->rank);
    free(enc->merged);
    free(enc->next);
    free(enc->prev);
    free(enc->heap);
    free(enc);
    *self_p = NULL;
}

/* Makes the merge scratch hold n symbols. */
static int scratch_reserve(ct_encoder_t *enc, size_t n, ct_err_t *e) {
    if (n <= enc->scratch_cap) return 0;
    size_t cap = enc->scratch_cap ? enc->scratch_cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t **arrays[] = {&enc->sym, &enc->rank, &enc->merged, &enc->next, &enc->prev};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        int32_t *p = realloc(*arrays[i], cap * sizeof *p);
        if (!p) goto nomem;
        *arrays[i] = p;
    }
    uint64_t *h = realloc(enc->heap, 2 * cap * sizeof *h);
    if (!h) goto nomem;
    enc->heap = h;
    enc->scratch_cap = cap;
    return 0;
nomem:
    return CT_ERR(e, CT_ENOMEM, "out of memory for the merge scratch of a %zu-byte piece", n);
}

/* ---------------------------------------------------------------------------------------------
 * Byte-pair merging of one piece. Both paths merge the adjacent pair of lowest rank, the leftmost
 * on ties, until none is left; load_merges checked the property that makes this equal to
 * encoder.py. Short pieces (the vast majority) scan a flat array; long ones use a heap so a
 * megabyte-long run of letters stays O(n log n). The result is enc->sym[0..return value). */

static size_t merge_small(ct_encoder_t *enc, size_t n) {
    const ct_tokenizer_t *t = enc->tok;
    int32_t *sym = enc->sym, *rank = enc->rank, *merged = enc->merged;
    for (size_t i = 0; i + 1 < n; i++)
        rank[i] = pair_rank(t, sym[i], sym[i + 1], &merged[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == NO_RANK) break;
        sym[best] = merged[best];
        n--;
        memmove(sym + best + 1, sym + best + 2, (n - best - 1) * sizeof *sym);
        memmove(rank + best, rank + best + 1, (n - best - 1) * sizeof *rank);
        memmove(merged + best, merged + best + 1, (n - best - 1) * sizeof *merged);
        if (best > 0) rank[best - 1] = pair_rank(t, sym[best - 1], sym[best], &merged[best - 1]);
        if (best + 1 < n) rank[best] = pair_rank(t, sym[best], sym[best + 1], &merged[best]);
    }
    return n;
}

static void heap_push(uint64_t *heap, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0], v = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap[c + 1] < heap[c]) c++;
        if (heap[c] >= v) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = v;
    return top;
}

/* Symbols live in slots 0..n linked by next/prev (-1 ends); a merge keeps the left slot and marks
 * the right one dead (-1). A heap entry (rank, left slot) may be stale: it is used only if that
 * slot's pair still has that rank, which (ranks being unique) means it is still the same pair.
 * The heap starts with at most n - 1 entries and each merge (at most n - 1) pops one and pushes at
 * most two, so it never holds more than 2n - 2. */
static size_t merge_large(ct_encoder_t *enc, size_t n) {
    const ct_tokenizer_t *t = enc->tok;
    int32_t *sym = enc->sym, *next = enc->next, *prev = enc->prev, m;
    uint64_t *heap = enc->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prev[i] = (int32_t)i - 1;
        int32_t r = i + 1 < n ? pair_rank(t, sym[i], sym[i + 1], &m) : NO_RANK;
        if (r != NO_RANK) heap_push(heap, &hn, (uint64_t)r << 32 | i);
    }
    while (hn > 0) {
        uint64_t top = heap_pop(heap, &hn);
        int32_t r = (int32_t)(top >> 32), i = (int32_t)(uint32_t)top, j = next[i];
        if (j < 0 || sym[i] < 0 || pair_rank(t, sym[i], sym[j], &m) != r) continue;
        sym[i] = m;
        sym[j] = -1; /* dead */
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        int32_t rr;
        if (prev[i] >= 0 && (rr = pair_rank(t, sym[prev[i]], sym[i], &m)) != NO_RANK)
            heap_push(heap, &hn, (uint64_t)rr << 32 | (uint32_t)prev[i]);
        if (next[i] >= 0 && (rr = pair_rank(t, sym[i], sym[next[i]], &m)) != NO_RANK)
            heap_push(heap, &hn, (uint64_t)rr << 32 | (uint32_t)i);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        sym[k++] = sym[i];
    return k;
}

/* The first min(n, 8) bytes of p as a little-endian word, zero-padded; avail >= n bytes may be
 * read from p. */
static inline uint64_t load_head(const uint8_t *p, size_t n, size_t avail) {
    uint64_t w = 0;
    if (avail >= 8) {
        memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        return n >= 8 ? w : w & ((1ull << (8 * n)) - 1); /* p[0] is the low byte */
    }
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

static inline int push_id(ct_ids_t *out, int32_t id, ct_err_t *e) {
    if (out->n == out->cap) CT_TRY(ids_reserve(out, 1, e));
    out->ids[out->n++] = id;
    return 0;
}

/* Appends the ids of one piece p[0..n) to out, through the cache; avail >= n bytes are readable
 * at p (the rest of the text). */
static int encode_piece(ct_encoder_t *enc, const uint8_t *p, size_t n, size_t avail, ct_ids_t *out,
                        ct_err_t *e) {
    const ct_tokenizer_t *t = enc->tok;
    if (n == 1) return push_id(out, t->bpe.byte_id[p[0]], e);
    if (n > INT32_MAX) /* merge_large numbers symbols with int32_t */
        return CT_ERR(e, CT_EINVAL,
                      "a %zu-byte run of one character class (one pre-token) is too long to "
                      "encode; the limit is 2 GiB",
                      n);
    uint64_t h = 0, si = 0, head = 0;
    uint32_t tag = 0;
    if (n <= CACHE_MAX_KEY) {
        head = load_head(p, n, avail);
        h = n <= 8 ? ct_mix64(head ^ (uint64_t)n << 59) : ct_hash_bytes(p, n);
        tag = (uint32_t)(h >> 32) | 1;
        for (si = h & (CACHE_SLOTS - 1); enc->slots[si].tag; si = (si + 1) & (CACHE_SLOTS - 1)) {
            const cache_slot_t *s = &enc->slots[si];
            if (s->tag != tag || s->head != head || s->key_len != n ||
                (n > 8 && memcmp(enc->keys + s->key_off, p + 8, n - 8)))
                continue;
            if (s->n_val == 1) return push_id(out, s->val, e);
            return ids_append(out, enc->vals + s->val, s->n_val, e);
        }
    }
    CT_TRY(scratch_reserve(enc, n, e));
    for (size_t i = 0; i < n; i++)
        enc->sym[i] = t->bpe.byte_id[p[i]];
    size_t k = n <= SMALL_PIECE ? merge_small(enc, n) : merge_large(enc, n);
    if (n <= CACHE_MAX_KEY) {
        size_t kb = n > 8 ? n - 8 : 0, vb = k > 1 ? k : 0;
        if (enc->n_entries == CACHE_MAX_ENTRIES || enc->keys_used + kb > CACHE_KEY_BYTES ||
            enc->vals_used + vb > CACHE_VAL_IDS) {
            /* Full: start again. Cheaper than eviction, and a text's common words come back
             * within a few thousand pieces. */
            memset(enc->slots, 0, CACHE_SLOTS * sizeof *enc->slots);
            enc->n_entries = enc->keys_used = enc->vals_used = 0;
            si = h & (CACHE_SLOTS - 1);
        }
        enc->slots[si] = (cache_slot_t){.head = head,
                                        .tag = tag,
                                        .key_len = (uint16_t)n,
                                        .n_val = (uint16_t)k,
                                        .key_off = (uint32_t)enc->keys_used,
                                        .val = k == 1 ? enc->sym[0] : (int32_t)enc->vals_used};
        if (kb) memcpy(enc->keys + enc->keys_used, p + 8, kb);
        if (vb) memcpy(enc->vals + enc->vals_used, enc->sym, vb * sizeof *enc->sym);
        enc->keys_used += kb;
        enc->vals_used += vb;
        enc->n_entries++;
    }
    return ids_append(out, enc->sym, k, e);
}

/* ---------------------------------------------------------------------------------------------
 * Pre-tokenization */

/* Decodes the code point at s[i] (i < n): returns its length, sets *cp and *cls. */
static inline size_t next_cp(const ct_tokenizer_t *t, const uint8_t *s, size_t n, size_t i,
                             uint32_t *cp, int *cls) {
    if (s[i] < 0x80) {
        *cp = s[i];
        *cls = t->ascii_class[s[i]];
        return 1;
    }
    size_t len = (size_t)ct_utf8_decode(s + i, n - i, cp);
    *cls = (int)ct_unicode_class(*cp);
    return len;
}

/* The end of the regex match that starts at s[i] (i < n), counting invalid bytes it covers into
 * *n_invalid. The alternatives in the regex's order:
 *   's 't 're 've 'm 'll 'd       (lower case only)
 *   ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'   a run of one class, maybe after one U+0020
 *   \s+(?!\S)   a whitespace run, less its last code point when a non-space follows and the run
 *               has two or more (that code point then starts the next match, e.g. " word")
 *   \s+         a lone whitespace code point before a non-space */
static size_t pretoken_end(const ct_tokenizer_t *t, const uint8_t *s, size_t n, size_t i,
                           size_t *n_invalid) {
    uint32_t c0, c;
    int k0, k;
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return i + 3;
    }
    size_t j = i + next_cp(t, s, n, i, &c0, &k0);
    int run = k0;
    if (c0 == CT_UTF8_INVALID) {
        (*n_invalid)++;
    } else if (c0 == ' ' && j < n) {
        size_t l = next_cp(t, s, n, j, &c, &k);
        if (k != CT_UC_SPACE) {
            run = k;
            *n_invalid += c == CT_UTF8_INVALID;
            j += l;
        }
    }
    if (run != CT_UC_SPACE) {
        while (j < n) {
            if (s[j] < 0x80) {
                if (t->ascii_class[s[j]] != run) break;
                j++;
                continue;
            }
            size_t l = next_cp(t, s, n, j, &c, &k);
            if (k != run) break;
            *n_invalid += c == CT_UTF8_INVALID;
            j += l;
        }
        return j;
    }
    size_t last = i, count = 1;
    while (j < n) {
        size_t l = next_cp(t, s, n, j, &c, &k);
        if (k != CT_UC_SPACE) break;
        last = j;
        count++;
        j += l;
    }
    return j == n || count == 1 ? j : last;
}

int ct_encode(ct_encoder_t *self, const char *text, size_t len, ct_ids_t *out, size_t *n_invalid,
              ct_err_t *e) {
    const ct_tokenizer_t *t = self->tok;
    const uint8_t *s = (const uint8_t *)text;
    size_t n0 = out->n, bad = 0;
    int rc = 0;
    if (t->kind == TOK_BYTES) {
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            i += (size_t)ct_utf8_decode(s + i, len - i, &cp);
            bad += cp == CT_UTF8_INVALID;
        }
        rc = ids_reserve(out, len, e);
        for (size_t i = 0; i < len && rc == 0; i++)
            out->ids[out->n++] = s[i];
    } else {
        for (size_t i = 0, j; i < len && rc == 0; i = j) {
            j = pretoken_end(t, s, len, i, &bad);
            rc = encode_piece(self, s + i, j - i, len - i, out, e);
        }
    }
    if (rc < 0) {
        out->n = n0;
        return rc;
    }
    if (n_invalid) *n_invalid += bad;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Parallel encoding */

/* The first position p >= from (p < n) where the regex must start a new match whatever text came
 * before, or n if there is none. That holds when the code points either side of p, c1 = text[..p)
 * and c2 = text[p..), are of different classes and c1 is neither whitespace nor an apostrophe:
 * every alternative that covers c1 (a one-class run, a contraction ending in a letter) stops
 * before a code point of another class, no match can begin at c1 and take c2 along (that needs c1
 * to be U+0020 or ') and the text before p decides every earlier match without looking past c1.
 * So text[..p) and text[p..) encode separately to exactly the ids of the whole. A byte that is
 * not a UTF-8 continuation byte begins a code point in every decoding, so the scan starts at one
 * and decodes the same code points as ct_encode does. */
static size_t safe_split(const ct_tokenizer_t *t, const uint8_t *s, size_t n, size_t from) {
    size_t q = from;
    while (q < n && (s[q] & 0xC0) == 0x80)
        q++;
    if (q >= n) return n;
    uint32_t pc, c;
    int pk, k;
    q += next_cp(t, s, n, q, &pc, &pk);
    while (q < n) {
        size_t l = next_cp(t, s, n, q, &c, &k);
        if (k != pk && pk != CT_UC_SPACE && pc != '\'') return q;
        pc = c;
        pk = k;
        q += l;
    }
    return n;
}

int ct_encode_parallel(const ct_tokenizer_t *tok, const char *text, size_t len, int n_threads,
                       ct_ids_t *out, size_t *n_invalid, ct_err_t *e) {
    int rc = 0, nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    ct_encoder_t **encs = NULL;
    size_t *bounds = NULL, *bad = NULL;
    ct_ids_t *parts = NULL;
    ct_err_t *errs = NULL;
    int *rcs = NULL;
    if (nt <= 1 || len < PARALLEL_MIN_BYTES || tok->kind == TOK_BYTES) nt = 1;
    size_t nc = nt == 1 ? 1 : (size_t)nt * CHUNKS_PER_THREAD;
    CT_ALLOC(e, encs, nt, out);
    CT_ALLOC(e, bounds, nc + 1, out);
    CT_ALLOC(e, bad, nc, out);
    CT_ALLOC(e, parts, nc, out);
    CT_ALLOC(e, errs, nc, out);
    CT_ALLOC(e, rcs, nc, out);
    for (int i = 0; i < nt; i++)
        CT_TRY_GOTO(ct_encoder_create(&encs[i], tok, e), out);
    if (nc == 1) {
        CT_TRY_GOTO(ct_encode(encs[0], text, len, out, n_invalid, e), out);
        goto out;
    }
    const uint8_t *s = (const uint8_t *)text;
    bounds[nc] = len;
    for (size_t c = 1; c < nc; c++) {
        size_t target = len / nc * c;
        bounds[c] = safe_split(tok, s, len, target > bounds[c - 1] ? target : bounds[c - 1]);
    }
    /* No piece gives more ids than it has bytes, so part c fits in bounds[c + 1] - bounds[c] ids:
     * each part is written straight into *out at an offset that leaves it that room (it never
     * grows, so it never reallocates), and the parts are moved together afterwards. Pages that
     * no id reaches are reserved but never touched. */
    CT_TRY_GOTO(ids_reserve(out, len, e), out);
    int32_t *base = out->ids + out->n;
    for (size_t c = 0; c < nc; c++)
        parts[c] = (ct_ids_t){.ids = base + bounds[c], .n = 0, .cap = bounds[c + 1] - bounds[c]};
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t c = 0; c < nc; c++) {
        ct_encoder_t *enc = encs[omp_get_thread_num()];
        rcs[c] = ct_encode(enc, text + bounds[c], bounds[c + 1] - bounds[c], &parts[c], &bad[c],
                           &errs[c]);
    }
    size_t total = 0, total_bad = 0;
    for (size_t c = 0; c < nc; c++) {
        if (rcs[c] < 0) {
            *e = errs[c];
            rc = rcs[c];
            goto out;
        }
        if (parts[c].n && parts[c].ids != base + total)
            memmove(base + total, parts[c].ids, parts[c].n * sizeof *base);
        total += parts[c].n;
        total_bad += bad[c];
    }
    out->n += total;
    if (n_invalid) *n_invalid += total_bad;
out:
    for (int i = 0; encs && i < nt; i++)
        ct_encoder_destroy(&encs[i]);
    free(encs);
    free(bounds);
    free(bad);
    free(parts);
    free(errs);
    free(rcs);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

int ct_decode(const ct_tokenizer_t *tok, const int32_t *ids, size_t n, char **buf, size_t *len,
              size_t *cap, ct_err_t *e) {
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->vocab)
            return CT_ERR(e, CT_EINVAL,
                          "token %zu of %zu (counting from 0) is %" PRId32 ", outside the %s "
                          "vocabulary (ids 0..%d)",
                          i, n, id, ct_tokenizer_name(tok), tok->vocab - 1);
        need += tok->kind == TOK_BYTES ? 1 : tok->bpe.tok_off[id + 1] - tok->bpe.tok_off[id];
    }
    if (need == 0) return 0;
    if (*cap - *len < need) {
        size_t c = *cap ? *cap : 4096;
        while (c - *len < need)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory growing a text buffer to %zu bytes", c);
        *buf = p;
        *cap = c;
    }
    char *dst = *buf + *len;
    for (size_t i = 0; i < n; i++) {
        if (tok->kind == TOK_BYTES) {
            *dst++ = (char)ids[i];
            continue;
        }
        uint32_t off = tok->bpe.tok_off[ids[i]], l = tok->bpe.tok_off[ids[i] + 1] - off;
        memcpy(dst, tok->bpe.tok_bytes + off, l);
        dst += l;
    }
    *len += need;
    return 0;
}
