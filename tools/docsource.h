/* docsource.h — the documents of one `cotrain prep` input file.
 *
 * A plain text file is one document, or with DOC_SPLIT_PARAGRAPHS one document per block of
 * lines separated by blank (or whitespace-only) lines. A `.jsonl` / `.ndjson` file has one JSON
 * object per line with a string `text` and an optional `id` (a string, or an integer written in
 * decimal); blank lines are skipped. The file is memory-mapped: text documents point into the
 * mapping (valid until the source is destroyed); JSONL texts are decoded into buffers the caller
 * owns. */
#ifndef COTRAIN_TOOLS_DOCSOURCE_H
#define COTRAIN_TOOLS_DOCSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"

typedef enum { DOC_SPLIT_FILE, DOC_SPLIT_PARAGRAPHS } doc_split_t;

typedef struct doc {
    const char *text; /* (len) bytes, not NUL-terminated */
    size_t len;
    char *owned;      /* the decoded text of a JSONL document (== text), else NULL; the caller
                         frees it with free() */
    char *id;         /* the JSONL id (malloc'd, the caller frees it), or NULL: id by content */
    int64_t line;     /* 1-based line where the document starts */
} doc_t;

typedef struct doc_source doc_source_t;

/* Opens and maps `path`. Errors: CT_ENOENT (cannot open), CT_EIO. *out is owned by the caller. */
int doc_source_open(doc_source_t **out, const char *path, doc_split_t split, int skip_bad,
                    ct_err_t *e);

/* Frees the source (unmapping the file: documents that point into it become invalid) and sets
 * *self_p to NULL; NULL-safe. */
void doc_source_destroy(doc_source_t **self_p);

/* Gives the next document in *d: returns 1, or 0 at the end. A JSONL line that is not an object
 * with a string `text` (or has an invalid `id`) is CT_EINVAL "FILE:LINE: ..." unless skip_bad, in
 * which case it is counted and skipped. */
int doc_source_next(doc_source_t *self, doc_t *d, ct_err_t *e);

/* The file's size, how far reading has got (bytes), lines skipped as bad, and the sha256 of the
 * file's bytes. */
size_t doc_source_size(const doc_source_t *self);
size_t doc_source_pos(const doc_source_t *self);
int64_t doc_source_bad_lines(const doc_source_t *self);
void doc_source_sha256(const doc_source_t *self, char hex[CT_SHA256_HEX]);

#endif
