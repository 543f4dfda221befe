/* sample.c — `cotrain sample CKPT_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K]
 * [--seed S] [--tokenizer NAME]`: continues a prompt with a checkpoint's model and prints the
 * prompt followed by the generated text.
 *
 * The checkpoint is verified before its weights are used. Generation runs through the KV cache
 * of generate.h and never goes past the model's context: prompt + tokens <= seq_len (no sliding
 * window, so every token is predicted from a context the model was trained on). Tokens are
 * written as they are drawn. The same checkpoint, prompt, options and seed print the same text. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "operand.h"
#include "cotrain/clock.h"
#include "cotrain/snapshot.h"
#include "cotrain/generate.h"
#include "cotrain/hash.h"
#include "cotrain/tokenizer.h"

enum { DEFAULT_TOKENS = 100, GPT2_VOCAB = 50257 };

typedef struct sample_args {
    const char *ckpt, *prompt, *tokenizer; /* tokenizer NULL: the checkpoint's */
    int tokens;                            /* -1: DEFAULT_TOKENS, clipped to what fits */
    float temperature;
    int top_k;
    uint64_t seed;
} sample_args_t;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain sample CKPT_DIR [--prompt TEXT] [--tokens N] [--temperature T]\n"
            "                      [--top-k K] [--seed S] [--tokenizer bytes|gpt2]\n"
            "\n"
            "Verifies the checkpoint CKPT_DIR (e.g. RUN_DIR/checkpoints/ckpt-00001000), continues\n"
            "TEXT with its model and writes TEXT followed by the generated text and a newline to\n"
            "stdout, each token as soon as it is drawn.\n"
            "\n"
            "  --prompt TEXT       the text to continue (default: none; the model then starts\n"
            "                      from <|endoftext|> with gpt2, from a newline with bytes,\n"
            "                      neither of them printed)\n"
            "  --tokens N          tokens to generate (default %d, fewer if the context cannot\n"
            "                      hold them). Prompt + N must fit in the model's context\n"
            "                      (seq_len): there is no sliding window, so more is refused\n"
            "  --temperature T     >= 0; lower is more predictable, 0 always takes the most\n"
            "                      likely token (default 0.8)\n"
            "  --top-k K           draw among the K most likely tokens only; 0 = all\n"
            "                      (default 40)\n"
            "  --seed S            random seed, 0..2^64-1 (default 1337): the same checkpoint,\n"
            "                      prompt, options and seed give the same text\n"
            "  --tokenizer NAME    gpt2 or bytes (default: the one of the data the checkpoint\n"
            "                      was trained on; for checkpoints older than that record,\n"
            "                      gpt2 when the model's vocab_size is at least %d, else\n"
            "                      bytes); its vocabulary must not exceed\n"
            "                      the model's, and ids beyond it are never drawn\n"
            "  -h, --help          this help\n"
            "\n"
            "Speed and timing go to stderr. Threads: the prompt uses OMP_NUM_THREADS (default:\n"
            "all CPUs); each new token runs on one thread (it is bound by memory bandwidth).\n"
            "Exit codes: 0 done, 1 runtime failure, 2 bad usage or input (a bad option, a missing\n"
            "or damaged checkpoint, a prompt or --tokens that does not fit the context).\n",
            DEFAULT_TOKENS, GPT2_VOCAB);
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out, ct_err_t *e) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return CT_ERR(e, CT_EINVAL, "%s %s: give a whole number from %ld to %ld", opt, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out, ct_err_t *e) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] < '0' || s[0] > '9')
        return CT_ERR(e, CT_EINVAL, "--seed %s: give a whole number from 0 to %" PRIu64, s,
                      UINT64_MAX);
    *out = v;
    return 0;
}

