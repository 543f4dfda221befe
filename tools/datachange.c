/* datachange.c — `cotrain add-data RUN_DIR MANIFEST` and `cotrain exclude RUN_DIR ...`: data
 * added to or excluded from a cluster run while it goes on (plan.h). Each asks through the run's
 * ledger (RUN_DIR/coordinator.db, whether or not its coordinator runs now): the request is checked
 * against the run's data and stored pending, and takes effect at the next checkpoint a group
 * commits, with a signed public record (data_added, data_excluded).
 *
 * Why documents are excluded by their shard: a shard is the unit the run hands out, commits and
 * verifies by hash; leaving a document out of it would make a new shard. So an opt-out removes
 * the shards that hold the documents from the rest of the run; the shards can be prepared again
 * without them (`cotrain prep --exclude`) and added back with `cotrain add-data`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "cotrain/config.h"
#include "cotrain/coord.h"
#include "cotrain/fsutil.h"
#include "cotrain/json.h"
#include "cotrain/ledger.h"
#include "cotrain/optout.h"

static void add_usage(FILE *f) {
    fprintf(f, "usage: cotrain add-data RUN_DIR MANIFEST --reason TEXT\n"
               "\n"
               "Adds the data of MANIFEST (a manifest.json, or its folder, made by `cotrain prep`\n"
               "with the run's tokenizer) to the run in RUN_DIR, whose coordinator (or embedded\n"
               "coordinator) keeps RUN_DIR/coordinator.db; it may be running or stopped. The\n"
               "request is checked (tokenizer, vocabulary, every shard file against its sha256,\n"
               "no shard the run has already) and waits for the next checkpoint a group commits:\n"
               "from there the new shards are read after the other shards of that epoch, and\n"
               "shuffled with all the others in the epochs after. The public log records it\n"
               "(data_added, with REASON). Leave the files where they are: the workers read them\n"
               "from that path (a cluster's shared storage).\n"
               "\n"
               "  --reason TEXT   why, for the public record (required)\n"
               "\n"
               "Exit codes: 0 asked, 2 refused (saying why) or bad usage, 1 a runtime failure.\n");
}

static void exclude_usage(FILE *f) {
    fprintf(
        f, "usage: cotrain exclude RUN_DIR (--shard ID | --doc ID | --list FILE)... --reason TEXT\n"
           "\n"
           "Takes data out of the rest of the run in RUN_DIR (see `cotrain add-data` for how a\n"
           "change is asked for and takes effect). From the next checkpoint a group commits,\n"
           "the shards named, and the shards that hold the documents named, are skipped: in\n"
           "that epoch after the shard being read, and in every epoch after. What was trained\n"
           "before stays in the checkpoints made before (`cotrain lineage` says which). A\n"
           "document is excluded with the shard holding it; prepare that data again without it\n"
           "(`cotrain prep --exclude`) and add it back with `cotrain add-data`. The public log\n"
           "records the shards and how many documents were asked for (data_excluded), never\n"
           "the documents' ids.\n"
           "\n"
           "  --shard ID      a shard of the run (repeatable)\n"
           "  --doc ID        a document id, as `cotrain prep` wrote it (repeatable)\n"
           "  --list FILE     an opt-out list (`cotrain prep --exclude` format): its document\n"
           "                  ids (content hashes match nothing here: the run keeps no texts)\n"
           "  --reason TEXT   why, for the public record (required)\n"
           "\n"
           "Exit codes: 0 asked, 2 refused (saying why) or bad usage, 1 a runtime failure.\n");
}

/* RUN_DIR's ledger path, refusing a volunteer run (its groups fetch their data at join: a change
 * would not reach them) and a directory without a ledger. */
static int run_ledger(const char *run, char *db, size_t cap, ct_err_t *e) {
    char cfg_path[CT_PATH_MAX];
    CT_TRY(ct_path_join(db, cap, run, CT_COORD_DB, e));
    if (access(db, F_OK) != 0)
        return CT_ERR(e, CT_EINVAL,
                      "%s has no %s: give the run directory of a coordinator (--out) or of a "
                      "worker without --coordinator",
                      run, CT_COORD_DB);
    CT_TRY(ct_path_join(cfg_path, sizeof cfg_path, run, "config.json", e));
    ct_config_t c;
    if (access(cfg_path, F_OK) == 0) {
        CT_TRY(ct_config_load(&c, cfg_path, NULL, NULL, 0, e));
        if (c.volunteer.enabled)
            return CT_ERR(e, CT_EINVAL,
                          "%s is a volunteer run: its groups fetch the run's data when they join, "
                          "so data cannot be added or excluded while it goes on",
                          run);
    }
    return 0;
}

