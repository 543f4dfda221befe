/* config.c — the run configuration, driven by one schema table. Each key is listed once, with its
 * type, default, allowed range or names, place in ct_config_t and a description; defaults, JSON
 * parsing, validation, `--set` overrides, canonical output and --help-config all walk that table,
 * so adding a key is one line here and one field in config.h. Values travel as doubles between
 * JSON and the struct: every integer key is bounded by 2^53, so nothing is rounded (this is also
 * why `train.seed` tops out at 2^53: a JSON number is a double and cannot hold more exactly).
 * Loading never stops at the first problem: it collects one line per bad key (unknown key, wrong
 * type, out of range, broken cross-key rule) and returns them together as CT_ECONFIG. */
#include "cotrain/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/fsutil.h"
#include "cotrain/hash.h"

typedef enum { K_INT, K_INT64, K_UINT64, K_FLOAT, K_BOOL, K_ENUM } kind_t;

enum { OPEN_LO = 1, OPEN_HI = 2 }; /* range bounds that are themselves excluded */

typedef struct key_spec {
    const char *key;     /* "section.field", the field's name in ct_config_t */
    size_t offset, size; /* of the field in ct_config_t (these three come from KEY()) */
    kind_t kind;
    double def, lo, hi;       /* default and range; ints are exact (|x| <= 2^53) */
    int open;                 /* OPEN_LO | OPEN_HI: exclusive bounds */
    const char *const *names; /* K_ENUM: value names, NULL-terminated, index = value */
    const char *help;
    unsigned change;          /* CT_CHANGE_*: who may change the key once a run has begun */
} key_spec_t;

/* ct_schedule_t is stored and read as an int like the booleans. */
_Static_assert(sizeof(ct_schedule_t) == sizeof(int), "ct_schedule_t must be int-sized");

static const char *const SCHEDULES[] = {"cosine", "linear", "constant", NULL};
/* In the order of ct_agg_rule_t (outer.h) and ct_delta_codec_t (delta.h); test_outer_config
 * holds them to it. */
static const char *const AGGREGATES[] = {"mean", "trimmed_mean", "median", NULL};
static const char *const CODECS[] = {"f32", "bf16", "int8", NULL};
static const char BUNDLED[] = "tiny, small, gpt2, gpt2-medium, gpt2-large, gpt2-xl";
enum { MAX_FILE_BYTES = 1 << 20 };
#define I53 9007199254740992.0 /* 2^53, the largest integer every JSON reader holds exactly */

/* The key string is made from the field's own name, so the two cannot drift apart. */
#define KEY(sec, field)                                                                            \
#sec "." #field, offsetof(ct_config_t, sec.field), sizeof(((ct_config_t *)0)->sec.field)

/* The last field of a row: who may change the key once the run has begun (FIXED: nobody). */
enum { FIXED = 0 };

