/* history.c — a public log read back and checked, and the lineage it describes (see history.h). */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cotrain/fsutil.h"
#include "cotrain/json.h"

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

int ct_history_find_unit(const ct_history_t *h, const char *name) {
    /* a linear scan: a lineage of millions of units would want a hash table */
    for (int i = h->n_units - 1; i >= 0; i--)
        if (!strcmp(h->units[i].name, name)) return i;
    return -1;
}

/* Which of added[0..n) (manifest files or their folders) has sha256 `sha`: into *found (NULL:
 * none). */
static int find_added(const char *const *added, int n, const char *sha, const char **found,
                      ct_err_t *e) {
    *found = NULL;
    for (int i = 0; i < n && !*found; i++) {
        char *buf = NULL, hex[CT_SHA256_HEX], path[CT_PATH_MAX];
        size_t len = 0;
        struct stat st;
        int dir = stat(added[i], &st) == 0 && S_ISDIR(st.st_mode);
        CT_TRY(ct_path_fmt(path, sizeof path, e, dir ? "%s/manifest.json" : "%s", added[i]));
        CT_TRY(ct_read_file(path, &buf, &len, e));
        ct_sha256_hex(buf, len, hex);
        free(buf);
        if (!strcmp(hex, sha)) *found = added[i];
    }
    return 0;
}

int ct_history_changes(const ct_history_t *h, const char *const *added, int n_added, cJSON **out,
                       ct_err_t *e) {
    cJSON *all = cJSON_Duplicate(h->changes, 1), *c;
    int rc = all ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory");
    cJSON_ArrayForEach(c, all) {
        const char *sha = ct_json_get_string(c, "sha256"), *found = NULL;
        if (rc != 0 || !sha) continue; /* an exclusion: as the log has it */
        rc = find_added(added, n_added, sha, &found, e);
        if (rc == 0 && !found)
            rc = CT_ERR(e, CT_EINVAL,
                        "the run added data with manifest sha256 %.16s... (data_added, epoch "
                        "%lld): give that manifest with --added MANIFEST",
                        sha, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "epoch")));
        if (rc == 0 && !ct_json_add_owned(c, "manifest", cJSON_CreateString(found)))
            rc = CT_ERR(e, CT_ENOMEM, "out of memory");
    }
    if (rc != 0) cJSON_Delete(all);
    *out = rc == 0 ? all : NULL;
    return rc;
}

static int commit(ct_history_t *h, const cJSON *r, int64_t line, ct_err_t *e) {
    const char *id = ct_json_get_string(r, "id"), *parent = ct_json_get_string(r, "parent");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(r, "shards"), *s;
    int64_t step;
    if (!id || !ct_sha256_hex_valid(id) || !parent || !cJSON_IsArray(shards) ||
        !ct_json_get_uint53(r, "step", &step))
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: a checkpoint_committed record without a valid id, parent, step "
                      "or shards",
                      (long long)line);
    const char *head = h->n_ck ? h->ck[h->n_ck - 1].id : "";
    if (strcmp(parent, head) != 0)
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: checkpoint %.16s... names parent %.16s..., but the head is "
                      "%.16s...: not on top of the lineage",
                      (long long)line, id, parent[0] ? parent : "(none)",
                      head[0] ? head : "(none)");
    if (grow((void **)&h->ck, &h->cap_ck, h->n_ck + 1, sizeof *h->ck))
        return CT_ERR(e, CT_ENOMEM, "out of memory");
    ct_hist_ckpt_t *c = &h->ck[h->n_ck++];
    const char *group = ct_json_get_string(r, "group");
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->group, sizeof c->group, "%s", group ? group : "?");
    c->key[0] = '\0';
    for (int i = 0; group && i < h->n_joined; i++)
        if (!strcmp(h->joined[i].group, group))
            snprintf(c->key, sizeof c->key, "%s", h->joined[i].key);
    c->step = step;
    c->line = line;
    cJSON_ArrayForEach(s, shards) {
        if (!cJSON_IsString(s) || !strchr(s->valuestring, ':'))
            return CT_ERR(e, CT_ECORRUPT, "line %lld: a shard that is not \"<id>:<epoch>\"",
                          (long long)line);
        int k = ct_history_find_unit(h, s->valuestring);
        if (k >= 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: shard %s committed twice (first on line %lld): the "
                          "lineage holds it once",
                          (long long)line, s->valuestring, (long long)h->units[k].line);
        if (grow((void **)&h->units, &h->cap_units, h->n_units + 1, sizeof *h->units))
            return CT_ERR(e, CT_ENOMEM, "out of memory");
        ct_hist_unit_t *u = &h->units[h->n_units];
        if (!(u->name = strdup(s->valuestring))) return CT_ERR(e, CT_ENOMEM, "out of memory");
        u->ckpt = h->n_ck - 1;
        u->line = line;
        h->n_units++;
    }
    return 0;
}

