/* lineage.c — `cotrain lineage RUN_DIR DOC_ID [--data MANIFEST] [--json]`: where one document
 * went — the shard that holds it (every shard read and checked against the manifest), and for
 * each epoch the checkpoint of the run's verified lineage that committed that shard, the steps
 * that trained on the document's tokens, and whether it was excluded later. Uses only core/ and
 * data/: never the model.
 *
 * Why the steps can be computed rather than logged: the sample stream is a pure function of the
 * seed and the shards (DESIGN.md, invariant 1), and step s trains on samples [(s-1)B, sB) of it
 * (B = train.global_batch) whatever the world size, restarts and resumes. So the samples holding
 * the document's tokens, hence their steps, follow from the run's config (public/status.json,
 * checked against the config sha256 the signed log names), the manifest and the data added or
 * excluded while the run went on: the log's data_added and data_excluded records make the run's
 * plan (plan.h), whose epochs are the stream's order, given the added manifests (--added). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "cotrain/config.h"
#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/manifest.h"
#include "cotrain/plan.h"
#include "cotrain/shard.h"
#include "history.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: cotrain lineage RUN_DIR DOC_ID [--data MANIFEST] [--added MANIFEST]... "
           "[--json]\n"
           "\n"
           "Says where document DOC_ID (its id in the shards, as `cotrain prep` wrote it) went in\n"
           "the run in RUN_DIR: the shard holding it (each shard is read and checked against the\n"
           "manifest's sha256), and for each epoch the steps that trained on its tokens and the\n"
           "checkpoint that committed that shard (step, id, the steps since its parent)\n"
           "according to RUN_DIR/public/log.jsonl, which is verified as `cotrain verify` does\n"
           "first; and whether the document was excluded afterwards. The steps follow from the\n"
           "sample order (a function of the seed, the shards and the data added or excluded\n"
           "while the run went on, which the log lists) and the run's config\n"
           "(RUN_DIR/public/status.json, checked against the config sha256 the log names).\n"
           "\n"
           "  --data MANIFEST   the run's data (default: RUN_DIR/data/manifest.json, where an\n"
           "                    attached worker keeps what it fetched)\n"
           "  --added MANIFEST  data the run added while it went on (`cotrain add-data`),\n"
           "                    searched when the run's own data does not hold DOC_ID, and\n"
           "                    needed for the steps of the epochs from its addition on\n"
           "                    (repeatable; each must be named by a data_added record)\n"
           "  --json            one JSON object instead of text\n"
           "\n"
           "Exit codes: 0 found, 2 not in the data, a log that does not verify, or bad usage,\n"
           "1 a runtime failure.\n");
}

/* The shard holding doc: its index in m and the document's index and token range. 0 when none
 * does, 1 when found; an error for a shard that cannot be read. */
static int find_doc(const ct_manifest_t *m, const char *doc, int *shard, int64_t *d, int64_t *from,
                    int64_t *to, ct_err_t *e) {
    for (int i = 0; i < m->n_shards; i++) {
        ct_shard_t s;
        int rc = ct_manifest_read_docs(&m->shards[i], &s, e);
        for (int64_t k = 0; rc == 0 && k < s.n_docs; k++)
            if (!strcmp(s.doc_ids[k], doc)) {
                *shard = i, *d = k, *from = s.doc_offsets[k], *to = s.doc_offsets[k + 1];
                rc = 1;
            }
        ct_shard_clear(&s);
        if (rc != 0) return rc;
    }
    return 0;
}

/* The run's config from RUN_DIR/public/status.json into *c, when its sha256 is the one the
 * verified log names. 0 when it is; otherwise why not in e (the steps are then not given). */