static const key_spec_t SCHEMA[] = {
    {KEY(model, n_layer), K_INT, 12, 1, 1024, 0, NULL, "transformer blocks", FIXED},
    {KEY(model, n_head), K_INT, 12, 1, 1024, 0, NULL, "attention heads; must divide d_model", FIXED},
    {KEY(model, d_model), K_INT, 768, 1, 65536, 0, NULL, "channels C", FIXED},
    {KEY(model, seq_len), K_INT, 1024, 1, 1 << 20, 0, NULL,
     "context length T (also the number of learned positions)", FIXED},
    {KEY(model, vocab_size), K_INT, 0, 0, 1 << 24, 0, NULL,
     "vocabulary rows; 0 = the data tokenizer's, larger pads, smaller is refused", FIXED},
    {KEY(train, steps), K_INT64, 1000, 1, 1e15, 0, NULL,
     "optimizer steps of the whole run (fixes the schedule)", FIXED},
    {KEY(train, global_batch), K_INT, 8, 1, 1 << 24, 0, NULL,
     "sequences per optimizer step, all ranks together", FIXED},
    {KEY(train, micro_batch), K_INT, 8, 1, 1 << 20, 0, NULL,
     "sequences per rank per micro-step; must divide global_batch", CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(train, lr), K_FLOAT, 6e-4, 0, 10, 0, NULL, "peak learning rate", FIXED},
    {KEY(train, min_lr), K_FLOAT, 6e-5, 0, 10, 0, NULL,
     "learning rate at the end of the decay; <= lr", FIXED},
    {KEY(train, warmup_steps), K_INT64, 100, 0, 1e15, 0, NULL,
     "steps of linear warmup up to lr; <= steps (volunteer mode: inner steps, <= steps x "
     "volunteer.inner_steps)",
     FIXED},
    {KEY(train, schedule), K_ENUM, CT_SCHED_COSINE, 0, 2, 0, SCHEDULES,
     "decay from lr to min_lr after warmup", FIXED},
    {KEY(train, weight_decay), K_FLOAT, 0.1, 0, 10, 0, NULL,
     "decoupled (AdamW) weight decay of matrices and embeddings", FIXED},
    {KEY(train, decay_bias_and_norm), K_BOOL, 0, 0, 1, 0, NULL,
     "also decay biases and LayerNorm parameters", FIXED},
    {KEY(train, beta1), K_FLOAT, 0.9, 0, 1, OPEN_HI, NULL, "AdamW first-moment decay", FIXED},
    {KEY(train, beta2), K_FLOAT, 0.95, 0, 1, OPEN_HI, NULL, "AdamW second-moment decay", FIXED},
    {KEY(train, eps), K_FLOAT, 1e-8, 0, 1, OPEN_LO, NULL, "AdamW denominator epsilon", FIXED},
    {KEY(train, grad_clip), K_FLOAT, 1.0, 0, 1e6, 0, NULL,
     "clip the global gradient norm to this; 0 disables", FIXED},
    {KEY(train, seed), K_UINT64, 1337, 0, I53, 0, NULL,
     "seed of weight init and data order (an integer up to 2^53, as JSON numbers are doubles)", FIXED},
    {KEY(train, spike_guard), K_BOOL, 0, 0, 1, 0, NULL,
     "skip updates whose loss or gradient norm is an outlier", FIXED},
    {KEY(train, spike_window), K_INT, 50, 5, 1 << 20, 0, NULL,
     "recent steps the spike guard's z-score is measured against", FIXED},
    {KEY(train, spike_zscore), K_FLOAT, 6.0, 0, 1e6, OPEN_LO, NULL,
     "z-score above which the spike guard skips a step", FIXED},
    {KEY(train, peak_gflops), K_FLOAT, 0, 0, 1e9, 0, NULL,
     "FP32 peak of one rank in GFLOP/s, the MFU denominator; 0: measured once per machine and "
     "thread count and cached (COTRAIN_CACHE_DIR, else ~/.cache/cotrain)",
     CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(ckpt, every), K_INT64, 1000, 0, 1e15, 0, NULL,
     "write a checkpoint every N steps; 0: only at the end, at --until and on SIGTERM/SIGUSR1", CT_CHANGE_RESUME},
    {KEY(ckpt, keep_last), K_INT, 3, 0, 1 << 30, 0, NULL,
     "keep the newest N checkpoints, delete older ones; 0 keeps all", CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(ckpt, keep_every), K_INT64, 0, 0, 1e15, 0, NULL,
     "also keep every checkpoint whose step is a multiple of N (0: none)", CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(comm, watchdog_factor), K_FLOAT, 20.0, 1, 1e6, 0, NULL,
     "with several ranks, stop the run when a step takes this many times the p99 step time", CT_CHANGE_RESUME},
    {KEY(comm, watchdog_min_s), K_FLOAT, 600.0, 0, 1e9, OPEN_LO, NULL,
     "... but never sooner than this many seconds (a dead or hung rank stalls the others)", CT_CHANGE_RESUME},
    {KEY(comm, watchdog_slow_s), K_FLOAT, 600.0, 0, 1e9, OPEN_LO, NULL,
     "the same bound for slow work: a checkpoint save, an evaluation, the coordinator, start-up", CT_CHANGE_RESUME},
    {KEY(comm, bucket_mb), K_FLOAT, 25.0, 0.001, 1e6, 0, NULL,
     "gradients are summed over the ranks in contiguous buckets of about this many MB", CT_CHANGE_RESUME},
    {KEY(comm, chunk_mb), K_FLOAT, 4.0, 0.001, 1e6, 0, NULL,
     "a bucket is summed this many MB at a time (small enough to stay in cache)", CT_CHANGE_RESUME},
    {KEY(comm, overlap), K_BOOL, 0, 0, 1, 0, NULL,
     "start each bucket's sum during the backward pass as soon as its gradients are final "
     "(false: all buckets right after it)", CT_CHANGE_RESUME},
    {KEY(log, every), K_INT, 1, 1, 1 << 30, 0, NULL,
     "write a metrics line every N steps (and at the last step)", CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(log, eval_every), K_INT, 0, 0, 1 << 30, 0, NULL,
     "evaluate the loss on the held-out data (data.eval_shards or --eval-data) every N steps "
     "and at the last step, as eval_loss in metrics.jsonl; 0: never",
     CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(log, eval_tokens), K_INT64, 1 << 20, 1, 1e15, 0, NULL,
     "evaluate on the first N tokens of the held-out data (all of it when it has fewer)",
     CT_CHANGE_RESUME | CT_CHANGE_ATTACHED},
    {KEY(data, eval_shards), K_INT, 0, 0, 1 << 20, 0, NULL,
     "hold out the manifest's last N shards: never trained on, evaluated every log.eval_every "
     "steps", FIXED},
    {KEY(volunteer, enabled), K_BOOL, 0, 0, 1, 0, NULL,
     "volunteer mode: groups train volunteer.inner_steps steps on their own from the global model "
     "and send their deltas; the coordinator's outer steps (train.steps of them) merge them",
     FIXED},
    {KEY(volunteer, inner_steps), K_INT64, 100, 1, 1e12, 0, NULL,
     "a group's optimizer steps between two outer steps (DiLoCo's H)", FIXED},
    {KEY(volunteer, quorum), K_INT, 2, 1, 1 << 20, 0, NULL,
     "deltas that make an outer step at once (also made when every group in the run has sent "
     "one)", CT_CHANGE_RESUME},
    {KEY(volunteer, deadline_s), K_FLOAT, 600, 0, 1e9, OPEN_LO, NULL,
     "... or this many seconds after the version was published, with at least one delta",
     CT_CHANGE_RESUME},
    {KEY(volunteer, max_staleness), K_INT, 1, 0, 1 << 20, 0, NULL,
     "a delta may start from a version up to this many outer steps old (older ones are refused)",
     CT_CHANGE_RESUME},
    {KEY(volunteer, aggregate), K_ENUM, 1, 0, 2, 0, AGGREGATES,
     "how deltas are merged: mean (weighted by tokens), trimmed_mean or median (coordinate-wise, "
     "robust to bad groups)", CT_CHANGE_RESUME},
    {KEY(volunteer, trim), K_FLOAT, 0.2, 0, 0.5, OPEN_HI, NULL,
     "trimmed_mean: the share of values dropped at each end of every coordinate", CT_CHANGE_RESUME},
    {KEY(volunteer, outlier_ratio), K_FLOAT, 10, 0, 1e9, 0, NULL,
     "a delta whose L2 norm passes this times the median norm is refused; 0: no check",
     CT_CHANGE_RESUME},
    {KEY(volunteer, outer_lr), K_FLOAT, 0.7, 0, 100, OPEN_LO, NULL,
     "outer SGD learning rate (DiLoCo: 0.7)", FIXED},
    {KEY(volunteer, outer_momentum), K_FLOAT, 0.9, 0, 1, OPEN_HI, NULL,
     "outer Nesterov momentum (DiLoCo: 0.9)", FIXED},
    {KEY(volunteer, compress), K_ENUM, 2, 0, 2, 0, CODECS,
     "the encoding of deltas up and model updates down: f32, bf16 or int8 (a scale per 256 "
     "values)", FIXED},
    {KEY(volunteer, error_feedback), K_BOOL, 1, 0, 1, 0, NULL,
     "each encoder adds what its previous encoding lost before encoding again", FIXED},
};
enum { N_KEYS = sizeof SCHEMA / sizeof SCHEMA[0] };

