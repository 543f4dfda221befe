/* worker_main.c — cotrain-worker: parses the command line, loads the config and the data, and
 * runs the training loop with metrics and a progress line. Only this file prints and exits. */
#include <ctype.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/attach.h"
#include "cotrain/clock.h"
#include "cotrain/ckpt.h"
#include "cotrain/comm.h"
#include "cotrain/config.h"
#include "cotrain/coord.h"
#include "cotrain/data.h"
#include "cotrain/evaluate.h"
#include "cotrain/fault.h"
#include "cotrain/fetch.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/http.h"
#include "cotrain/join.h"
#include "cotrain/log.h"
#include "cotrain/metrics.h"
#include "cotrain/peak.h"
#include "cotrain/safetensors.h"
#include "cotrain/snapshot.h"
#include "cotrain/train.h"
#include "cotrain/watchdog.h"
#include "cotrain/windows.h"

enum { MAX_SETS = 256 };

/* The embedded coordinator: reachable only inside this process; its leases outlive no process,
 * so their TTL only has to outlast the longest step. */
#define EMBEDDED_ENDPOINT "inproc://cotrain-coordinator"
#define EMBEDDED_TTL_S 3600.0

typedef struct worker_args {
    const char *config;
    const char *data;
    const char *out;
    const char *resume;      /* "latest" or a checkpoint directory; NULL = start fresh */
    const char *init;        /* a folder with model.safetensors to start from; NULL = random init */
    const char *eval_data;   /* a manifest to evaluate on every log.eval_every steps, or NULL */
    const char *coordinator; /* attached to the coordinator at this endpoint, or NULL */
    int join;                /* --join: a volunteer group (the run must be in volunteer mode) */
    const char *group;       /* the group's name at the coordinator */
    int standby;             /* wait while another group trains, then take over */
    const char *server_key;  /* CURVE: the coordinator's public key */
    const char *key;         /* CURVE: this group's key pair */
    const char *http;        /* the embedded coordinator's dashboard address, or NULL */
    const char *changes;     /* --data-changes: the data changes of the run resumed from */
    int64_t until;           /* stop after this step (0 = train.steps) */
    const char *sets[MAX_SETS];
    int n_sets;
} worker_args_t;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: cotrain-worker [--config FILE|NAME] [--set key=value]... --data MANIFEST\n"
        "                      [--out RUN_DIR] [--resume latest|CKPT_DIR] [--until STEP]\n"
        "                      [--init SAFETENSORS_DIR] [--http ADDR:PORT]\n"
        "       cotrain-worker --coordinator EP [--data MANIFEST] [--out RUN_DIR]\n"
        "                      [--group NAME] [--standby] [--server-key KEY --key FILE]\n"
        "       cotrain-worker --join EP [--server-key KEY --key FILE] [--data MANIFEST]\n"
        "                      [--out RUN_DIR] [--group NAME]\n"
        "\n"
        "Trains a GPT-2 style model on one process (all of its CPUs) and writes\n"
        "RUN_DIR/config.json (the resolved config, canonical),\n"
        "RUN_DIR/public/metrics.jsonl (one JSON line per logged step) and checkpoints.\n"
        "\n"
        "  --config FILE|NAME  JSON config; NAME picks a bundled one from %s:\n"
        "                      tiny, small, gpt2, gpt2-medium, gpt2-large, gpt2-xl\n"
        "                      (default: built-in defaults, a GPT-2 124M shape)\n"
        "  --set key=value     override one config key, e.g. --set train.steps=100;\n"
        "                      repeatable, applied in order after the file\n"
        "  --data MANIFEST     the data to train on: a manifest.json written by\n"
        "                      `cotrain prep`, or its folder; model.vocab_size defaults to\n"
        "                      its tokenizer's vocabulary; with --coordinator, optional:\n"
        "                      without it the coordinator sends its data into RUN_DIR/data\n"
        "                      (1 MiB at a time, resumed after a cut, every shard verified)\n"
        "  --out RUN_DIR       run directory (default: run)\n"
        "  --resume latest|DIR go on from the newest checkpoint of the run's registry that\n"
        "                      verifies, or from checkpoint DIR (the run goes back to it:\n"
        "                      later checkpoints leave the registry); only the keys\n"
        "                      --help-config marks [may change on resume] may differ from\n"
        "                      the run's config\n"
        "  --until STEP        stop after STEP (checkpointing there); the schedule still\n"
        "                      runs to train.steps\n"
        "  --eval-data MANIFEST held-out data for log.eval_every (instead of holding out\n"
        "                      the last data.eval_shards shards of --data)\n"
        "  --coordinator EP    attach to the coordinator at EP (cotrain-coordinator): the run's\n"
        "                      config and the checkpoint to resume from come from it, and\n"
        "                      the data is leased from it in this loader's order; --set may\n"
        "                      change only log.*, ckpt.keep_* and train.micro_batch\n"
        "  --join EP           join the volunteer run (volunteer.enabled) of the coordinator\n"
        "                      at EP: fetch the global model, train volunteer.inner_steps\n"
        "                      steps on leased data, send the delta, take the next version,\n"
        "                      until the run ends; SIGTERM leaves (the round under way is\n"
        "                      given back), and joining again later is normal\n"
        "  --group NAME        this group's name at the coordinator (default main)\n"
        "  --standby           with --coordinator: wait while another group trains; once it\n"
        "                      has been silent for the lease TTL, take over from the head\n"
        "                      checkpoint (RUN_DIR must hold it: shared storage)\n"
        "  --server-key KEY    the coordinator's public key (Z85, or its .pub file): speak\n"
        "                      CURVE, as the key pair in --key FILE (cotrain keygen); rank 0\n"
        "                      alone reads them\n"
        "  --http ADDR:PORT    without --coordinator: serve the run's live dashboard there,\n"
        "                      read-only (e.g. 127.0.0.1:8080; port 0 picks a free one); it\n"
        "                      is also RUN_DIR/public/index.html, to open from disk\n"
        "  --data-changes FILE without --coordinator, in a new RUN_DIR: the data changes\n"
        "                      (`cotrain add-data`, `cotrain exclude`) of the run the\n"
        "                      --resume checkpoint came from, a JSON array as the run's\n"
        "                      coordinator had them (`cotrain verify --replay` writes it):\n"
        "                      the run goes on by that plan\n"
        "  --init DIR          start from DIR/model.safetensors (as `cotrain export` writes\n"
        "                      or Hugging Face's GPT-2 files, F32) instead of random weights;\n"
        "                      its shapes must match the config\n"
        "  --help-config       list every config key with its type, default and range\n"
        "  -h, --help          this help\n"
        "\n"
        "Checkpoints: RUN_DIR/checkpoints/ckpt-<step>, every ckpt.every steps, at the end,\n"
        "at --until, on SIGUSR1 (then training goes on) and on SIGTERM (then it stops\n"
        "with exit 0); ckpt.keep_last / ckpt.keep_every say which are kept.\n"
        "Registry: without --coordinator, rank 0 runs the coordinator itself (embedded,\n"
        "reachable only from this process): the data is leased shard by shard and every\n"
        "checkpoint committed to RUN_DIR/coordinator.db, as in a cluster run; a fresh start\n"
        "over a run with committed checkpoints is refused (--resume latest, or a new --out).\n"
        "Threads: the CPUs of the process's affinity mask, or OMP_NUM_THREADS.\n"
        "Logging: CT_LOG=error|warn|info|debug (default info), on stderr; the progress\n"
        "line goes to stdout. Exit codes: 0 done, 1 runtime failure, 2 bad usage or input.\n",
        CT_CONFIG_DIR);
}

