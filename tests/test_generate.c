/* test_generate.c — KV-cached generation against the training forward pass: the cached logits at
 * every position equal ct_model_forward's (token by token, prompt at once, in chunks, across the
 * attention kernel's 64-row blocks and up to the full seq_len); greedy decoding is the argmax of
 * the full forward; sampling is seeded, follows softmax(logits / temperature) over the top k, and
 * never draws a padded vocabulary row or an id beyond the tokenizer's vocabulary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cotrain/generate.h"
#include "cotrain/model.h"
#include "cotrain/rng.h"

/* V = 200 pads to Vp = 256; T = 72 crosses the 64-row block of the training attention kernel. */
enum { L = 3, NH = 4, C = 64, T = 72, V = 200, VP = 256 };

/* A random model whose every parameter matters: GPT-2 init plus noise on every tensor (biases
 * and LayerNorm included, so a bias wired to the wrong tensor shows), and weights large enough
 * that attention is far from uniform. Padded rows of wte stay 0. */
static ct_model_t *make_model(uint64_t seed) {
    ct_model_dims_t d = {.n_layer = L, .n_head = NH, .d_model = C, .seq_len = T, .vocab_size = V};
    ct_model_t *m = NULL;
    ct_err_t e = {0};
    if (ct_model_create(&m, &d, 1, &e) < 0) {
        fprintf(stderr, "ct_model_create: %s\n", e.msg);
        exit(1);
    }
    ct_model_init_weights(m, seed);
    float *p = ct_model_params(m);
    for (int i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info_t *t = ct_model_tensor(m, i);
        size_t n = i == 0 ? (size_t)V * C : t->numel; /* wte: real rows only */
        float *noise = malloc(n * sizeof *noise);
        ct_rng_normal_fill(noise, n, t->ndim == 2 ? 0.1f : 0.05f, seed + 1, (uint64_t)i);
        for (size_t k = 0; k < n; k++)
            p[t->offset + k] += noise[k];
        free(noise);
    }
    return m;
}

static ct_generator_t *make_generator(ct_model_t *m) {
    ct_generator_t *g = NULL;
    ct_err_t e = {0};
    if (ct_generator_create(&g, m, &e) < 0) {
        fprintf(stderr, "ct_generator_create: %s\n", e.msg);
        exit(1);
    }
    return g;
}

static void random_tokens(int *out, int n, int vocab, uint64_t seed) {
    ct_rng_t rng;
    ct_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++)
        out[i] = (int)ct_rng_below(&rng, (uint64_t)vocab);
}

/* Full-forward logits (T, Vp) of tokens[0..T) into full. */
static void full_forward(ct_model_t *m, const int *tokens, float *full) {
    ct_model_forward(m, tokens, NULL, 1);
    memcpy(full, ct_model_logits(m), sizeof(float) * T * VP);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Feeds tokens[0..len) in chunks of the given sizes (the last size repeats) and compares the
 * logits after each feed with the full forward's at that position. Returns the worst relative
 * error. */
static double feed_and_compare(ct_generator_t *g, const int *tokens, int len, const float *full,
                               const int *chunks, int n_chunks) {
    ct_err_t e = {0};
    double worst = 0.0;
    ct_generator_reset(g);
    for (int pos = 0, c = 0; pos < len; c++) {
        int n = chunks[c < n_chunks ? c : n_chunks - 1];
        if (n > len - pos) n = len - pos;
        int rc = ct_generator_feed(g, tokens + pos, n, &e);
        CHECK_EQ_INT(rc, 0);
        if (rc < 0) {
            fprintf(stderr, "  feed: %s\n", e.msg);
            return INFINITY;
        }
        pos += n;
        CHECK_EQ_INT(ct_generator_pos(g), pos);
        double r = check_rel_err(ct_generator_logits(g), full + (size_t)(pos - 1) * VP, VP);
        worst = r > worst ? r : worst;
    }
    return worst;
}

static void test_cached_logits_match_forward(void) {
    ct_model_t *m = make_model(7);
    ct_generator_t *g = make_generator(m);
    int tokens[T];
    float *full = malloc(sizeof(float) * T * VP);
    /* Sequences of several lengths, each its own random tokens; the full forward always runs
     * T positions (padded with random tokens), which causality makes irrelevant to the first
     * len positions. */
    static const int lengths[] = {1, 2, 9, 40, 64, 65, T};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int len = lengths[li];
        random_tokens(tokens, T, V, 100 + li);
        full_forward(m, tokens, full);
        static const struct {
            const char *name;
            int chunks[3], n;
        } plans[] = {
            {"one by one", {1}, 1},
            {"prompt of 7, then one by one", {7, 1}, 2},
            {"prompt of 64, then one by one", {64, 1}, 2},
            {"prompt of T - 1, then one", {T - 1, 1}, 2},
            {"all at once", {T}, 1},
            {"chunks of 5", {5}, 1},
            {"3, then chunks of 30", {3, 30}, 2},
        };
        for (size_t pi = 0; pi < sizeof plans / sizeof plans[0]; pi++) {
            double r = feed_and_compare(g, tokens, len, full, plans[pi].chunks, plans[pi].n);
            if (!(r <= 1e-5))
                fprintf(stderr, "length %d, %s: relative error %.3g > 1e-5\n", len, plans[pi].name,
                        r);
            CHECK(r <= 1e-5);
        }
    }
    free(full);
    ct_generator_destroy(&g);
    CHECK(g == NULL);
    ct_generator_destroy(&g); /* NULL-safe */
    ct_model_destroy(&m);
}