typedef enum { REL_MULTIPLE, REL_LE } rel_t;

/* Rules between keys: `a` must be a multiple of / at most `b`. */
static const struct cross_rule {
    const char *a, *b;
    rel_t rel;
    const char *why;
} CROSS[] = {
    {"model.d_model", "model.n_head", REL_MULTIPLE, "each head gets d_model / n_head channels"},
    {"train.global_batch", "train.micro_batch", REL_MULTIPLE,
     "gradient accumulation runs whole micro-batches"},
    {"train.min_lr", "train.lr", REL_LE, "the schedule decays from lr down to min_lr"},
    {"train.warmup_steps", "train.steps", REL_LE, "warmup is part of the run"},
};

/* ---- schema access ---- */

static size_t section_len(const char *key) {
    const char *dot = strchr(key, '.');
    return dot ? (size_t)(dot - key) : strlen(key);
}

static int key_index(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].key, key) == 0) return i;
    return -1;
}

static int is_section(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (section_len(SCHEMA[i].key) == strlen(name) &&
            strncmp(SCHEMA[i].key, name, strlen(name)) == 0)
            return 1;
    return 0;
}

/* The fields are accessed through their own types (the enum through int, its size checked above).
 */
static double get_value(const ct_config_t *cfg, const key_spec_t *k) {
    const char *p = (const char *)cfg + k->offset;
    switch (k->kind) {
    case K_INT64: return (double)*(const int64_t *)p;
    case K_UINT64: return (double)*(const uint64_t *)p;
    case K_FLOAT: return *(const double *)p;
    default: return *(const int *)p; /* K_INT, K_BOOL, K_ENUM */
    }
}

/* v has been validated for k: integral and within range, so every conversion is exact. */
static void set_value(ct_config_t *cfg, const key_spec_t *k, double v) {
    char *p = (char *)cfg + k->offset;
    switch (k->kind) {
    case K_INT64: *(int64_t *)p = (int64_t)v; break;
    case K_UINT64: *(uint64_t *)p = (uint64_t)v; break;
    case K_FLOAT: *(double *)p = v; break;
    default: *(int *)p = (int)v; break;
    }
}

