/* config.c — the config schema and everything driven by it: defaults, JSON parsing with full
 * validation, --set overrides, canonical output and help. One table lists every key once; no
 * key has code of its own except the cross-key checks at the end. */
#include "cotrain/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/hash.h"

typedef enum { K_INT, K_INT64, K_UINT64, K_FLOAT, K_BOOL, K_ENUM } kind_t;

typedef struct key_spec {
    const char *key; /* "section.name" */
    kind_t kind;
    size_t offset; /* into ct_config_t */
    double def, lo, hi;
    const char *const *names; /* K_ENUM: value names, NULL-terminated, index = value */
    const char *help;
} key_spec_t;

static const char *const schedule_names[] = {"cosine", "linear", "constant", NULL};

#define OFF(field) offsetof(ct_config_t, field)
#define I53 9007199254740992.0 /* 2^53: the largest integer a JSON double holds exactly */

/* Sorted by key, so canonical output and help come out in order. */
static const key_spec_t SCHEMA[] = {
    {"log.every", K_INT, OFF(log.every), 1, 1, 1e9, NULL, "write a metrics line every N steps"},
    {"model.d_model", K_INT, OFF(model.d_model), 768, 1, 65536, NULL, "channels C"},
    {"model.n_head", K_INT, OFF(model.n_head), 12, 1, 1024, NULL, "attention heads"},
    {"model.n_layer", K_INT, OFF(model.n_layer), 12, 1, 1024, NULL, "transformer blocks"},
    {"model.seq_len", K_INT, OFF(model.seq_len), 1024, 1, 1 << 20, NULL,
     "context length T (also the number of position embeddings)"},
    {"model.vocab_size", K_INT, OFF(model.vocab_size), 0, 0, 1 << 24, NULL,
     "vocabulary; 0 = the data tokenizer's; larger pads"},
    {"train.beta1", K_FLOAT, OFF(train.beta1), 0.9, 0, 0.999999, NULL, "AdamW beta1"},
    {"train.beta2", K_FLOAT, OFF(train.beta2), 0.95, 0, 0.999999, NULL, "AdamW beta2"},
    {"train.decay_bias_and_norm", K_BOOL, OFF(train.decay_bias_and_norm), 0, 0, 1, NULL,
     "also apply weight decay to biases and LayerNorm parameters"},
    {"train.eps", K_FLOAT, OFF(train.eps), 1e-8, 1e-30, 1, NULL, "AdamW epsilon"},
    {"train.global_batch", K_INT, OFF(train.global_batch), 8, 1, 1 << 24, NULL,
     "sequences per optimizer step, all ranks together"},
    {"train.grad_clip", K_FLOAT, OFF(train.grad_clip), 1.0, 0, 1e30, NULL,
     "clip the global gradient norm to this; 0 disables"},
    {"train.lr", K_FLOAT, OFF(train.lr), 6e-4, 0, 10, NULL, "peak learning rate"},
    {"train.micro_batch", K_INT, OFF(train.micro_batch), 8, 1, 1 << 20, NULL,
     "sequences per rank per micro-step (gradient accumulation fills global_batch)"},
    {"train.min_lr", K_FLOAT, OFF(train.min_lr), 6e-5, 0, 10, NULL,
     "learning rate at the end of the decay"},
    {"train.schedule", K_ENUM, OFF(train.schedule), CT_SCHED_COSINE, 0, 2, schedule_names,
     "decay after warmup: cosine, linear or constant"},
    {"train.seed", K_UINT64, OFF(train.seed), 1337, 0, I53, NULL,
     "seed of weight init and data order (integer up to 2^53)"},
    {"train.spike_guard", K_BOOL, OFF(train.spike_guard), 0, 0, 1, NULL,
     "skip updates whose loss or grad norm is a z-score outlier"},
    {"train.spike_window", K_INT, OFF(train.spike_window), 50, 5, 100000, NULL,
     "recent accepted steps the spike guard compares against"},
    {"train.spike_zscore", K_FLOAT, OFF(train.spike_zscore), 6.0, 1e-3, 1e6, NULL,
     "z-score above which the spike guard skips a step"},
    {"train.steps", K_INT64, OFF(train.steps), 1000, 1, 1e15, NULL,
     "optimizer steps of the whole run (fixes the schedule)"},
    {"train.warmup_steps", K_INT64, OFF(train.warmup_steps), 100, 0, 1e15, NULL,
     "linear warmup steps"},
    {"train.weight_decay", K_FLOAT, OFF(train.weight_decay), 0.1, 0, 10, NULL,
     "decoupled weight decay (matrices and embeddings)"},
};
enum { N_KEYS = sizeof SCHEMA / sizeof SCHEMA[0] };