static void test_feed_errors(void) {
    ct_model_t *m = make_model(8);
    ct_generator_t *g = make_generator(m);
    int tokens[T];
    random_tokens(tokens, T, V, 5);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_generator_feed(g, tokens, 0, &e), CT_EINVAL);
    ct_err_clear(&e);
    int bad[2] = {3, V};
    CHECK_EQ_INT(ct_generator_feed(g, bad, 2, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "vocabulary");
    CHECK_EQ_INT(ct_generator_pos(g), 0);
    ct_err_clear(&e);
    bad[1] = -1;
    CHECK_EQ_INT(ct_generator_feed(g, bad, 2, &e), CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_generator_feed(g, tokens, T - 1, &e), 0);
    CHECK_EQ_INT(ct_generator_feed(g, tokens, 2, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "context is full");
    CHECK_EQ_INT(ct_generator_pos(g), T - 1); /* a refused feed leaves the cache as it was */
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_generator_feed(g, tokens + T - 1, 1, &e), 0);
    CHECK_EQ_INT(ct_generator_pos(g), T);
    CHECK_EQ_INT(ct_generator_feed(g, tokens, 1, &e), CT_EINVAL);
    ct_generator_reset(g);
    CHECK_EQ_INT(ct_generator_pos(g), 0);
    ct_generator_destroy(&g);
    ct_model_destroy(&m);
}

static void test_greedy_is_argmax_of_forward(void) {
    ct_model_t *m = make_model(9);
    ct_generator_t *g = make_generator(m);
    enum { P = 3, N = T - P };
    int seq[T], out[N], out2[N];
    random_tokens(seq, P, V, 11);
    ct_err_t e = {0};
    ct_sample_opts_t greedy = {.temperature = 0.0f, .top_k = 0};
    CHECK_EQ_INT(ct_generate(g, seq, P, N, &greedy, 1, out, NULL, NULL, &e), 0);
    memcpy(seq + P, out, sizeof out);
    float *full = malloc(sizeof(float) * T * VP);
    full_forward(m, seq, full);
    int mismatches = 0;
    for (int i = 0; i < N; i++)
        if (argmax(full + (size_t)(P + i - 1) * VP, V) != out[i]) mismatches++;
    CHECK_EQ_INT(mismatches, 0);
    /* top-k 1 leaves only the argmax, at any temperature and seed */
    static const float temps[] = {0.8f, 5.0f};
    for (int t = 0; t < 2; t++) {
        ct_sample_opts_t top1 = {.temperature = temps[t], .top_k = 1};
        CHECK_EQ_INT(ct_generate(g, seq, P, N, &top1, 99 + t, out2, NULL, NULL, &e), 0);
        CHECK(memcmp(out, out2, sizeof out) == 0);
    }
    free(full);
    ct_generator_destroy(&g);
    ct_model_destroy(&m);
}

typedef struct collect {
    int tokens[T], n, stop_after;
} collect_t;

static int collect_token(void *ctx, int token, ct_err_t *e) {
    collect_t *c = ctx;
    c->tokens[c->n++] = token;
    if (c->stop_after && c->n == c->stop_after) return CT_ERR(e, CT_EINTR, "stopped by test");
    return 0;
}