void ct_config_defaults(ct_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg); /* padding too, so two configs compare with memcmp */
    for (int i = 0; i < N_KEYS; i++)
        set_value(cfg, &SCHEMA[i], SCHEMA[i].def);
}

/* ---- number formatting ---- */

/* Integers as integers, else the shortest "%.Ng" that reads back as x: numbers in messages. */
static void format_g(double x, char *out, size_t n) {
    if (x == floor(x) && fabs(x) < 1e17) {
        snprintf(out, n, "%.0f", x);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, x);
        if (strtod(out, NULL) == x) return;
    }
}

/* x as Python's repr() writes it: the shortest digits that read back as x, positional notation
 * for exponents -4..15 (always with a '.'), else d.ddde±XX. So the canonical text is exactly what
 * json.dumps(..., sort_keys=True, separators=(",", ":")) gives, and reads back bit-identical. */
static void format_float(double x, char *out, size_t n) {
    char sci[40], txt[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(sci, sizeof sci, "%.*e", p - 1, x);
        if (strtod(sci, NULL) == x) break;
    }
    char *dig = sci + (sci[0] == '-'), *e = strchr(dig, 'e');
    int ex = atoi(e + 1), w = 0;
    *e = '\0';
    if (dig[1] == '.') memmove(dig + 1, dig + 2, strlen(dig + 2) + 1); /* digits only */
    int nd = (int)strlen(dig);
    if (sci[0] == '-') txt[w++] = '-';
    if (ex < -4 || ex >= 16) {
        w += snprintf(txt + w, sizeof txt - w, "%c%s%s", dig[0], nd > 1 ? "." : "", dig + 1);
        snprintf(txt + w, sizeof txt - w, "e%c%02d", ex < 0 ? '-' : '+', abs(ex));
    } else if (ex < 0) {
        w += snprintf(txt + w, sizeof txt - w, "0.");
        for (int z = 0; z < -ex - 1; z++)
            txt[w++] = '0';
        snprintf(txt + w, sizeof txt - w, "%s", dig);
    } else { /* ex + 1 digits before the point, padded with zeros; at least one after it */
        for (int i = 0; i <= ex; i++)
            txt[w++] = i < nd ? dig[i] : '0';
        snprintf(txt + w, sizeof txt - w, ".%s", nd > ex + 1 ? dig + ex + 1 : "0");
    }
    snprintf(out, n, "%s", txt);
}

/* The value of key k in cfg as canonical JSON text. */
static void format_value(const ct_config_t *cfg, const key_spec_t *k, char *out, size_t n) {
    double v = get_value(cfg, k);
    switch (k->kind) {
    case K_FLOAT: format_float(v, out, n); break;
    case K_BOOL: snprintf(out, n, "%s", v != 0 ? "true" : "false"); break;
    case K_ENUM: snprintf(out, n, "\"%s\"", k->names[(int)v]); break;
    case K_UINT64: snprintf(out, n, "%llu", (unsigned long long)v); break;
    default: snprintf(out, n, "%lld", (long long)v); break;
    }
}

/* "[1, 1024]", "(0, 1]", "one of "a", "b"", "true or false": what key k accepts. */
static void format_allowed(const key_spec_t *k, char *out, size_t n) {
    char lo[32], hi[32];
    size_t w = 0;
    if (k->kind == K_BOOL) {
        snprintf(out, n, "true or false");
    } else if (k->kind == K_ENUM) {
        w = snprintf(out, n, "one of ");
        for (int i = 0; k->names[i] && w < n; i++)
            w += snprintf(out + w, n - w, "%s\"%s\"", i ? ", " : "", k->names[i]);
    } else {
        format_g(k->lo, lo, sizeof lo);
        format_g(k->hi, hi, sizeof hi);
        snprintf(out, n, "%c%s, %s%c", k->open & OPEN_LO ? '(' : '[', lo, hi,
                 k->open & OPEN_HI ? ')' : ']');
    }
}

/* ---- problem collection ---- */

/* Problems are lines of one message; past the buffer they are counted, not shown. */
typedef struct problems {
    char text[CT_ERR_MSG_MAX - 160]; /* leaves room for the heading and the "more" line */
    size_t len;
    int count, shown;
    unsigned char bad[N_KEYS]; /* keys that had a problem: their cross-key rules are skipped */
} problems_t;

__attribute__((format(printf, 2, 3))) static void problem(problems_t *pr, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pr->count++;
    size_t n = strlen(line);
    if (pr->len + n + 4 > sizeof pr->text) return;
    pr->len += snprintf(pr->text + pr->len, sizeof pr->text - pr->len, "\n  %s", line);
    pr->shown++;
}

