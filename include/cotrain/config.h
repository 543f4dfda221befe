/* config.h — the run configuration: a JSON file checked against a schema, `--set key=value`
 * overrides, and a canonical form (sorted keys) whose sha256 identifies the run.
 *
 * Every key has a default, so `{}` is a valid config. Loading checks the whole config and reports
 * every bad key at once (unknown key, wrong type, value out of range), naming the key, the value
 * found and what is allowed; such failures return CT_ECONFIG (exit code 2). */
#ifndef COTRAIN_CONFIG_H
#define COTRAIN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "cotrain/err.h"

typedef enum { CT_SCHED_COSINE = 0, CT_SCHED_LINEAR = 1, CT_SCHED_CONSTANT = 2 } ct_schedule_t;

typedef struct ct_config {
    struct {
        int n_layer;    /* transformer blocks, >= 1 */
        int n_head;     /* attention heads; d_model % n_head == 0 */
        int d_model;    /* channels C */
        int seq_len;    /* context length T (also the learned positions' count) */
        int vocab_size; /* 0 = the data tokenizer's vocabulary; else >= it (extra rows pad) */
    } model;
    struct {
        int64_t steps;        /* optimizer steps of the whole run */
        int global_batch;     /* sequences per optimizer step, all ranks together */
        int micro_batch;      /* sequences per rank per micro-step; divides global_batch/ranks */
        double lr;            /* peak learning rate */
        double min_lr;        /* learning rate at the end of the decay */
        int64_t warmup_steps; /* linear warmup from lr/warmup to lr */
        ct_schedule_t schedule;
        double weight_decay;      /* decoupled (AdamW); applied to matrices and embeddings */
        int decay_bias_and_norm;  /* 1 = also decay biases and LayerNorm parameters */
        double beta1, beta2, eps; /* AdamW */
        double grad_clip;         /* global-norm clip; 0 disables */
        uint64_t seed;            /* weights init and data order */
        int spike_guard;          /* 1 = skip updates whose loss or grad norm is an outlier */
        int spike_window;         /* recent steps the z-score is measured against */
        double spike_zscore;      /* z above which a step is skipped */
        double peak_gflops;       /* one rank's FP32 peak for MFU; 0: measured and cached */
    } train;
    struct {
        int64_t every;      /* checkpoint every N steps (0: only at the end, --until, signals) */
        int keep_last;      /* keep the newest N checkpoints (0: keep all) */
        int64_t keep_every; /* also keep those whose step is a multiple of N (0: none) */
    } ckpt;
    struct {
        double watchdog_factor; /* a step may take this many times the p99 step time ... */
        double watchdog_min_s;  /* ... but at least this long, before the run is stopped */
        double watchdog_slow_s; /* saves, evaluations, the coordinator, start-up */
        double bucket_mb;       /* gradient all-reduce bucket size, MB */
        double chunk_mb;        /* ... summed this many MB at a time */
        int overlap;            /* 1 = buckets start during backward; 0 = right after it */
    } comm;
    struct {
        int every;           /* metrics line every N steps (and the last step) */
        int eval_every;      /* eval loss every N steps (and the last step); 0: never */
        int64_t eval_tokens; /* ... on the first N tokens of the held-out data */
    } log;
    struct {
        int eval_shards; /* the manifest's last N shards are held out for evaluation */
    } data;
    struct {
        int enabled;          /* 1: volunteer mode (DiLoCo outer steps); train.steps counts them */
        int64_t inner_steps;  /* a group's optimizer steps between two outer steps */
        int quorum;           /* deltas that make an outer step without waiting for the rest */
        double deadline_s;    /* ... or this long after the version was published (>= 1 delta) */
        int max_staleness;    /* a delta may start from a version this many outer steps old */
        int aggregate;        /* a ct_agg_rule_t (outer.h): mean, trimmed_mean, median */
        double trim;          /* trimmed_mean: the share dropped at each end */
        double outlier_ratio; /* a delta whose norm passes this times the median is refused */
        double outer_lr;      /* outer SGD with Nesterov momentum */
        double outer_momentum;
        int compress;       /* a ct_delta_codec_t (delta.h): f32, bf16, int8, both ways */
        int error_feedback; /* 1: each encoder carries what its last encoding lost */
    } volunteer;
} ct_config_t;

/* Fills *cfg with every default. Never fails. */
void ct_config_defaults(ct_config_t *cfg);

/* Loads a config: starts from the defaults, applies the JSON file at `path` (NULL: none), then
 * the `n_set` overrides "key=value" in order (value parsed as JSON, or taken as a string if it is
 * not valid JSON). `path` may also name a bundled config ("tiny", "gpt2", ...) found in
 * `config_dir`. Validates everything; on failure returns CT_ENOENT (missing file) or CT_ECONFIG
 * and e->msg lists every problem. */
int ct_config_load(ct_config_t *cfg, const char *path, const char *config_dir,
                   const char *const *sets, int n_set, ct_err_t *e);

/* Appends one `--set key=value` to sets[0..*n) (a program's options, max of them; the value is
 * not copied). Errors: CT_EINVAL (more than max: saying so). */
int ct_config_add_set(const char **sets, int *n, int max, const char *set, ct_err_t *e);

/* Like ct_config_load, from JSON text (a coordinator's welcome); `name` names it in messages. */
int ct_config_load_text(ct_config_t *cfg, const char *text, const char *name,
                        const char *const *sets, int n_set, ct_err_t *e);

/* The canonical JSON of a config: every key, sorted, compact, one trailing newline. Returns a
 * malloc'd string the caller frees, or NULL on allocation failure (CT_ENOMEM in e). */
char *ct_config_canonical(const ct_config_t *cfg, ct_err_t *e);

/* sha256 (lowercase hex) of the canonical JSON. Returns 0 or CT_ENOMEM. */
int ct_config_sha256(const ct_config_t *cfg, char hex[65], ct_err_t *e);

/* Who may change a key once a run has begun (the schema marks each key). */
enum {
    CT_CHANGE_RESUME = 1,   /* may differ from the checkpoint's config on resume */
    CT_CHANGE_ATTACHED = 2, /* an attached worker's own config may set it (DESIGN.md) */
};

/* Compares two configs key by key, skipping keys whose schema marks include any of `allowed`
 * (CT_CHANGE_*; 0 compares every key). Writes "\n  key: was A, now B" for each difference into
 * out[n] (cut at n) and returns how many keys differ. */
int ct_config_diff(const ct_config_t *a, const ct_config_t *b, unsigned allowed, char *out,
                   size_t n);

/* Prints every key with its type, default, allowed values and meaning (for --help-config). */
void ct_config_print_help(FILE *out);

#endif
