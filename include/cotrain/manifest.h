/* manifest.h — a data manifest (`manifest.json`): reading it (the loader, the evaluator, the
 * coordinator) and building it (`cotrain prep`; `cotrain add-data` adds a built one to a run).
 *
 * The manifest names the shards of a dataset in a fixed order, with each shard's id, file
 * (relative to the manifest's folder), n_tokens, n_docs and sha256 (of the whole file: checked
 * before a shard is used), plus the tokenizer and vocabulary size every shard shares. prep also
 * records the sources and the opt-out summary there; readers here need only the shard list.
 * Format: {"format": "cotrain-manifest/1", "tokenizer", "vocab_size", "n_tokens", "n_docs",
 * "shards": [{"id", "file", "n_tokens", "n_docs", "sha256", "tokens_sha256", "sources"}],
 * "sources": [...], "optout": {...} | null, "settings": {...}}. */
#ifndef COTRAIN_MANIFEST_H
#define COTRAIN_MANIFEST_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/shard.h"

#define CT_MANIFEST_FORMAT "cotrain-manifest/1"

enum { CT_SHARD_ID_MAX = 64 };

typedef struct ct_manifest_shard {
    char id[CT_SHARD_ID_MAX]; /* [A-Za-z0-9._-], unique in the manifest */
    char *path;               /* the file, joined to the manifest's folder */
    int64_t n_tokens, n_docs;
    char sha256[CT_SHA256_HEX]; /* of the file's bytes */
} ct_manifest_shard_t;

typedef struct ct_manifest {
    char tokenizer[16];
    int vocab_size;
    int64_t n_tokens;
    int n_shards;
    ct_manifest_shard_t *shards; /* (n_shards) in manifest order */
    char path[CT_PATH_MAX];      /* the manifest file */
    char sha256[CT_SHA256_HEX];  /* of the manifest file's bytes */
} ct_manifest_t;

/* Loads `path`: a manifest.json, or a folder holding one. Checks every field (and that shard ids
 * are unique and files stay inside the folder) but not the shard files themselves. Errors:
 * CT_ENOENT (no manifest there: says to run `cotrain prep`), CT_ECORRUPT (naming the manifest, the
 * shard index and the field), CT_ENOMEM. *out is owned by the caller. */
int ct_manifest_load(ct_manifest_t **out, const char *path, ct_err_t *e);

/* Checks that the files of shards [first, first + n) exist, and raises *file_cap and *tok_cap to
 * the largest file and token count among them (the buffers ct_manifest_read_shard needs).
 * Errors: CT_ENOENT naming the shard and its path. */
int ct_manifest_check_files(const ct_manifest_t *m, int first, int n, size_t *file_cap,
                            int64_t *tok_cap, ct_err_t *e);

/* Reads shard i's tokens into tokens[0..tok_cap) through the caller's file buffer
 * buf[0..buf_cap) (both reused from shard to shard, so no fresh pages are touched per shard).
 * The file is checked against the manifest's sha256 before it is parsed, its token count and
 * vocabulary after. Errors: CT_ENOENT/CT_EIO (unreadable, naming the shard), CT_ECORRUPT (hash,
 * contents or counts differ from the manifest: naming the shard and what to do). */
int ct_manifest_read_shard(const ct_manifest_t *m, int i, void *buf, size_t buf_cap,
                           uint32_t *tokens, int64_t tok_cap, ct_err_t *e);

/* Reads the shard of entry ms with its documents' ids and offsets into *s (ct_shard_clear frees
 * it), after checking the file against the entry's sha256: for finding documents. Errors:
 * CT_ENOENT/CT_EIO (unreadable), CT_ECORRUPT (hash or contents: naming the shard), CT_ENOMEM. */
int ct_manifest_read_docs(const ct_manifest_shard_t *ms, ct_shard_t *s, ct_err_t *e);

/* ---- building a manifest ---- */

/* What one input contributed (the manifest's "sources" entry). */
typedef struct ct_manifest_source {
    const char *name;           /* the input as given (not owned) */
    char sha256[CT_SHA256_HEX]; /* of its bytes */
    int64_t bytes, docs, tokens, empty_docs, excluded_docs, invalid_utf8_docs, invalid_utf8_bytes,
        bad_lines;
} ct_manifest_source_t;

/* The opt-out summary ("optout"); a build without a list passes NULL. */
typedef struct ct_manifest_optout {
    const char *list_sha256;
    int64_t entries, matched_entries, excluded_docs;
} ct_manifest_optout_t;

/* How the shards were cut ("settings"). */
typedef struct ct_manifest_settings {
    const char *split; /* "file" or "paragraphs" */
    int64_t shard_tokens;
    int skip_bad;
} ct_manifest_settings_t;

typedef struct ct_manifest_builder ct_manifest_builder_t;

/* Starts a manifest of `tokenizer`'s tokens (vocab_size ids; eot < 0: none). Errors:
 * CT_ENOMEM. *out is owned by the caller. */
int ct_manifest_builder_create(ct_manifest_builder_t **out, const char *tokenizer, int vocab_size,
                               int eot, ct_err_t *e);

/* Appends a shard entry; sources[0..n_sources) name the inputs its documents came from. Errors:
 * CT_ENOMEM (the entry is then not added). */
int ct_manifest_builder_add_shard(ct_manifest_builder_t *b, const char *id, const char *file,
                                  int64_t n_tokens, int64_t n_docs, const char *sha256,
                                  const char *tokens_sha256, const char *const *sources,
                                  int n_sources, ct_err_t *e);

/* The manifest's text for the shards added so far, the inputs' statistics (whose totals are
 * the manifest's n_docs and n_tokens), the opt-out summary (may be NULL) and the settings:
 * pretty-printed JSON ending with a newline, in *text (malloc'd, *len bytes, NUL-terminated
 * after them). Errors: CT_ENOMEM. */
int ct_manifest_builder_text(const ct_manifest_builder_t *b, const ct_manifest_source_t *sources,
                             int n_sources, const ct_manifest_optout_t *optout,
                             const ct_manifest_settings_t *settings, char **text, size_t *len,
                             ct_err_t *e);

/* Frees the builder and sets *self_p to NULL; NULL-safe. */
void ct_manifest_builder_destroy(ct_manifest_builder_t **self_p);

/* Frees the manifest and sets *self_p to NULL; NULL-safe. */
void ct_manifest_destroy(ct_manifest_t **self_p);

/* 1 when `id` may name a shard: 1..63 characters of [A-Za-z0-9._-], not starting with '.'. */
int ct_shard_id_valid(const char *id);

#endif