static int parse_temperature(const char *s, float *out, ct_err_t *e) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0.0 || v > 1e6)
        return CT_ERR(e, CT_EINVAL,
                      "--temperature %s: give a number from 0 (always the most likely token) "
                      "to 1e6; 0.7-1.0 is usual",
                      s);
    *out = (float)v;
    return 0;
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, sample_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"prompt", required_argument, 0, 'p'},
                                         {"tokens", required_argument, 0, 'n'},
                                         {"temperature", required_argument, 0, 't'},
                                         {"top-k", required_argument, 0, 'k'},
                                         {"seed", required_argument, 0, 's'},
                                         {"tokenizer", required_argument, 0, 'z'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a =
        (sample_args_t){.prompt = "", .tokens = -1, .temperature = 0.8f, .top_k = 40, .seed = 1337};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': a->prompt = optarg; break;
        case 'n': CT_TRY(parse_int("--tokens", optarg, 0, 1 << 24, &a->tokens, e)); break;
        case 't': CT_TRY(parse_temperature(optarg, &a->temperature, e)); break;
        case 'k': CT_TRY(parse_int("--top-k", optarg, 0, 1 << 24, &a->top_k, e)); break;
        case 's': CT_TRY(parse_seed(optarg, &a->seed, e)); break;
        case 'z':
            if (strcmp(optarg, "gpt2") != 0 && strcmp(optarg, "bytes") != 0)
                return CT_ERR(e, CT_EINVAL, "--tokenizer %s: use gpt2 or bytes", optarg);
            a->tokenizer = optarg;
            break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    CT_TRY(tool_ckpt_operand(argc, argv, optind, "cotrain sample CKPT_DIR [--prompt TEXT]",
                             "; quote a prompt with spaces: --prompt \"...\"", &a->ckpt, e));
    return 0;
}

/* The generation in progress: what the token callback needs to print. */
typedef struct sample {
    const sample_args_t *a;
    const ct_log_t *lg;
    ct_model_t *m;
    ct_tokenizer_t *tok;
    char ckpt_tokenizer[CT_CKPT_TOKENIZER_MAX]; /* from state.json; "" in older checkpoints */
    ct_generator_t *gen;
    ct_ids_t prompt;
    int *out; /* (n_new) generated ids */
    int n_new;
    char *text; /* decode buffer, reused for every token */
    size_t len, cap;
} sample_t;