static int ask(const char *what, const char *db, cJSON *req, const ct_log_t *lg) {
    ct_err_t e = {0};
    int64_t seq = 0;
    int rc = ct_ledger_request_change(db, req, &seq, &e);
    if (rc != 0) {
        ct_log(lg, CT_LOG_ERROR, "%s: %s", what, e.msg);
        return ct_exit_code(rc);
    }
    printf("change %lld asked for in %s: it takes effect at the next checkpoint a group commits "
           "(the public log then records it)\n",
           (long long)seq, db);
    return 0;
}

/* Every shard file of m checked against its sha256, with progress: nothing unverified joins. */
static int check_shards(const ct_manifest_t *m, ct_err_t *e) {
    for (int i = 0; i < m->n_shards; i++) {
        ct_shard_t s;
        int rc = ct_manifest_read_docs(&m->shards[i], &s, e);
        ct_shard_clear(&s);
        CT_TRY(rc);
        fprintf(stderr, "\rchecked %d of %d shard(s)", i + 1, m->n_shards);
    }
    fprintf(stderr, "\n");
    return 0;
}

static int64_t docs_of(const ct_manifest_t *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_shards; i++)
        n += m->shards[i].n_docs;
    return n;
}

int ct_cmd_add_data(int argc, char **argv, const ct_log_t *lg) {
    static const struct option opts[] = {
        {"reason", required_argument, 0, 'r'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *reason = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r') {
            reason = optarg;
        } else if (c == 'h') {
            add_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "add-data: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 2 || !reason || !reason[0]) {
        fprintf(stderr, "add-data: give RUN_DIR, MANIFEST and --reason (see --help)\n");
        return 2;
    }
    char db[CT_PATH_MAX];
    ct_err_t e = {0};
    ct_manifest_t *m = NULL;
    int rc = run_ledger(argv[optind], db, sizeof db, &e);
    if (rc == 0) rc = ct_manifest_load(&m, argv[optind + 1], &e);
    if (rc == 0) rc = check_shards(m, &e);
    char *abs = rc == 0 ? realpath(m->path, NULL) : NULL;
    cJSON *req = cJSON_CreateObject();
    if (rc == 0 && (!abs || !req || !cJSON_AddStringToObject(req, "kind", "add") ||
                    !cJSON_AddStringToObject(req, "manifest", abs) ||
                    !cJSON_AddStringToObject(req, "sha256", m->sha256) ||
                    !cJSON_AddNumberToObject(req, "shards", m->n_shards) ||
                    !cJSON_AddNumberToObject(req, "tokens", (double)m->n_tokens) ||
                    !cJSON_AddNumberToObject(req, "docs", (double)docs_of(m)) ||
                    !cJSON_AddStringToObject(req, "reason", reason)))
        rc = CT_ERR(&e, abs ? CT_ENOMEM : CT_EIO, "cannot build the request for %s", m->path);
    free(abs);
    if (rc != 0) {
        ct_log(lg, CT_LOG_ERROR, "add-data: %s", e.msg);
        cJSON_Delete(req);
        ct_manifest_destroy(&m);
        return ct_exit_code(rc);
    }
    printf("%s: %d shard(s), %lld token(s), %lld document(s)\n", m->path, m->n_shards,
           (long long)m->n_tokens, (long long)docs_of(m));
    rc = ask("add-data", db, req, lg);
    cJSON_Delete(req);
    ct_manifest_destroy(&m);
    return rc;
}

/* What exclude was asked for: --shard and --doc values, and a --list. */
typedef struct wanted {
    char **docs;
    int n_docs, cap_docs;
    char **shards;
    int n_shards, cap_shards;
    ct_optout_t *list;
} wanted_t;

static int push(char ***v, int *n, int *cap, const char *s, ct_err_t *e) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        char **p = realloc(*v, (size_t)c * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory");
        *v = p;
        *cap = c;
    }
    if (!((*v)[*n] = strdup(s))) return CT_ERR(e, CT_ENOMEM, "out of memory");
    ++*n;
    return 0;
}

/* The shards of the run (as it will be) holding the documents asked for, added to w's shards:
 * every --doc must be found, and some entry of a --list (*docs gets how many documents). */