static const key_spec_t *find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(SCHEMA[i].key, key)) return &SCHEMA[i];
    return NULL;
}

static void store(ct_config_t *cfg, const key_spec_t *k, double v) {
    char *p = (char *)cfg + k->offset;
    switch (k->kind) {
    case K_INT: *(int *)p = (int)v; break;
    case K_INT64: *(int64_t *)p = (int64_t)v; break;
    case K_UINT64: *(uint64_t *)p = (uint64_t)v; break;
    case K_FLOAT: *(double *)p = v; break;
    case K_BOOL: *(int *)p = v != 0; break;
    case K_ENUM: *(ct_schedule_t *)p = (ct_schedule_t)(int)v; break;
    }
}

static double fetch(const ct_config_t *cfg, const key_spec_t *k) {
    const char *p = (const char *)cfg + k->offset;
    switch (k->kind) {
    case K_INT: return *(const int *)p;
    case K_INT64: return (double)*(const int64_t *)p;
    case K_UINT64: return (double)*(const uint64_t *)p;
    case K_FLOAT: return *(const double *)p;
    case K_BOOL: return *(const int *)p;
    case K_ENUM: return *(const ct_schedule_t *)p;
    }
    return 0;
}

void ct_config_defaults(ct_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_KEYS; i++) store(cfg, &SCHEMA[i], SCHEMA[i].def);
}

/* Problems accumulate as lines in e->msg; the count decides the result. */
typedef struct problems {
    int count;
    char text[CT_ERR_MSG_MAX];
} problems_t;

__attribute__((format(printf, 2, 3))) static void problem(problems_t *pr, const char *fmt, ...) {
    size_t used = strlen(pr->text);
    pr->count++;
    if (used + 2 >= sizeof pr->text) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->text + used, sizeof pr->text - used, fmt, ap);
    va_end(ap);
    used = strlen(pr->text);
    if (used + 1 < sizeof pr->text) strcat(pr->text, "\n");
}

static const char *kind_name(kind_t kind) {
    switch (kind) {
    case K_INT:
    case K_INT64:
    case K_UINT64: return "an integer";
    case K_FLOAT: return "a number";
    case K_BOOL: return "true or false";
    case K_ENUM: return "a string";
    }
    return "?";
}

static void describe(const cJSON *item, char *buf, size_t n) {
    char *s = cJSON_PrintUnformatted(item);
    snprintf(buf, n, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
}

static void allowed_names(const key_spec_t *k, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; k->names[i]; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s\"%s\"", i ? ", " : "", k->names[i]);
}

/* Checks one JSON value against its key and stores it. */
static void apply_value(ct_config_t *cfg, const key_spec_t *k, const cJSON *item,
                        const char *origin, problems_t *pr) {
    char found[80], names[128];
    double v = 0;
    describe(item, found, sizeof found);
    if (k->kind == K_ENUM) {
        allowed_names(k, names, sizeof names);
        int idx = -1;
        for (int i = 0; cJSON_IsString(item) && k->names[i]; i++)
            if (!strcmp(item->valuestring, k->names[i])) idx = i;
        if (idx < 0) {
            problem(pr, "%s: %s = %s is not allowed; use one of %s", origin, k->key, found, names);
            return;
        }
        v = idx;
    } else if (k->kind == K_BOOL) {
        if (!cJSON_IsBool(item)) {
            problem(pr, "%s: %s = %s has the wrong type; expected true or false", origin, k->key,
                    found);
            return;
        }
        v = cJSON_IsTrue(item);
    } else {
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
            problem(pr, "%s: %s = %s has the wrong type; expected %s", origin, k->key, found,
                    kind_name(k->kind));
            return;
        }
        v = item->valuedouble;
        if (k->kind != K_FLOAT && v != floor(v)) {
            problem(pr, "%s: %s = %s has the wrong type; expected an integer", origin, k->key,
                    found);
            return;
        }
        if (v < k->lo || v > k->hi) {
            problem(pr, "%s: %s = %s is out of range; allowed [%.17g, %.17g]", origin, k->key,
                    found, k->lo, k->hi);
            return;
        }
    }
    store(cfg, k, v);
}

