/* eval.c — `cotrain eval CKPT_DIR --data MANIFEST [--tokens N]`: the mean next-token
 * cross-entropy of a checkpoint's model on a dataset, printed as the last line of stdout,
 * `loss <float %.9g>`.
 *
 * What is evaluated (DESIGN.md, "Command-line contract"): the shards concatenated in manifest
 * order, cut into consecutive, non-overlapping windows of seq_len+1 tokens (a window may span two
 * shards; a trailing partial window is dropped); with --tokens N only the first
 * floor(N / (seq_len+1)) windows. Window w predicts its tokens 1..seq_len from the ones before,
 * and the loss is the mean over every predicted position of every window. The order is fixed and
 * nothing is sampled, so two evaluations of one checkpoint on one dataset agree.
 *
 * The checkpoint is verified before use, and so is every shard file, against the manifest's
 * sha256, before its tokens are used. Windows (windows.h) go through the model (evaluate.h) in
 * batches of up to the checkpoint's train.micro_batch sequences (the batch its run trained
 * with, so the memory is known to fit); shards are read one at a time and only as far as the
 * windows reach. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "operand.h"
#include "cotrain/clock.h"
#include "cotrain/snapshot.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/evaluate.h"
#include "cotrain/manifest.h"
#include "cotrain/windows.h"

typedef struct eval_args {
    const char *ckpt, *data;
    int64_t tokens; /* 0 = all */
    int batch;      /* 0 = the checkpoint's micro_batch */
} eval_args_t;

/* The evaluation in progress. */
typedef struct eval {
    const eval_args_t *a;
    const ct_log_t *lg;
    ct_manifest_t *man;
    ct_windows_t *win;
    ct_model_t *m;
    int T;             /* seq_len */
    int64_t n_windows; /* windows to evaluate */
    double t0, last_print;
    int tty;
} eval_t;

static void usage(FILE *f) {
    fprintf(f, "usage: cotrain eval CKPT_DIR --data MANIFEST [--tokens N] [--batch B]\n"
               "\n"
               "Prints the mean next-token cross-entropy (nats) of checkpoint CKPT_DIR on the\n"
               "data: the shards concatenated in manifest order, cut into consecutive windows of\n"
               "seq_len+1 tokens (a trailing partial window is dropped). The last line of stdout\n"
               "is `loss <float>`; progress goes to stderr.\n"
               "\n"
               "  --data MANIFEST  a manifest.json written by `cotrain prep`, or its folder; its\n"
               "                   vocabulary must fit the model's\n"
               "  --tokens N       use only the first floor(N / (seq_len+1)) windows\n"
               "  --batch B        sequences per forward pass (default: the checkpoint's\n"
               "                   train.micro_batch); changes the speed, not the result (beyond\n"
               "                   float rounding)\n"
               "  -h, --help       this help\n"
               "\n"
               "Threads: the CPUs of the process's affinity mask, or OMP_NUM_THREADS.\n"
               "Exit codes: 0 done, 1 runtime failure, 2 bad usage or input (a missing or damaged\n"
               "checkpoint or shard, a vocabulary larger than the model's, no complete window).\n");
}

static int parse_count(const char *opt, const char *s, int64_t max, int64_t *out, ct_err_t *e) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 1 || v > max)
        return CT_ERR(e, CT_EINVAL, "%s %s: give a whole number from 1 to %lld", opt, s,
                      (long long)max);
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, eval_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"tokens", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    int64_t v = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 't': CT_TRY(parse_count("--tokens", optarg, INT64_MAX / 2, &a->tokens, e)); break;
        case 'b':
            CT_TRY(parse_count("--batch", optarg, 1 << 16, &v, e));
            a->batch = (int)v;
            break;
        case 'h': usage(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    CT_TRY(tool_ckpt_operand(argc, argv, optind, "cotrain eval CKPT_DIR --data MANIFEST", "",
                             &a->ckpt, e));
    if (!a->data)
        return CT_ERR(e, CT_EINVAL,
                      "--data MANIFEST is required: the data to evaluate on, made "
                      "by `cotrain prep` (see --help)");
    return 0;
}

/* The progress line on stderr: on a terminal it rewrites itself twice a second; elsewhere (logs,
 * CI) a line every 10 seconds and a last one at the end (done == total). */
