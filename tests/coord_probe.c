/* coord_probe.c — a test client of the coordinator protocol.
 *
 *   coord_probe ENDPOINT HEADER...   sends each JSON header in turn, prints each reply on a line
 *   coord_probe --loop ENDPOINT GROUP
 *                                    hello, then lease / shard_done pairs forever; a request
 *                                    that gets no answer is sent again with the same req (as a
 *                                    worker does across a coordinator crash); prints "done N"
 *                                    after each acknowledged shard_done (N counted from 1)
 * Exit status: 0, or 1 on a timeout (15 s) or an unexpected reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/client.h"
#include "cotrain/proto.h"

enum { TIMEOUT_MS = 15000, RETRY_MS = 500 };

static int64_t req_of(const char *text) {
    ct_msg_t m;
    int64_t req;
    ct_proto_error_t code;
    ct_err_t e = {0};
    if (ct_msg_parse(text, strlen(text), 0, &m, &req, &code, &e) == 0) ct_msg_clear(&m);
    return req;
}

/* Sends header until answered (retrying the same req), up to TIMEOUT_MS in all; returns the
 * parsed reply. */
static int ask(ct_client_t *c, const char *header, ct_msg_t *m) {
    int64_t req = req_of(header);
    for (int waited = 0; waited < TIMEOUT_MS; waited += RETRY_MS) {
        char *reply = NULL;
        ct_err_t e = {0};
        int rc = ct_client_request(c, header, req, RETRY_MS, &reply, NULL, &e);
        if (rc == CT_ETIMEDOUT) continue;
        int64_t r;
        ct_proto_error_t code;
        if (rc == 0) rc = ct_msg_parse(reply, strlen(reply), 0, m, &r, &code, &e);
        free(reply);
        if (rc != 0) fprintf(stderr, "coord_probe: %s\n", e.msg);
        return rc;
    }
    fprintf(stderr, "coord_probe: no answer to %s\n", header);
    return CT_ETIMEDOUT;
}

static int loop(const char *endpoint, const char *group) {
    ct_client_t *c = NULL;
    ct_err_t e = {0};
    if (ct_client_create(&c, endpoint, NULL, NULL, &e) != 0) return 1;
    char h[512];
    ct_msg_t m;
    long long req = 1, done = 0;
    snprintf(h, sizeof h, "{\"v\":1,\"type\":\"hello\",\"req\":%lld,\"group\":\"%s\"}", req++,
             group);
    if (ask(c, h, &m) != 0) return 1;
    ct_msg_clear(&m);
    for (;;) {
        snprintf(h, sizeof h, "{\"v\":1,\"type\":\"lease\",\"req\":%lld,\"group\":\"%s\"}", req++,
                 group);
        if (ask(c, h, &m) != 0 || m.type != CT_MSG_LEASE_GRANT) return 1;
        const cJSON *s = cJSON_GetObjectItem(m.root, "shard"),
                    *ep = cJSON_GetObjectItem(m.root, "epoch");
        const cJSON *f = cJSON_GetObjectItem(m.root, "fence");
        snprintf(h, sizeof h,
                 "{\"v\":1,\"type\":\"shard_done\",\"req\":%lld,\"group\":\"%s\","
                 "\"shard\":\"%s\",\"epoch\":%.0f,\"fence\":%.0f}",
                 req++, group, s->valuestring, ep->valuedouble, f->valuedouble);
        ct_msg_clear(&m);
        if (ask(c, h, &m) != 0 || m.type != CT_MSG_OK) return 1;
        ct_msg_clear(&m);
        printf("done %lld\n", ++done);
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--loop")) return loop(argv[2], argv[3]);
    if (argc < 3) {
        fprintf(stderr, "usage: coord_probe ENDPOINT HEADER... | coord_probe --loop ENDPOINT "
                        "GROUP\n");
        return 2;
    }
    ct_client_t *c = NULL;
    ct_err_t e = {0};
    if (ct_client_create(&c, argv[1], NULL, NULL, &e) != 0) return 1;
    for (int i = 2; i < argc; i++) {
        int64_t req = req_of(argv[i]);
        char *reply = NULL;
        if (ct_client_request(c, argv[i], req, TIMEOUT_MS, &reply, NULL, &e) != 0) {
            fprintf(stderr, "coord_probe: %s\n", e.msg);
            return 1;
        }
        printf("%s\n", reply);
        free(reply);
    }
    ct_client_destroy(&c);
    return 0;
}