static void section_keys(const char *section, char *buf, size_t n) {
    size_t len = strlen(section);
    buf[0] = '\0';
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(SCHEMA[i].key, section, len) && SCHEMA[i].key[len] == '.')
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     SCHEMA[i].key + len + 1);
}

static void apply_json(ct_config_t *cfg, const cJSON *root, const char *origin, problems_t *pr) {
    if (!cJSON_IsObject(root)) {
        problem(pr, "%s: the config must be a JSON object", origin);
        return;
    }
    const cJSON *sec;
    cJSON_ArrayForEach(sec, root) {
        char valid[512];
        section_keys(sec->string, valid, sizeof valid);
        if (!valid[0]) {
            problem(pr, "%s: unknown section \"%s\"; sections are log, model, train", origin,
                    sec->string);
            continue;
        }
        if (!cJSON_IsObject(sec)) {
            problem(pr, "%s: \"%s\" must be an object of keys (%s)", origin, sec->string, valid);
            continue;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, sec) {
            char full[160];
            snprintf(full, sizeof full, "%s.%s", sec->string, item->string);
            const key_spec_t *k = find_key(full);
            if (!k)
                problem(pr, "%s: unknown key \"%s\"; valid keys of \"%s\": %s", origin, full,
                        sec->string, valid);
            else
                apply_value(cfg, k, item, origin, pr);
        }
    }
}

/* Line and column of a byte offset, for JSON syntax errors. */
static void line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int read_text(const char *path, char **text, ct_err_t *e) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return CT_ERR(e, CT_ENOENT,
                      "cannot open config %s: %s (bundled configs: tiny, small, gpt2, "
                      "gpt2-medium, gpt2-large, gpt2-xl)",
                      path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap *= 2) : NULL;
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return CT_ERR(e, CT_ENOMEM, "config %s is too large (over 64 MiB?)", path);
    if (bad) {
        free(buf);
        return CT_ERR(e, CT_EIO, "error reading config %s", path);
    }
    buf[len] = '\0';
    *text = buf;
    return 0;
}

/* Bundled name ("tiny") → CONFIG_DIR/tiny.json, unless a file of that name exists here. */
static void resolve_path(const char *path, const char *config_dir, char *out, size_t n) {
    size_t len = strlen(path);
    FILE *f = fopen(path, "rb");
    int bundled = config_dir && !strchr(path, '/') &&
                  !(len > 5 && !strcmp(path + len - 5, ".json")) && !f;
    if (f) fclose(f);
    if (bundled)
        snprintf(out, n, "%s/%s.json", config_dir, path);
    else
        snprintf(out, n, "%s", path);
}

static int apply_file(ct_config_t *cfg, const char *path, problems_t *pr, ct_err_t *e) {
    char *text = NULL;
    CT_TRY(read_text(path, &text, e));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        int line, col;
        line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        problem(pr, "%s: invalid JSON near line %d, column %d", path, line, col);
    } else {
        apply_json(cfg, root, path, pr);
    }
    cJSON_Delete(root);
    free(text);
    return 0;
}

/* "train.lr=3e-4": the value as JSON, or as a string when it is not JSON. */
static void apply_set(ct_config_t *cfg, const char *set, problems_t *pr) {
    const char *eq = strchr(set, '=');
    if (!eq || eq == set) {
        problem(pr, "--set %s: expected key=value, e.g. --set train.lr=3e-4", set);
        return;
    }
    char key[160];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    const key_spec_t *k = find_key(key);
    if (!k) {
        problem(pr, "--set: unknown key \"%s\" (--help-config lists them)", key);
        return;
    }
    cJSON *item = cJSON_Parse(eq + 1);
    if (!item) item = cJSON_CreateString(eq + 1);
    if (!item) {
        problem(pr, "--set %s: out of memory", set);
        return;
    }
    apply_value(cfg, k, item, "--set", pr);
    cJSON_Delete(item);
}

static void cross_checks(const ct_config_t *c, problems_t *pr) {
    if (c->model.d_model % c->model.n_head)
        problem(pr, "model.d_model = %d must be a multiple of model.n_head = %d", c->model.d_model,
                c->model.n_head);
    if (c->train.global_batch % c->train.micro_batch)
        problem(pr, "train.global_batch = %d must be a multiple of train.micro_batch = %d",
                c->train.global_batch, c->train.micro_batch);
    if (c->train.min_lr > c->train.lr)
        problem(pr, "train.min_lr = %g must not exceed train.lr = %g", c->train.min_lr,
                c->train.lr);
    if (c->train.warmup_steps > c->train.steps)
        problem(pr, "train.warmup_steps = %lld must not exceed train.steps = %lld",
                (long long)c->train.warmup_steps, (long long)c->train.steps);
}

