/* verify.c — `cotrain verify PUBLIC_DIR [--key FINGERPRINT] [--ckpts DIR]`: checks a run's public
 * log as a third party would, from the files alone: run.json's signature, every line's canonical
 * form, sequence number, chain link, hash and signature, the head run.json names (a log cut short
 * is told), the lineage the records describe (each checkpoint on top of the head, no unit
 * committed twice, reverts that name exactly what they drop), and with --ckpts that every
 * committed checkpoint present hashes to its id. Stops at the first problem, naming the line or
 * file. Uses only core/ and ckpt/: never the model. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "cotrain/ckpt.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/publog.h"

/* The lineage as the records tell it: checkpoints in order, each with its step and the units it
 * committed ("<id>:<epoch>" strings and the line that committed each). */
typedef struct ckpt_rec {
    char id[CT_SHA256_HEX];
    int64_t step, line;
} ckpt_rec_t;

typedef struct unit_rec {
    char *name;   /* "<shard id>:<epoch>" */
    int ckpt;     /* index into the checkpoints */
    int64_t line; /* the line that committed it */
} unit_rec_t;

typedef struct lineage {
    ckpt_rec_t *ck;
    int n_ck, cap_ck;
    unit_rec_t *units;
    int n_units, cap_units;
    int64_t finished; /* run_finished's line, or 0 */
} lineage_t;

static void lineage_free(lineage_t *L) {
    for (int i = 0; i < L->n_units; i++)
        free(L->units[i].name);
    free(L->units);
    free(L->ck);
}

static int grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return 0;
    int cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, (size_t)cap2 * size);
    if (!q) return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

/* The unit `name` committed in the lineage now: its index, or -1. (A linear scan: logs of
 * millions of units would want a hash table.) */
static int find_unit(const lineage_t *L, const char *name) {
    for (int i = L->n_units - 1; i >= 0; i--)
        if (!strcmp(L->units[i].name, name)) return i;
    return -1;
}

static int commit(lineage_t *L, const cJSON *r, int64_t line, ct_err_t *e) {
    const char *id = ct_json_get_string(r, "id"), *parent = ct_json_get_string(r, "parent");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(r, "shards"), *s;
    int64_t step;
    if (!id || !ct_sha256_hex_valid(id) || !parent || !cJSON_IsArray(shards) ||
        !ct_json_get_uint53(r, "step", &step))
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: a checkpoint_committed record without a valid "
                      "id, parent, step or shards",
                      (long long)line);
    const char *head = L->n_ck ? L->ck[L->n_ck - 1].id : "";
    if (strcmp(parent, head) != 0)
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: checkpoint %.16s... names parent %.16s..., but "
                      "the head is %.16s...: not on top of the lineage",
                      (long long)line, id, parent[0] ? parent : "(none)",
                      head[0] ? head : "(none)");
    if (grow((void **)&L->ck, &L->cap_ck, L->n_ck + 1, sizeof *L->ck))
        return CT_ERR(e, CT_ENOMEM, "out of memory");
    ckpt_rec_t *c = &L->ck[L->n_ck++];
    snprintf(c->id, sizeof c->id, "%s", id);
    c->step = step;
    c->line = line;
    cJSON_ArrayForEach(s, shards) {
        if (!cJSON_IsString(s) || !strchr(s->valuestring, ':'))
            return CT_ERR(e, CT_ECORRUPT, "line %lld: a shard that is not \"<id>:<epoch>\"",
                          (long long)line);
        int k = find_unit(L, s->valuestring);
        if (k >= 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: shard %s committed twice (first on line "
                          "%lld): the lineage holds it once",
                          (long long)line, s->valuestring, (long long)L->units[k].line);
        if (grow((void **)&L->units, &L->cap_units, L->n_units + 1, sizeof *L->units))
            return CT_ERR(e, CT_ENOMEM, "out of memory");
        unit_rec_t *u = &L->units[L->n_units];
        if (!(u->name = strdup(s->valuestring))) return CT_ERR(e, CT_ENOMEM, "out of memory");
        u->ckpt = L->n_ck - 1;
        u->line = line;
        L->n_units++;
    }
    return 0;
}