static int run_config(const char *run, const ct_history_t *h, ct_config_t *c, ct_err_t *e) {
    char path[CT_PATH_MAX], sha[65], *text = NULL;
    size_t len = 0;
    CT_TRY(ct_path_join(path, sizeof path, run, "public/status.json", e));
    CT_TRY(ct_read_file(path, &text, &len, e));
    cJSON *o = cJSON_Parse(text);
    free(text);
    char *cfg = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "config"));
    cJSON_Delete(o);
    int rc = cfg ? ct_config_load_text(c, cfg, path, NULL, 0, e)
                 : CT_ERR(e, CT_ECORRUPT, "%s holds no config", path);
    free(cfg);
    if (rc == 0) rc = ct_config_sha256(c, sha, e);
    if (rc == 0 && strcmp(sha, h->head.config_sha256) != 0)
        rc = CT_ERR(e, CT_ECORRUPT, "the config in %s is not the one the log names (%.16s...)",
                    path, h->head.config_sha256);
    return rc;
}

/* The samples of the stream before each epoch: at[ep] for ep < n, extended on demand. The stream
 * is the plan's epochs in turn, each its units' windows in order, a skipped (excluded) unit
 * giving none. */
typedef struct epoch_starts {
    int64_t *at, n;
} epoch_starts_t;

/* The samples of epoch `epoch` before plan shard `shard`'s unit (-1: the whole epoch's). */
static int samples_before(const ct_plan_t *p, int64_t W, int64_t epoch, int64_t shard, int64_t *out,
                          ct_err_t *e) {
    int rc = 0;
    int64_t *order = NULL, sum = 0, len = ct_plan_epoch_len(p, epoch);
    CT_ALLOC(e, order, (size_t)ct_plan_shards(p), fail);
    ct_plan_order(p, epoch, order);
    for (int64_t q = 0; q < len && order[q] != shard; q++)
        if (!ct_plan_excluded(p, epoch, q, order[q]))
            sum += ct_plan_shard(p, order[q])->n_tokens / W;
    *out = sum;
fail:
    free(order);
    return rc;
}

/* The samples before epoch `epoch` into *out, from s (extended to it). */
static int epoch_start(const ct_plan_t *p, int64_t W, epoch_starts_t *s, int64_t epoch,
                       int64_t *out, ct_err_t *e) {
    if (epoch >= s->n) {
        int64_t *at = realloc(s->at, (size_t)(epoch + 1) * sizeof *at);
        if (!at) return CT_ERR(e, CT_ENOMEM, "out of memory for %lld epochs", (long long)epoch);
        s->at = at;
        for (; s->n <= epoch; s->n++) {
            int64_t len = 0;
            if (s->n > 0) CT_TRY(samples_before(p, W, s->n - 1, -1, &len, e));
            s->at[s->n] = s->n > 0 ? s->at[s->n - 1] + len : 0;
        }
    }
    *out = s->at[epoch];
    return 0;
}

/* The steps that trained on tokens [from, to) of plan shard `shard` in epoch `epoch`: the
 * samples of the stream that are windows overlapping them, each at step sample / B + 1; sorted
 * and each once, into a malloc'd *steps (*n of them). */
static int doc_steps(const ct_plan_t *p, const ct_config_t *c, epoch_starts_t *starts,
                     int64_t shard, int64_t epoch, int64_t from, int64_t to, int64_t **steps,
                     int *n, ct_err_t *e) {
    int64_t W = c->model.seq_len + 1, B = c->train.global_batch;
    const ct_manifest_shard_t *s = ct_plan_shard(p, shard);
    int64_t nw = s->n_tokens / W, *perm = NULL, before = 0, in_epoch = 0;
    *steps = NULL;
    *n = 0;
    int rc = 0;
    CT_ALLOC(e, perm, (size_t)(nw ? nw : 1), out);
    CT_ALLOC(e, *steps, (size_t)(nw ? nw : 1), out);
    if ((rc = epoch_start(p, W, starts, epoch, &before, e)) != 0 ||
        (rc = samples_before(p, W, epoch, shard, &in_epoch, e)) != 0)
        goto out;
    before += in_epoch;
    ct_data_window_order(c->train.seed, epoch, s->id, nw, perm);
    for (int64_t i = 0; i < nw; i++) /* the i-th window taken is window perm[i] */
        if (perm[i] * W < to && (perm[i] + 1) * W > from) {
            int64_t step = (before + i) / B + 1;
            int j = *n;
            while (j > 0 && (*steps)[j - 1] > step) /* insertion: a few windows at most */
                j--;
            if (j > 0 && (*steps)[j - 1] == step) continue; /* two windows in one step */
            memmove(*steps + j + 1, *steps + j, (size_t)(*n - j) * sizeof **steps);
            (*steps)[j] = step;
            (*n)++;
        }
out:
    free(perm);
    return rc;
}

