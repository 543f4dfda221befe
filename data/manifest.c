/* manifest.c — loads and validates manifest.json: the ordered shard list a loader, an evaluator
 * or the coordinator works from. Every field is checked before anything is used, so a hand-edited
 * or truncated manifest gets a message naming the field, not a crash later. And builds one: every
 * addition to the JSON tree is checked, since a key dropped for want of memory would give a
 * manifest that loads but says something else. */
#include "cotrain/manifest.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/shard.h"

int ct_shard_id_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n >= CT_SHARD_ID_MAX || id[0] == '.') return 0;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A non-negative integral number field (up to 2^53), or -1. */
static int64_t count_field(const cJSON *obj, const char *key) {
    int64_t v = -1;
    ct_json_get_uint53(obj, key, &v);
    return v;
}

static int load_shard(ct_manifest_t *m, const char *dir, int i, const cJSON *js, ct_err_t *e) {
    ct_manifest_shard_t *s = &m->shards[i];
    const char *id = ct_json_get_string(js, "id"), *file = ct_json_get_string(js, "file");
    const char *sha = ct_json_get_string(js, "sha256");
    const char *bad = !cJSON_IsObject(js)             ? "entry (not an object)"
                      : !id || !ct_shard_id_valid(id) ? "id"
                      : !file || !file[0] || file[0] == '/' || strstr(file, "..") ? "file"
                      : !ct_sha256_hex_valid(sha)                                 ? "sha256"
                      : (s->n_tokens = count_field(js, "n_tokens")) < 0           ? "n_tokens"
                      : (s->n_docs = count_field(js, "n_docs")) < 0               ? "n_docs"
                                                                                  : NULL;
    if (bad)
        return CT_ERR(e, CT_ECORRUPT,
                      "manifest %s: shards[%d].%s is missing or invalid "
                      "(re-create the manifest with `cotrain prep`)",
                      m->path, i, bad);
    for (int k = 0; k < i; k++)
        if (!strcmp(m->shards[k].id, id))
            return CT_ERR(e, CT_ECORRUPT,
                          "manifest %s: shard id %s appears twice (shards[%d] and "
                          "shards[%d])",
                          m->path, id, k, i);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->sha256, sizeof s->sha256, "%s", sha);
    size_t n = strlen(dir) + strlen(file) + 2;
    if (!(s->path = malloc(n))) return CT_ERR(e, CT_ENOMEM, "out of memory loading %s", m->path);
    snprintf(s->path, n, "%s/%s", dir, file);
    m->n_tokens += s->n_tokens;
    return 0;
}

static int parse(ct_manifest_t *m, const char *dir, const char *text, size_t len, ct_err_t *e) {
    int rc = 0;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const char *fmt = ct_json_get_string(root, "format"),
               *tok = ct_json_get_string(root, "tokenizer");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    int64_t vocab = count_field(root, "vocab_size");
    if (!root || !cJSON_IsObject(root)) {
        rc = CT_ERR(e, CT_ECORRUPT, "manifest %s is not valid JSON", m->path);
    } else if (!fmt || strcmp(fmt, CT_MANIFEST_FORMAT) != 0) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "manifest %s: format is not \"%s\" (made by another tool or "
                    "version?)",
                    m->path, CT_MANIFEST_FORMAT);
    } else if (!tok || strlen(tok) >= sizeof m->tokenizer || vocab <= 0 || vocab > 1 << 30) {
        rc = CT_ERR(e, CT_ECORRUPT, "manifest %s: tokenizer or vocab_size missing or invalid",
                    m->path);
    } else if (!cJSON_IsArray(shards) || cJSON_GetArraySize(shards) == 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "manifest %s lists no shards", m->path);
    } else {
        snprintf(m->tokenizer, sizeof m->tokenizer, "%s", tok);
        m->vocab_size = (int)vocab;
        m->n_shards = cJSON_GetArraySize(shards);
        m->shards = calloc((size_t)m->n_shards, sizeof *m->shards);
        if (!m->shards) {
            m->n_shards = 0; /* ct_manifest_destroy walks n_shards entries */
            rc = CT_ERR(e, CT_ENOMEM, "out of memory loading %s", m->path);
        }
        int i = 0;
        for (const cJSON *s = shards->child; s && rc == 0; s = s->next, i++)
            rc = load_shard(m, dir, i, s, e);
        int64_t total = count_field(root, "n_tokens");
        if (rc == 0 && total != m->n_tokens)
            rc = CT_ERR(e, CT_ECORRUPT,
                        "manifest %s: n_tokens is %lld but its shards hold %lld "
                        "(an edited or mixed-up manifest?)",
                        m->path, (long long)total, (long long)m->n_tokens);
    }
    cJSON_Delete(root);
    return rc;
}