static int revert(ct_history_t *h, const cJSON *r, int64_t line, ct_err_t *e) {
    const char *to = ct_json_get_string(r, "to");
    const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(r, "dropped"), *d;
    int k = -1;
    for (int i = 0; to && i < h->n_ck; i++)
        if (!strcmp(h->ck[i].id, to)) k = i;
    if (k < 0 || !cJSON_IsArray(dropped) || cJSON_GetArraySize(dropped) != h->n_ck - 1 - k)
        return CT_ERR(e, CT_ECORRUPT,
                      "line %lld: a revert to %.16s..., which is not in the lineage, or that "
                      "does not name every checkpoint after it",
                      (long long)line, to ? to : "(none)");
    int i = k + 1;
    cJSON_ArrayForEach(d, dropped) {
        if (!cJSON_IsString(d) || strcmp(d->valuestring, h->ck[i].id) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: the revert drops %.16s..., the lineage has %.16s... there",
                          (long long)line, cJSON_IsString(d) ? d->valuestring : "?", h->ck[i].id);
        i++;
    }
    int n = 0; /* the units of the dropped checkpoints leave the lineage */
    for (int u = 0; u < h->n_units; u++) {
        if (h->units[u].ckpt > k) {
            free(h->units[u].name);
            continue;
        }
        h->units[n++] = h->units[u];
    }
    h->n_units = n;
    h->n_ck = k + 1;
    return 0;
}

/* group_joined: the key id the group joined with ("" without one), for its later commits. */
static int joined(ct_history_t *h, const cJSON *r, ct_err_t *e) {
    const char *group = ct_json_get_string(r, "group"), *key = ct_json_get_string(r, "key");
    if (!group) return 0;
    int i = 0;
    while (i < h->n_joined && strcmp(h->joined[i].group, group))
        i++;
    if (i == h->n_joined) {
        if (grow((void **)&h->joined, &h->cap_joined, h->n_joined + 1, sizeof *h->joined))
            return CT_ERR(e, CT_ENOMEM, "out of memory");
        snprintf(h->joined[h->n_joined++].group, sizeof h->joined[i].group, "%s", group);
    }
    snprintf(h->joined[i].key, sizeof h->joined[i].key, "%s", key ? key : "");
    return 0;
}

static int by_steps(const void *a, const void *b) {
    const ct_hist_credit_t *x = a, *y = b;
    return x->steps != y->steps ? (x->steps < y->steps) - (x->steps > y->steps)
                                : strcmp(x->who, y->who);
}

/* outer_step: each contributor's accepted delta, by key id when it has one. */
static int outer_credit(ct_history_t *h, const cJSON *r, int64_t line, ct_err_t *e) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "contributors")) {
        const char *group = ct_json_get_string(c, "group"), *key = ct_json_get_string(c, "key");
        int64_t steps = 0, tokens = 0;
        if (!group || !ct_json_get_uint53(c, "steps", &steps) ||
            !ct_json_get_uint53(c, "tokens", &tokens))
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: an outer_step contributor lacks group, steps or tokens",
                          (long long)line);
        char who[sizeof h->outer->who];
        snprintf(who, sizeof who, "%s %s", key ? "key" : "group", key ? key : group);
        int k = 0;
        while (k < h->n_outer && strcmp(h->outer[k].who, who))
            k++;
        if (k == h->n_outer) {
            if (grow((void **)&h->outer, &h->cap_outer, h->n_outer + 1, sizeof *h->outer))
                return CT_ERR(e, CT_ENOMEM, "out of memory");
            memset(&h->outer[k], 0, sizeof h->outer[k]);
            snprintf(h->outer[h->n_outer++].who, sizeof who, "%s", who);
        }
        h->outer[k].commits++;
        h->outer[k].steps += steps;
        h->outer[k].tokens += tokens;
    }
    return 0;
}