static int revert(lineage_t *L, const cJSON *r, int64_t line, ct_err_t *e) {
    const char *to = ct_json_get_string(r, "to");
    const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(r, "dropped");
    int k = -1;
    for (int i = 0; to && i < L->n_ck; i++)
        if (!strcmp(L->ck[i].id, to)) k = i;
    if (k < 0 || !cJSON_IsArray(dropped) || cJSON_GetArraySize(dropped) != L->n_ck - 1 - k)
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: a revert to %.16s..., which is not in the "
                      "lineage, or that does not name every checkpoint after it",
                      (long long)line, to ? to : "(none)");
    int i = k + 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, dropped) {
        if (!cJSON_IsString(d) || strcmp(d->valuestring, L->ck[i].id) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: the revert drops %.16s..., the lineage has "
                          "%.16s... there",
                          (long long)line, cJSON_IsString(d) ? d->valuestring : "?", L->ck[i].id);
        i++;
    }
    int n = 0; /* the units of the dropped checkpoints leave the lineage */
    for (int u = 0; u < L->n_units; u++) {
        if (L->units[u].ckpt > k) {
            free(L->units[u].name);
            continue;
        }
        L->units[n++] = L->units[u];
    }
    L->n_units = n;
    L->n_ck = k + 1;
    return 0;
}

/* The checks of one record's type on the lineage. */
static int apply(lineage_t *L, const cJSON *r, int64_t line, const ct_publog_head_t *h,
                 ct_err_t *e) {
    const char *type = ct_json_get_string(r, "type");
    if (!strcmp(type, "run_started")) {
        const char *d = ct_json_get_string(r, "data_sha256");
        if (line != 1 || !d || strcmp(d, h->data_sha256) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: run_started must be the first record and "
                          "name run.json's data (%.16s...)",
                          (long long)line, h->data_sha256);
        return 0;
    }
    if (line == 1)
        return CT_ERR(e, CT_ECORRUPT, "line 1 is a %s record: a log begins with run_started", type);
    if (!strcmp(type, "checkpoint_committed")) return commit(L, r, line, e);
    if (!strcmp(type, "checkpoints_reverted")) return revert(L, r, line, e);
    if (!strcmp(type, "run_finished")) L->finished = line;
    return 0;
}

/* --ckpts DIR: each checkpoint of the lineage present in DIR verifies and has the log's id. */
static int check_ckpts(const lineage_t *L, const char *dir, int *verified, int *absent,
                       ct_err_t *e) {
    for (int i = 0; i < L->n_ck; i++) {
        char path[CT_PATH_MAX];
        CT_TRY(ct_path_fmt(path, sizeof path, e, "%s/ckpt-%08lld", dir, (long long)L->ck[i].step));
        FILE *f = fopen(path, "r");
        if (!f) {
            (*absent)++;
            continue;
        }
        fclose(f);
        ct_ckpt_info_t info;
        ct_err_t why = {0};
        if (ct_ckpt_verify(path, &info, &why) != 0)
            return CT_ERR(e, CT_ECORRUPT, "%s does not verify: %s", path, why.msg);
        if (strcmp(info.id, L->ck[i].id) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "%s has id %.16s..., the log commits %.16s... for step "
                          "%lld (line %lld): the checkpoint was replaced",
                          path, info.id, L->ck[i].id, (long long)L->ck[i].step,
                          (long long)L->ck[i].line);
        (*verified)++;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: cotrain verify PUBLIC_DIR [--key FINGERPRINT] [--ckpts DIR]\n"
            "\n"
            "Checks a run's public log (PUBLIC_DIR/log.jsonl and run.json, as the coordinator\n"
            "writes them) from the files alone: run.json's signature; every line's canonical\n"
            "form, sequence number, link to the line before, hash and Ed25519 signature by the\n"
            "run's key; that the log reaches the head run.json signed (nothing cut off the end);\n"
            "and the lineage the records describe: each checkpoint committed on top of the one\n"
            "before, no unit of data (shard, epoch) committed twice, reverts that drop exactly\n"
            "the checkpoints after their target.\n"
            "\n"
            "  --key FP      the run's key fingerprint (16 hex digits, from its run.json or the\n"
            "                coordinator's log): a log signed by any other key is refused, also\n"
            "                one re-signed whole\n"
            "  --ckpts DIR   also verify every committed checkpoint of the lineage found in DIR\n"
            "                (RUN_DIR/checkpoints): its files against its MANIFEST, its id\n"
            "                against the log\n"
            "\n"
            "Prints a summary. Exit codes: 0 verified, 2 a problem (the first one, naming its\n"
            "line or file) or bad usage, 1 a runtime failure.\n");
}

