/* tokenize.c — `cotrain tokenize`: encodes all of stdin as one text and writes the token ids one
 * per line, or with --decode reads whitespace-separated ids and writes the bytes they stand for.
 * A debugging and checking tool (tests compare it with the reference tokenizers); `cotrain prep`
 * is what turns corpora into training data. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "cotrain/tokenizer.h"

typedef struct tokenize_args {
    const char *tokenizer;
    int decode;
} tokenize_args_t;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain tokenize [--tokenizer bytes|gpt2] [--decode]\n"
            "\n"
            "Reads all of stdin as one text and writes its token ids to stdout, one per line.\n"
            "No special tokens are produced: \"<|endoftext|>\" in the text is ordinary text.\n"
            "\n"
            "  --tokenizer NAME    gpt2 (default: GPT-2's byte-level BPE, vocabulary 50257)\n"
            "                      or bytes (each byte its id, vocabulary 256)\n"
            "  --decode            the reverse: read token ids separated by whitespace from\n"
            "                      stdin and write the bytes they decode to\n"
            "  -h, --help          this help\n"
            "\n"
            "Bytes that are not valid UTF-8 are encoded too (decoding gives them back); how\n"
            "many there were is reported on stderr. gpt2 reads encoder.json and vocab.bpe from\n"
            "$COTRAIN_GPT2_DIR, else from %s.\n"
            "Threads: the CPUs of the process's affinity mask, or OMP_NUM_THREADS.\n"
            "Exit codes: 0 done, 1 runtime failure, 2 bad usage or input (an id that is not a\n"
            "number or is outside the vocabulary).\n",
            CT_GPT2_DIR);
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, tokenize_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"tokenizer", required_argument, 0, 't'},
                                         {"decode", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    a->tokenizer = "gpt2";
    a->decode = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': a->tokenizer = optarg; break;
        case 'd': a->decode = 1; break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    if (optind < argc)
        return CT_ERR(e, CT_EINVAL,
                      "unexpected argument '%s': the text comes on stdin (see --help)",
                      argv[optind]);
    return 0;
}

/* Reads all of stdin into *buf (malloc'd, the caller frees it; one spare byte after *len). */
static int read_stdin(char **buf, size_t *len, ct_err_t *e) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) return CT_ERR(e, CT_ENOMEM, "out of memory reading stdin");
    for (;;) {
        if (cap - n < 2) {
            char *p = realloc(b, cap * 2);
            if (!p) {
                free(b);
                return CT_ERR(e, CT_ENOMEM, "out of memory reading stdin (%zu bytes so far)", n);
            }
            b = p;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return CT_ERR(e, CT_EIO, "reading stdin failed");
    }
    *buf = b;
    *len = n;
    return 0;
}

static int flush_stdout(ct_err_t *e) {
    if (fflush(stdout) != 0 || ferror(stdout))
        return CT_ERR(e, CT_EIO, "writing stdout failed (is the disk full or the pipe closed?)");
    return 0;
}

static int encode(const ct_tokenizer_t *tok, const char *text, size_t len, const ct_log_t *lg,
                  ct_err_t *e) {
    ct_ids_t ids = {0};
    size_t bad = 0;
    int rc = ct_encode_parallel(tok, text, len, 0, &ids, &bad, e);
    if (rc < 0) return rc;
    char line[16 * 1024];
    size_t used = 0;
    for (size_t i = 0; i < ids.n; i++) {
        if (sizeof line - used < 16) {
            fwrite(line, 1, used, stdout);
            used = 0;
        }
        char digits[12];
        int nd = 0;
        uint32_t v = (uint32_t)ids.ids[i];
        do
            digits[nd++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        while (nd > 0)
            line[used++] = digits[--nd];
        line[used++] = '\n';
    }
    fwrite(line, 1, used, stdout);
    ct_ids_free(&ids);
    CT_TRY(flush_stdout(e));
    if (bad > 0)
        ct_log(lg, CT_LOG_WARN,
               "tokenize: %zu byte%s of the input %s not valid UTF-8 (encoded all the same: "
               "decoding gives %s back)",
               bad, bad == 1 ? "" : "s", bad == 1 ? "was" : "were", bad == 1 ? "it" : "them");
    return 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses whitespace-separated decimal ids; the first bad one is an error naming its position. */
static int parse_ids(const ct_tokenizer_t *tok, const char *text, size_t len, ct_ids_t *ids,
                     ct_err_t *e) {
    int vocab = ct_tokenizer_vocab_size(tok);
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        if (is_space(text[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !is_space(text[i]))
            i++;
        count++;
        const char *w = text + start;
        size_t wl = i - start, k = w[0] == '-' ? 1 : 0;
        long long v = 0;
        int digits = 1;
        for (size_t j = k; j < wl; j++) {
            if (w[j] < '0' || w[j] > '9')
                digits = 0;
            else if (v < 1000000000000LL)
                v = v * 10 + (w[j] - '0');
        }
        if (!digits || wl == k)
            return CT_ERR(e, CT_EINVAL,
                          "token %zu of the input (counting from 1, at byte %zu): '%.*s' is not a "
                          "token id (a decimal integer)",
                          count, start, wl > 40 ? 40 : (int)wl, w);
        if (k || v >= vocab)
            return CT_ERR(e, CT_EINVAL,
                          "token %zu of the input (counting from 1, at byte %zu): %.*s is outside "
                          "the %s vocabulary (ids 0..%d)",
                          count, start, wl > 40 ? 40 : (int)wl, w, ct_tokenizer_name(tok),
                          vocab - 1);
        if (ids->n == ids->cap) {
            size_t cap = ids->cap ? 2 * ids->cap : 4096;
            int32_t *p = realloc(ids->ids, cap * sizeof *p);
            if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory reading %zu ids", ids->n);
            ids->ids = p;
            ids->cap = cap;
        }
        ids->ids[ids->n++] = (int32_t)v;
    }
    return 0;
}

static int decode(const ct_tokenizer_t *tok, const char *text, size_t len, ct_err_t *e) {
    ct_ids_t ids = {0};
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    int rc = parse_ids(tok, text, len, &ids, e);
    if (rc == 0) rc = ct_decode(tok, ids.ids, ids.n, &out, &out_len, &out_cap, e);
    if (rc == 0) {
        if (out_len) fwrite(out, 1, out_len, stdout);
        rc = flush_stdout(e);
    }
    free(out);
    ct_ids_free(&ids);
    return rc;
}

int ct_cmd_tokenize(int argc, char **argv, const ct_log_t *lg) {
    ct_err_t e = {0};
    tokenize_args_t a;
    ct_tokenizer_t *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) rc = ct_tokenizer_open(&tok, a.tokenizer, &e);
    if (rc == 0) rc = read_stdin(&text, &len, &e);
    if (rc == 0) rc = a.decode ? decode(tok, text, len, &e) : encode(tok, text, len, lg, &e);
    free(text);
    ct_tokenizer_destroy(&tok);
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "tokenize: %s", e.msg);
    return ct_exit_code(rc);
}