/* Copies s for a message: at most 40 characters, control characters as '?'. */
static void printable(const char *s, char *out, size_t n) {
    size_t i = 0;
    for (; s[i] && i < 40 && i + 4 < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    snprintf(out + i, n - i, "%s", s[i] ? "..." : "");
}

/* A JSON value as the user wrote it, for "found ..." in messages. */
static void describe(const cJSON *v, char *out, size_t n) {
    char s[48];
    if (cJSON_IsString(v)) {
        printable(v->valuestring, s, sizeof s);
        snprintf(out, n, "\"%s\" (a string)", s);
    } else if (cJSON_IsNumber(v)) {
        format_g(v->valuedouble, out, n);
    } else if (cJSON_IsBool(v)) {
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(out, n, "%s",
                 cJSON_IsNull(v)    ? "null"
                 : cJSON_IsArray(v) ? "an array"
                                    : "an object");
    }
}

static void list_keys(const char *section, char *out, size_t n) {
    size_t w = 0, len = strlen(section);
    out[0] = '\0';
    for (int i = 0; i < N_KEYS && w < n; i++)
        if (section_len(SCHEMA[i].key) == len && strncmp(SCHEMA[i].key, section, len) == 0)
            w += snprintf(out + w, n - w, "%s%s", w ? ", " : "", SCHEMA[i].key + len + 1);
}

static void list_sections(char *out, size_t n) {
    size_t w = 0;
    out[0] = '\0';
    for (int i = 0; i < N_KEYS && w < n; i++) {
        size_t len = section_len(SCHEMA[i].key);
        if (i == 0 || strncmp(SCHEMA[i - 1].key, SCHEMA[i].key, len + 1) != 0)
            w += snprintf(out + w, n - w, "%s%.*s", w ? ", " : "", (int)len, SCHEMA[i].key);
    }
}

/* Reports an unknown key with the valid names next to it. `where` is "" or " (in --set)". */
static void unknown_key(problems_t *pr, const char *key, const char *where) {
    char name[48], section[64], valid[320];
    printable(key, name, sizeof name);
    snprintf(section, sizeof section, "%.*s", (int)section_len(key), key);
    if (strchr(key, '.') && is_section(section)) {
        list_keys(section, valid, sizeof valid);
        problem(pr, "%s: unknown key%s; valid keys in \"%s\": %s", name, where, section, valid);
    } else {
        list_sections(valid, sizeof valid);
        problem(pr, "%s: unknown key%s; valid sections: %s (keys are section.name)", name, where,
                valid);
    }
}

/* ---- validation ---- */

/* Checks a number x (shown as `found`) against key k: finite, integral for integer kinds, in
 * range. Returns 0, or -1 with `why` saying what is allowed. */
static int check_number(const key_spec_t *k, double x, const char *found, char *why, size_t n) {
    char allowed[96];
    format_allowed(k, allowed, sizeof allowed);
    if (!isfinite(x)) return snprintf(why, n, "found %s, expected a finite number", found), -1;
    if (k->kind != K_FLOAT && x != floor(x))
        return snprintf(why, n, "found %s, expected an integer", found), -1;
    int low = (k->open & OPEN_LO) ? x <= k->lo : x < k->lo;
    int high = (k->open & OPEN_HI) ? x >= k->hi : x > k->hi;
    if (low || high) return snprintf(why, n, "%s is out of range %s", found, allowed), -1;
    return 0;
}

/* Checks one JSON value against key k; on success *out holds it. Otherwise returns -1 and `why`
 * says what was found and what is allowed. */
static int check_value(const key_spec_t *k, const cJSON *v, double *out, char *why, size_t n) {
    char found[80], allowed[96];
    describe(v, found, sizeof found);
    if (k->kind == K_BOOL || k->kind == K_ENUM) {
        int idx = -1;
        if (k->kind == K_BOOL && cJSON_IsBool(v)) idx = cJSON_IsTrue(v);
        for (int i = 0; k->kind == K_ENUM && cJSON_IsString(v) && k->names[i]; i++)
            if (strcmp(v->valuestring, k->names[i]) == 0) idx = i;
        format_allowed(k, allowed, sizeof allowed);
        if (idx < 0) return snprintf(why, n, "found %s, expected %s", found, allowed), -1;
        *out = idx;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return snprintf(why, n, "found %s, expected %s", found,
                        k->kind == K_FLOAT ? "a number" : "an integer"),
               -1;
    if (check_number(k, v->valuedouble, found, why, n) != 0) return -1;
    *out = v->valuedouble + 0.0; /* -0 becomes 0 */
    return 0;
}

/* The table's own invariants: each field's size fits its kind and each default is allowed. A
 * failure is a bug in this file; every load checks, so every test of the module would catch it. */
static int check_schema(ct_err_t *e) {
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec_t *k = &SCHEMA[i];
        size_t want = k->kind == K_INT64    ? sizeof(int64_t)
                      : k->kind == K_UINT64 ? sizeof(uint64_t)
                      : k->kind == K_FLOAT  ? sizeof(double)
                                            : sizeof(int);
        char why[200] = "";
        if (k->size != want || check_number(k, k->def, "the default", why, sizeof why) != 0)
            return CT_ERR(e, CT_ESTATE,
                          "config schema bug at %s: field of %zu bytes, kind needs %zu; %s", k->key,
                          k->size, want, why);
    }
    return 0;
}

static void apply_value(ct_config_t *cfg, int idx, const cJSON *v, const char *where,
                        problems_t *pr) {
    char why[200];
    double x;
    if (check_value(&SCHEMA[idx], v, &x, why, sizeof why) == 0) {
        set_value(cfg, &SCHEMA[idx], x);
        return;
    }
    pr->bad[idx] = 1;
    problem(pr, "%s: %s%s", SCHEMA[idx].key, why, where);
}

/* Does a member before `item` in `obj` have the same name? (cJSON keeps duplicates.) */
static int is_duplicate(const cJSON *obj, const cJSON *item) {
    for (const cJSON *p = obj->child; p && p != item; p = p->next)
        if (strcmp(p->string, item->string) == 0) return 1;
    return 0;
}

static void apply_section(ct_config_t *cfg, const cJSON *sec, problems_t *pr) {
    const cJSON *item;
    cJSON_ArrayForEach(item, sec) {
        char key[160];
        snprintf(key, sizeof key, "%s.%s", sec->string, item->string);
        int idx = key_index(key);
        if (idx < 0)
            unknown_key(pr, key, "");
        else if (is_duplicate(sec, item))
            problem(pr, "%s: key given twice", key);
        else
            apply_value(cfg, idx, item, "", pr);
    }
}

static void apply_root(ct_config_t *cfg, const cJSON *root, problems_t *pr) {
    const cJSON *sec;
    char found[80], valid[320], name[48];
    if (!cJSON_IsObject(root)) {
        describe(root, found, sizeof found);
        problem(pr, "the config must be a JSON object {\"model\": {...}, ...}; found %s", found);
        return;
    }
    cJSON_ArrayForEach(sec, root) {
        printable(sec->string, name, sizeof name);
        if (!is_section(sec->string)) {
            list_sections(valid, sizeof valid);
            problem(pr, "%s: unknown section; valid sections: %s", name, valid);
        } else if (is_duplicate(root, sec)) {
            problem(pr, "%s: section given twice", name);
        } else if (!cJSON_IsObject(sec)) {
            describe(sec, found, sizeof found);
            list_keys(sec->string, valid, sizeof valid);
            problem(pr, "%s: found %s, expected an object with keys %s", name, found, valid);
        } else {
            apply_section(cfg, sec, pr);
        }
    }
}

/* "key=value": the value is parsed as JSON, or taken as a string when it is not JSON. Returns 0
 * or CT_ENOMEM; a bad override is a problem, not a failure. */
static int apply_set(ct_config_t *cfg, const char *set, problems_t *pr, ct_err_t *e) {
    char key[160], where[200], shown[48];
    const char *eq = strchr(set, '=');
    printable(set, shown, sizeof shown);
    if (!eq) {
        problem(pr, "--set %s: expected key=value, e.g. --set train.lr=3e-4", shown);
        return 0;
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    snprintf(where, sizeof where, " (in --set %s)", shown);
    int idx = key_index(key);
    if (idx < 0) {
        unknown_key(pr, key, " (in --set)");
        return 0;
    }
    cJSON *v = cJSON_ParseWithOpts(eq + 1, NULL, 1);
    if (!v) v = cJSON_CreateString(eq + 1);
    if (!v) return CT_ERR(e, CT_ENOMEM, "out of memory applying --set %s", shown);
    apply_value(cfg, idx, v, where, pr);
    cJSON_Delete(v);
    return 0;
}

static void check_cross(const ct_config_t *cfg, problems_t *pr) {
    for (size_t r = 0; r < sizeof CROSS / sizeof CROSS[0]; r++) {
        int ia = key_index(CROSS[r].a), ib = key_index(CROSS[r].b);
        if (pr->bad[ia] || pr->bad[ib]) continue; /* already reported; the value is not in cfg */
        double a = get_value(cfg, &SCHEMA[ia]), b = get_value(cfg, &SCHEMA[ib]);
        /* in volunteer mode train.steps counts outer steps: the warmup is of the inner ones */
        const char *bname = CROSS[r].b;
        if (cfg->volunteer.enabled && !strcmp(CROSS[r].b, "train.steps") &&
            !pr->bad[key_index("volunteer.inner_steps")]) {
            b *= (double)cfg->volunteer.inner_steps;
            bname = "train.steps x volunteer.inner_steps";
        }
        int ok = CROSS[r].rel == REL_LE ? a <= b : fmod(a, b) == 0;
        if (ok) continue;
        char sa[32], sb[32];
        format_g(a, sa, sizeof sa);
        format_g(b, sb, sizeof sb);
        problem(pr, "%s = %s must be %s %s = %s (%s)", CROSS[r].a, sa,
                CROSS[r].rel == REL_LE ? "<=" : "a multiple of", bname, sb, CROSS[r].why);
    }
}

/* ---- files ---- */

/* A bundled name ("tiny") means <config_dir>/tiny.json, unless a file of that name is here. */
static int resolve_path(const char *path, const char *config_dir, char *out, size_t n,
                        ct_err_t *e) {
    size_t len = strlen(path);
    int bundled = config_dir && !strchr(path, '/') &&
                  !(len >= 5 && strcmp(path + len - 5, ".json") == 0) && access(path, F_OK) != 0;
    return bundled ? ct_path_fmt(out, n, e, "%s/%s.json", config_dir, path)
                   : ct_path_fmt(out, n, e, "%s", path);
}

/* Reads the whole file at `path` into a malloc'd NUL-terminated string (caller frees). */
static int read_text(const char *path, const char *asked, char **text, ct_err_t *e) {
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT)
        return CT_ERR(e, CT_ENOENT,
                      "config %.300s not found%s%.300s; bundled configs: %s (by name, e.g. "
                      "--config tiny), or give the path of a .json file",
                      asked, strcmp(asked, path) ? " (looked for " : "",
                      strcmp(asked, path) ? path : "", BUNDLED);
    if (!f) return CT_ERR(e, CT_EIO, "cannot open config %.300s: %s", path, strerror(errno));
    int rc = 0;
    struct stat st;
    size_t cap = MAX_FILE_BYTES + 1; /* a regular file needs its size; a pipe gets the limit */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_FILE_BYTES)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    if (!buf)
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading config %.300s", path);
    else if (ferror(f))
        rc = CT_ERR(e, CT_EIO, "cannot read config %.300s: %s", path, strerror(errno));
    else if (n == cap) /* full: over the limit, or a regular file that grew as we read it */
        rc = CT_ERR(e, CT_ECONFIG,
                    "config %.300s is over %d bytes (or grew as it was read): is it "
                    "really a config?",
                    path, MAX_FILE_BYTES);
    else if (memchr(buf, '\0', n))
        rc = CT_ERR(e, CT_ECONFIG, "config %.300s contains a NUL byte: not a JSON text", path);
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *text = buf;
    return 0;
}