static void test_seeded_sampling(void) {
    ct_model_t *m = make_model(10);
    ct_generator_t *g = make_generator(m);
    enum { P = 4, N = 40 };
    int prompt[P], a[N], b[N], c[N];
    random_tokens(prompt, P, V, 12);
    ct_err_t e = {0};
    static const ct_sample_opts_t opts[] = {{1.0f, 0, 0}, {0.8f, 40, 0}, {1.5f, 7, 0}};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[i], 1337, a, NULL, NULL, &e), 0);
        CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[i], 1337, b, NULL, NULL, &e), 0);
        CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[i], 1338, c, NULL, NULL, &e), 0);
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK(memcmp(a, c, sizeof a) != 0);
        for (int j = 0; j < N; j++)
            CHECK(a[j] >= 0 && a[j] < V);
    }
    /* the callback sees every token, in order; an error from it stops generation */
    collect_t col = {.n = 0};
    CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[1], 1337, b, collect_token, &col, &e), 0);
    CHECK_EQ_INT(col.n, N);
    CHECK(memcmp(col.tokens, b, sizeof b) == 0);
    collect_t stop = {.stop_after = 3};
    CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[1], 1337, b, collect_token, &stop, &e),
                 CT_EINTR);
    CHECK_EQ_INT(stop.n, 3);
    ct_generator_destroy(&g);
    ct_model_destroy(&m);
}

/* Padded rows made the most likely "tokens" must still never be drawn, nor ids beyond
 * opts.n_vocab. */
static void test_vocabulary_bounds(void) {
    ct_model_t *m = make_model(11);
    float *wte = ct_model_params(m); /* wte is tensor 0, at offset 0 */
    CHECK_EQ_INT(ct_model_tensor(m, 0)->offset, 0);
    for (int r = V; r < VP; r++)
        for (int k = 0; k < C; k++)
            wte[(size_t)r * C + k] =
                (r % 2 ? 1000.0f : -1000.0f) * wte[(size_t)(r - V) / 2 * C + k];
    ct_generator_t *g = make_generator(m);
    enum { P = 2, N = T - P };
    int prompt[P], out[N];
    random_tokens(prompt, P, V, 13);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_generator_feed(g, prompt, P, &e), 0);
    CHECK(argmax(ct_generator_logits(g), VP) >= V); /* else this test could not fail */
    static const ct_sample_opts_t opts[] = {{0.0f, 0, 0},  {1.0f, 0, 0},  {3.0f, 10, 0},
                                            {1.0f, 0, 50}, {2.0f, 5, 50}, {0.0f, 0, 50}};
    int outside = 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        int limit = opts[i].n_vocab ? opts[i].n_vocab : V;
        for (uint64_t seed = 1; seed <= 5; seed++) {
            CHECK_EQ_INT(ct_generate(g, prompt, P, N, &opts[i], seed, out, NULL, NULL, &e), 0);
            for (int j = 0; j < N; j++)
                outside += out[j] < 0 || out[j] >= limit;
        }
    }
    CHECK_EQ_INT(outside, 0);
    ct_generator_destroy(&g);
    ct_model_destroy(&m);
}

static void test_generate_errors(void) {
    ct_model_t *m = make_model(12);
    ct_generator_t *g = make_generator(m);
    int prompt[T], out[T];
    random_tokens(prompt, T, V, 14);
    ct_err_t e = {0};
    ct_sample_opts_t o = {.temperature = 0.8f, .top_k = 40};
    CHECK_EQ_INT(ct_generate(g, prompt, 10, T - 9, &o, 1, out, NULL, NULL, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "context of 72 tokens");
    CHECK_CONTAINS(e.msg, "at most 62");
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_generate(g, prompt, 10, T - 10, &o, 1, out, NULL, NULL, &e), 0);
    CHECK_EQ_INT(ct_generate(g, prompt, T, 0, &o, 1, out, NULL, NULL, &e), 0);
    CHECK_EQ_INT(ct_generate(g, prompt, 0, 5, &o, 1, out, NULL, NULL, &e), CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_generate(g, prompt, 3, -1, &o, 1, out, NULL, NULL, &e), CT_EINVAL);
    ct_err_clear(&e);
    ct_sample_opts_t big = {.temperature = 1.0f, .n_vocab = V + 1};
    CHECK_EQ_INT(ct_generate(g, prompt, 3, 5, &big, 1, out, NULL, NULL, &e), CT_EINVAL);
    ct_err_clear(&e);
    ct_sample_opts_t neg = {.temperature = -0.5f};
    CHECK_EQ_INT(ct_generate(g, prompt, 3, 5, &neg, 1, out, NULL, NULL, &e), CT_EINVAL);
    CHECK_CONTAINS(e.msg, "temperature");
    ct_generator_destroy(&g);
    ct_model_destroy(&m);
}