/* Returns 0 to run, 1 when help was printed, or CT_EINVAL. */
static int parse_args(int argc, char **argv, worker_args_t *a, ct_err_t *e) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"set", required_argument, 0, 's'},
                                         {"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {"help-config", no_argument, 0, 'H'},
                                         {"resume", required_argument, 0, 'r'},
                                         {"until", required_argument, 0, 'u'},
                                         {"init", required_argument, 0, 'i'},
                                         {"eval-data", required_argument, 0, 'E'},
                                         {"coordinator", required_argument, 0, 'C'},
                                         {"join", required_argument, 0, 'J'},
                                         {"group", required_argument, 0, 'G'},
                                         {"standby", no_argument, 0, 'S'},
                                         {"server-key", required_argument, 0, 'K'},
                                         {"key", required_argument, 0, 'k'},
                                         {"http", required_argument, 0, 'P'},
                                         {"data-changes", required_argument, 0, 'D'},
                                         {0, 0, 0, 0}};
    char *end;
    memset(a, 0, sizeof *a);
    a->out = "run";
    a->group = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'd': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case 'r': a->resume = optarg; break;
        case 'i': a->init = optarg; break;
        case 'E': a->eval_data = optarg; break;
        case 'C': a->coordinator = optarg; break;
        case 'J':
            a->coordinator = optarg;
            a->join = 1;
            break;
        case 'G': a->group = optarg; break;
        case 'S': a->standby = 1; break;
        case 'K': a->server_key = optarg; break;
        case 'k': a->key = optarg; break;
        case 'P': a->http = optarg; break;
        case 'D': a->changes = optarg; break;
        case 'u':
            a->until = strtoll(optarg, &end, 10);
            if (*end || a->until < 1)
                return CT_ERR(e, CT_EINVAL, "--until %s: give a step number >= 1", optarg);
            break;
        case 's': CT_TRY(ct_config_add_set(a->sets, &a->n_sets, MAX_SETS, optarg, e)); break;
        case 'h': usage(stdout); return 1;
        case 'H': ct_config_print_help(stdout); return 1;
        default:
            return CT_ERR(e, CT_EINVAL, "unknown or incomplete option '%s' (see --help)",
                          argv[optind - 1]);
        }
    }
    if (optind < argc)
        return CT_ERR(e, CT_EINVAL, "unexpected argument '%s' (see --help)", argv[optind]);
    if (a->coordinator && (a->resume || a->config))
        return CT_ERR(e, CT_EINVAL,
                      "--coordinator decides the config and where to resume (its head "
                      "checkpoint): leave out %s; --set may still change log.*, "
                      "ckpt.keep_* and train.micro_batch",
                      a->resume ? "--resume" : "--config");
    if (a->http && a->coordinator)
        return CT_ERR(e, CT_EINVAL,
                      "--http serves the dashboard of the coordinator this worker embeds; with "
                      "--coordinator, the coordinator serves its own (cotrain-coordinator --http)");
    if (a->changes && (a->coordinator || a->join))
        return CT_ERR(e, CT_EINVAL,
                      "--data-changes is for a run without a coordinator: an attached group gets "
                      "the run's data changes from its coordinator");
    if ((a->group || a->standby || a->server_key || a->key) && !a->coordinator)
        return CT_ERR(e, CT_EINVAL,
                      "%s is for a group attached to a coordinator: add "
                      "--coordinator EP",
                      a->standby ? "--standby"
                      : a->group ? "--group"
                                 : "--server-key/--key");
    if (!a->server_key != !a->key)
        return CT_ERR(e, CT_EINVAL,
                      "--server-key and --key go together: the coordinator's public "
                      "key and this group's key pair (see --help)");
    if (!a->group) a->group = a->coordinator ? "main" : "local";
    size_t glen = strlen(a->group);
    int gok = glen >= 1 && glen <= 64;
    for (size_t i = 0; gok && i < glen; i++)
        gok = isalnum((unsigned char)a->group[i]) || strchr("._-", a->group[i]);
    if (!gok)
        return CT_ERR(e, CT_EINVAL,
                      "--group %.80s: a group's name is 1 to 64 letters, digits, '.', '_' or '-' "
                      "(it names the group in logs, metrics and the public record)",
                      a->group);
    if (a->init && a->resume)
        return CT_ERR(e, CT_EINVAL,
                      "--init and --resume exclude each other: a resumed run has "
                      "its weights from the checkpoint");
    if (!a->data && !a->coordinator)
        return CT_ERR(e, CT_EINVAL,
                      "--data MANIFEST is required: the data to train on, made "
                      "by `cotrain prep` (see --help)");
    return 0;
}