/* The run's data plan into *out: base (the run's data) and every change the log lists, each
 * add's manifest found among added. */
static int run_plan(const ct_manifest_t *base, const ct_config_t *c, const ct_history_t *h,
                    const char *const *added, int n_added, ct_plan_t **out, ct_err_t *e) {
    cJSON *changes = NULL;
    CT_TRY(ct_plan_create(out, base, c->data.eval_shards, c->train.seed, e));
    int rc =
        cJSON_GetArraySize(h->changes) > 0 ? ct_history_changes(h, added, n_added, &changes, e) : 0;
    if (rc == 0 && changes) rc = ct_plan_apply(*out, changes, NULL, e);
    cJSON_Delete(changes);
    if (rc != 0) ct_plan_destroy(out);
    return rc;
}

/* The epoch the data_added record of manifest sha256 `sha` took effect in (-1: none). */
static int64_t added_in(const ct_history_t *h, const char *sha) {
    const cJSON *c;
    cJSON_ArrayForEach(c, h->changes) {
        const char *s = ct_json_get_string(c, "sha256");
        int64_t epoch;
        if (s && !strcmp(s, sha) && ct_json_get_uint53(c, "epoch", &epoch)) return epoch;
    }
    return -1;
}

/* Where the document is: the run's data, or data added while the run went on. */
typedef struct found {
    ct_manifest_t *base, *more; /* the run's data; the last added data searched (or NULL) */
    const ct_manifest_t *m;     /* base or more: the one holding the document */
    int64_t added_epoch;        /* m is more: the epoch its data_added took effect in; else -1 */
    int shard;                  /* its shard's index in m */
    int64_t d, from, to;        /* the document's index and tokens in that shard */
} found_t;

/* Loads the run's data and its verified log (the public folder's path into pub) and finds the
 * document: in the run's data, else in the added data (each named by a data_added record). */
static int locate(const char *run, const char *data, const char *doc, const char *const *added,
                  int n_added, ct_history_t *h, char pub[CT_PATH_MAX], found_t *f, ct_err_t *e) {
    char path[CT_PATH_MAX];
    if (!data) {
        CT_TRY(ct_path_join(path, sizeof path, run, "data/manifest.json", e));
        if (access(path, F_OK) != 0)
            return CT_ERR(e, CT_EINVAL,
                          "%s/data/manifest.json does not exist: give the run's data with "
                          "--data MANIFEST",
                          run);
        data = path;
    }
    CT_TRY(ct_manifest_load(&f->base, data, e));
    CT_TRY(ct_path_join(pub, CT_PATH_MAX, run, "public", e));
    CT_TRY(ct_history_read(h, pub, NULL, e));
    if (strcmp(f->base->sha256, h->head.data_sha256) != 0)
        return CT_ERR(e, CT_EINVAL,
                      "%s is not the run's data: its sha256 is %.16s..., the run's log names "
                      "%.16s...",
                      f->base->path, f->base->sha256, h->head.data_sha256);
    f->m = f->base;
    f->added_epoch = -1;
    int found = find_doc(f->base, doc, &f->shard, &f->d, &f->from, &f->to, e);
    for (int i = 0; found == 0 && i < n_added; i++) {
        ct_manifest_destroy(&f->more);
        CT_TRY(ct_manifest_load(&f->more, added[i], e));
        int64_t epoch = added_in(h, f->more->sha256);
        if (epoch < 0)
            return CT_ERR(e, CT_EINVAL,
                          "%s (sha256 %.16s...) is not data the run added (no data_added record "
                          "names it)",
                          f->more->path, f->more->sha256);
        found = find_doc(f->more, doc, &f->shard, &f->d, &f->from, &f->to, e);
        if (found == 1) f->m = f->more, f->added_epoch = epoch;
    }
    if (found < 0) return found;
    if (found == 0)
        return CT_ERR(e, CT_EINVAL, "no shard of the run's data%s holds a document with id %s",
                      n_added ? " (nor of the data added)" : "", doc);
    return 0;
}