static int shards_of_docs(const char *db, wanted_t *w, int64_t *docs, ct_err_t *e) {
    ct_plan_t *p = NULL;
    ct_manifest_t *base = NULL;
    *docs = 0;
    CT_TRY(ct_ledger_open_plan(db, &p, &base, e));
    char *found = calloc((size_t)w->n_docs + 1, 1);
    int rc = found ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory");
    int64_t n = ct_plan_shards(p);
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        ct_shard_t s;
        int hit = 0;
        rc = ct_manifest_read_docs(ct_plan_shard(p, i), &s, e);
        for (int64_t k = 0; rc == 0 && k < s.n_docs; k++) {
            int listed = w->list && ct_optout_match(w->list, s.doc_ids[k], NULL);
            for (int d = 0; d < w->n_docs; d++)
                if (!strcmp(s.doc_ids[k], w->docs[d])) listed = found[d] = 1;
            *docs += listed;
            hit |= listed;
        }
        ct_shard_clear(&s);
        if (rc == 0 && hit)
            rc = push(&w->shards, &w->n_shards, &w->cap_shards, ct_plan_shard(p, i)->id, e);
        fprintf(stderr, "\rsearched %lld of %lld shard(s)", (long long)i + 1, (long long)n);
    }
    fprintf(stderr, "\n");
    for (int d = 0; rc == 0 && d < w->n_docs; d++)
        if (!found[d])
            rc =
                CT_ERR(e, CT_EINVAL, "no shard of the run holds a document with id %s", w->docs[d]);
    if (rc == 0 && w->list) {
        int64_t entries = ct_optout_entries(w->list), matched = ct_optout_matched(w->list);
        if (matched == 0)
            rc = CT_ERR(e, CT_EINVAL,
                        "no entry of the list names a document of the run (content hashes "
                        "never match here: the run keeps no texts)");
        else if (matched < entries)
            fprintf(stderr,
                    "%lld of the list's %lld entries name no document of the run (content "
                    "hashes never match here: the run keeps no texts)\n",
                    (long long)(entries - matched), (long long)entries);
    }
    free(found);
    ct_plan_destroy(&p);
    ct_manifest_destroy(&base);
    return rc;
}

static void wanted_free(wanted_t *w) {
    ct_optout_destroy(&w->list);
    for (int i = 0; i < w->n_docs; i++)
        free(w->docs[i]);
    for (int i = 0; i < w->n_shards; i++)
        free(w->shards[i]);
    free(w->docs);
    free(w->shards);
}

int ct_cmd_exclude(int argc, char **argv, const ct_log_t *lg) {
    static const struct option opts[] = {
        {"shard", required_argument, 0, 's'}, {"doc", required_argument, 0, 'd'},
        {"list", required_argument, 0, 'l'},  {"reason", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *reason = NULL;
    wanted_t w = {0};
    ct_err_t e = {0};
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            rc = push(&w.shards, &w.n_shards, &w.cap_shards, optarg, &e);
        else if (c == 'd')
            rc = push(&w.docs, &w.n_docs, &w.cap_docs, optarg, &e);
        else if (c == 'l' && w.list)
            rc = CT_ERR(&e, CT_EINVAL, "give one --list (join the files into one)");
        else if (c == 'l')
            rc = ct_optout_load(&w.list, optarg, &e);
        else if (c == 'r')
            reason = optarg;
        else if (c == 'h') {
            exclude_usage(stdout);
            wanted_free(&w);
            return 0;
        } else {
            fprintf(stderr, "exclude: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            wanted_free(&w);
            return 2;
        }
    }
    if (rc == 0 &&
        (optind != argc - 1 || !reason || !reason[0] || (w.n_shards + w.n_docs == 0 && !w.list))) {
        fprintf(stderr, "exclude: give RUN_DIR, --reason and at least one --shard, --doc or "
                        "--list (see --help)\n");
        wanted_free(&w);
        return 2;
    }
    char db[CT_PATH_MAX];
    if (rc == 0) rc = run_ledger(argv[optind], db, sizeof db, &e);
    int asked_shards = w.n_shards;
    int64_t docs = 0;
    if (rc == 0 && (w.n_docs || w.list)) rc = shards_of_docs(db, &w, &docs, &e);
    cJSON *req = cJSON_CreateObject(), *ids = req ? cJSON_AddArrayToObject(req, "shards") : NULL;
    int ok = ids && cJSON_AddStringToObject(req, "kind", "exclude") &&
             cJSON_AddNumberToObject(req, "docs", (double)docs) &&
             cJSON_AddStringToObject(req, "reason", reason ? reason : "");
    for (int i = 0; ok && i < w.n_shards; i++) {
        int dup = 0; /* a shard named and holding a document, or holding two, once */
        for (int j = 0; j < i; j++)
            dup |= !strcmp(w.shards[i], w.shards[j]);
        ok = dup || cJSON_AddItemToArray(ids, cJSON_CreateString(w.shards[i]));
    }
    if (rc == 0 && !ok) rc = CT_ERR(&e, CT_ENOMEM, "out of memory");
    if (rc != 0) {
        ct_log(lg, CT_LOG_ERROR, "exclude: %s", e.msg);
        cJSON_Delete(req);
        wanted_free(&w);
        return ct_exit_code(rc);
    }
    printf("excluding %d shard(s)", cJSON_GetArraySize(ids));
    if (docs)
        printf(" (%d named, %d holding the %lld document(s) asked for)", asked_shards,
               w.n_shards - asked_shards, (long long)docs);
    printf("\n");
    rc = ask("exclude", db, req, lg);
    cJSON_Delete(req);
    wanted_free(&w);
    return rc;
}
