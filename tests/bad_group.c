/* bad_group.c — a malicious volunteer group for the robustness tests: it speaks the protocol
 * correctly and sends garbage that decodes fine.
 *
 *   bad_group ENDPOINT GROUP random SIGMA   each delta uniform in [-SIGMA, SIGMA]
 *   bad_group ENDPOINT GROUP scaled FACTOR  each delta FACTOR times the last model update (the
 *                                           outer step it would undo, amplified; random in
 *                                           [-0.01, 0.01] before the first update)
 *
 * It joins, sends one delta per version (based on the version it read, claiming a round's tokens),
 * and leaves (exit 0) once the run is over, or exits 0 when the coordinator is gone. No model, no data: the model's
 * size comes from the run's config (layout.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/client.h"
#include "cotrain/config.h"
#include "cotrain/delta.h"
#include "cotrain/hash.h"
#include "cotrain/json.h"
#include "cotrain/layout.h"
#include "cotrain/proto.h"

enum { TRY_MS = 2000, TRIES = 15 };

static ct_client_t *client;
static const char *group;
static char session[32];
static long long req;

/* One request (fields f consumed, body may be NULL), retried; the reply in *m, its frame in *fr
 * (may be NULL). Returns 0, or non-zero when the coordinator is gone or refused. */
static int ask(ct_msg_type_t type, cJSON *f, const ct_frame_t *body, ct_msg_t *m, ct_frame_t *fr) {
    if (!f) f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "group", group);
    cJSON_AddStringToObject(f, "session", session);
    char *hdr = ct_msg_header(type, ++req, f);
    int rc = CT_ETIMEDOUT;
    for (int t = 0; t < TRIES && rc == CT_ETIMEDOUT; t++) {
        char *reply = NULL;
        ct_err_t e = {0};
        rc = ct_client_request_body(client, hdr, body, req, TRY_MS, &reply, fr, &e);
        if (rc == 0) {
            int64_t r;
            ct_proto_error_t code;
            rc = ct_msg_parse(reply, strlen(reply), 0, m, &r, &code, &e);
            if (rc == 0 && m->type == CT_MSG_ERROR) {
                fprintf(stderr, "bad_group: %s refused: %s\n", ct_msg_type_name(type),
                        ct_json_get_string(m->root, "message"));
                ct_msg_clear(m);
                rc = CT_ESTATE;
            }
        }
        free(reply);
    }
    free(hdr);
    return rc;
}

static int64_t latest(void) {
    ct_msg_t m;
    int64_t step = -1;
    if (ask(CT_MSG_LATEST_CHECKPOINT, NULL, NULL, &m, NULL) != 0) return -1;
    ct_json_get_uint53(m.root, "step", &step);
    ct_msg_clear(&m);
    return step;
}