static int parse_json(const char *text, const char *path, cJSON **root, ct_err_t *e) {
    const char *end = NULL;
    *root = cJSON_ParseWithOpts(text, &end, 1);
    if (*root) return 0;
    int line = 1, col = 1;
    const char *start = text; /* of the line with the error */
    for (const char *p = text; end && p < end && *p; p++) {
        col = *p == '\n' ? 1 : col + 1;
        line += *p == '\n';
        start = *p == '\n' ? p + 1 : start;
    }
    char line_text[48], shown[48];
    start += strspn(start, " \t");
    snprintf(line_text, sizeof line_text, "%.*s", (int)strcspn(start, "\r\n"), start);
    printable(line_text, shown, sizeof shown);
    return CT_ERR(e, CT_ECONFIG,
                  "%.300s:%d:%d: invalid JSON in the line '%s' (a missing comma, quote or brace, "
                  "or a trailing comma?)",
                  path, line, col, shown);
}

/* The defaults, then root (may be NULL), then the overrides, then the cross-key rules; every
 * problem collected and reported at once, naming `file`. */
static int load_root(ct_config_t *cfg, const cJSON *root, const char *file,
                     const char *const *sets, int n_set, ct_err_t *e) {
    problems_t pr = {.len = 0};
    ct_config_defaults(cfg);
    if (root) apply_root(cfg, root, &pr);
    for (int i = 0; i < n_set; i++) CT_TRY(apply_set(cfg, sets[i], &pr, e));
    check_cross(cfg, &pr);
    if (pr.count == 0) return 0;
    char more[48] = "";
    if (pr.shown < pr.count)
        snprintf(more, sizeof more, "\n  ... and %d more", pr.count - pr.shown);
    return CT_ERR(e, CT_ECONFIG, "invalid config %.100s: %d problem%s:%s%s", file, pr.count,
                  pr.count > 1 ? "s" : "", pr.text, more);
}

