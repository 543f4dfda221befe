/* optout.h — the opt-out list: documents whose id or content hash is listed are left out of
 * every shard `cotrain prep` writes.
 *
 * File format: one entry per line, a document id or the sha256 (64 hex digits) of a document's
 * text; blank lines and lines starting with '#' are ignored; surrounding spaces are trimmed. An
 * entry is 1..512 bytes of printable UTF-8 without spaces or control characters; anything else is
 * an error naming the line, so a mangled list is never applied half-way. */
#ifndef COTRAIN_OPTOUT_H
#define COTRAIN_OPTOUT_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"

typedef struct ct_optout ct_optout_t;

enum { CT_DOC_ID_MAX = 512 };

/* Reads the list at `path`. Errors: CT_ENOENT (cannot open), CT_EINVAL ("FILE:LINE: ..." for a
 * bad line, saying what an entry may contain), CT_ENOMEM. *out is owned by the caller. */
int ct_optout_load(ct_optout_t **out, const char *path, ct_err_t *e);

/* Frees the list and sets *self_p to NULL; NULL-safe. */
void ct_optout_destroy(ct_optout_t **self_p);

/* 1 when `id` or `content_sha256` (hex) is listed, else 0; marks the entries that matched. Safe
 * to call from several threads at once (the marks are set with atomic stores). */
int ct_optout_match(ct_optout_t *self, const char *id, const char *content_sha256);

/* Distinct entries in the list, and how many of them have matched a document so far. */
int64_t ct_optout_entries(const ct_optout_t *self);
int64_t ct_optout_matched(const ct_optout_t *self);

/* sha256 (hex) of the list file's bytes, as recorded in the manifest. */
const char *ct_optout_sha256(const ct_optout_t *self);

/* 1 when `id` is a valid document id by the rules above (used for JSONL ids too). */
int ct_doc_id_valid(const char *id, size_t len);

#endif