int ct_cmd_verify(int argc, char **argv, const ct_log_t *lg) {
    static const struct option opts[] = {{"key", required_argument, 0, 'k'},
                                         {"ckpts", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *pin = NULL, *ckpts = NULL;
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'k')
            pin = optarg;
        else if (c == 'c')
            ckpts = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "verify: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "verify: give one PUBLIC_DIR (see --help)\n");
        return 2;
    }
    const char *dir = argv[optind];
    char head_path[CT_PATH_MAX], log_path[CT_PATH_MAX], fp[CT_PUBLOG_FP];
    ct_err_t e = {0};
    ct_publog_head_t h;
    lineage_t L = {0};
    int rc = ct_path_join(head_path, sizeof head_path, dir, "run.json", &e);
    if (rc == 0) rc = ct_path_join(log_path, sizeof log_path, dir, "log.jsonl", &e);
    if (rc == 0) rc = ct_publog_head_read(head_path, &h, &e);
    if (rc == 0) ct_publog_fingerprint(h.pk, fp);
    if (rc == 0 && pin && strcmp(pin, fp) != 0)
        rc = CT_ERR(&e, CT_ECORRUPT,
                    "%s is signed by key %s, not %s (the key given with --key): "
                    "another key signed this copy",
                    head_path, fp, pin);
    FILE *f = rc == 0 ? fopen(log_path, "r") : NULL;
    if (rc == 0 && !f) rc = CT_ERR(&e, CT_ENOENT, "cannot open %s", log_path);
    int64_t seq = 0, at_head = 0;
    char prev[CT_SHA256_HEX] = "", *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {
            rc = CT_ERR(&e, CT_ECORRUPT, "%s line %lld is cut off (no newline at its end)",
                        log_path, (long long)seq + 1);
            break;
        }
        cJSON *r = NULL;
        ct_err_t why = {0};
        if (ct_publog_check(line, (size_t)n - 1, h.pk, &seq, prev, &r, &why) != 0) {
            rc = CT_ERR(&e, CT_ECORRUPT, "%s line %lld: %s", log_path, (long long)seq + 1, why.msg);
            break;
        }
        rc = apply(&L, r, seq, &h, &why);
        if (rc != 0) rc = CT_ERR(&e, rc, "%s %s", log_path, why.msg);
        if (seq == h.seq && strcmp(prev, h.hash) == 0) at_head = seq;
        cJSON_Delete(r);
    }
    free(line);
    if (f) fclose(f);
    if (rc == 0 && h.seq > 0 && at_head != h.seq)
        rc = CT_ERR(&e, CT_ECORRUPT,
                    "%s ends at seq %lld, but run.json's signed head is seq %lld "
                    "(%.16s...): lines were cut off the end, or replaced",
                    log_path, (long long)seq, (long long)h.seq, h.hash);
    int verified = 0, absent = 0;
    if (rc == 0 && ckpts) rc = check_ckpts(&L, ckpts, &verified, &absent, &e);
    if (rc == 0) {
        printf("verified %s: %lld record(s), seq 1..%lld, chained and signed by key %s%s\n", dir,
               (long long)seq, (long long)seq, fp, pin ? " (the pinned key)" : "");
        if (seq > h.seq)
            printf("  %lld record(s) after the head run.json signed (seq %lld): written just "
                   "before a stop\n",
                   (long long)(seq - h.seq), (long long)h.seq);
        if (L.n_ck)
            printf("  lineage: %d checkpoint(s), head %s (step %lld); %d unit(s) of data "
                   "committed, each once\n",
                   L.n_ck, L.ck[L.n_ck - 1].id, (long long)L.ck[L.n_ck - 1].step, L.n_units);
        else
            printf("  lineage: no checkpoint committed yet\n");
        if (L.finished) printf("  run finished (line %lld)\n", (long long)L.finished);
        if (ckpts)
            printf("  checkpoints in %s: %d verified against their ids, %d not present\n", ckpts,
                   verified, absent);
    } else {
        ct_log(lg, CT_LOG_ERROR, "verify: %s", e.msg);
    }
    lineage_free(&L);
    return ct_exit_code(rc);
}