int ct_manifest_load(ct_manifest_t **out, const char *path, ct_err_t *e) {
    int rc = 0;
    ct_manifest_t *m = NULL;
    char *text = NULL, dir[CT_PATH_MAX];
    size_t len = 0;
    *out = NULL;
    CT_ALLOC(e, m, 1, fail);
    struct stat st;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir)
        CT_TRY_GOTO(ct_path_join(m->path, sizeof m->path, path, "manifest.json", e), fail);
    else
        CT_TRY_GOTO(ct_path_fmt(m->path, sizeof m->path, e, "%s", path), fail);
    snprintf(dir, sizeof dir, "%s", m->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    ct_err_t why = {0};
    if ((rc = ct_read_file(m->path, &text, &len, &why)) != 0) {
        if (rc == CT_ENOMEM) { /* not a missing manifest */
            *e = why;
            goto fail;
        }
        rc = CT_ERR(e, CT_ENOENT,
                    "no data manifest: %s; make one with `cotrain prep TEXT... "
                    "--out DIR` and pass DIR or DIR/manifest.json",
                    why.msg);
        goto fail;
    }
    ct_sha256_hex(text, len, m->sha256);
    CT_TRY_GOTO(parse(m, dir, text, len, e), fail);
    free(text);
    *out = m;
    return 0;
fail:
    free(text);
    ct_manifest_destroy(&m);
    return rc;
}

int ct_manifest_check_files(const ct_manifest_t *m, int first, int n, size_t *file_cap,
                            int64_t *tok_cap, ct_err_t *e) {
    for (int i = first; i < first + n; i++) {
        const ct_manifest_shard_t *ms = &m->shards[i];
        struct stat st;
        if (stat(ms->path, &st) != 0 || !S_ISREG(st.st_mode))
            return CT_ERR(e, CT_ENOENT,
                          "shard %s is missing: %s does not exist (listed in %s); "
                          "restore it or re-run `cotrain prep`",
                          ms->id, ms->path, m->path);
        if ((size_t)st.st_size > *file_cap) *file_cap = (size_t)st.st_size;
        if (ms->n_tokens > *tok_cap) *tok_cap = ms->n_tokens;
    }
    return 0;
}

int ct_manifest_read_shard(const ct_manifest_t *m, int i, void *buf, size_t buf_cap,
                           uint32_t *tokens, int64_t tok_cap, ct_err_t *e) {
    const ct_manifest_shard_t *ms = &m->shards[i];
    char sha[CT_SHA256_HEX];
    size_t len = 0;
    ct_err_t why = {0};
    int rc = ct_read_file_into(ms->path, buf, buf_cap, &len, &why);
    if (rc != 0) return CT_ERR(e, rc, "shard %s cannot be read: %s", ms->id, why.msg);
    ct_sha256_hex(buf, len, sha);
    if (strcmp(sha, ms->sha256) != 0)
        return CT_ERR(e, CT_ECORRUPT,
                      "shard %s (%s) is corrupted or was replaced: its sha256 is "
                      "%.16s..., the manifest says %.16s...; restore the file or re-run `cotrain "
                      "prep`",
                      ms->id, ms->path, sha, ms->sha256);
    ct_shard_t sh;
    CT_TRY(ct_shard_read_image_into(buf, len, ms->path, tokens, tok_cap, &sh, e));
    int64_t n = sh.n_tokens;
    int vocab = sh.vocab_size;
    ct_shard_clear(&sh);
    if (n != ms->n_tokens || vocab != m->vocab_size)
        return CT_ERR(e, CT_ECORRUPT,
                      "shard %s (%s) holds %lld tokens of vocabulary %d, the "
                      "manifest says %lld of %d",
                      ms->id, ms->path, (long long)n, vocab, (long long)ms->n_tokens,
                      m->vocab_size);
    return 0;
}