/* The run's config, the plan the document's steps follow from and its shard's index in that
 * plan (*ps). Returns the first epoch whose steps are not known: INT64_MAX when all are, 0 when
 * none is (without the added data the run's own order holds until its first change); why then
 * says why. */
static int64_t steps_plan(const char *run, const ct_history_t *h, const found_t *f,
                          const char *const *added, int n_added, ct_config_t *cfg, ct_plan_t **plan,
                          int64_t *ps, ct_err_t *why) {
    if (run_config(run, h, cfg, why) != 0) return 0;
    if (f->m == f->base && f->shard >= f->base->n_shards - cfg->data.eval_shards) {
        CT_ERR(why, CT_EINVAL, "the shard is held out for evaluation");
        return 0;
    }
    int64_t known = INT64_MAX;
    if (run_plan(f->base, cfg, h, added, n_added, plan, why) != 0) {
        ct_err_t ignored = {0};
        known = h->changed_epoch;
        if (ct_plan_create(plan, f->base, cfg->data.eval_shards, cfg->train.seed, &ignored) != 0)
            return 0;
    }
    *ps = ct_plan_find(*plan, f->m->shards[f->shard].id);
    return *ps < 0 ? 0 : known; /* added data, not in a plan without it */
}

/* Prints what lineage found (text, or JSON): the document, each epoch its shard was committed in
 * with the steps that trained on it, whether it was excluded later. */