static void format_duration(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* Set by SIGTERM / SIGUSR1 and read at step boundaries: a signal handler can only talk to the
 * loop through a flag, so this is the one mutable global. */
static volatile sig_atomic_t pending_signal;

static void on_signal(int sig) {
    pending_signal = sig;
}

/* One invocation's state: the resolved config, data, trainer, metrics and checkpoint lineage. */
typedef struct session {
    const worker_args_t *a;
    ct_log_t *lg;
    ct_comm_t *comm; /* the group: rank 0 writes the run's files */
    int rank0;
    ct_config_t cfg;
    char *config_json; /* canonical */
    char config_sha256[CT_SHA256_HEX];
    ct_data_t *data;
    ct_trainer_t *tr;
    ct_metrics_t *metrics;
    ct_watchdog_t *watchdog;      /* with several ranks: a stalled step ends the process */
    char resume_dir[CT_PATH_MAX]; /* "" when starting fresh */
    ct_ckpt_info_t resumed;
    char last_id[CT_SHA256_HEX]; /* the newest checkpoint of this lineage: the next one's parent */
    ct_manifest_t *eval_man;     /* --eval-data's manifest, or NULL */
    ct_windows_t *eval;          /* the held-out windows (log.eval_every), or NULL */
    int restoring;               /* prepare() is restoring resume_dir (a retry may pass it over) */
    ct_attach_t *attach;         /* the group's line to its coordinator (every run has one) */
    ct_coord_t *coord;           /* rank 0 without --coordinator: the embedded coordinator */
    ct_http_t *http;             /* its dashboard, with --http */
    ct_manifest_t *coord_man;    /* its copy of the manifest */
    char *coord_json;            /* its config */
    char data_path[CT_PATH_MAX]; /* --data, or the copy fetched from the coordinator */
    cJSON *changes;    /* without --coordinator: the data changes in this run's ledger (plan.h) */
    int local_metrics; /* rank 0 writes RUN_DIR/public/metrics.jsonl itself (attached, its own
                          RUN_DIR); the coordinator writes its own from the lines it is sent */
    int forced_resume; /* resume_dir is the coordinator's head checkpoint */
    int volunteer;     /* the coordinator runs volunteer mode: join.h's rounds, not train_loop */
    char head[CT_SHA256_HEX]; /* attached: the coordinator's head checkpoint ... */
    int64_t head_step;        /* ... and its step */
    int64_t eval_windows;     /* how many of them an evaluation reads */
} session_t;

/* Writes RUN_DIR/config.json (canonical) and logs its sha256. */
static int write_resolved_config(session_t *S, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(ct_path_join(path, sizeof path, S->a->out, "config.json", e));
    S->config_json = ct_config_canonical(&S->cfg, e);
    if (!S->config_json) return CT_ENOMEM;
    ct_sha256_hex(S->config_json, strlen(S->config_json), S->config_sha256);
    CT_TRY(ct_write_file_atomic(path, S->config_json, strlen(S->config_json), e));
    ct_log(S->lg, CT_LOG_INFO, "config %s sha256 %s", path, S->config_sha256);
    return 0;
}

/* Saves a checkpoint after the step just taken, then applies the retention policy. */
static int save_checkpoint(session_t *S, const char *why, ct_err_t *e) {
    const ct_config_t *c = &S->cfg;
    ct_ckpt_info_t info = {.world_size = ct_comm_size(S->comm)};
    info.tokens = ct_trainer_steps(S->tr) * (int64_t)c->train.global_batch * c->model.seq_len;
    snprintf(info.config_sha256, sizeof info.config_sha256, "%s", S->config_sha256);
    snprintf(info.parent, sizeof info.parent, "%s", S->last_id);
    const ct_manifest_t *m = ct_data_manifest(S->data);
    snprintf(info.tokenizer, sizeof info.tokenizer, "%s", m->tokenizer);
    snprintf(info.data_sha256, sizeof info.data_sha256, "%s", m->sha256);
    ct_data_cursor(S->data, &info.cursor);
    char dir[CT_PATH_MAX];
    double t0 = ct_now_s();
    /* rank 0 writes; every rank learns whether it worked, so none waits on a dead rank 0 */
    ct_err_t save_err = {0};
    int rc = S->rank0 ? ct_snapshot_save(S->a->out, S->tr, S->config_json, &info, dir, sizeof dir,
                                         &save_err)
                      : 0;
    /* the checkpoint counts once the coordinator committed it (rank 0 asks) */
    if (rc == 0) rc = ct_attach_commit(S->attach, info.step, info.id, &info.cursor, &save_err);
    int failed = rc != 0;
    CT_TRY(ct_comm_max_int(S->comm, &failed, e));
    if (rc != 0) return CT_ERR(e, rc, "%s", save_err.msg);
    if (failed)
        return CT_ERR(e, CT_EIO, "rank 0 could not write the checkpoint (its log says why)");
    CT_TRY(ct_attach_replan(S->attach, S->data, e));
    if (!S->rank0) return 0;
    snprintf(S->last_id, sizeof S->last_id, "%s", info.id);
    ct_log(S->lg, CT_LOG_INFO, "checkpoint %s (%s) written in %.1f s, id %.16s...", dir, why,
           ct_now_s() - t0, info.id);
    return ct_ckpt_prune(S->a->out, c->ckpt.keep_last, c->ckpt.keep_every, e);
}

static void log_model(session_t *S, double peak, const char *source) {
    const ct_config_t *c = &S->cfg;
    ct_model_t *model = ct_trainer_model(S->tr);
    ct_log(S->lg, CT_LOG_INFO,
           "model: %d layers, %d heads, d_model %d, seq_len %d, vocab %d: %.2fM parameters, "
           "%.0f MiB planned (params, grads, activations) + %.0f MiB AdamW state",
           c->model.n_layer, c->model.n_head, c->model.d_model, c->model.seq_len,
           c->model.vocab_size, ct_model_num_real_params(model) / 1e6,
           ct_model_planned_bytes(model) / 1048576.0,
           2.0 * ct_model_num_params(model) * sizeof(float) / 1048576.0);
    ct_log(S->lg, CT_LOG_INFO,
           "threads: %d a rank; MFU is measured against an FP32 peak of %.0f GFLOP/s for the "
           "group (%d rank(s) x %.0f: %s)",
           omp_get_max_threads(), peak / 1e9, ct_comm_size(S->comm),
           peak / 1e9 / ct_comm_size(S->comm), source);
}

/* Runs steps from the trainer's current step up to --until or train.steps, logging metrics and
 * writing checkpoints by policy, at the end and on SIGTERM (then stops) or SIGUSR1. */
static int train_loop(session_t *S, ct_err_t *e) {
    const ct_config_t *c = &S->cfg;
    ct_model_t *model = ct_trainer_model(S->tr);
    /* rank 0 writes the metrics, so only it needs the peak: one rank's (given, cached or
       measured while the others wait), times the ranks (assumed alike) */
    ct_peak_t pk = {.flops = 1.0, .source = "(not rank 0)"};
    if (S->rank0) ct_peak_get(c->train.peak_gflops, S->lg, &pk);
    double peak = pk.flops * ct_comm_size(S->comm), flops_tok = ct_model_flops_per_token(model);
    log_model(S, peak, pk.source);
    int64_t first = ct_trainer_steps(S->tr), end = c->train.steps;
    if (S->a->until > 0 && S->a->until < end) end = S->a->until;
    int64_t tokens_per_step = (int64_t)c->train.global_batch * c->model.seq_len;
    double train_time = 0.0, comm_time = 0.0, keep_time = 0.0; /* keep: protocol and metrics */
    double coord_cpu0 = S->coord ? ct_coord_cpu_s(S->coord) : 0.0;
    int stopped = 0; /* by SIGTERM */
    for (int64_t s = first; s < end; s++) {
        ct_step_stats_t st;
        double t0 = ct_now_s();
        CT_TRY(ct_trainer_step(S->tr, &st, e));
        double dt = ct_now_s() - t0;
        /* every rank takes the same decision: a signal seen by any rank counts for all. This also
           brings the ranks together before the slow work below (the watchdog's other bound): a
           rank stuck in its step leaves the others waiting here, under the step's bound */
        int sig = pending_signal;
        pending_signal = 0;
        CT_TRY(ct_comm_max_int(S->comm, &sig, e));
        /* the coordinator follows the loader: leases, reports */
        double k0 = ct_now_s();
        ct_data_cursor_t cur;
        ct_data_cursor(S->data, &cur);
        ct_watchdog_slow(S->watchdog, "an exchange with the coordinator");
        CT_TRY(ct_attach_follow(S->attach, &cur, e));
        ct_watchdog_fast(S->watchdog);
        keep_time += ct_now_s() - k0;
        comm_time += st.comm_s;
        train_time += dt;
        int eval_due = S->eval && ((s + 1) % c->log.eval_every == 0 || s + 1 == end);
        if ((s + 1) % c->log.every == 0 || s + 1 == end || eval_due) {
            double eval_loss = NAN;
            if (eval_due) {
                ct_watchdog_slow(S->watchdog, "an evaluation");
                CT_TRY(ct_evaluate(model, S->comm, S->eval, S->eval_windows, c->train.micro_batch,
                                   &eval_loss, NULL, NULL, e));
                ct_watchdog_fast(S->watchdog);
            }
            uint64_t hash =
                ct_hash64(ct_model_params(model), ct_model_num_params(model) * sizeof(float));
            int same, bad;
            CT_TRY(ct_comm_same_u64(S->comm, hash, &same, &bad, e));
            if (!same)
                return CT_ERR(e, CT_ESTATE,
                              "replica drift after step %lld: rank %d's weights "
                              "differ from rank 0's; the ranks no longer train one model "
                              "(a bug or a faulty node): stopping",
                              (long long)(s + 1), bad);
            if (!S->rank0) goto boundary;
            ct_metrics_record_t r = {
                .step = s + 1,
                .tokens = (s + 1) * tokens_per_step,
                .loss = st.loss,
                .lr = st.lr,
                .grad_norm = st.grad_norm,
                .tokens_per_s = tokens_per_step / dt,
                .mfu = tokens_per_step / dt * flops_tok / peak,
                .param_hash = hash,
                .skipped = st.skipped,
                .eval_loss = eval_loss,
                .group = S->a->group,
            };
            double k1 = ct_now_s();
            char line[CT_METRICS_LINE_MAX];
            ct_metrics_format(&r, line);
            if (S->metrics) CT_TRY(ct_metrics_write(S->metrics, line, e));
            CT_TRY(ct_attach_metrics(S->attach, line, e));
            keep_time += ct_now_s() - k1;
            char eta[32];
            format_duration(train_time / (double)(s + 1 - first) * (double)(end - s - 1), eta,
                            sizeof eta);
            char ev[32] = "";
            if (eval_due) snprintf(ev, sizeof ev, " | eval %.4f", eval_loss);
            printf(
                "step %6lld/%lld | loss %.4f%s | lr %.3e | norm %.3f | %.0f tok/s | MFU %.1f%% | "
                "ETA %s%s\n",
                (long long)(s + 1), (long long)c->train.steps, st.loss, ev, st.lr, st.grad_norm,
                r.tokens_per_s, 100.0 * r.mfu, eta, st.skipped ? " | SKIPPED (spike guard)" : "");
            fflush(stdout);
        }
    boundary:;
        const char *save = s + 1 == end ? (s + 1 == c->train.steps ? "end of run" : "--until")
                           : sig        ? (sig == SIGTERM ? "SIGTERM" : "SIGUSR1")
                           : c->ckpt.every > 0 && (s + 1) % c->ckpt.every == 0 ? "ckpt.every"
                                                                               : NULL;
        if (save) {
            ct_watchdog_slow(S->watchdog, "a checkpoint save");
            CT_TRY(save_checkpoint(S, save, e));
        }
        ct_watchdog_beat(S->watchdog, (long long)(s + 1));
        if (sig == SIGTERM && s + 1 < end) {
            ct_log(S->lg, CT_LOG_WARN,
                   "stopped by SIGTERM after step %lld; go on with "
                   "--resume latest",
                   (long long)(s + 1));
            stopped = 1;
            break;
        }
    }
    /* the group says goodbye: its leases go back now rather than when they expire */
    ct_watchdog_slow(S->watchdog, "the end of the run");
    ct_err_t why = {0};
    const char *leaving = ct_trainer_steps(S->tr) >= c->train.steps ? "finished"
                          : stopped                                 ? "stopped"
                                                                    : "paused";
    if (ct_attach_leave(S->attach, leaving, &why) != 0)
        ct_log(S->lg, CT_LOG_WARN, "leaving the run: %s (its leases expire instead)", why.msg);
    ct_log(S->lg, CT_LOG_INFO,
           "done: steps %lld..%lld in %.1f s; metrics in %s/public/metrics.jsonl",
           (long long)first + 1, (long long)ct_trainer_steps(S->tr), train_time, S->a->out);
    if (train_time > 0)
        ct_log(S->lg, CT_LOG_INFO,
               "data loader: steps waited %.4f s for data (%.4f%% of step "
               "time)",
               ct_data_wait_seconds(S->data), 100.0 * ct_data_wait_seconds(S->data) / train_time);
    if (train_time > 0 && S->rank0) {
        /* the embedded coordinator's thread shares the CPUs: its CPU time counts too */
        double cpu = S->coord ? ct_coord_cpu_s(S->coord) - coord_cpu0 : 0.0;
        ct_log(S->lg, CT_LOG_INFO,
               "coordinator and logging: %.4f s (%.3f%% of step time): leases, reports and "
               "metrics %.4f s%s%.4f s of CPU",
               keep_time + cpu, 100.0 * (keep_time + cpu) / train_time, keep_time,
               S->coord ? ", the embedded coordinator (registry, signed log) " : ", ", cpu);
    }
    if (train_time > 0 && ct_comm_size(S->comm) > 1)
        ct_log(S->lg, CT_LOG_INFO,
               "communication: %.3f s summing gradients over %d ranks (%.2f%% "
               "of step time, waiting for the slowest rank included)",
               comm_time, ct_comm_size(S->comm), 100.0 * comm_time / train_time);
    return 0;
}

/* The watchdog's verdict: a step (or slow work) has waited far longer than it takes, so some
 * rank is dead or hung inside a collective. Nothing else can be done from here: report and end
 * this process, which makes mpirun (or srun) end the others. */
static void on_stall(const ct_watchdog_stall_t *st, void *arg) {
    session_t *S = arg;
    char bound[160];
    if (st->what)
        snprintf(bound, sizeof bound,
                 "%s (near step %lld) has taken %.3f s (limit %.3f s = "
                 "comm.watchdog_slow_s)",
                 st->what, st->step, st->waited, st->limit);
    else
        snprintf(bound, sizeof bound,
                 "step %lld has taken %.3f s (limit %.3f s = "
                 "max(comm.watchdog_min_s, comm.watchdog_factor x the p99 step time %.3f s))",
                 st->step + 1, st->waited, st->limit, st->p99);
    ct_log(S->lg, CT_LOG_ERROR,
           "watchdog: %s: another rank has died or hangs; rank %d of %d stops so the job does "
           "not wait forever (resume with --resume latest)",
           bound, ct_comm_rank(S->comm), ct_comm_size(S->comm));
    fflush(stderr);
    _exit(1);
}

/* With --init: the weights come from DIR/model.safetensors. */
static int init_weights(session_t *S, ct_err_t *e) {
    char path[CT_PATH_MAX];
    CT_TRY(ct_path_join(path, sizeof path, S->a->init, "model.safetensors", e));
    ct_model_t *m = ct_trainer_model(S->tr);
    CT_TRY(ct_safetensors_read(path, ct_model_tensor(m, 0), ct_model_num_tensors(m),
                               ct_model_params(m), e));
    char hex[CT_SHA256_HEX];
    CT_TRY(ct_sha256_file(path, hex, e));
    ct_log(S->lg, CT_LOG_INFO, "initial weights from %s (sha256 %.16s...)", path, hex);
    return 0;
}

/* Every rank learns whether any failed (rc): each returns its own error, or one saying that
 * another rank `did` (its own log says why). */
static int agree(const session_t *S, int rc, const char *did, ct_err_t *e) {
    int failed = rc != 0 ? -rc : 0;
    CT_TRY(ct_comm_max_int(S->comm, &failed, e));
    if (failed && rc == 0) return CT_ERR(e, -failed, "another rank %s (its log says why)", did);
    return rc;
}

/* Rank 0's embedded coordinator, opened on RUN_DIR/coordinator.db: with `create` 0 only when that
 * exists (a refused start leaves no registry behind). Its welcome carries this run's config. */
static int coord_open(session_t *S, int create, ct_err_t *e) {
    char db[CT_PATH_MAX];
    if (S->coord) return 0;
    CT_TRY(ct_path_join(db, sizeof db, S->a->out, CT_COORD_DB, e));
    if (!create && access(db, F_OK) != 0) return 0;
    if (!S->coord_man) CT_TRY(ct_manifest_load(&S->coord_man, S->data_path, e));
    ct_config_t c = S->cfg;
    if (c.model.vocab_size == 0) c.model.vocab_size = S->coord_man->vocab_size;
    if (!S->coord_json && !(S->coord_json = ct_config_canonical(&c, e))) return CT_ENOMEM;
    const ct_coord_opts_t o = {.run_dir = S->a->out,
                               .config_json = S->coord_json,
                               .m = S->coord_man,
                               .seed = c.train.seed,
                               .held_out = c.data.eval_shards,
                               .bind = EMBEDDED_ENDPOINT,
                               .lease_ttl = EMBEDDED_TTL_S};
    return ct_coord_open(&S->coord, &o, S->lg, e);
}

/* Where a run without --coordinator resumes; its embedded coordinator's registry has the say.
 * Rank 0 picks: --resume latest, the newest checkpoint of the registry's lineage that verifies
 * (one saved but never committed is passed over); --resume DIR, that one (the registry follows
 * it back once it is restored, see embed); no --resume, a fresh start, refused over a run. Every
 * rank then checks the same checkpoint. */
static int embedded_resume(session_t *S, int64_t before, ct_err_t *e) {
    const char *r = S->a->resume;
    size_t n = sizeof S->resume_dir;
    int rc = 0;
    if (S->rank0 && (!r || !strcmp(r, "latest"))) rc = coord_open(S, 0, e);
    if (S->rank0 && rc == 0 && !r && S->coord)
        rc = ct_coord_settle(S->coord, S->a->group, NULL, S->lg, e);
    if (S->rank0 && rc == 0 && r && !strcmp(r, "latest"))
        rc = S->coord ? ct_coord_find_resume(S->coord, S->a->out, before, S->resume_dir, n,
                                             &S->resumed, S->lg, e)
                      : ct_ckpt_latest(S->a->out, before, 0, S->resume_dir, n, NULL, &S->resumed,
                                       S->lg, e);
    if (S->rank0 && rc == 0 && r && strcmp(r, "latest") != 0 &&
        (rc = ct_path_fmt(S->resume_dir, n, e, "%s", r)) == 0)
        rc = ct_ckpt_check_small(S->resume_dir, &S->resumed, e);
    CT_TRY(agree(S, rc, "could not find the checkpoint to resume from", e));
    CT_TRY(ct_comm_bcast(S->comm, S->resume_dir, sizeof S->resume_dir, e));
    if (!S->rank0 && S->resume_dir[0]) rc = ct_ckpt_check_small(S->resume_dir, &S->resumed, e);
    return agree(S, rc, "could not check the checkpoint to resume from", e);
}

/* Finds and checks the checkpoint to resume from, if any: the coordinator's head (attached), or
 * the one the embedded coordinator's registry allows. */
static int find_resume(session_t *S, int64_t before, ct_err_t *e) {
    /* the small files are checked here; the restore hashes the tensor files as it reads them, so
       every byte is hashed once */
    if (S->forced_resume)
        CT_TRY(ct_ckpt_check_small(S->resume_dir, &S->resumed, e));
    else
        CT_TRY(embedded_resume(S, before, e));
    if (!S->resume_dir[0]) return 0;
    if (S->a->until > 0 && S->a->until <= S->resumed.step)
        return CT_ERR(e, CT_EINVAL, "--until %lld is not after the checkpoint's step %lld",
                      (long long)S->a->until, (long long)S->resumed.step);
    snprintf(S->last_id, sizeof S->last_id, "%s", S->resumed.id);
    ct_log(S->lg, CT_LOG_INFO, "resuming from %s: step %lld, id %.16s...", S->resume_dir,
           (long long)S->resumed.step, S->resumed.id);
    return 0;
}

/* Resuming on other data than the checkpoint's is refused by the manifest's hash (a cursor could
 * still fit other shards by accident); checkpoints written before the hash was recorded are
 * checked by the cursor alone, as before. */
static int check_resume_data(const session_t *S, ct_err_t *e) {
    const ct_ckpt_info_t *r = &S->resumed;
    if (!r->data_sha256[0]) {
        ct_log(S->lg, CT_LOG_WARN,
               "%s records no data hash (an older checkpoint): the data is "
               "checked by its cursor only",
               S->resume_dir);
        return 0;
    }
    ct_manifest_t *m = NULL;
    CT_TRY(ct_manifest_load(&m, S->data_path, e));
    int rc = 0;
    if (strcmp(r->data_sha256, m->sha256) != 0)
        rc = CT_ERR(e, CT_EINVAL,
                    "cannot resume %s on this data: it was trained on the "
                    "manifest with sha256 %.16s..., %s has %.16s...; give --data the run's own "
                    "manifest",
                    S->resume_dir, r->data_sha256, m->path, m->sha256);
    else if (r->tokenizer[0] && strcmp(r->tokenizer, m->tokenizer) != 0)
        rc = CT_ERR(e, CT_EINVAL, "cannot resume %s on %s data: it was trained on %s tokens",
                    S->resume_dir, m->tokenizer, r->tokenizer);
    ct_manifest_destroy(&m);
    return rc;
}

/* The held-out data of log.eval_every: --eval-data's manifest, or the last data.eval_shards
 * shards of --data (which the loader then leaves out). */
static int open_eval(session_t *S, ct_err_t *e) {
    const ct_config_t *c = &S->cfg;
    const ct_manifest_t *train = ct_data_manifest(S->data), *m = train;
    int first = train->n_shards - c->data.eval_shards, n = c->data.eval_shards;
    if (S->a->eval_data && c->data.eval_shards > 0)
        return CT_ERR(e, CT_ECONFIG,
                      "--eval-data and data.eval_shards = %d both name held-out "
                      "data: use one",
                      c->data.eval_shards);
    if (S->a->eval_data) {
        CT_TRY(ct_manifest_load(&S->eval_man, S->a->eval_data, e));
        m = S->eval_man;
        first = 0;
        n = m->n_shards;
        if (strcmp(m->tokenizer, train->tokenizer) != 0 || m->vocab_size > c->model.vocab_size)
            return CT_ERR(e, CT_EINVAL,
                          "--eval-data %s holds %s tokens (vocabulary %d); the "
                          "model trains on %s tokens (vocabulary %d): prepare it with the same "
                          "tokenizer",
                          m->path, m->tokenizer, m->vocab_size, train->tokenizer,
                          c->model.vocab_size);
    }
    if (n == 0) {
        if (c->log.eval_every > 0)
            return CT_ERR(e, CT_ECONFIG,
                          "log.eval_every = %d needs held-out data: set "
                          "data.eval_shards (the manifest's last shards) or give --eval-data",
                          c->log.eval_every);
        return 0;
    }
    CT_TRY(ct_windows_open(&S->eval, m, first, n, c->model.seq_len, e));
    int64_t W = c->model.seq_len + 1, have = ct_windows_count(S->eval);
    S->eval_windows = c->log.eval_tokens / W < have ? c->log.eval_tokens / W : have;
    if (S->eval_windows == 0)
        return CT_ERR(e, CT_EINVAL,
                      "the held-out data (%d shard(s) of %s, %lld tokens) holds "
                      "no window of model.seq_len + 1 = %lld tokens within log.eval_tokens = "
                      "%lld: hold out more data or raise log.eval_tokens",
                      n, m->path, (long long)ct_windows_tokens(S->eval), (long long)W,
                      (long long)c->log.eval_tokens);
    ct_log(S->lg, CT_LOG_INFO, "eval data: %d shard(s) of %s, %lld windows of %lld tokens%s", n,
           m->path, (long long)S->eval_windows, (long long)W,
           c->log.eval_every > 0 ? "" : " (log.eval_every is 0: never evaluated)");
    return 0;
}

/* Restores the checkpoint into the trainer. Every rank reads it; they agree on the outcome, so
 * all of them go on or all of them pass the checkpoint over. */
static int restore(session_t *S, ct_err_t *e) {
    double t0 = ct_now_s();
    int rc = ct_snapshot_restore(S->resume_dir, S->tr, &S->resumed, e);
    if (rc == 0)
        ct_log(S->lg, CT_LOG_INFO, "restored %s in %.2f s, every piece verified (%s)",
               S->resume_dir, ct_now_s() - t0,
               S->resumed.one_pass ? "each byte read once"
                                   : "read again after verifying: an older checkpoint layout");
    return agree(S, rc, "could not restore the checkpoint", e);
}

/* An attached worker without --data: the run's data from the coordinator, into RUN_DIR/data. */
static int fetch(session_t *S, ct_err_t *e) {
    char dir[CT_PATH_MAX];
    CT_TRY(ct_path_join(dir, sizeof dir, S->a->out, "data", e));
    CT_TRY(ct_mkdirs(S->a->out, e));
    return ct_fetch_data(S->attach, S->comm, dir, S->data_path, sizeof S->data_path, S->lg, e);
}

/* --coordinator: the run's config from its welcome, with this worker's --set applied only to
 * keys an attached worker may set, and the checkpoint to resume from: its head. */
static int attach(session_t *S, ct_err_t *e) {
    const worker_args_t *a = S->a;
    char head[CT_SHA256_HEX], *json = NULL;
    int64_t head_step = -1;
    const ct_attach_opts_t o = {.endpoint = a->coordinator,
                                .group = a->group,
                                .standby = a->standby,
                                .server_key = a->server_key,
                                .key_file = a->key};
    CT_TRY(ct_attach_open(&S->attach, S->comm, &o, &json, head, &head_step, S->lg, e));
    ct_config_t run;
    char diff[CT_ERR_MSG_MAX / 2];
    int rc = ct_config_load_text(&run, json, "the coordinator's config", NULL, 0, e);
    if (rc == 0)
        rc = ct_config_load_text(&S->cfg, json, "the coordinator's config", a->sets, a->n_sets, e);
    free(json);
    CT_TRY(rc);
    if (ct_config_diff(&run, &S->cfg, CT_CHANGE_ATTACHED, diff, sizeof diff) > 0)
        return CT_ERR(e, CT_ECONFIG,
                      "an attached worker may set only the keys --help-config "
                      "marks [an attached worker may set it]; these differ from the "
                      "coordinator's:%s",
                      diff);
    if (a->data)
        CT_TRY(ct_path_fmt(S->data_path, sizeof S->data_path, e, "%s", a->data));
    else
        CT_TRY(fetch(S, e));
    /* the metrics go to the coordinator, which writes them into its RUN_DIR/public; a RUN_DIR
       of the group's own gets them too, unless it is a coordinator's (shared storage) */
    char db[CT_PATH_MAX];
    CT_TRY(ct_path_join(db, sizeof db, a->out, CT_COORD_DB, e));
    S->local_metrics = access(db, F_OK) != 0;
    if (!S->local_metrics)
        ct_log(S->lg, CT_LOG_INFO,
               "%s holds a coordinator's ledger: the metrics go to the coordinator, which "
               "writes them there",
               a->out);
    ct_log(S->lg, CT_LOG_INFO,
           "attached to the coordinator at %s as group %s; head checkpoint "
           "%s%.16s%s",
           a->coordinator, a->group, head[0] ? "" : "(none: a new run)", head,
           head[0] ? "..." : "");
    snprintf(S->head, sizeof S->head, "%s", head);
    S->head_step = head_step;
    S->volunteer = S->cfg.volunteer.enabled;
    if (a->join && !S->volunteer)
        return CT_ERR(e, CT_EINVAL,
                      "%s runs in cluster mode (volunteer.enabled is false): attach with "
                      "--coordinator %s instead of --join",
                      a->coordinator, a->coordinator);
    if (!head[0]) return 0;
    /* the head is where this group resumes: it must be here, with that id */
    ct_ckpt_info_t info;
    CT_TRY(ct_path_fmt(S->resume_dir, sizeof S->resume_dir, e, "%s/checkpoints/ckpt-%08lld", a->out,
                       (long long)head_step));
    ct_err_t why = {0};
    int missing = ct_ckpt_check_small(S->resume_dir, &info, &why) != 0 || strcmp(info.id, head);
    CT_TRY(ct_comm_max_int(S->comm, &missing, e)); /* one rank without it: all fetch */
    if (missing) { /* not here (another machine, a new RUN_DIR): the coordinator has it */
        char root[CT_PATH_MAX];
        ct_log(S->lg, CT_LOG_INFO,
               "the head checkpoint %.16s... (step %lld) is not in %s/checkpoints: fetching it "
               "from the coordinator",
               head, (long long)head_step, a->out);
        CT_TRY(ct_path_join(root, sizeof root, a->out, "checkpoints", e));
        CT_TRY(ct_fetch_checkpoint(S->attach, S->comm, root, head, head_step, S->lg, e));
        ct_err_clear(&why);
        if (ct_ckpt_check_small(S->resume_dir, &info, &why) != 0 || strcmp(info.id, head) != 0)
            return CT_ERR(e, CT_ESTATE,
                          "the head checkpoint %.16s... (step %lld) fetched into %s does not "
                          "check%s%s",
                          head, (long long)head_step, S->resume_dir, why.msg[0] ? ": " : "",
                          why.msg);
    }
    S->forced_resume = 1;
    return 0;
}

/* Without --coordinator, once the checkpoint (if any) is restored: rank 0 makes the registry
 * follow the run (its head becomes that checkpoint, see ct_coord_settle) and serves the embedded
 * coordinator on a thread; the group then attaches to it as any group attaches to a coordinator. */
static int embed(session_t *S, ct_err_t *e) {
    int rc = 0;
    if (S->rank0) {
        rc = coord_open(S, 1, e);
        int n = 0;
        if (rc == 0 && S->a->changes && S->changes &&
            (rc = ct_ledger_import_changes(ct_coord_ledger(S->coord), S->changes, &n, e)) == 0 &&
            n > 0)
            ct_log(S->lg, CT_LOG_INFO, "the run's plan takes the %d data change(s) of %s", n,
                   S->a->changes);
        if (rc == 0)
            rc = ct_coord_settle(S->coord, S->a->group, S->resume_dir[0] ? &S->resumed : NULL,
                                 S->lg, e);
        if (rc == 0) rc = ct_coord_start(S->coord, e);
        char pub[CT_PATH_MAX];
        if (rc == 0 && S->a->http && !S->http &&
            (rc = ct_path_join(pub, sizeof pub, S->a->out, "public", e)) == 0 &&
            (rc = ct_http_start(&S->http, S->a->http, pub, S->lg, e)) == 0)
            ct_log(S->lg, CT_LOG_INFO, "dashboard at %s", ct_http_url(S->http));
    }
    CT_TRY(agree(S, rc, "could not start the embedded coordinator", e));
    const ct_attach_opts_t o = {.endpoint = EMBEDDED_ENDPOINT,
                                .group = S->a->group,
                                .zmq_ctx = S->rank0 ? ct_coord_zmq_context(S->coord) : NULL};
    char head[CT_SHA256_HEX], *json = NULL;
    int64_t head_step;
    CT_TRY(ct_attach_open(&S->attach, S->comm, &o, &json, head, &head_step, S->lg, e));
    free(json);
    const char *want = S->resume_dir[0] ? S->resumed.id : "";
    if (strcmp(head, want) != 0)
        return CT_ERR(e, CT_ESTATE,
                      "the embedded coordinator's head is %.16s... (step %lld), not the "
                      "checkpoint restored (%.16s...): a bug, please report it",
                      head[0] ? head : "(none)", (long long)head_step, want[0] ? want : "(none)");
    ct_log(S->lg, CT_LOG_INFO,
           "leases and checkpoint registry: the embedded coordinator (%s/%s), group %s", S->a->out,
           CT_COORD_DB, S->a->group);
    return 0;
}

/* A volunteer group (join.h) needs the run's config, data and head version, checked. */
static int prepare_volunteer(session_t *S, ct_err_t *e) {
    ct_manifest_t *m = NULL;
    CT_TRY(ct_manifest_load(&m, S->data_path, e));
    int vocab = m->vocab_size;
    ct_manifest_destroy(&m);
    if (S->cfg.model.vocab_size == 0) S->cfg.model.vocab_size = vocab;
    CT_TRY(ct_trainer_check(&S->cfg, vocab, ct_comm_size(S->comm), e));
    if (!S->head[0])
        return CT_ERR(e, CT_ESTATE, "the coordinator has no version of the model yet: a bug");
    return ct_mkdirs(S->a->out, e);
}

/* Without --coordinator: the data changes in effect in RUN_DIR's ledger (`cotrain add-data`,
 * `cotrain exclude`), or those --data-changes gives (the embedded coordinator takes them in),
 * read by rank 0 and shared, so the loader opens on the run's plan before the embedded
 * coordinator (which holds the same) answers the group's hello. */
static int embedded_changes(session_t *S, ct_err_t *e) {
    char path[CT_PATH_MAX], *text = NULL;
    int rc = 0;
    size_t len = 0;
    if (S->rank0 && S->a->changes) {
        rc = ct_read_file(S->a->changes, &text, &len, e);
    } else if (S->rank0) {
        rc = ct_path_join(path, sizeof path, S->a->out, CT_COORD_DB, e);
        if (rc == 0) rc = ct_ledger_read_changes(path, &text, e);
    }
    CT_TRY(agree(S, rc, "could not read the run's data changes", e));
    CT_TRY(ct_comm_bcast_text(S->comm, &text, e));
    if (text && !cJSON_IsArray(S->changes = cJSON_Parse(text)))
        rc = CT_ERR(e, CT_ECORRUPT, "the data changes in %s are not a JSON array",
                    S->a->changes ? S->a->changes : CT_COORD_DB);
    free(text);
    return rc;
}

/* Everything up to a trainer ready for its first step: the config, the resume checkpoint (of a
 * step below `before`), the data, the run directory, the trainer and its restored state. */
static int prepare(session_t *S, int64_t before, ct_err_t *e) {
    const worker_args_t *a = S->a;
    ct_comm_t *comm = S->comm;
    if (a->coordinator)
        CT_TRY(attach(S, e));
    else
        CT_TRY(ct_config_load(&S->cfg, a->config, CT_CONFIG_DIR, a->sets, a->n_sets, e));
    if (!a->coordinator) CT_TRY(ct_path_fmt(S->data_path, sizeof S->data_path, e, "%s", a->data));
    if (S->volunteer) return prepare_volunteer(S, e);
    if (S->cfg.volunteer.enabled)
        return CT_ERR(e, CT_ECONFIG,
                      "volunteer.enabled needs a coordinator of its own: start "
                      "cotrain-coordinator with this config and join it (cotrain-worker --join)");
    CT_TRY(find_resume(S, before, e));
    if (S->resume_dir[0]) CT_TRY(check_resume_data(S, e));
    if (!a->coordinator) CT_TRY(embedded_changes(S, e));
    ct_data_opts_t dopts = {.seq_len = S->cfg.model.seq_len,
                            .seed = S->cfg.train.seed,
                            .global_batch = S->cfg.train.global_batch,
                            .rank = ct_comm_rank(comm),
                            .world = ct_comm_size(comm),
                            .held_out = S->cfg.data.eval_shards,
                            .start = S->resume_dir[0] ? &S->resumed.cursor : NULL,
                            .changes = S->attach ? ct_attach_changes(S->attach) : S->changes};
    CT_TRY(ct_data_open(&S->data, S->data_path, &dopts, e));
    const ct_manifest_t *m = ct_data_manifest(S->data);
    if (S->cfg.model.vocab_size == 0) S->cfg.model.vocab_size = m->vocab_size;
    /* everything that can refuse the config does so before the run directory is touched */
    CT_TRY(ct_trainer_check(&S->cfg, m->vocab_size, ct_comm_size(comm), e));
    CT_TRY(open_eval(S, e));
    if (S->resume_dir[0]) CT_TRY(ct_ckpt_check_config(S->resume_dir, &S->cfg, e));
    CT_TRY(ct_mkdirs(a->out, e));
    if (S->rank0) {
        CT_TRY(write_resolved_config(S, e));
    } else if (!(S->config_json = ct_config_canonical(&S->cfg, e))) {
        return CT_ENOMEM;
    }
    ct_log(S->lg, CT_LOG_INFO, "rank %d of %d (%s), %d threads", ct_comm_rank(comm),
           ct_comm_size(comm), ct_comm_backend(comm), omp_get_max_threads());
    ct_log(S->lg, CT_LOG_INFO,
           "data %s (sha256 %.16s...): %s tokenizer, %d shards, %lld tokens, %lld samples of %d "
           "tokens per epoch",
           m->path, m->sha256, m->tokenizer, m->n_shards, (long long)m->n_tokens,
           (long long)ct_data_num_windows(S->data), S->cfg.model.seq_len + 1);
    CT_TRY(ct_trainer_create(&S->tr, &S->cfg, S->data, S->comm, e));
    if (ct_comm_size(comm) > 1)
        ct_log(S->lg, CT_LOG_INFO,
               "gradients summed over %d ranks in %d buckets of up to %g MB (%g MB at a time), "
               "started %s",
               ct_comm_size(comm), ct_reducer_buckets(ct_trainer_reducer(S->tr)),
               S->cfg.comm.bucket_mb, S->cfg.comm.chunk_mb,
               S->cfg.comm.overlap ? "during the backward pass" : "after the backward pass");
    if (S->resume_dir[0]) {
        S->restoring = 1;
        CT_TRY(restore(S, e));
        S->restoring = 0;
    }
    if (!a->coordinator) CT_TRY(embed(S, e));
    {
        ct_data_cursor_t cur;
        CT_TRY(ct_attach_data(S->attach, m, S->cfg.data.eval_shards, S->cfg.train.seed, e));
        ct_data_cursor(S->data, &cur);
        CT_TRY(ct_attach_follow(S->attach, &cur, e)); /* the unit the first step reads */
    }
    return 0;
}

/* Frees what prepare built, so it can run again. */
static void release(session_t *S) {
    ct_watchdog_destroy(&S->watchdog); /* first: closing what follows takes its own time */
    ct_attach_close(&S->attach);       /* before the coordinator: its socket is in the coordinator's
                                          ZeroMQ context */
    ct_http_stop(&S->http);
    ct_coord_close(&S->coord);
    ct_manifest_destroy(&S->coord_man);
    free(S->coord_json);
    S->coord_json = NULL;
    ct_metrics_close(&S->metrics);
    ct_trainer_destroy(&S->tr);
    ct_windows_destroy(&S->eval);
    ct_manifest_destroy(&S->eval_man);
    ct_data_destroy(&S->data);
    cJSON_Delete(S->changes);
    S->changes = NULL;
    free(S->config_json);
    S->config_json = NULL;
}

/* --join: the volunteer rounds until the run ends or SIGTERM. */
static int volunteer(session_t *S, ct_err_t *e) {
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    const ct_join_opts_t o = {.a = S->attach,
                              .comm = S->comm,
                              .cfg = &S->cfg,
                              .data = S->data_path,
                              .out = S->a->out,
                              .head = S->head,
                              .head_step = S->head_step,
                              .lg = S->lg,
                              .stop = &pending_signal};
    return ct_join_run(&o, e);
}

static int run(int argc, char **argv, ct_comm_t *comm, ct_log_t *lg, ct_err_t *e) {
    worker_args_t a;
    session_t S = {.a = &a, .lg = lg, .comm = comm, .rank0 = ct_comm_rank(comm) == 0};
    int rc = parse_args(argc, argv, &a, e);
    if (rc != 0) return rc;
    CT_TRY(ct_hash_init(e));
    /* --resume latest: a checkpoint whose tensor files turn out damaged while they are restored
       (the quick check before reads only the small files) is passed over for the one before */
    for (int64_t before = INT64_MAX;;) {
        ct_err_t why = {0};
        rc = prepare(&S, before, &why);
        int again = rc != 0 && S.restoring && a.resume && !strcmp(a.resume, "latest") &&
                    (rc == CT_ECORRUPT || rc == CT_ENOENT);
        if (!again) {
            if (rc != 0) *e = why;
            break;
        }
        ct_log(lg, CT_LOG_WARN, "skipping checkpoint %s: %s", S.resume_dir, why.msg);
        ct_log(lg, CT_LOG_WARN, "skipped 1 newer checkpoint(s) that do not verify");
        before = S.resumed.step;
        S.restoring = 0;
        release(&S);
    }
    if (rc != 0) goto out;
    if (S.volunteer) {
        rc = volunteer(&S, e);
        goto out;
    }
    if (a.init) CT_TRY_GOTO(init_weights(&S, e), out);
    if (S.rank0 && S.local_metrics)
        CT_TRY_GOTO(ct_metrics_open(&S.metrics, a.out, S.resumed.step, e), out);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (ct_comm_size(comm) > 1) {
        ct_watchdog_limits_t lim = {.factor = S.cfg.comm.watchdog_factor,
                                    .min_s = S.cfg.comm.watchdog_min_s,
                                    .slow_s = S.cfg.comm.watchdog_slow_s};
        CT_TRY_GOTO(ct_watchdog_create(&S.watchdog, &lim, on_stall, &S, e), out);
    }
    rc = train_loop(&S, e);
out:
    release(&S);
    return rc;
}

/* Threads per rank: OMP_NUM_THREADS when set; else the CPUs of the affinity mask — divided
 * among the ranks on this node when that mask is the whole machine (mpirun --bind-to none gives
 * every rank all CPUs, and ranks spinning on each other's cores run many times slower); a rank
 * the launcher bound to its own cores (--bind-to socket, srun --cpu-bind) keeps them all. */
static void share_cpus(const ct_comm_t *comm) {
    if (getenv("OMP_NUM_THREADS")) return;
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : omp_get_num_procs();
    int local = ct_comm_local_size(comm);
    if (local > 1 && cpus >= sysconf(_SC_NPROCESSORS_ONLN))
        omp_set_num_threads(cpus / local > 0 ? cpus / local : 1);
}

int main(int argc, char **argv) {
    /* HDF5 closes at exit what is still open; after an H5Fclose that failed (a full disk while a
     * checkpoint's metadata was written) HDF5 1.10 crashes doing so: SIGSEGV instead of the exit
     * code. Every file is closed explicitly, so its exit handler has nothing to do: skip it. */
    H5dont_atexit();
    ct_log_t lg = {.level = ct_log_level_from_env(), .role = "worker", .rank = 0, .out = NULL};
    ct_err_t e = {0};
    ct_comm_t *comm = NULL;
    int rc = ct_comm_create(&comm, &argc, &argv, &e);
    /* COTRAIN_FAULT arms fault injection, for tests (fault.h); its totals go to stderr at exit */
    int armed = rc == 0 ? ct_fault_arm_env(&e) : 0;
    if (armed < 0) rc = armed;
    if (rc == 0) {
        lg.rank = ct_comm_rank(comm);
        /* the other ranks say only what goes wrong: rank 0 speaks for the group */
        if (lg.rank != 0 && lg.level > CT_LOG_WARN) lg.level = CT_LOG_WARN;
        share_cpus(comm);
        rc = run(argc, argv, comm, &lg, &e);
    }
    if (rc == 1) rc = 0; /* help printed */
    if (rc < 0) {
        ct_log(&lg, CT_LOG_ERROR, "%s", e.msg[0] ? e.msg : ct_strerror(rc));
        /* with other ranks alive, make sure none is left waiting in a collective */
        if (comm && ct_comm_size(comm) > 1) ct_comm_abort(comm, ct_exit_code(rc));
    }
    ct_comm_destroy(&comm);
    char line[256];
    if (armed > 0) fprintf(stderr, "cotrain-worker: %s\n", ct_fault_summary(line, sizeof line));
    return ct_exit_code(rc);
}
