/* status.c — `cotrain status ENDPOINT`: asks a coordinator where the run stands and prints it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "cotrain/client.h"
#include "cotrain/proto.h"

static void usage(FILE *f) {
    fprintf(f, "usage: cotrain status ENDPOINT [--json] [--timeout MS] [--server-key KEY --key "
               "FILE]\n"
               "\n"
               "Asks the coordinator at ENDPOINT (as `cotrain-coordinator` printed it, e.g.\n"
               "tcp://127.0.0.1:5555) for the run's state: the head checkpoint, progress and\n"
               "ETA, the data's units (one shard in one epoch) by state, the groups (last\n"
               "contact, leases, standby) and each group's credit: the checkpoints of the lineage\n"
               "it committed, the steps they added and the tokens those trained. Changes nothing.\n"
               "  --json              print the coordinator's answer as one JSON object (for\n"
               "                      scripts and dashboards) instead of the summary\n"
               "  --timeout MS        how long to wait for the answer (default 5000)\n"
               "  --server-key KEY    the coordinator's public key (Z85, or its .pub file):\n"
               "                      speak CURVE, as the key pair in --key FILE (cotrain keygen)\n"
               "Exit codes: 0 answered, 1 no answer or a failure, 2 bad usage.\n");
}

static double num(const ct_msg_t *m, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int ct_cmd_status(int argc, char **argv, const ct_log_t *lg) {
    int timeout = 5000, bad = argc < 2, json = 0;
    const char *server_key = NULL, *key_file = NULL;
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    for (int i = 2; i < argc && !bad; i += 2) {
        if (!strcmp(argv[i], "--json"))
            json = 1, i--;
        else if (i + 1 >= argc)
            bad = 1;
        else if (!strcmp(argv[i], "--timeout"))
            timeout = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--server-key"))
            server_key = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key_file = argv[i + 1];
        else
            bad = 1;
    }
    if (bad || timeout <= 0 || !server_key != !key_file) {
        usage(stderr);
        return 2;
    }
    ct_err_t e = {0};
    ct_client_t *c = NULL;
    ct_keypair_t key;
    char pub[CT_Z85_KEY];
    if (server_key &&
        (ct_curve_public(server_key, pub, &e) != 0 || ct_curve_load(key_file, &key, &e) != 0)) {
        ct_log(lg, CT_LOG_ERROR, "status: %s", e.msg);
        return 2;
    }
    char *reply = NULL,
         *req = ct_msg_header(CT_MSG_STATUS, 1, cJSON_Parse("{\"group\":\"status\"}"));
    int rc = req ? 0 : CT_ERR(&e, CT_ENOMEM, "out of memory");
    if (rc == 0)
        rc = ct_client_create(&c, argv[1], server_key ? pub : NULL, server_key ? &key : NULL, &e);
    if (rc == 0) rc = ct_client_request(c, req, 1, timeout, &reply, NULL, &e);
    ct_msg_t m = {0};
    int64_t r;
    ct_proto_error_t code;
    if (rc == 0) rc = ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &e);
    if (rc == 0 && m.type != CT_MSG_OK) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(m.root, "message");
        rc = CT_ERR(&e, CT_EPROTO, "the coordinator refused: %s",
                    cJSON_IsString(msg) ? msg->valuestring : "(no message)");
    }
    if (rc == 0 && json) {
        char *text = cJSON_PrintUnformatted(m.root);
        if (text) printf("%s\n", text);
        rc = text ? 0 : CT_ERR(&e, CT_ENOMEM, "out of memory");
        free(text);
    } else if (rc == 0) {
        const cJSON *head = cJSON_GetObjectItemCaseSensitive(m.root, "head");
        const char *h = cJSON_IsString(head) && head->valuestring[0] ? head->valuestring : NULL;
        double total = num(&m, "steps"), hs = num(&m, "head_step"), eta = num(&m, "eta_s");
        char when[64] = "no ETA yet (needs two committed checkpoints)";
        if (eta >= 0) snprintf(when, sizeof when, "ETA %.0f s at the pace of the commits", eta);
        printf("coordinator %s\n"
               "  head checkpoint  %s (step %.0f)\n"
               "  progress         step %.0f of %.0f (%.1f%%), %s\n"
               "  data units       %.0f available, %.0f leased, %.0f done, %.0f committed "
               "(%.0f epoch(s) begun)\n",
               argv[1], h ? h : "(none yet)", hs, hs > 0 ? hs : 0, total,
               total > 0 && hs > 0 ? 100.0 * hs / total : 0.0, when, num(&m, "available"),
               num(&m, "leased"), num(&m, "done"), num(&m, "committed"), num(&m, "epochs"));
        if (num(&m, "changes_in_effect") > 0 || num(&m, "changes_pending") > 0)
            printf("  data changes     %.0f in effect, %.0f pending (cotrain add-data, cotrain "
                   "exclude: pending ones take effect at the next commit)\n",
                   num(&m, "changes_in_effect"), num(&m, "changes_pending"));
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(m.root, "groups"), *g;
        printf("  groups           %d\n", cJSON_GetArraySize(groups));
        cJSON_ArrayForEach(g, groups) {
            ct_msg_t one = {.root = (cJSON *)g};
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "group");
            printf("    %-20s last heard %.0f s ago, %.0f unit(s) leased%s\n",
                   cJSON_IsString(name) ? name->valuestring : "?", num(&one, "seen_s_ago"),
                   num(&one, "leased"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "standby")) ? ", standby" : "");
        }
        const cJSON *credit = cJSON_GetObjectItemCaseSensitive(m.root, "credit");
        int vol = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m.root, "volunteer"));
        if (cJSON_GetArraySize(credit) > 0)
            printf("  credit           %s\n",
                   vol ? "the deltas the outer steps accepted, by group (and key)"
                       : "the lineage's checkpoints by the group that committed them");
        cJSON_ArrayForEach(g, credit) {
            ct_msg_t one = {.root = (cJSON *)g};
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "group");
            const cJSON *key = cJSON_GetObjectItemCaseSensitive(g, "key");
            printf("    %-20s %.0f %s, %.0f step(s), %.0f tokens%s%s\n",
                   cJSON_IsString(name) ? name->valuestring : "?", num(&one, "commits"),
                   vol ? "delta(s)" : "checkpoint(s)", num(&one, "steps"), num(&one, "tokens"),
                   cJSON_IsString(key) ? ", key " : "",
                   cJSON_IsString(key) ? key->valuestring : "");
        }
    }
    ct_msg_clear(&m);
    free(reply);
    free(req);
    ct_client_destroy(&c);
    if (rc == 0) return 0;
    ct_log(lg, CT_LOG_ERROR, "status: %s", e.msg);
    return ct_exit_code(rc) == 2 ? 1 : ct_exit_code(rc);
}
