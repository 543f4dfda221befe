/* manifest.h — reading a data manifest (`manifest.json`, written by `cotrain prep`).
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
#include "cotrain/hash.h"

#define CT_MANIFEST_FORMAT "cotrain-manifest/1"

enum { CT_SHARD_ID_MAX = 64 };

typedef struct ct_manifest_shard {
    char id[CT_SHARD_ID_MAX];  /* [A-Za-z0-9._-], unique in the manifest */
    char *path;                /* the file, joined to the manifest's folder */
    int64_t n_tokens, n_docs;
    char sha256[CT_SHA256_HEX]; /* of the file's bytes */
} ct_manifest_shard_t;

typedef struct ct_manifest {
    char tokenizer[16];
    int vocab_size;
    int64_t n_tokens;
    int n_shards;
    ct_manifest_shard_t *shards; /* (n_shards) in manifest order */
    char path[4096];             /* the manifest file */
    char sha256[CT_SHA256_HEX];  /* of the manifest file's bytes */
} ct_manifest_t;

/* Loads `path`: a manifest.json, or a folder holding one. Checks every field (and that shard ids
 * are unique and files stay inside the folder) but not the shard files themselves. Errors:
 * CT_ENOENT (no manifest there: says to run `cotrain prep`), CT_ECORRUPT (naming the manifest, the
 * shard index and the field), CT_ENOMEM. *out is owned by the caller. */
int ct_manifest_load(ct_manifest_t **out, const char *path, ct_err_t *e);

/* Frees the manifest and sets *self_p to NULL; NULL-safe. */
void ct_manifest_destroy(ct_manifest_t **self_p);

/* 1 when `id` may name a shard: 1..63 characters of [A-Za-z0-9._-], not starting with '.'. */
int ct_shard_id_valid(const char *id);

#endif