int ct_manifest_read_docs(const ct_manifest_shard_t *ms, ct_shard_t *s, ct_err_t *e) {
    char *buf = NULL, hex[CT_SHA256_HEX];
    size_t len = 0;
    memset(s, 0, sizeof *s);
    CT_TRY(ct_read_file(ms->path, &buf, &len, e));
    ct_sha256_hex(buf, len, hex);
    int rc = strcmp(hex, ms->sha256) != 0
                 ? CT_ERR(e, CT_ECORRUPT, "shard %s (%s) does not match the manifest's sha256",
                          ms->id, ms->path)
                 : ct_shard_read_image(buf, len, ms->id, 1, s, e);
    free(buf);
    return rc;
}

void ct_manifest_destroy(ct_manifest_t **self_p) {
    ct_manifest_t *m = *self_p;
    if (!m) return;
    for (int i = 0; i < m->n_shards; i++)
        free(m->shards[i].path);
    free(m->shards);
    free(m);
    *self_p = NULL;
}

/* ---- building ---- */

struct ct_manifest_builder {
    cJSON *root;   /* format .. dtype so far */
    cJSON *shards; /* the shard entries */
};

int ct_manifest_builder_create(ct_manifest_builder_t **out, const char *tokenizer, int vocab_size,
                               int eot, ct_err_t *e) {
    int rc = 0;
    ct_manifest_builder_t *b = NULL;
    *out = NULL;
    CT_ALLOC(e, b, 1, fail);
    b->root = cJSON_CreateObject();
    b->shards = cJSON_CreateArray();
    if (!b->root || !b->shards || !cJSON_AddStringToObject(b->root, "format", CT_MANIFEST_FORMAT) ||
        !cJSON_AddStringToObject(b->root, "tokenizer", tokenizer) ||
        !cJSON_AddNumberToObject(b->root, "vocab_size", vocab_size) ||
        !ct_json_add_owned(b->root, "eot",
                           eot >= 0 ? cJSON_CreateNumber(eot) : cJSON_CreateNull()) ||
        !cJSON_AddStringToObject(b->root, "dtype", vocab_size <= 65535 ? "uint16" : "uint32")) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory starting a manifest");
        goto fail;
    }
    *out = b;
    return 0;
fail:
    ct_manifest_builder_destroy(&b);
    return rc;
}

int ct_manifest_builder_add_shard(ct_manifest_builder_t *b, const char *id, const char *file,
                                  int64_t n_tokens, int64_t n_docs, const char *sha256,
                                  const char *tokens_sha256, const char *const *sources,
                                  int n_sources, ct_err_t *e) {
    cJSON *js = cJSON_CreateObject(), *src = cJSON_CreateArray();
    int ok = js && src;
    for (int k = 0; ok && k < n_sources; k++)
        ok = ct_json_add_owned(src, NULL, cJSON_CreateString(sources[k]));
    ok = ok && cJSON_AddStringToObject(js, "id", id) && cJSON_AddStringToObject(js, "file", file) &&
         cJSON_AddNumberToObject(js, "n_tokens", (double)n_tokens) &&
         cJSON_AddNumberToObject(js, "n_docs", (double)n_docs) &&
         cJSON_AddStringToObject(js, "sha256", sha256) &&
         cJSON_AddStringToObject(js, "tokens_sha256", tokens_sha256);
    if (ok) {
        ok = ct_json_add_owned(js, "sources", src);
        src = NULL; /* owned by js now, or freed */
    }
    cJSON_Delete(src);
    if (ok && ct_json_add_owned(b->shards, NULL, js)) return 0;
    if (!ok) cJSON_Delete(js);
    return CT_ERR(e, CT_ENOMEM, "out of memory listing shard %s in the manifest", file);
}

