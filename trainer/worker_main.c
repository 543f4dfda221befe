/* worker_main.c — cotrain-worker: parses the command line, loads the config and the data, and
 * runs the training loop with metrics and a progress line. Only this file prints and exits. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cotrain/config.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/log.h"
#include "cotrain/metrics.h"
#include "cotrain/peak.h"
#include "cotrain/train.h"

enum { MAX_SETS = 256 };

typedef struct worker_args {
    const char *config;
    const char *data;
    const char *out;
    const char *sets[MAX_SETS];
    int n_sets;
} worker_args_t;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain-worker [--config FILE|NAME] [--set key=value]... --data MANIFEST\n"
            "                      [--out RUN_DIR]\n"
            "\n"
            "Trains a GPT-2 style model on one process (all of its CPUs) and writes\n"
            "RUN_DIR/config.json (the resolved config, canonical) and\n"
            "RUN_DIR/public/metrics.jsonl (one JSON line per logged step).\n"
            "\n"
            "  --config FILE|NAME  JSON config; NAME picks a bundled one from %s:\n"
            "                      tiny, small, gpt2, gpt2-medium, gpt2-large, gpt2-xl\n"
            "                      (default: built-in defaults, a GPT-2 124M shape)\n"
            "  --set key=value     override one config key, e.g. --set train.steps=100;\n"
            "                      repeatable, applied in order after the file\n"
            "  --data MANIFEST     the data to train on: a manifest.json written by\n"
            "                      `cotrain prep`, or its folder; model.vocab_size defaults to\n"
            "                      its tokenizer's vocabulary\n"
            "  --out RUN_DIR       run directory (default: run)\n"
            "  --help-config       list every config key with its type, default and range\n"
            "  -h, --help          this help\n"
            "\n"
            "Threads: the CPUs of the process's affinity mask, or OMP_NUM_THREADS.\n"
            "Logging: CT_LOG=error|warn|info|debug (default info), on stderr; the progress\n"
            "line goes to stdout. Exit codes: 0 done, 1 runtime failure, 2 bad usage or input.\n",
            CT_CONFIG_DIR);
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, worker_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},
        {"data", required_argument, 0, 'd'},   {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},         {"help-config", no_argument, 0, 'H'},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->out = "run";
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'd': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case 's':
            if (a->n_sets == MAX_SETS)
                return CT_ERR(e, CT_EINVAL, "more than %d --set options", MAX_SETS);
            a->sets[a->n_sets++] = optarg;
            break;
        case 'h': usage(stdout); return 1;
        case 'H': ct_config_print_help(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    if (optind < argc)
        return CT_ERR(e, CT_EINVAL, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!a->data)
        return CT_ERR(e, CT_EINVAL, "--data MANIFEST is required: the data to train on, made "
                                    "by `cotrain prep` (see --help)");
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void format_duration(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* Writes RUN_DIR/config.json (canonical) and logs its sha256. */
static int write_resolved_config(const ct_config_t *cfg, const char *run_dir, const ct_log_t *lg,
                                 ct_err_t *e) {
    char path[4096], hex[CT_SHA256_HEX];
    char *text = ct_config_canonical(cfg, e);
    if (!text) return CT_ENOMEM;
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    int rc = ct_write_file_atomic(path, text, strlen(text), e);
    if (rc == 0) {
        ct_sha256_hex(text, strlen(text), hex);
        ct_log(lg, CT_LOG_INFO, "config %s sha256 %s", path, hex);
    }
    free(text);
    return rc;
}