static int write_stdout(const char *p, size_t n, ct_err_t *e) {
    if ((n && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0)
        return CT_ERR(e, CT_EIO, "writing stdout failed (is the disk full or the pipe closed?)");
    return 0;
}

static int print_token(void *ctx, int token, ct_err_t *e) {
    sample_t *s = ctx;
    int32_t id = token;
    s->len = 0;
    CT_TRY(ct_decode(s->tok, &id, 1, &s->text, &s->len, &s->cap, e));
    return write_stdout(s->text, s->len, e);
}

static const char *default_tokenizer(int vocab_size) {
    return vocab_size >= GPT2_VOCAB ? "gpt2" : "bytes";
}

/* Opens the tokenizer and encodes the prompt (or the start token) into s->prompt. */
static int encode_prompt(sample_t *s, ct_err_t *e) {
    const ct_model_dims_t *d = ct_model_dims(s->m);
    /* the checkpoint says which tokenizer its data had; older ones do not: guess by vocab */
    const char *name = s->a->tokenizer      ? s->a->tokenizer
                       : s->ckpt_tokenizer[0] ? s->ckpt_tokenizer
                                              : default_tokenizer(d->vocab_size);
    CT_TRY(ct_tokenizer_open(&s->tok, name, e));
    int tv = ct_tokenizer_vocab_size(s->tok);
    if (tv > d->vocab_size)
        return CT_ERR(e, CT_EINVAL,
                      "the %s tokenizer has %d ids but the model only %d (its vocab_size): "
                      "use --tokenizer %s",
                      name, tv, d->vocab_size, strcmp(name, "gpt2") ? "gpt2" : "bytes");
    size_t len = strlen(s->a->prompt);
    if (len == 0) {
        int eot = ct_tokenizer_eot(s->tok);
        s->prompt.ids = malloc(sizeof *s->prompt.ids);
        if (!s->prompt.ids) return CT_ERR(e, CT_ENOMEM, "out of memory for the prompt");
        s->prompt.cap = s->prompt.n = 1;
        s->prompt.ids[0] = eot >= 0 ? eot : '\n';
        return 0;
    }
    ct_encoder_t *enc = NULL;
    CT_TRY(ct_encoder_create(&enc, s->tok, e));
    int rc = ct_encode(enc, s->a->prompt, len, &s->prompt, NULL, e);
    ct_encoder_destroy(&enc);
    return rc;
}

/* How many tokens to generate: --tokens if it fits, else the default clipped to what fits. */
static int plan_tokens(sample_t *s, ct_err_t *e) {
    int T = ct_model_dims(s->m)->seq_len;
    int room = T - (int)(s->prompt.n < (size_t)T ? s->prompt.n : (size_t)T);
    if (s->prompt.n > (size_t)T)
        return CT_ERR(e, CT_EINVAL,
                      "the prompt is %zu tokens, more than the model's context of %d (seq_len): "
                      "shorten it",
                      s->prompt.n, T);
    if (s->a->tokens > room)
        return CT_ERR(e, CT_EINVAL,
                      "--tokens %d does not fit: the prompt is %zu token%s and the model's "
                      "context holds %d (seq_len; no sliding window), so at most %d can be "
                      "generated",
                      s->a->tokens, s->prompt.n, s->prompt.n == 1 ? "" : "s", T, room);
    s->n_new = s->a->tokens >= 0 ? s->a->tokens : (room < DEFAULT_TOKENS ? room : DEFAULT_TOKENS);
    if (s->a->tokens < 0 && s->n_new < DEFAULT_TOKENS)
        ct_log(s->lg, CT_LOG_INFO,
               "sample: generating %d tokens, all that fit after the %zu-token prompt in the "
               "context of %d",
               s->n_new, s->prompt.n, T);
    return 0;
}

static int run(sample_t *s, ct_err_t *e) {
    const sample_args_t *a = s->a;
    ct_config_t cfg;
    CT_TRY(ct_hash_init(e));
    ct_ckpt_info_t info;
    CT_TRY(ct_snapshot_open_model(a->ckpt, &cfg, &info, &s->m, 1, e));
    snprintf(s->ckpt_tokenizer, sizeof s->ckpt_tokenizer, "%s", info.tokenizer);
    CT_TRY(encode_prompt(s, e));
    CT_TRY(plan_tokens(s, e));
    CT_TRY(ct_generator_create(&s->gen, s->m, e));
    s->out = malloc(sizeof *s->out * (size_t)(s->n_new ? s->n_new : 1));
    if (!s->out) return CT_ERR(e, CT_ENOMEM, "out of memory for %d tokens", s->n_new);
    CT_TRY(write_stdout(a->prompt, strlen(a->prompt), e));
    ct_sample_opts_t o = {.temperature = a->temperature,
                          .top_k = a->top_k,
                          .n_vocab = ct_tokenizer_vocab_size(s->tok)};
    double t0 = ct_now_s();
    CT_TRY(ct_generate(s->gen, s->prompt.ids, (int)s->prompt.n, s->n_new, &o, a->seed, s->out,
                       print_token, s, e));
    double dt = ct_now_s() - t0;
    CT_TRY(write_stdout("\n", 1, e));
    ct_log(s->lg, CT_LOG_INFO, "sample: %zu prompt + %d generated tokens in %.2f s (%.1f tokens/s)",
           s->prompt.n, s->n_new, dt, dt > 0 ? s->n_new / dt : 0.0);
    return 0;
}

int ct_cmd_sample(int argc, char **argv, const ct_log_t *lg) {
    ct_err_t e = {0};
    sample_args_t a;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) {
        sample_t s = {.a = &a, .lg = lg};
        rc = run(&s, &e);
        free(s.text);
        free(s.out);
        ct_ids_free(&s.prompt);
        ct_generator_destroy(&s.gen);
        ct_tokenizer_destroy(&s.tok);
        ct_model_destroy(&s.m);
    }
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "sample: %s", e.msg);
    return ct_exit_code(rc);
}
