/* safetensors.c — the model's weights in and out of safetensors files, and the Hugging Face
 * config.json written beside them.
 *
 * Writing streams the header and then each tensor straight from the parameter buffer into a temp
 * file (no second copy of the weights), which is fsync'd and renamed into place. Reading treats the
 * file as untrusted: the header is parsed with cJSON (its nesting limit bounds recursion) and every
 * entry is checked — dtype, shape, offsets inside the data, the data fully indexed without
 * overlaps (the format's own rule) — and matched against the model's tensor table before a single
 * weight is read; the data then goes straight into the parameter buffer with pread. */
#include "cotrain/safetensors.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cotrain/fsutil.h"
#include "cotrain/json.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes and reads floats as the host stores them: it needs little-endian"
#endif

#define HF_PREFIX "transformer."
#define WTE_NAME HF_PREFIX "wte.weight"
#define WPE_NAME HF_PREFIX "wpe.weight"
enum { HF_PREFIX_LEN = sizeof HF_PREFIX - 1, MAX_DIMS = 8, F32_SIZE = 4 };

/* ---- shared ---------------------------------------------------------------------------------- */

/* The shape of tensor t in a file: its stored rows (wte without its padding rows). */
static int file_shape(const ct_tensor_info_t *t, int64_t shape[2]) {
    shape[0] = t->stored_rows;
    shape[1] = t->ndim == 2 ? t->shape[1] : 0;
    return t->ndim;
}

static uint64_t file_bytes(const ct_tensor_info_t *t) {
    return (uint64_t)ct_tensor_stored_numel(t) * F32_SIZE;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used +=
            (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* ---- writing --------------------------------------------------------------------------------- */

/* A growing string; `failed` is set (and further appends ignored) when memory runs out. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf_t *b, const char *fmt, ...) {
    while (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
        } else if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        } else {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap <= b->len + (size_t)n)
                cap *= 2;
            char *q = realloc(b->p, cap);
            if (!q)
                b->failed = 1;
            else
                b->p = q, b->cap = cap;
        }
    }
}

static int cmp_tensor_name(const void *a, const void *b) {
    const ct_tensor_info_t *ta = *(const ct_tensor_info_t *const *)a;
    const ct_tensor_info_t *tb = *(const ct_tensor_info_t *const *)b;
    return strcmp(ta->name, tb->name);
}

/* The header JSON for the tensors in `order` (sorted by name; their data follows in that order),
 * padded with spaces so that 8 + its length is a multiple of 8. */
static int build_header(const ct_tensor_info_t **order, int n, strbuf_t *h, ct_err_t *e) {
    uint64_t off = 0;
    sb_printf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int k = 0; k < n; k++) {
        int64_t shape[2];
        int ndim = file_shape(order[k], shape);
        uint64_t bytes = file_bytes(order[k]);
        sb_printf(h, ",\"%s\":{\"data_offsets\":[%llu,%llu],\"dtype\":\"F32\",\"shape\":[%lld",
                  order[k]->name, (unsigned long long)off, (unsigned long long)(off + bytes),
                  (long long)shape[0]);
        if (ndim == 2) sb_printf(h, ",%lld", (long long)shape[1]);
        sb_printf(h, "]}");
        off += bytes;
    }
    sb_printf(h, "}");
    while (!h->failed && (8 + h->len) % 8 != 0)
        sb_printf(h, " ");
    if (h->failed) return CT_ERR(e, CT_ENOMEM, "out of memory building a safetensors header");
    return 0;
}

int ct_safetensors_write(const char *path, const ct_tensor_info_t *tab, int n, const float *buf,
                         ct_err_t *e) {
    int rc = 0, fd = -1, have_tmp = 0;
    const ct_tensor_info_t **order = NULL;
    strbuf_t h = {0};
    char tmp[CT_PATH_MAX];
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s.tmp.%ld", path, (long)getpid()));
    CT_ALLOC(e, order, n, out);
    for (int i = 0; i < n; i++)
        order[i] = &tab[i];
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_name);
    CT_TRY_GOTO(build_header(order, n, &h, e), out);

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    have_tmp = 1;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    CT_TRY_GOTO(ct_write_all(fd, len8, sizeof len8, -1, tmp, e), out);
    CT_TRY_GOTO(ct_write_all(fd, h.p, h.len, -1, tmp, e), out);
    for (int k = 0; k < n; k++)
        CT_TRY_GOTO(ct_write_all(fd, buf + order[k]->offset, file_bytes(order[k]), -1, tmp, e),
                    out);
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s", tmp, strerror(errno));
        goto out;
    }
    have_tmp = 0; /* ct_commit_file removes it itself if it fails */
    rc = ct_commit_file(tmp, path, e);
