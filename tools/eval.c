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
 * sha256, before its tokens are used. Windows go through the model in batches of up to the
 * checkpoint's train.micro_batch sequences (the batch its run trained with, so the memory is
 * known to fit); shards are read one at a time and only as far as the windows reach. */
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
#include "cotrain/manifest.h"
#include "cotrain/shard.h"

typedef struct eval_args {
    const char *ckpt, *data;
    int64_t tokens; /* 0 = all */
    int batch;      /* 0 = the checkpoint's micro_batch */
} eval_args_t;

/* The evaluation in progress. */
typedef struct eval {
    const eval_args_t *a;
    ct_manifest_t *man;
    ct_model_t *m;
    int T, B;              /* seq_len, sequences per forward */
    int64_t n_windows;     /* windows to evaluate */
    int64_t done;          /* windows evaluated */
    int *rows;             /* (B, T+1) the batch being filled */
    int *inputs, *targets; /* (B, T) each */
    int64_t filled;        /* tokens in rows */
    double loss_sum;       /* sum of per-position losses so far */
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
 * CI) a line every 10 seconds and a last one at the end. */
static void progress(eval_t *v, int final) {
    double t = ct_now_s(), dt = t - v->t0;
    if (!final && t - v->last_print < (v->tty ? 0.5 : 10.0)) return;
    v->last_print = t;
    double rate = dt > 0 ? v->done / dt : 0.0;
    char eta[32] = "";
    if (!final && rate > 0)
        snprintf(eta, sizeof eta, ", ETA %.0f s", (v->n_windows - v->done) / rate);
    double loss = v->done ? v->loss_sum / ((double)v->done * v->T) : 0.0;
    fprintf(stderr, "%seval: %lld / %lld windows (%.0f%%), loss %.4f, %.1f windows/s%s%s",
            v->tty ? "\r" : "", (long long)v->done, (long long)v->n_windows,
            100.0 * v->done / v->n_windows, loss, rate, eta, v->tty && !final ? "   " : "\n");
}

/* Runs the model over the nb complete windows in rows. */
static void run_batch(eval_t *v, int nb) {
    int T = v->T, W = T + 1;
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < T; t++) {
            v->inputs[b * T + t] = v->rows[b * W + t];
            v->targets[b * T + t] = v->rows[b * W + t + 1];
        }
    float mean = ct_model_forward(v->m, v->inputs, v->targets, nb);
    v->loss_sum += (double)mean * nb * T;
    v->done += nb;
    v->filled = 0;
    progress(v, 0);
}

/* Reads shard i (verified against the manifest first) and feeds its tokens into the windows,
 * running every batch that fills, until n_windows are done. */
static int feed_shard(eval_t *v, int i, ct_err_t *e) {
    const ct_manifest_shard_t *ms = &v->man->shards[i];
    char *img = NULL, sha[CT_SHA256_HEX];
    size_t len = 0;
    ct_shard_t sh = {0};
    ct_err_t why = {0};
    int rc = ct_read_file(ms->path, &img, &len, &why);
    if (rc != 0) return CT_ERR(e, rc, "shard %s cannot be read: %s", ms->id, why.msg);
    ct_sha256_hex(img, len, sha);
    if (strcmp(sha, ms->sha256) != 0) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "shard %s (%s) is corrupted or was replaced: its sha256 is "
                    "%.16s..., the manifest says %.16s...; restore the file or re-run `cotrain "
                    "prep`",
                    ms->id, ms->path, sha, ms->sha256);
        goto out;
    }
    CT_TRY_GOTO(ct_shard_read_image(img, len, ms->path, 0, &sh, e), out);
    if (sh.n_tokens != ms->n_tokens || sh.vocab_size != v->man->vocab_size) {
        rc = CT_ERR(e, CT_ECORRUPT,
                    "shard %s (%s) holds %lld tokens of vocabulary %d, the "
                    "manifest says %lld of %d",
                    ms->id, ms->path, (long long)sh.n_tokens, sh.vocab_size,
                    (long long)ms->n_tokens, v->man->vocab_size);
        goto out;
    }
    int64_t W = v->T + 1, cap = (int64_t)v->B * W;
    for (int64_t k = 0; k < sh.n_tokens && v->done < v->n_windows; k++) {
        v->rows[v->filled++] = (int)sh.tokens[k];
        /* a batch is full, or the last (partial) batch holds the last window */
        int64_t windows = v->filled / W;
        if (v->filled == cap || (v->filled % W == 0 && v->done + windows == v->n_windows))
            run_batch(v, (int)windows);
    }