int ct_history_credit(const ct_history_t *h, ct_hist_credit_t **out, int *n, ct_err_t *e) {
    *out = NULL;
    *n = 0;
    if (h->n_outer) { /* volunteer mode: the checkpoints are the coordinator's */
        if (!(*out = calloc((size_t)h->n_outer, sizeof **out)))
            return CT_ERR(e, CT_ENOMEM, "out of memory");
        memcpy(*out, h->outer, (size_t)h->n_outer * sizeof **out);
        *n = h->n_outer;
        qsort(*out, (size_t)*n, sizeof **out, by_steps);
        return 0;
    }
    if (!h->n_ck) return 0;
    if (!(*out = calloc((size_t)h->n_ck, sizeof **out)))
        return CT_ERR(e, CT_ENOMEM, "out of memory");
    for (int i = 0; i < h->n_ck; i++) {
        const ct_hist_ckpt_t *c = &h->ck[i];
        char who[sizeof(*out)->who];
        snprintf(who, sizeof who, "%s %s", c->key[0] ? "key" : "group",
                 c->key[0] ? c->key : c->group);
        int k = 0;
        while (k < *n && strcmp((*out)[k].who, who))
            k++;
        if (k == *n) snprintf((*out)[(*n)++].who, sizeof who, "%s", who);
        (*out)[k].commits++;
        (*out)[k].steps += c->step - (i ? h->ck[i - 1].step : 0);
    }
    qsort(*out, (size_t)*n, sizeof **out, by_steps);
    return 0;
}

/* data_added / data_excluded: counted, the first epoch a change took effect in kept, and each
 * excluded shard with where it was excluded from. */
static int data_change(ct_history_t *h, const cJSON *r, const char *type, int64_t line,
                       ct_err_t *e) {
    int64_t epoch = -1, pos = 0;
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(r, "shards"), *s;
    int excl = !strcmp(type, "data_excluded");
    if (!ct_json_get_uint53(r, "epoch", &epoch) || !cJSON_IsArray(shards) ||
        (excl && !ct_json_get_uint53(r, "from_pos", &pos)))
        return CT_ERR(e, CT_ECORRUPT, "line %lld: %s without its epoch%s and shards",
                      (long long)line, type, excl ? ", from_pos" : "");
    if (epoch < h->changed_epoch) h->changed_epoch = epoch;
    const char *sha = ct_json_get_string(r, "data_sha256");
    if (!h->changes && !(h->changes = cJSON_CreateArray()))
        return CT_ERR(e, CT_ENOMEM, "line %lld: out of memory", (long long)line);
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToArray(h->changes, c)) {
        cJSON_Delete(c);
        return CT_ERR(e, CT_ENOMEM, "line %lld: out of memory", (long long)line);
    }
    int ok = cJSON_AddStringToObject(c, "kind", excl ? "exclude" : "add") &&
             cJSON_AddNumberToObject(c, "epoch", (double)epoch);
    if (ok && excl)
        ok = cJSON_AddNumberToObject(c, "pos", (double)pos) &&
             ct_json_add_owned(c, "shards", cJSON_Duplicate(shards, 1));
    else if (ok)
        ok = sha && cJSON_AddStringToObject(c, "sha256", sha) &&
             cJSON_AddNumberToObject(c, "shards", cJSON_GetArraySize(shards));
    if (!ok) return CT_ERR(e, CT_ENOMEM, "line %lld: out of memory", (long long)line);
    if (!excl) {
        h->added++;
        return 0;
    }
    h->excluded++;
    cJSON_ArrayForEach(s, shards) {
        if (!cJSON_IsString(s))
            return CT_ERR(e, CT_ECORRUPT, "line %lld: a shard that is not a string",
                          (long long)line);
        if (h->n_exclusions == h->cap_exclusions) {
            int cap = h->cap_exclusions ? 2 * h->cap_exclusions : 8;
            ct_hist_exclusion_t *p = realloc(h->exclusions, (size_t)cap * sizeof *p);
            if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory");
            h->exclusions = p;
            h->cap_exclusions = cap;
        }
        ct_hist_exclusion_t *x = &h->exclusions[h->n_exclusions++];
        snprintf(x->shard, sizeof x->shard, "%s", s->valuestring);
        x->epoch = epoch;
        x->pos = pos;
        x->line = line;
    }
    return 0;
}