static cJSON *sources_json(const ct_manifest_source_t *src, int n) {
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (int k = 0; ok && k < n; k++) {
        const ct_manifest_source_t *s = &src[k];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddStringToObject(o, "name", s->name) &&
             cJSON_AddStringToObject(o, "sha256", s->sha256) &&
             cJSON_AddNumberToObject(o, "bytes", (double)s->bytes) &&
             cJSON_AddNumberToObject(o, "docs", (double)s->docs) &&
             cJSON_AddNumberToObject(o, "tokens", (double)s->tokens) &&
             cJSON_AddNumberToObject(o, "empty_docs", (double)s->empty_docs) &&
             cJSON_AddNumberToObject(o, "excluded_docs", (double)s->excluded_docs) &&
             cJSON_AddNumberToObject(o, "invalid_utf8_docs", (double)s->invalid_utf8_docs) &&
             cJSON_AddNumberToObject(o, "invalid_utf8_bytes", (double)s->invalid_utf8_bytes) &&
             cJSON_AddNumberToObject(o, "bad_lines", (double)s->bad_lines);
        if (!ok) cJSON_Delete(o);
        ok = ok && ct_json_add_owned(arr, NULL, o);
    }
    if (!ok) cJSON_Delete(arr);
    return ok ? arr : NULL;
}

int ct_manifest_builder_text(const ct_manifest_builder_t *b, const ct_manifest_source_t *sources,
                             int n_sources, const ct_manifest_optout_t *optout,
                             const ct_manifest_settings_t *settings, char **text, size_t *len,
                             ct_err_t *e) {
    int64_t docs = 0, tokens = 0;
    for (int k = 0; k < n_sources; k++)
        docs += sources[k].docs, tokens += sources[k].tokens;
    /* a copy, so the builder can be asked again (and freed whatever happens here) */
    cJSON *m = cJSON_Duplicate(b->root, 1);
    int ok = m && cJSON_AddNumberToObject(m, "n_tokens", (double)tokens) &&
             cJSON_AddNumberToObject(m, "n_docs", (double)docs) &&
             ct_json_add_owned(m, "shards", cJSON_Duplicate(b->shards, 1)) &&
             ct_json_add_owned(m, "sources", sources_json(sources, n_sources));
    if (ok && optout) {
        cJSON *o = cJSON_AddObjectToObject(m, "optout");
        ok = o && cJSON_AddStringToObject(o, "list_sha256", optout->list_sha256) &&
             cJSON_AddNumberToObject(o, "entries", (double)optout->entries) &&
             cJSON_AddNumberToObject(o, "matched_entries", (double)optout->matched_entries) &&
             cJSON_AddNumberToObject(o, "excluded_docs", (double)optout->excluded_docs);
    } else if (ok) {
        ok = cJSON_AddNullToObject(m, "optout") != NULL;
    }
    cJSON *s = ok ? cJSON_AddObjectToObject(m, "settings") : NULL;
    ok = s && cJSON_AddStringToObject(s, "split", settings->split) &&
         cJSON_AddNumberToObject(s, "shard_tokens", (double)settings->shard_tokens) &&
         cJSON_AddBoolToObject(s, "skip_bad", settings->skip_bad);
    char *t = ok ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!t) return CT_ERR(e, CT_ENOMEM, "out of memory writing the manifest");
    size_t n = strlen(t);
    char *grown = realloc(t, n + 2);
    if (!grown) {
        free(t);
        return CT_ERR(e, CT_ENOMEM, "out of memory writing the manifest");
    }
    grown[n] = '\n'; /* the file ends with a newline */
    grown[n + 1] = '\0';
    *text = grown;
    *len = n + 1;
    return 0;
}

void ct_manifest_builder_destroy(ct_manifest_builder_t **self_p) {
    ct_manifest_builder_t *b = *self_p;
    if (!b) return;
    cJSON_Delete(b->root);
    cJSON_Delete(b->shards);
    free(b);
    *self_p = NULL;
}