int ct_config_load(ct_config_t *cfg, const char *path, const char *config_dir,
                   const char *const *sets, int n_set, ct_err_t *e) {
    problems_t pr = {0};
    ct_config_defaults(cfg);
    if (path) {
        char resolved[4096];
        resolve_path(path, config_dir, resolved, sizeof resolved);
        CT_TRY(apply_file(cfg, resolved, &pr, e));
    }
    for (int i = 0; i < n_set; i++) apply_set(cfg, sets[i], &pr);
    if (pr.count == 0) cross_checks(cfg, &pr);
    if (pr.count == 0) return 0;
    size_t n = strlen(pr.text);
    if (n && pr.text[n - 1] == '\n') pr.text[n - 1] = '\0';
    return CT_ERR(e, CT_ECONFIG, "%d problem%s in the config:\n%s", pr.count,
                  pr.count > 1 ? "s" : "", pr.text);
}

/* Shortest %.Ng that reads back as the same double. */
static void format_double(double v, char *buf, size_t n) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) snprintf(buf + strlen(buf), n - strlen(buf), ".0");
}

char *ct_config_canonical(const ct_config_t *cfg, ct_err_t *e) {
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) {
        CT_ERR(e, CT_ENOMEM, "out of memory formatting the config");
        return NULL;
    }
    char section[32] = "";
    len += snprintf(out + len, cap - len, "{");
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec_t *k = &SCHEMA[i];
        const char *dot = strchr(k->key, '.');
        char value[64];
        double v = fetch(cfg, k);
        if (k->kind == K_FLOAT) format_double(v, value, sizeof value);
        else if (k->kind == K_BOOL) snprintf(value, sizeof value, "%s", v ? "true" : "false");
        else if (k->kind == K_ENUM) snprintf(value, sizeof value, "\"%s\"", k->names[(int)v]);
        else if (k->kind == K_UINT64)
            snprintf(value, sizeof value, "%llu", (unsigned long long)cfg->train.seed);
        else snprintf(value, sizeof value, "%.0f", v);
        int same = strlen(section) == (size_t)(dot - k->key) &&
                   !strncmp(section, k->key, (size_t)(dot - k->key));
        if (!same) {
            len += snprintf(out + len, cap - len, "%s\"%.*s\":{", section[0] ? "}," : "",
                            (int)(dot - k->key), k->key);
            snprintf(section, sizeof section, "%.*s", (int)(dot - k->key), k->key);
        } else {
            len += snprintf(out + len, cap - len, ",");
        }
        len += snprintf(out + len, cap - len, "\"%s\":%s", dot + 1, value);
    }
    snprintf(out + len, cap - len, "}}\n");
    return out;
}

int ct_config_sha256(const ct_config_t *cfg, char hex[CT_SHA256_HEX], ct_err_t *e) {
    char *text = ct_config_canonical(cfg, e);
    if (!text) return CT_ENOMEM;
    ct_sha256_hex(text, strlen(text), hex);
    free(text);
    return 0;
}

void ct_config_print_help(FILE *out) {
    fprintf(out, "Config keys (JSON: {\"model\": {...}, \"train\": {...}, \"log\": {...}}; "
                 "or --set key=value):\n\n");
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec_t *k = &SCHEMA[i];
        char def[64], range[160];
        if (k->kind == K_ENUM) {
            snprintf(def, sizeof def, "%s", k->names[(int)k->def]);
            allowed_names(k, range, sizeof range);
        } else if (k->kind == K_BOOL) {
            snprintf(def, sizeof def, "%s", k->def ? "true" : "false");
            snprintf(range, sizeof range, "true, false");
        } else {
            snprintf(def, sizeof def, "%.17g", k->def);
            snprintf(range, sizeof range, "[%.17g, %.17g]", k->lo, k->hi);
        }
        fprintf(out, "  %-27s %-8s default %-8s %s\n  %27s %s\n", k->key,
                k->kind == K_FLOAT ? "number" : k->kind == K_BOOL ? "bool"
                : k->kind == K_ENUM ? "string" : "integer",
                def, range, "", k->help);
    }
}