out:
    if (fd >= 0) close(fd);
    if (have_tmp) unlink(tmp);
    free(h.p);
    free(order);
    return rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int size;
} DTYPES[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
              {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
              {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
enum { N_DTYPES = sizeof DTYPES / sizeof DTYPES[0] };

enum { TARGET_SKIP = -1, TARGET_UNKNOWN = -2 };

/* One tensor entry of a header, checked on its own (dtype, shape, offsets, size agree). */
typedef struct entry {
    const char *name; /* the key in the header (owned by the cJSON tree) */
    int dtype;        /* index into DTYPES */
    int ndim;
    int64_t shape[MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data (after the header) */
    int target;          /* model tensor it fills, or TARGET_SKIP */
} entry_t;

/* A JSON number that is a whole number in [0, 2^53] (exactly representable in a double). */
static int get_uint(const cJSON *j, uint64_t *out) {
    int64_t v;
    if (!ct_json_uint53(j, &v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Checks one header entry and fills *en. Errors: CT_ECORRUPT naming the file, the tensor and
 * the field. */
static int parse_entry(const cJSON *item, uint64_t data_len, const char *path, entry_t *en,
                       ct_err_t *e) {
    const char *name = item->string;
    memset(en, 0, sizeof *en);
    en->name = name;
    if (!cJSON_IsObject(item))
        return CT_ERR(e, CT_ECORRUPT, "%s: tensor %.100s: the entry is not a JSON object", path,
                      name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return CT_ERR(e, CT_ECORRUPT, "%s: tensor %.100s: \"dtype\" is missing or not a string",
                      path, name);
    en->dtype = -1;
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(dt->valuestring, DTYPES[i].name)) en->dtype = i;
    if (en->dtype < 0)
        return CT_ERR(e, CT_ECORRUPT, "%s: tensor %.100s: unknown dtype \"%.40s\"", path, name,
                      dt->valuestring);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > MAX_DIMS)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: tensor %.100s: \"shape\" is missing, not an array or "
                      "has more than %d dimensions",
                      path, name, MAX_DIMS);
    uint64_t numel = 1, v;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        if (!get_uint(x, &v))
            return CT_ERR(e, CT_ECORRUPT,
                          "%s: tensor %.100s: a dimension of \"shape\" is not a "
                          "non-negative integer",
                          path, name);
        if (v != 0 && numel > UINT64_MAX / 8 / v)
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor %.100s: \"shape\" is absurdly large", path,
                          name);
        numel *= v;
        en->shape[en->ndim++] = (int64_t)v;
    }
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !get_uint(of->child, &en->begin) ||
        !get_uint(of->child->next, &en->end))
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: tensor %.100s: \"data_offsets\" is not a pair of "
                      "non-negative integers",
                      path, name);
    if (en->begin > en->end || en->end > data_len)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: tensor %.100s: data_offsets [%llu, %llu] lie outside "
                      "the %llu bytes of data (truncated file?)",
                      path, name, (unsigned long long)en->begin, (unsigned long long)en->end,
                      (unsigned long long)data_len);
    if (en->end - en->begin != numel * (uint64_t)DTYPES[en->dtype].size)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: tensor %.100s: data_offsets span %llu bytes, but %llu "
                      "elements of %s take %llu",
                      path, name, (unsigned long long)(en->end - en->begin),
                      (unsigned long long)numel, DTYPES[en->dtype].name,
                      (unsigned long long)(numel * (uint64_t)DTYPES[en->dtype].size));
    return 0;
}

/* "h.<digits>.attn.bias" or "h.<digits>.attn.masked_bias": buffers, not parameters. */
static int is_attn_buffer(const char *base) {
    if (strncmp(base, "h.", 2) != 0) return 0;
    const char *p = base + 2;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return !strcmp(p, ".attn.bias") || !strcmp(p, ".attn.masked_bias");
}

/* Which table tensor a file name fills: with or without the "transformer." prefix. */
static int classify(const ct_tensor_info_t *tab, int nt, const char *name) {
    const char *base = strncmp(name, HF_PREFIX, HF_PREFIX_LEN) ? name : name + HF_PREFIX_LEN;
    for (int i = 0; i < nt; i++) {
        const char *tn = tab[i].name;
        if (!strcmp(tn, name) ||
            (!strncmp(tn, HF_PREFIX, HF_PREFIX_LEN) && !strcmp(tn + HF_PREFIX_LEN, base)))
            return i;
    }
    if (!strcmp(name, "lm_head.weight") || is_attn_buffer(base)) return TARGET_SKIP;
    return TARGET_UNKNOWN;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const entry_t *const *)a)->name, (*(const entry_t *const *)b)->name);
}