/* Empirical frequencies of n draws against the expected probabilities. */
static void check_frequencies(const float *logits, int n, ct_sample_opts_t o, const double *expect,
                              int draws) {
    ct_rng_t rng;
    ct_rng_seed(&rng, 2024);
    ct_err_t e = {0};
    float sf[16];
    int si[16], count[16] = {0};
    for (int d = 0; d < draws; d++) {
        int tok = ct_sample_logits(logits, n, &o, &rng, sf, si, &e);
        CHECK(tok >= 0 && tok < n);
        if (tok >= 0 && tok < n) count[tok]++;
    }
    for (int i = 0; i < n; i++)
        CHECK_NEAR((double)count[i] / draws, expect[i], 0.006, 1.0);
}

static void test_sampler(void) {
    const float lg[4] = {logf(1.0f), logf(2.0f), logf(3.0f), logf(4.0f)};
    enum { DRAWS = 60000 };
    check_frequencies(lg, 4, (ct_sample_opts_t){1.0f, 0, 0}, (double[]){.1, .2, .3, .4}, DRAWS);
    check_frequencies(lg, 4, (ct_sample_opts_t){1.0f, 2, 0}, (double[]){0, 0, 3. / 7, 4. / 7},
                      DRAWS);
    check_frequencies(lg, 4, (ct_sample_opts_t){0.5f, 0, 0},
                      (double[]){1. / 30, 4. / 30, 9. / 30, 16. / 30}, DRAWS);
    check_frequencies(lg, 4, (ct_sample_opts_t){0.0f, 0, 0}, (double[]){0, 0, 0, 1}, 100);

    ct_rng_t rng;
    ct_rng_seed(&rng, 1);
    ct_err_t e = {0};
    float sf[1000];
    int si[1000];
    /* ties: greedy and top-1 take the lowest id */
    const float flat[5] = {0.5f, 2.0f, 2.0f, 2.0f, -1.0f};
    CHECK_EQ_INT(ct_sample_logits(flat, 5, &(ct_sample_opts_t){0.0f, 0, 0}, &rng, sf, si, &e), 1);
    CHECK_EQ_INT(ct_sample_logits(flat, 5, &(ct_sample_opts_t){1.0f, 1, 0}, &rng, sf, si, &e), 1);
    /* top-k among 1000 random logits at a temperature that flattens them: only the true top k */
    float lg1000[1000], sorted[1000];
    ct_rng_normal_fill(lg1000, 1000, 1.0f, 3, 0);
    memcpy(sorted, lg1000, sizeof sorted);
    for (int i = 1; i < 1000; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
            float t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    int outside = 0, seen[1000] = {0};
    for (int d = 0; d < 5000; d++) {
        int tok =
            ct_sample_logits(lg1000, 1000, &(ct_sample_opts_t){100.0f, 37, 0}, &rng, sf, si, &e);
        CHECK(tok >= 0);
        if (tok < 0) break;
        outside += lg1000[tok] < sorted[36];
        seen[tok] = 1;
    }
    CHECK_EQ_INT(outside, 0);
    int distinct = 0;
    for (int i = 0; i < 1000; i++)
        distinct += seen[i];
    CHECK_EQ_INT(distinct, 37); /* nearly uniform over the 37: each drawn */
    /* bad input */
    float nan_lg[3] = {0.0f, NAN, 1.0f};
    CHECK_EQ_INT(ct_sample_logits(nan_lg, 3, &(ct_sample_opts_t){1.0f, 0, 0}, &rng, sf, si, &e),
                 CT_ENUMERIC);
    ct_err_clear(&e);
    nan_lg[1] = INFINITY;
    CHECK_EQ_INT(ct_sample_logits(nan_lg, 3, &(ct_sample_opts_t){0.0f, 0, 0}, &rng, sf, si, &e),
                 CT_ENUMERIC);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_sample_logits(lg, 4, &(ct_sample_opts_t){NAN, 0, 0}, &rng, sf, si, &e),
                 CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_sample_logits(lg, 4, &(ct_sample_opts_t){INFINITY, 0, 0}, &rng, sf, si, &e),
                 CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_sample_logits(lg, 4, &(ct_sample_opts_t){1.0f, -1, 0}, &rng, sf, si, &e),
                 CT_EINVAL);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_sample_logits(lg, 0, &(ct_sample_opts_t){1.0f, 0, 0}, &rng, sf, si, &e),
                 CT_EINVAL);
    /* a tiny positive temperature is greedy, without overflow */
    CHECK_EQ_INT(ct_sample_logits(lg, 4, &(ct_sample_opts_t){1e-30f, 0, 0}, &rng, sf, si, &e), 3);
}

int main(void) {
    test_cached_logits_match_forward();
    test_feed_errors();
    test_greedy_is_argmax_of_forward();
    test_seeded_sampling();
    test_vocabulary_bounds();
    test_generate_errors();
    test_sampler();
    return CHECK_RESULT();
}