/* The update that made version v, decoded into x; 0 when it was there. */
static int last_update(int64_t v, ct_delta_codec_t codec, float *x, int64_t n, void *buf,
                       size_t len) {
    size_t off = 0;
    while (off < len) {
        cJSON *q = cJSON_CreateObject();
        cJSON_AddNumberToObject(q, "from", (double)(v - 1));
        cJSON_AddNumberToObject(q, "offset", (double)off);
        cJSON_AddNumberToObject(q, "length", CT_PROTO_CHUNK_MAX);
        ct_msg_t m;
        ct_frame_t fr = {0};
        if (ask(CT_MSG_MODEL_UPDATE, q, NULL, &m, &fr) != 0) return 1;
        ct_msg_clear(&m);
        if (fr.len == 0 || off + fr.len > len) {
            free(fr.data);
            return 1;
        }
        memcpy((char *)buf + off, fr.data, fr.len);
        off += fr.len;
        free(fr.data);
    }
    ct_err_t e = {0};
    return ct_delta_decode(codec, buf, len, x, n, &e) != 0;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[3], "random") && strcmp(argv[3], "scaled"))) {
        fprintf(stderr, "usage: bad_group ENDPOINT GROUP random SIGMA | scaled FACTOR\n");
        return 2;
    }
    group = argv[2];
    int scaled = !strcmp(argv[3], "scaled");
    float k = strtof(argv[4], NULL);
    ct_err_t e = {0};
    snprintf(session, sizeof session, "bad-%d", (int)getpid());
    if (ct_hash_init(&e) != 0 || ct_client_create(&client, argv[1], NULL, NULL, &e) != 0) {
        fprintf(stderr, "bad_group: %s\n", e.msg);
        return 1;
    }
    ct_msg_t m;
    if (ask(CT_MSG_HELLO, NULL, NULL, &m, NULL) != 0) return 1;
    char *json = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(m.root, "config"));
    ct_msg_clear(&m);
    ct_config_t cfg;
    ct_layout_t lay;
    if (!json || ct_config_load_text(&cfg, json, "the run's config", NULL, 0, &e) != 0 ||
        ct_layout_build(&lay, cfg.model.n_layer, cfg.model.d_model, cfg.model.seq_len,
                        cfg.model.vocab_size, &e) != 0) {
        fprintf(stderr, "bad_group: %s\n", e.msg);
        return 1;
    }
    free(json);
    int64_t n = (int64_t)lay.n_params;
    ct_delta_codec_t codec = (ct_delta_codec_t)cfg.volunteer.compress;
    size_t len = ct_delta_encoded_size(codec, n);
    float *x = malloc((size_t)n * sizeof *x);
    void *enc = malloc(len);
    unsigned seed = (unsigned)getpid();
    /* it claims a whole round's tokens: as much weight in the mean as an honest group */
    int64_t tokens = cfg.volunteer.inner_steps * cfg.train.global_batch * cfg.model.seq_len;
    int64_t v;
    while ((v = latest()) >= 0 && v < cfg.train.steps) {
        if (!scaled || v == 0 || last_update(v, codec, x, n, enc, len) != 0) {
            float s = scaled ? 0.01f : k;
            for (int64_t i = 0; i < n; i++)
                x[i] = s * (2.0f * (float)rand_r(&seed) / (float)RAND_MAX - 1.0f);
        } else {
            for (int64_t i = 0; i < n; i++)
                x[i] *= k;
        }
        if (ct_delta_encode(codec, x, NULL, n, enc, &e) != 0) return 1;
        char sha[CT_SHA256_HEX];
        ct_sha256_hex(enc, len, sha);
        for (size_t off = 0; off < len;) {
            size_t c = len - off < CT_PROTO_CHUNK_MAX ? len - off : CT_PROTO_CHUNK_MAX;
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "base", (double)v);
            cJSON_AddStringToObject(f, "codec", ct_delta_codec_name(codec));
            cJSON_AddNumberToObject(f, "n", (double)n);
            cJSON_AddNumberToObject(f, "bytes", (double)len);
            cJSON_AddStringToObject(f, "sha256", sha);
            cJSON_AddNumberToObject(f, "offset", (double)off);
            cJSON_AddNumberToObject(f, "tokens", (double)tokens);
            cJSON_AddNumberToObject(f, "steps", (double)cfg.volunteer.inner_steps);
            cJSON_AddItemToObject(f, "units", cJSON_CreateArray());
            const ct_frame_t body = {(char *)enc + off, c};
            int64_t have = 0;
            if (ask(CT_MSG_DELTA, f, &body, &m, NULL) != 0) break;
            ct_json_get_uint53(m.root, "have", &have);
            ct_msg_clear(&m);
            off = (size_t)have;
        }
        printf("bad delta sent for version %lld\n", (long long)v);
        fflush(stdout);
        int64_t now;
        while ((now = latest()) == v) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "why", "finished");
    if (v >= 0 && ask(CT_MSG_LEAVE, f, NULL, &m, NULL) == 0) ct_msg_clear(&m);
    free(x);
    free(enc);
    ct_layout_free(&lay);
    ct_client_destroy(&client);
    return 0;
}