static int cmp_entry_begin(const void *a, const void *b) {
    const entry_t *x = *(const entry_t *const *)a, *y = *(const entry_t *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No name twice; the data covered exactly once, without holes (the format's rule: it keeps
 * other payloads from hiding in a file). `by` is scratch of n pointers. */
static int check_layout(entry_t *ent, int n, uint64_t data_len, const entry_t **by,
                        const char *path, ct_err_t *e) {
    for (int i = 0; i < n; i++)
        by[i] = &ent[i];
    qsort(by, (size_t)n, sizeof *by, cmp_entry_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(by[i - 1]->name, by[i]->name))
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor %.100s appears twice in the header", path,
                          by[i]->name);
    qsort(by, (size_t)n, sizeof *by, cmp_entry_begin);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (by[i]->begin < at)
            return CT_ERR(e, CT_ECORRUPT, "%s: the data of tensors %.100s and %.100s overlap", path,
                          by[i - 1]->name, by[i]->name);
        if (by[i]->begin > at)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s: data bytes %llu..%llu belong to no tensor (the "
                          "format allows no holes)",
                          path, (unsigned long long)at, (unsigned long long)by[i]->begin);
        at = by[i]->end;
    }
    if (at != data_len)
        return CT_ERR(e, CT_ECORRUPT, "%s: the last %llu bytes of the data belong to no tensor",
                      path, (unsigned long long)(data_len - at));
    return 0;
}

/* Matches the entries to the model's tensors: fills slot[i] (the entry for model tensor i) and
 * checks that every model tensor is there once, as F32 of its shape, and nothing unknown is. */
static int match_tensors(const ct_tensor_info_t *tab, int nt, entry_t *ent, int n,
                         const entry_t **slot, const char *path, ct_err_t *e) {
    for (int i = 0; i < n; i++) {
        ent[i].target = classify(tab, nt, ent[i].name);
        if (ent[i].target == TARGET_UNKNOWN)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s: unexpected tensor %.100s: not one of this model's %d tensors (is "
                          "the file from another architecture or a bigger model?)",
                          path, ent[i].name, nt);
        if (ent[i].target == TARGET_SKIP) continue;
        if (slot[ent[i].target])
            return CT_ERR(e, CT_ECORRUPT, "%s: tensors %.100s and %.100s both give %s", path,
                          slot[ent[i].target]->name, ent[i].name, tab[ent[i].target].name);
        slot[ent[i].target] = &ent[i];
    }
    for (int i = 0; i < nt; i++) {
        const ct_tensor_info_t *t = &tab[i];
        const entry_t *en = slot[i];
        if (!en)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s: tensor %s is missing (is the file a model of this config's "
                          "n_layer?)",
                          path, t->name);
        if (strcmp(DTYPES[en->dtype].name, "F32") != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s: tensor %s has dtype %s; only F32 is supported "
                          "(convert the file to float32, e.g. with model.float() in transformers)",
                          path, t->name, DTYPES[en->dtype].name);
        int64_t want[2];
        int ndim = file_shape(t, want);
        if (en->ndim != ndim || en->shape[0] != want[0] || (ndim == 2 && en->shape[1] != want[1])) {
            char got_s[128], want_s[64], hint[128] = "";
            shape_str(got_s, sizeof got_s, en->ndim, en->shape);
            shape_str(want_s, sizeof want_s, ndim, want);
            if (!strcmp(t->name, WTE_NAME))
                snprintf(hint, sizeof hint, " (rows: the vocabulary, %d here; columns: d_model)",
                         t->stored_rows);
            else if (!strcmp(t->name, WPE_NAME))
                snprintf(hint, sizeof hint, " (rows: seq_len, %d here; columns: d_model)",
                         t->shape[0]);
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor %s has shape %s, the model expects %s%s",
                          path, t->name, got_s, want_s, hint);
        }
    }
    return 0;
}