out:
    ct_shard_clear(&sh);
    free(img);
    return rc;
}

/* The checkpoint's train.micro_batch, read before the checkpoint is opened, only to size the
 * model's activations (the verified config is read again by ct_snapshot_open_model); 1 when it
 * cannot be read (opening the checkpoint then reports why). */
static int ckpt_micro_batch(const char *ckpt) {
    char path[4096];
    ct_config_t cfg;
    ct_err_t ignored = {0};
    if (snprintf(path, sizeof path, "%s/config.json", ckpt) >= (int)sizeof path) return 1;
    if (ct_config_load(&cfg, path, NULL, NULL, 0, &ignored) != 0) return 1;
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
        fprintf(stderr,
                "eval: --tokens %lld asks for %lld windows of %lld tokens, the data has "
                "%lld: evaluating all of them\n",
                (long long)a->tokens, (long long)v->n_windows, (long long)W, (long long)available);
        v->n_windows = available;
    }
    if (v->n_windows == 0)
        return CT_ERR(e, CT_EINVAL,
                      "no complete window of seq_len+1 = %lld tokens to evaluate: "
                      "%s holds %lld tokens%s",
                      (long long)W, v->man->path, (long long)total,
                      a->tokens && a->tokens < W ? " and --tokens is smaller than one window" : "");
    v->B = batch < v->n_windows ? batch : (int)v->n_windows;
    int rc = 0;
    CT_ALLOC(e, v->rows, (size_t)v->B * W, out);
    CT_ALLOC(e, v->inputs, (size_t)v->B * v->T, out);
    CT_ALLOC(e, v->targets, (size_t)v->B * v->T, out);
    fprintf(stderr, "eval: %s on %s: %lld windows of %lld tokens, %d per batch\n", a->ckpt,
            v->man->path, (long long)v->n_windows, (long long)W, v->B);
    v->t0 = v->last_print = ct_now_s();
    v->tty = isatty(2);
    for (int i = 0; i < v->man->n_shards && v->done < v->n_windows; i++)
        CT_TRY_GOTO(feed_shard(v, i, e), out);
    if (v->done != v->n_windows) {
        /* cannot happen: every shard held the n_tokens its manifest entry says */
        rc = CT_ERR(e, CT_ESTATE, "%s: read %lld of %lld windows", v->man->path, (long long)v->done,
                    (long long)v->n_windows);
        goto out;
    }
    progress(v, 1);
    int64_t positions = v->done * v->T;
    printf("windows %lld\npositions %lld\nloss %.9g\n", (long long)v->done, (long long)positions,
           v->loss_sum / (double)positions);
    if (fflush(stdout) != 0) rc = CT_ERR(e, CT_EIO, "writing stdout failed (is the pipe closed?)");
out:
    return rc;
}

int ct_cmd_eval(int argc, char **argv) {
    ct_err_t e = {0};
    eval_args_t a;
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) return 0;
    if (rc == 0) {
        eval_t v = {.a = &a};
        rc = run(&v, &e);
        free(v.rows);
        free(v.inputs);
        free(v.targets);
        ct_model_destroy(&v.m);
        ct_manifest_destroy(&v.man);
    }
    if (rc == 0) return 0;
    fprintf(stderr, "cotrain eval: error: %s\n", e.msg);
    return ct_exit_code(rc);
}