/* The checks of one record's type on the lineage. */
static int apply(ct_history_t *h, const cJSON *r, int64_t line, ct_err_t *e) {
    const char *type = ct_json_get_string(r, "type");
    if (!strcmp(type, "run_started")) {
        const char *d = ct_json_get_string(r, "data_sha256");
        if (line != 1 || !d || strcmp(d, h->head.data_sha256) != 0)
            return CT_ERR(e, CT_ECORRUPT,
                          "line %lld: run_started must be the first record and name run.json's "
                          "data (%.16s...)",
                          (long long)line, h->head.data_sha256);
        return 0;
    }
    if (line == 1)
        return CT_ERR(e, CT_ECORRUPT, "line 1 is a %s record: a log begins with run_started", type);
    if (!strcmp(type, "checkpoint_committed")) return commit(h, r, line, e);
    if (!strcmp(type, "group_joined")) return joined(h, r, e);
    if (!strcmp(type, "checkpoints_reverted")) return revert(h, r, line, e);
    if (!strcmp(type, "outer_step")) return outer_credit(h, r, line, e);
    if (!strcmp(type, "run_finished")) h->finished = line;
    if (!strcmp(type, "data_excluded") || !strcmp(type, "data_added"))
        return data_change(h, r, type, line, e);
    return 0;
}

int ct_history_read(ct_history_t *h, const char *public_dir, const char *pin, ct_err_t *e) {
    char head_path[CT_PATH_MAX], log_path[CT_PATH_MAX];
    memset(h, 0, sizeof *h);
    h->changed_epoch = INT64_MAX;
    CT_TRY(ct_path_join(head_path, sizeof head_path, public_dir, "run.json", e));
    CT_TRY(ct_path_join(log_path, sizeof log_path, public_dir, "log.jsonl", e));
    CT_TRY(ct_publog_head_read(head_path, &h->head, e));
    ct_publog_fingerprint(h->head.pk, h->fingerprint);
    if (pin && strcmp(pin, h->fingerprint) != 0)
        return CT_ERR(e, CT_ECORRUPT,
                      "%s is signed by key %s, not %s (the key given with --key): another key "
                      "signed this copy",
                      head_path, h->fingerprint, pin);
    FILE *f = fopen(log_path, "r");
    if (!f) return CT_ERR(e, CT_ENOENT, "cannot open %s", log_path);
    int64_t at_head = 0;
    char prev[CT_SHA256_HEX] = "", *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {
            rc = CT_ERR(e, CT_ECORRUPT, "%s line %lld is cut off (no newline at its end)", log_path,
                        (long long)h->records + 1);
            break;
        }
        cJSON *r = NULL;
        ct_err_t why = {0};
        if (ct_publog_check(line, (size_t)n - 1, h->head.pk, &h->records, prev, &r, &why) != 0) {
            rc = CT_ERR(e, CT_ECORRUPT, "%s line %lld: %s", log_path, (long long)h->records + 1,
                        why.msg);
            break;
        }
        if (apply(h, r, h->records, &why) != 0)
            rc = CT_ERR(e, why.code, "%s %s", log_path, why.msg);
        if (h->records == h->head.seq && strcmp(prev, h->head.hash) == 0) at_head = h->records;
        cJSON_Delete(r);
    }
    free(line);
    fclose(f);
    if (rc == 0 && h->head.seq > 0 && at_head != h->head.seq)
        rc = CT_ERR(e, CT_ECORRUPT,
                    "%s ends at seq %lld, but run.json's signed head is seq %lld (%.16s...): "
                    "lines were cut off the end, or replaced",
                    log_path, (long long)h->records, (long long)h->head.seq, h->head.hash);
    return rc;
}

void ct_history_free(ct_history_t *h) {
    for (int i = 0; i < h->n_units; i++)
        free(h->units[i].name);
    free(h->units);
    free(h->ck);
    free(h->joined);
    free(h->outer);
    free(h->exclusions);
    cJSON_Delete(h->changes);
    memset(h, 0, sizeof *h);
}