static void progress(void *ctx, int64_t done, int64_t total, double loss_sum, int64_t positions) {
    eval_t *v = ctx;
    double t = ct_now_s(), dt = t - v->t0;
    int final = done == total;
    if (!final && t - v->last_print < (v->tty ? 0.5 : 10.0)) return;
    v->last_print = t;
    double rate = dt > 0 ? done / dt : 0.0;
    char eta[32] = "";
    if (!final && rate > 0) snprintf(eta, sizeof eta, ", ETA %.0f s", (total - done) / rate);
    fprintf(stderr, "%seval: %lld / %lld windows (%.0f%%), loss %.4f, %.1f windows/s%s%s",
            v->tty ? "\r" : "", (long long)done, (long long)total, 100.0 * done / total,
            positions ? loss_sum / (double)positions : 0.0, rate, eta,
            v->tty && !final ? "   " : "\n");
}

/* The checkpoint's train.micro_batch, read before the checkpoint is opened, only to size the
 * model's activations (the verified config is read again by ct_snapshot_open_model); 1 when it
 * cannot be read (opening the checkpoint then reports why). */
static int ckpt_micro_batch(const char *ckpt) {
    ct_config_t cfg;
    ct_err_t ignored = {0};
    if (ct_ckpt_load_config(ckpt, &cfg, &ignored) != 0) return 1;
    return cfg.train.micro_batch;
}

static int run(eval_t *v, ct_err_t *e) {
    const eval_args_t *a = v->a;
    ct_config_t cfg;
    CT_TRY(ct_hash_init(e));
    CT_TRY(ct_manifest_load(&v->man, a->data, e));
    /* the model's activations are planned for the batch, so it is chosen before opening */
    int batch = a->batch ? a->batch : ckpt_micro_batch(a->ckpt);
    CT_TRY(ct_snapshot_open_model(a->ckpt, &cfg, NULL, &v->m, batch, e));
    const ct_model_dims_t *d = ct_model_dims(v->m);
    v->T = d->seq_len;
    int64_t W = v->T + 1, total = 0;
    for (int i = 0; i < v->man->n_shards; i++)
        total += v->man->shards[i].n_tokens;
    if (v->man->vocab_size > d->vocab_size)
        return CT_ERR(e, CT_EINVAL,
                      "the data (%s, tokenizer %s) has a vocabulary of %d, more "
                      "than the model's %d: evaluate on data prepared with the tokenizer the "
                      "model was trained with",
                      v->man->path, v->man->tokenizer, v->man->vocab_size, d->vocab_size);
    int64_t available = total / W;
    v->n_windows = a->tokens ? a->tokens / W : available;
    if (a->tokens && v->n_windows > available) {
        ct_log(v->lg, CT_LOG_WARN,
               "eval: --tokens %lld asks for %lld windows of %lld tokens, the data has %lld: "
               "evaluating all of them",
               (long long)a->tokens, (long long)v->n_windows, (long long)W, (long long)available);
        v->n_windows = available;
    }
    if (v->n_windows == 0)
        return CT_ERR(e, CT_EINVAL,
                      "no complete window of seq_len+1 = %lld tokens to evaluate: "
                      "%s holds %lld tokens%s",
                      (long long)W, v->man->path, (long long)total,
                      a->tokens && a->tokens < W ? " and --tokens is smaller than one window" : "");
    /* only the shards the windows reach are opened (and checked, before their tokens are used) */
    int shards = 0;
    for (int64_t need = v->n_windows * W, have = 0; have < need; shards++)
        have += v->man->shards[shards].n_tokens;
    int B = batch < v->n_windows ? batch : (int)v->n_windows, rc = 0;
    CT_TRY(ct_windows_open(&v->win, v->man, 0, shards, v->T, e));
    ct_log(v->lg, CT_LOG_INFO, "eval: %s on %s: %lld windows of %lld tokens, %d per batch",
           a->ckpt, v->man->path, (long long)v->n_windows, (long long)W, B);
    v->t0 = v->last_print = ct_now_s();
    v->tty = isatty(2);
    double loss = 0.0;
    CT_TRY(ct_evaluate(v->m, NULL, v->win, v->n_windows, B, &loss, progress, v, e));
    int64_t positions = v->n_windows * v->T;
    printf("windows %lld\npositions %lld\nloss %.9g\n", (long long)v->n_windows,
           (long long)positions, loss);
    if (fflush(stdout) != 0) rc = CT_ERR(e, CT_EIO, "writing stdout failed (is the pipe closed?)");
    return rc;
}

int ct_cmd_eval(int argc, char **argv, const ct_log_t *lg) {
    ct_err_t e = {0};
    eval_args_t a;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) {
        eval_t v = {.a = &a, .lg = lg};
        rc = run(&v, &e);
        ct_windows_destroy(&v.win);
        ct_model_destroy(&v.m);
        ct_manifest_destroy(&v.man);
    }
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "eval: %s", e.msg);
    return ct_exit_code(rc);
}
