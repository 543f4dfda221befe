/* shard.h — one data shard: an HDF5 file of tokenized documents.
 *
 * Layout (DESIGN.md, "Data"): dataset `tokens` (uint16 when the vocabulary fits, else uint32; the
 * documents' tokens back to back), `doc_offsets` (int64, n_docs + 1: document d is
 * tokens[doc_offsets[d] .. doc_offsets[d+1])), `doc_ids` (fixed-length, NUL-padded UTF-8 strings), all
 * chunked with HDF5's Fletcher-32 checksum filter; root attributes `format` ("cotrain-shard/1"),
 * `tokenizer`, `vocab_size`, `n_tokens`, `n_docs` and `tokens_sha256` (sha256 of the tokens as
 * stored: little-endian uint16/uint32). Object times are off, so a shard's bytes depend only on
 * its content. Writing goes to a temp name, is fsync'd and renamed: a shard file that exists is
 * complete. The writes, fsyncs, rename and allocations cotrain makes around HDF5 (not HDF5's
 * own) are fault-injection points (fault.h). */
#ifndef COTRAIN_SHARD_H
#define COTRAIN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"

/* What a shard holds, as written or as read back. */
typedef struct ct_shard {
    uint32_t *tokens;     /* (n_tokens) */
    int64_t n_tokens;
    int64_t *doc_offsets; /* (n_docs + 1) */
    char **doc_ids;       /* (n_docs) NUL-terminated UTF-8; NULL when read without them */
    int64_t n_docs;
    char tokenizer[16];
    int vocab_size;
    char tokens_sha256[CT_SHA256_HEX];
    int tokens_borrowed;  /* tokens belong to the caller (ct_shard_read_image_into) */
} ct_shard_t;

/* sha256 (hex) of tokens[0..n) stored as little-endian uint16 (vocab_size <= 65535) or uint32:
 * the `tokens_sha256` attribute. Errors: CT_ENOMEM (hex is then empty). */
int ct_shard_tokens_sha256(const uint32_t *tokens, int64_t n, int vocab_size,
                           char hex[CT_SHA256_HEX], ct_err_t *e);

/* Writes `s` (tokens, doc_offsets, doc_ids, n_docs, tokenizer, vocab_size; tokens_sha256 is
 * computed and stored into s) to `path` atomically: `path`.tmp, fsync, rename, fsync of the
 * directory. Errors: CT_EIO (naming the file and the HDF5 step that failed; `path`.tmp is
 * removed and nothing is left at `path`, except when only the directory's final fsync failed:
 * then the whole shard is at `path`, as ct_commit_file says), CT_EINVAL (a token >= vocab_size,
 * offsets not increasing), CT_ENOMEM. */
int ct_shard_write(const char *path, ct_shard_t *s, ct_err_t *e);

/* Reads a shard whose whole file content is `image` (len bytes, already verified by the caller
 * against the manifest's sha256): tokens, offsets, and the ids when with_ids. `name` names the
 * shard in messages. HDF5 reads `image` in place (it is not copied). Errors: CT_ECORRUPT (not a cotrain shard, a checksum or shape error, a token
 * outside the vocabulary: naming the shard and what is wrong), CT_ENOMEM. On error *s is empty. */
int ct_shard_read_image(const void *image, size_t len, const char *name, int with_ids,
                        ct_shard_t *s, ct_err_t *e);

/* Like ct_shard_read_image without the ids, but the tokens go into the caller's buffer
 * tokens[0..cap) (reused from shard to shard, so no fresh pages are faulted in per shard):
 * s->tokens points there and ct_shard_clear leaves it alone. A shard of more than cap tokens is
 * CT_ECORRUPT. */
int ct_shard_read_image_into(const void *image, size_t len, const char *name, uint32_t *tokens,
                             int64_t cap, ct_shard_t *s, ct_err_t *e);

/* Frees what a shard holds and zeroes it; safe on a zeroed shard. */
void ct_shard_clear(ct_shard_t *s);

#endif
