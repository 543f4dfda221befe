/* generate.h — text generation with a trained GPT-2: a key/value cache, an incremental forward
 * pass and a sampler (temperature, top-k, seeded).
 *
 * Training recomputes every position of a sequence; generation only ever needs the logits of the
 * newest position, and the keys and values of the earlier positions do not change when tokens
 * are appended (attention is causal). So a ct_generator_t keeps the keys and values of every
 * layer for the positions fed so far, (L, 2, T, C), and each new token costs one pass through the
 * weights instead of a full forward. A prompt can be fed in one go (its rows go through GEMMs
 * together), then tokens one at a time.
 *
 * Context: positions are learned embeddings, so a sequence can hold at most T = seq_len tokens.
 * Generation refuses to go past that (no sliding window): prompt + new tokens <= seq_len.
 *
 * Ownership: a generator borrows its model, which must outlive it; it only reads the weights, so
 * a model may back several generators used one per thread. A generator itself is used by one
 * thread at a time. Sampling is deterministic for a seed (xoshiro256** from rng.h), so the same
 * model, prompt, options and seed give the same tokens. */
#ifndef COTRAIN_GENERATE_H
#define COTRAIN_GENERATE_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/model.h"
#include "cotrain/rng.h"

typedef struct ct_generator ct_generator_t;

/* How the next token is drawn from the logits. */
typedef struct ct_sample_opts {
    float temperature; /* >= 0; 0 = greedy (argmax, lowest id on ties, no random draw) */
    int top_k;         /* >= 0; draw among the k most likely ids only; 0 = all */
    int n_vocab;       /* draw ids in [0, n_vocab) only: the tokenizer's vocabulary, which may be
                          smaller than the model's; 0 = the model's vocab_size. Padded rows
                          (vocab_size..Vp-1) are never drawn. */
} ct_sample_opts_t;

/* Called with each generated token as soon as it is drawn (for streaming output). Return 0 to
 * go on, or a negative CT_E... (with e filled) to stop generation with that error. */
typedef int (*ct_token_fn)(void *ctx, int token, ct_err_t *e);

/* Creates a generator for `model` (borrowed: it must outlive the generator) with an empty
 * cache. Allocates the cache, (L, 2, T, C) floats, and scratch for a T-token prompt.
 * Errors: CT_EINVAL (the model's tensor table lacks a GPT-2 tensor, naming it), CT_ENOMEM.
 * *out is owned by the caller. */
int ct_generator_create(ct_generator_t **out, ct_model_t *model, ct_err_t *e);

/* Frees the generator and sets *self_p to NULL; NULL-safe. */
void ct_generator_destroy(ct_generator_t **self_p);

/* Empties the cache: the next token fed is at position 0. Never fails. */
void ct_generator_reset(ct_generator_t *self);

/* Tokens in the cache, i.e. the position the next token fed goes to. */
int ct_generator_pos(const ct_generator_t *self);

/* Runs tokens[0..n) at positions pos..pos+n-1 through the model, appending their keys and
 * values to the cache, and leaves the logits of the last of them readable through
 * ct_generator_logits. Equal, up to float rounding, to the logits ct_model_forward computes at
 * that position for the same sequence. Errors: CT_EINVAL (n < 1, pos + n > seq_len: says that
 * the context is full; a token outside [0, vocab_size), naming it); the cache is unchanged then. */
int ct_generator_feed(ct_generator_t *self, const int *tokens, int n, ct_err_t *e);

/* Logits (Vp) of the last position fed (padded columns included, as ct_model_logits lays them
 * out); valid until the next feed or reset. Undefined before the first feed. */
const float *ct_generator_logits(const ct_generator_t *self);

/* Draws a token from logits[0..n) (typically n = n_vocab) under temperature and top-k (o's
 * n_vocab is ignored here). Uses one ct_rng_next draw unless temperature is 0. scratch_f and
 * scratch_i hold n floats and n ints. Returns the token id in [0, n), or CT_EINVAL (n < 1,
 * temperature negative or not finite, top_k < 0) / CT_ENUMERIC (a logit NaN or infinite:
 * the model has diverged). */
int ct_sample_logits(const float *logits, int n, const ct_sample_opts_t *o, ct_rng_t *rng,
                     float *scratch_f, int *scratch_i, ct_err_t *e);

/* Generates n_new tokens after prompt[0..n_prompt): resets the cache, feeds the prompt in one
 * go, then draws a token, feeds it, draws the next, ... Tokens are written to out[0..n_new)
 * and, when on_token is not NULL, passed to it as they come. The random stream is seeded with
 * `seed` at the start, so a call depends only on its arguments. n_new may be 0.
 * Errors: CT_EINVAL (n_prompt < 1, n_new < 0, n_prompt + n_new > seq_len: names both and the
 * context; bad options or n_vocab > vocab_size; a prompt token outside the vocabulary), those
 * of ct_sample_logits, and whatever on_token returns. */
int ct_generate(ct_generator_t *self, const int *prompt, int n_prompt, int n_new,
                const ct_sample_opts_t *o, uint64_t seed, int *out, ct_token_fn on_token, void *ctx,
                ct_err_t *e);

#endif
