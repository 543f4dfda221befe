/* proto.c — the message header grammar (see proto.h): one checked path from bytes to a typed
 * header, with a single `malformed` exit per check, and the headers the coordinator sends. */
#include "cotrain/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/json.h"

static const char *const TYPE_NAMES[] = {
#define CT_MSG_NAME(name, wire) wire,
    CT_MSG_TYPES(CT_MSG_NAME)
#undef CT_MSG_NAME
};

static const char *const ERROR_NAMES[] = {
#define CT_PROTO_ERR_NAME(name, wire) wire,
    CT_PROTO_ERRORS(CT_PROTO_ERR_NAME)
#undef CT_PROTO_ERR_NAME
};

const char *ct_msg_type_name(ct_msg_type_t t) {
    return t >= 0 && t < CT_MSG_N_TYPES ? TYPE_NAMES[t] : "?";
}

const char *ct_proto_error_name(ct_proto_error_t c) {
    return c >= 0 && c < CT_PROTO_E_N ? ERROR_NAMES[c] : "?";
}

void ct_msg_clear(ct_msg_t *m) {
    if (!m) return;
    cJSON_Delete(m->root);
    memset(m, 0, sizeof *m);
}

int ct_msg_parse(const void *hdr, size_t len, int n_frames, ct_msg_t *out, int64_t *req,
                 ct_proto_error_t *code, ct_err_t *e) {
    memset(out, 0, sizeof *out);
    *req = -1;
    *code = CT_PROTO_E_MALFORMED;
    if (len > CT_PROTO_HEADER_MAX || n_frames < 0 || n_frames > CT_PROTO_FRAMES_MAX) {
        *code = CT_PROTO_E_TOO_LARGE;
        return CT_ERR(e, CT_EPROTO,
                      "a header of %zu bytes with %d frames: the limits are %d bytes "
                      "and %d frames",
                      len, n_frames, CT_PROTO_HEADER_MAX, CT_PROTO_FRAMES_MAX);
    }
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts(hdr, len, &end, 0) : NULL;
    if (!cJSON_IsObject(root) || end != (const char *)hdr + len) {
        cJSON_Delete(root);
        return CT_ERR(e, CT_EPROTO, "the header is not one JSON object");
    }
    int64_t v = -1;
    ct_json_get_uint53(root, "req", req);
    const char *type = ct_json_get_string(root, "type");
    int rc = 0;
    if (!ct_json_get_uint53(root, "v", &v)) {
        rc = CT_ERR(e, CT_EPROTO, "the header has no protocol version \"v\"");
    } else if (v != CT_PROTO_VERSION) {
        *code = CT_PROTO_E_VERSION;
        rc = CT_ERR(e, CT_EPROTO,
                    "protocol version %lld; this side speaks %d: upgrade the older "
                    "of the two",
                    (long long)v, CT_PROTO_VERSION);
    } else if (*req < 0 && !(type && !strcmp(type, "error") &&
                             cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "req")))) {
        /* only an error reply to a request whose req could not be read carries null */
        rc = CT_ERR(e, CT_EPROTO, "\"req\" is missing or not an integer in [0, 2^53]");
    } else if (!type) {
        rc = CT_ERR(e, CT_EPROTO, "\"type\" is missing or not a string");
    } else {
        out->type = CT_MSG_N_TYPES;
        for (int t = 0; t < CT_MSG_N_TYPES; t++)
            if (!strcmp(type, TYPE_NAMES[t])) out->type = (ct_msg_type_t)t;
        if (out->type == CT_MSG_N_TYPES) {
            *code = CT_PROTO_E_UNKNOWN_TYPE;
            rc = CT_ERR(e, CT_EPROTO, "unknown message type \"%.40s\"", type);
        }
    }
    if (rc != 0) {
        cJSON_Delete(root);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->req = *req;
    out->root = root;
    out->n_frames = n_frames;
    return 0;
}

int ct_msg_string(const ct_msg_t *m, const char *key, char *out, size_t max, ct_err_t *e) {
    const char *s = ct_json_get_string(m->root, key);
    size_t n = s ? strlen(s) : 0;
    int ok = s && n > 0 && n < max;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f;
    if (!ok)
        return CT_ERR(e, CT_EPROTO,
                      "%s: \"%s\" must be a string of 1 to %zu printable ASCII "
                      "characters",
                      ct_msg_type_name(m->type), key, max - 1);
    memcpy(out, s, n + 1);
    return 0;
}

int ct_msg_uint(const ct_msg_t *m, const char *key, int64_t *out, ct_err_t *e) {
    if (!ct_json_get_uint53(m->root, key, out))
        return CT_ERR(e, CT_EPROTO, "%s: \"%s\" must be an integer in [0, 2^53]",
                      ct_msg_type_name(m->type), key);
    return 0;
}

/* The integral numbers among obj's members printed as integers, as raw text: cJSON prints every
 * number with "%1.15g" and reads it back to check, which costs more than the rest of a reply. */
static int ints_raw(cJSON *obj) {
    for (cJSON *it = obj->child; it; it = it->next) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || d != (double)(int64_t)d || d > 9007199254740992.0 ||
            d < -9007199254740992.0)
            continue;
        char buf[24];
        snprintf(buf, sizeof buf, "%lld", (long long)d);
        char *text = strdup(buf);
        if (!text) return 0;
        it->type = cJSON_Raw;
        it->valuestring = text;
    }
    return 1;
}

char *ct_msg_header(ct_msg_type_t type, int64_t req, cJSON *fields) {
    cJSON *h = cJSON_CreateObject();
    int ok = h && cJSON_AddNumberToObject(h, "v", CT_PROTO_VERSION) &&
             cJSON_AddStringToObject(h, "type", ct_msg_type_name(type)) &&
             (req >= 0 ? cJSON_AddNumberToObject(h, "req", (double)req) != NULL
                       : cJSON_AddNullToObject(h, "req") != NULL);
    /* move the fields over one by one (the object itself is then empty and freed) */
    while (ok && fields && fields->child) {
        cJSON *item = cJSON_DetachItemViaPointer(fields, fields->child);
        ok = cJSON_AddItemToObject(h, item->string, item);
        if (!ok) cJSON_Delete(item);
    }
    cJSON_Delete(fields);
    char *text = ok && ints_raw(h) ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    return text;
}

char *ct_msg_error(int64_t req, ct_proto_error_t code, const char *message) {
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddStringToObject(f, "code", ct_proto_error_name(code)) ||
        !cJSON_AddStringToObject(f, "message", message)) {
        cJSON_Delete(f);
        return NULL;
    }
    return ct_msg_header(CT_MSG_ERROR, req, f);
}