static int train(const ct_config_t *cfg, ct_data_t *data, const char *run_dir, ct_log_t *lg,
                 ct_err_t *e) {
    int rc = 0;
    ct_trainer_t *tr = NULL;
    ct_metrics_t *metrics = NULL;
    CT_TRY(ct_trainer_create(&tr, cfg, data, e));
    ct_model_t *model = ct_trainer_model(tr);
    double peak = ct_peak_flops(), flops_tok = ct_model_flops_per_token(model);
    ct_log(lg, CT_LOG_INFO,
           "model: %d layers, %d heads, d_model %d, seq_len %d, vocab %d: %.2fM parameters, "
           "%.0f MiB planned (params, grads, activations) + %.0f MiB AdamW state",
           cfg->model.n_layer, cfg->model.n_head, cfg->model.d_model, cfg->model.seq_len,
           cfg->model.vocab_size, ct_model_num_real_params(model) / 1e6,
           ct_model_planned_bytes(model) / 1048576.0,
           2.0 * ct_model_num_params(model) * sizeof(float) / 1048576.0);
    ct_log(lg, CT_LOG_INFO, "threads: %d; measured FP32 peak %.0f GFLOP/s (the MFU denominator)",
           omp_get_max_threads(), peak / 1e9);
    CT_TRY_GOTO(ct_metrics_open(&metrics, run_dir, e), out);
    int64_t steps = cfg->train.steps, tokens_per_step = (int64_t)cfg->train.global_batch *
                                                        cfg->model.seq_len;
    double train_time = 0.0;
    for (int64_t s = 0; s < steps; s++) {
        ct_step_stats_t st;
        double t0 = now_s();
        CT_TRY_GOTO(ct_trainer_step(tr, &st, e), out);
        double dt = now_s() - t0;
        train_time += dt;
        if ((s + 1) % cfg->log.every != 0 && s + 1 != steps) continue;
        ct_metrics_record_t r = {
            .step = s + 1,
            .tokens = (s + 1) * tokens_per_step,
            .loss = st.loss,
            .lr = st.lr,
            .grad_norm = st.grad_norm,
            .tokens_per_s = tokens_per_step / dt,
            .mfu = tokens_per_step / dt * flops_tok / peak,
            .param_hash = ct_hash64(ct_model_params(model),
                                    ct_model_num_params(model) * sizeof(float)),
            .skipped = st.skipped,
            .group = "local",
        };
        CT_TRY_GOTO(ct_metrics_write(metrics, &r, e), out);
        char eta[32];
        format_duration(train_time / (s + 1) * (steps - s - 1), eta, sizeof eta);
        printf("step %6lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.0f tok/s | MFU %.1f%% | "
               "ETA %s%s\n",
               (long long)(s + 1), (long long)steps, st.loss, st.lr, st.grad_norm,
               r.tokens_per_s, 100.0 * r.mfu, eta, st.skipped ? " | SKIPPED (spike guard)" : "");
        fflush(stdout);
    }
    ct_log(lg, CT_LOG_INFO, "done: %lld steps in %.1f s; metrics in %s/public/metrics.jsonl",
           (long long)steps, train_time, run_dir);
    ct_log(lg, CT_LOG_INFO, "data loader: steps waited %.4f s for data (%.4f%% of step time)",
           ct_data_wait_seconds(data), 100.0 * ct_data_wait_seconds(data) / train_time);
out:
    ct_metrics_close(&metrics);
    ct_trainer_destroy(&tr);
    return rc;
}

static int run(int argc, char **argv, ct_log_t *lg, ct_err_t *e) {
    worker_args_t a;
    ct_config_t cfg;
    ct_data_t *data = NULL;
    int rc = parse_args(argc, argv, &a, e);
    if (rc != 0) return rc;
    CT_TRY(ct_hash_init(e));
    CT_TRY(ct_config_load(&cfg, a.config, CT_CONFIG_DIR, a.sets, a.n_sets, e));
    ct_data_opts_t dopts = {.seq_len = cfg.model.seq_len,
                            .seed = cfg.train.seed,
                            .global_batch = cfg.train.global_batch,
                            .rank = 0,
                            .world = 1};
    CT_TRY(ct_data_open(&data, a.data, &dopts, e));
    const ct_manifest_t *m = ct_data_manifest(data);
    if (cfg.model.vocab_size == 0) cfg.model.vocab_size = m->vocab_size;
    CT_TRY_GOTO(ct_mkdirs(a.out, e), out);
    CT_TRY_GOTO(write_resolved_config(&cfg, a.out, lg, e), out);
    ct_log(lg, CT_LOG_INFO,
           "data %s (sha256 %.16s...): %s tokenizer, %d shards, %lld tokens, %lld samples of %d "
           "tokens per epoch",
           m->path, m->sha256, m->tokenizer, m->n_shards, (long long)m->n_tokens,
           (long long)ct_data_num_windows(data), cfg.model.seq_len + 1);
    rc = train(&cfg, data, a.out, lg, e);
out:
    ct_data_destroy(&data);
    return rc;
}

int main(int argc, char **argv) {
    ct_log_t lg = {.level = ct_log_level_from_env(), .role = "worker", .rank = 0, .out = NULL};
    ct_err_t e = {0};
    int rc = run(argc, argv, &lg, &e);
    if (rc == 1) return 0; /* help printed */
    if (rc < 0) {
        ct_log(&lg, CT_LOG_ERROR, "%s", e.msg[0] ? e.msg : ct_strerror(rc));
        return ct_exit_code(rc);
    }
    return 0;
}