int ct_config_load(ct_config_t *cfg, const char *path, const char *config_dir,
                   const char *const *sets, int n_set, ct_err_t *e) {
    int rc = 0;
    char file[CT_PATH_MAX] = "--set", *text = NULL;
    cJSON *root = NULL;
    ct_config_defaults(cfg);
    CT_TRY_GOTO(check_schema(e), out);
    if (path) {
        CT_TRY_GOTO(resolve_path(path, config_dir, file, sizeof file, e), out);
        CT_TRY_GOTO(read_text(file, path, &text, e), out);
        CT_TRY_GOTO(parse_json(text, file, &root, e), out);
    }
    rc = load_root(cfg, root, file, sets, n_set, e);
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int ct_config_add_set(const char **sets, int *n, int max, const char *set, ct_err_t *e) {
    if (*n == max) return CT_ERR(e, CT_EINVAL, "more than %d --set options", max);
    sets[(*n)++] = set;
    return 0;
}

int ct_config_load_text(ct_config_t *cfg, const char *text, const char *name,
                        const char *const *sets, int n_set, ct_err_t *e) {
    cJSON *root = NULL;
    CT_TRY(check_schema(e));
    CT_TRY(parse_json(text, name, &root, e));
    int rc = load_root(cfg, root, name, sets, n_set, e);
    cJSON_Delete(root);
    return rc;
}

/* ---- output ---- */

static int by_key(const void *a, const void *b) {
    return strcmp((*(const key_spec_t *const *)a)->key, (*(const key_spec_t *const *)b)->key);
}

char *ct_config_canonical(const ct_config_t *cfg, ct_err_t *e) {
    const key_spec_t *order[N_KEYS];
    for (int i = 0; i < N_KEYS; i++)
        order[i] = &SCHEMA[i];
    qsort(order, N_KEYS, sizeof order[0], by_key); /* "a.x" < "b.y": sections, then keys */
    char buf[4096], value[64];
    size_t w = 0;
    for (int i = 0; i < N_KEYS && w < sizeof buf; i++) {
        const char *key = order[i]->key;
        int sl = (int)section_len(key);
        if (i > 0 && strncmp(order[i - 1]->key, key, (size_t)sl + 1) == 0)
            w += snprintf(buf + w, sizeof buf - w, ",");
        else
            w += snprintf(buf + w, sizeof buf - w, "%s\"%.*s\":{", i ? "}," : "{", sl, key);
        format_value(cfg, order[i], value, sizeof value);
        if (w < sizeof buf)
            w += snprintf(buf + w, sizeof buf - w, "\"%s\":%s", key + sl + 1, value);
    }
    char *out = w < sizeof buf ? malloc(w + 4) : NULL; /* the schema's text is far below 4096 */
    if (!out)
        CT_ERR(e, CT_ENOMEM, "out of memory formatting the config");
    else
        snprintf(out, w + 4, "%.*s}}\n", (int)w, buf);
    return out;
}

int ct_config_sha256(const ct_config_t *cfg, char hex[CT_SHA256_HEX], ct_err_t *e) {
    char *text = ct_config_canonical(cfg, e);
    if (!text) return CT_ENOMEM;
    ct_sha256_hex(text, strlen(text), hex);
    free(text);
    return 0;
}

int ct_config_diff(const ct_config_t *a, const ct_config_t *b, unsigned allowed, char *out,
                   size_t n) {
    int count = 0;
    size_t used = 0;
    if (n) out[0] = '\0';
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec_t *k = &SCHEMA[i];
        if ((k->change & allowed) || get_value(a, k) == get_value(b, k)) continue;
        char va[64], vb[64];
        format_value(a, k, va, sizeof va);
        format_value(b, k, vb, sizeof vb);
        count++;
        if (used < n)
            used += (size_t)snprintf(out + used, n - used, "\n  %s: was %s, now %s", k->key, va, vb);
    }
    return count;
}