static int report(const char *run, const char *pub, const ct_history_t *h, const found_t *f,
                  const char *doc, const char *const *added, int n_added, int json, ct_err_t *e) {
    ct_config_t cfg;
    ct_plan_t *plan = NULL;
    ct_err_t why = {0};
    int64_t ps = -1, known_before = steps_plan(run, h, f, added, n_added, &cfg, &plan, &ps, &why);
    const char *sid = f->m->shards[f->shard].id;
    size_t idlen = strlen(sid);
    const ct_hist_exclusion_t *x = NULL; /* the shard's exclusion, if any */
    for (int i = 0; i < h->n_exclusions && !x; i++)
        if (!strcmp(h->exclusions[i].shard, sid)) x = &h->exclusions[i];
    if (json) {
        printf("{\"doc\":\"%s\",\"shard\":\"%s\",\"doc_index\":%lld,\"tokens\":[%lld,%lld],"
               "\"added\":%s,\"excluded\":%s,\"committed\":[",
               doc, sid, (long long)f->d, (long long)f->from, (long long)f->to,
               f->added_epoch >= 0 ? "true" : "false", x ? "true" : "false");
    } else {
        printf("document %s\n  in shard %s (shard %d of %s), document %lld, tokens %lld..%lld\n",
               doc, sid, f->shard, f->m->path, (long long)f->d, (long long)f->from,
               (long long)f->to - 1);
        if (f->added_epoch >= 0)
            printf("  data added while the run went on (data_added, in epoch %lld)\n",
                   (long long)f->added_epoch);
    }
    int rc = 0, n = 0;
    epoch_starts_t starts = {0};
    for (int u = 0; rc == 0 && u < h->n_units; u++) {
        const char *name = h->units[u].name;
        if (strncmp(name, sid, idlen) != 0 || name[idlen] != ':') continue;
        const ct_hist_ckpt_t *c = &h->ck[h->units[u].ckpt];
        int64_t first = h->units[u].ckpt > 0 ? h->ck[h->units[u].ckpt - 1].step + 1 : 1;
        int64_t epoch = strtoll(name + idlen + 1, NULL, 10), *steps = NULL;
        int n_steps = 0, known = epoch < known_before;
        if (known)
            rc = doc_steps(plan, &cfg, &starts, ps, epoch, f->from, f->to, &steps, &n_steps, e);
        char at[512] = "";
        for (int i = 0, w = 0; rc == 0 && known && i < n_steps && w < (int)sizeof at - 24; i++)
            w += snprintf(at + w, sizeof at - (size_t)w, "%s%lld", i ? (json ? "," : ", ") : "",
                          (long long)steps[i]);
        free(steps);
        if (rc != 0) break;
        if (json)
            printf("%s{\"epoch\":%lld,\"checkpoint\":\"%s\",\"step\":%lld,\"steps\":[%lld,%lld],"
                   "\"trained_at\":%s%s%s,\"line\":%lld}",
                   n ? "," : "", (long long)epoch, c->id, (long long)c->step, (long long)first,
                   (long long)c->step, known ? "[" : "null", at, known ? "]" : "",
                   (long long)h->units[u].line);
        else
            printf("  epoch %lld: trained at step(s) %s; committed by checkpoint %s (step %lld, "
                   "steps %lld..%lld since its parent, log line %lld)\n",
                   (long long)epoch, known ? at : "(unknown: see below)", c->id, (long long)c->step,
                   (long long)first, (long long)c->step, (long long)h->units[u].line);
        n++;
    }
    free(starts.at);
    ct_plan_destroy(&plan);
    if (rc != 0) return rc;
    if (json) {
        printf("]}\n");
        return 0;
    }
    if (!n) printf("  not in any committed checkpoint yet\n");
    if (n && known_before == 0)
        printf("  the exact steps are not known: %s\n", why.msg);
    else if (n && known_before != INT64_MAX)
        printf("  the exact steps are known before epoch %lld only: %s\n", (long long)known_before,
               why.msg);
    if (x)
        printf("  excluded later: yes, its shard from unit %lld of epoch %lld on (log line %lld)\n",
               (long long)x->pos, (long long)x->epoch, (long long)x->line);
    else
        printf("  excluded later: no\n");
    printf("  (the log %s verified: %lld record(s), key %s)\n", pub, (long long)h->records,
           h->fingerprint);
    return 0;
}

int ct_cmd_lineage(int argc, char **argv, const ct_log_t *lg) {
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"added", required_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *added[64];
    int json = 0, n_added = 0;
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'd')
            data = optarg;
        else if (c == 'a' && n_added < (int)(sizeof added / sizeof added[0]))
            added[n_added++] = optarg;
        else if (c == 'j')
            json = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lineage: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 2) {
        fprintf(stderr, "lineage: give RUN_DIR and DOC_ID (see --help)\n");
        return 2;
    }
    const char *run = argv[optind], *doc = argv[optind + 1];
    char pub[CT_PATH_MAX];
    ct_err_t e = {0};
    ct_history_t h = {0};
    found_t f = {0};
    int rc = locate(run, data, doc, added, n_added, &h, pub, &f, &e);
    if (rc == 0) rc = report(run, pub, &h, &f, doc, added, n_added, json, &e);
    if (rc != 0) ct_log(lg, CT_LOG_ERROR, "lineage: %s", e.msg);
    ct_manifest_destroy(&f.more);
    ct_manifest_destroy(&f.base);
    ct_history_free(&h);
    return rc != 0 ? ct_exit_code(rc) : 0;
}