/* Reads and checks the header: returns the parsed tree in *root and the data's size. */
static int read_header(int fd, uint64_t size, const char *path, cJSON **root, uint64_t *hlen,
                       ct_err_t *e) {
    unsigned char len8[8];
    if (size < 8)
        return CT_ERR(e, CT_ECORRUPT, "%s: %llu bytes is too short for a safetensors file", path,
                      (unsigned long long)size);
    CT_TRY(ct_read_all(fd, len8, 8, 0, path, e));
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)len8[i] << (8 * i);
    if (n > CT_SAFETENSORS_MAX_HEADER)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: header length %llu is above the limit of %d bytes (not "
                      "a safetensors file?)",
                      path, (unsigned long long)n, CT_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s: header length %llu runs past the end of the %llu-byte "
                      "file (truncated?)",
                      path, (unsigned long long)n, (unsigned long long)size);
    char *text = malloc(n + 1);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory reading the header of %s", path);
    int rc = ct_read_all(fd, text, n, 8, path, e);
    if (rc == 0) {
        text[n] = '\0';
        const char *end = NULL;
        *root = n > 0 && text[0] == '{' ? cJSON_ParseWithLengthOpts(text, n, &end, 0) : NULL;
        while (*root && end < text + n &&
               (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (!*root || !cJSON_IsObject(*root) || end != text + n) {
            cJSON_Delete(*root);
            *root = NULL;
            rc = CT_ERR(e, CT_ECORRUPT,
                        "%s: the header is not one JSON object (malformed JSON "
                        "near byte %lld of it)",
                        path, (long long)(end ? end - text : 0));
        }
    }
    free(text);
    *hlen = n;
    return rc;
}

/* Checks "__metadata__": null or an object of strings. */
static int check_metadata(const cJSON *md, const char *path, ct_err_t *e) {
    if (cJSON_IsNull(md)) return 0;
    int ok = cJSON_IsObject(md);
    const cJSON *x;
    if (ok) cJSON_ArrayForEach(x, md) ok &= cJSON_IsString(x);
    if (!ok)
        return CT_ERR(e, CT_ECORRUPT, "%s: \"__metadata__\" is not an object of strings", path);
    return 0;
}

int ct_safetensors_read(const char *path, const ct_tensor_info_t *tab, int nt, float *buf,
                        ct_err_t *e) {
    int rc = 0, n = 0;
    cJSON *root = NULL;
    entry_t *ent = NULL;
    const entry_t **scratch = NULL, **slot = NULL;
    uint64_t hlen = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CT_ERR(e, CT_ENOENT, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CT_ERR(e, CT_EIO, "%s is not a readable regular file", path);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    CT_TRY_GOTO(read_header(fd, size, path, &root, &hlen, e), out);
    uint64_t data_len = size - 8 - hlen;

    CT_ALLOC(e, ent, cJSON_GetArraySize(root), out);
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (!strcmp(item->string, "__metadata__"))
            CT_TRY_GOTO(check_metadata(item, path, e), out);
        else
            CT_TRY_GOTO(parse_entry(item, data_len, path, &ent[n++], e), out);
    }
    CT_ALLOC(e, scratch, n, out);
    CT_TRY_GOTO(check_layout(ent, n, data_len, scratch, path, e), out);
    CT_ALLOC(e, slot, nt, out);
    CT_TRY_GOTO(match_tensors(tab, nt, ent, n, slot, path, e), out);

    for (int i = 0; i < nt; i++) {
        const ct_tensor_info_t *t = &tab[i];
        uint64_t bytes = file_bytes(t);
        CT_TRY_GOTO(ct_read_all(fd, buf + t->offset, bytes, (int64_t)(8 + hlen + slot[i]->begin),
                                path, e),
                    out);
        /* padding rows (wte's) are not in the file: they are zero */
        memset((char *)(buf + t->offset) + bytes, 0, t->numel * F32_SIZE - bytes);
    }
out:
    free(slot);
    free(scratch);
    free(ent);
    cJSON_Delete(root);
    close(fd);
    return rc;
}

/* ---- config.json ----------------------------------------------------------------------------- */

int ct_safetensors_write_hf_config(const char *path, const ct_config_t *cfg, ct_err_t *e) {
    if (cfg->model.n_layer <= 0 || cfg->model.n_head <= 0 || cfg->model.d_model <= 0 || cfg->model.seq_len <= 0 ||
        cfg->model.vocab_size <= 0)
        return CT_ERR(e, CT_EINVAL, "model dims must be positive to write %s", path);
    /* GPT-2's <|endoftext|>; a smaller vocabulary (e.g. bytes) has no such token. */
    const char *eot = cfg->model.vocab_size >= 50257 ? "50256" : "null";
    char text[1024];
    int len = snprintf(text, sizeof text,
                       "{\n"
                       "  \"activation_function\": \"gelu_new\",\n"
                       "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                       "  \"bos_token_id\": %s,\n"
                       "  \"eos_token_id\": %s,\n"
                       "  \"layer_norm_epsilon\": 1e-05,\n"
                       "  \"model_type\": \"gpt2\",\n"
                       "  \"n_ctx\": %d,\n"
                       "  \"n_embd\": %d,\n"
                       "  \"n_head\": %d,\n"
                       "  \"n_layer\": %d,\n"
                       "  \"n_positions\": %d,\n"
                       "  \"tie_word_embeddings\": true,\n"
                       "  \"torch_dtype\": \"float32\",\n"
                       "  \"vocab_size\": %d\n"
                       "}\n",
                       eot, eot, cfg->model.seq_len, cfg->model.d_model, cfg->model.n_head, cfg->model.n_layer, cfg->model.seq_len,
                       cfg->model.vocab_size);
    assert(len > 0 && len < (int)sizeof text);
    return ct_write_file_atomic(path, text, (size_t)len, e);
}