void ct_config_print_help(FILE *out) {
    static const char *const type_names[] = {"int", "int64", "uint64", "float", "bool", "enum"};
    ct_config_t def;
    ct_config_defaults(&def);
    fprintf(out,
            "Config keys. A config is a JSON object with sections; every key has a default,\n"
            "so {} is valid. --set section.key=value overrides one key (the value is JSON,\n"
            "or a plain string: --set train.schedule=linear). Ranges: [ ] include the\n"
            "bound, ( ) exclude it. Bundled configs: %s.\n\n",
            BUNDLED);
    for (int i = 0; i < N_KEYS; i++) {
        char value[64], allowed[96];
        format_value(&def, &SCHEMA[i], value, sizeof value);
        format_allowed(&SCHEMA[i], allowed, sizeof allowed);
        const char *when = SCHEMA[i].change & CT_CHANGE_ATTACHED
                               ? " [may change on resume; an attached worker may set it]"
                           : SCHEMA[i].change & CT_CHANGE_RESUME ? " [may change on resume]"
                                                                  : "";
        fprintf(out, "  %-26s %-6s default %-9s %s\n      %s%s\n", SCHEMA[i].key,
                type_names[SCHEMA[i].kind], value, allowed, SCHEMA[i].help, when);
    }
    fprintf(out, "\nKeys not marked [may change on resume] are fixed when a run starts: resuming "
                 "with\nanother value is refused.\n");
}
