/* http.c — the read-only dashboard server (see http.h).
 *
 * Why files and not the ledger: libmicrohttpd answers on its own thread, and the ledger's SQLite
 * connection belongs to the coordinator's thread. The coordinator already writes everything the
 * page needs into public/ (atomically, once a second), so this server only reads those files:
 * it can neither change the run nor slow its requests. */
#include "cotrain/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fsutil.h"

struct ct_http {
    struct MHD_Daemon *d;
    char dir[CT_PATH_MAX];
    char url[96];
    const ct_log_t *lg;
};

/* The files served by name, and their types. */
static const struct {
    const char *path, *file, *type;
} FILES[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"},
    {"/dashboard.css", "dashboard.css", "text/css; charset=utf-8"},
    {"/uPlot.iife.min.js", "uPlot.iife.min.js", "text/javascript; charset=utf-8"},
    {"/uPlot.min.css", "uPlot.min.css", "text/css; charset=utf-8"},
    {"/data.js", "data.js", "text/javascript; charset=utf-8"},
    {"/log.jsonl", "log.jsonl", "application/jsonl; charset=utf-8"},
    {"/metrics.jsonl", "metrics.jsonl", "application/jsonl; charset=utf-8"},
    {"/run.json", "run.json", "application/json; charset=utf-8"},
    {"/status.json", "status.json", "application/json; charset=utf-8"},
    {"/api/status", "status.json", "application/json; charset=utf-8"},
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, char *body, size_t len,
                             const char *type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *msg) {
    char *body = strdup(msg);
    return body ? reply(c, code, body, strlen(body), "text/plain; charset=utf-8") : MHD_NO;
}

/* /api/metrics?since=S: the lines of steps after S ({"step":N,... starts every line). */
static enum MHD_Result metrics_since(ct_http_t *h, struct MHD_Connection *c) {
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    char *end = NULL;
    long long since = q ? strtoll(q, &end, 10) : -1;
    if (q && (!*q || *end || since < 0)) return text(c, 400, "since: give a step number >= 0\n");
    char path[CT_PATH_MAX], *buf = NULL;
    size_t len = 0;
    ct_err_t e = {0};
    if (ct_path_join(path, sizeof path, h->dir, "metrics.jsonl", &e) != 0 ||
        ct_read_file(path, &buf, &len, &e) != 0)
        return reply(c, 200, strdup(""), 0, "application/jsonl; charset=utf-8");
    size_t out = 0;
    for (char *line = buf, *nl; (nl = memchr(line, '\n', len - (size_t)(line - buf)));
         line = nl + 1) {
        long long step = strncmp(line, "{\"step\":", 8) ? -1 : strtoll(line + 8, NULL, 10);
        if (step > since) { /* kept: moved down over what was dropped */
            size_t n = (size_t)(nl - line) + 1;
            memmove(buf + out, line, n);
            out += n;
        }
    }
    return reply(c, 200, buf, out, "application/jsonl; charset=utf-8");
}

static enum MHD_Result answer(void *arg, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
    (void)version, (void)upload, (void)upload_size, (void)state;
    ct_http_t *h = arg;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return text(c, 405, "this server only reads: GET and HEAD\n");
    if (!strcmp(url, "/api/metrics")) return metrics_since(h, c);
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        if (strcmp(url, FILES[i].path) != 0) continue;
        char path[CT_PATH_MAX], *buf = NULL;
        size_t len = 0;
        ct_err_t e = {0};
        if (ct_path_join(path, sizeof path, h->dir, FILES[i].file, &e) != 0 ||
            ct_read_file(path, &buf, &len, &e) != 0)
            return text(c, 404, "not written yet\n");
        return reply(c, 200, buf, len, FILES[i].type);
    }
    return text(c, 404, "no such page: the dashboard is at /\n");
}

int ct_http_start(ct_http_t **out, const char *addr, const char *public_dir, const ct_log_t *lg,
                  ct_err_t *e) {
    *out = NULL;
    char host[64];
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host || !colon[1] || *end ||
        port < 0 || port > 65535)
        return CT_ERR(e, CT_EINVAL,
                      "--http %s: give ADDR:PORT, e.g. 127.0.0.1:8080 (port 0 "
                      "picks a free one)",
                      addr);
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return CT_ERR(e, CT_EINVAL, "--http %s: %s is not an IPv4 address", addr, host);
    sa.sin_port = htons((uint16_t)port);
    ct_http_t *h = calloc(1, sizeof *h);
    if (!h) return CT_ERR(e, CT_ENOMEM, "out of memory");
    h->lg = lg;
    snprintf(h->dir, sizeof h->dir, "%s", public_dir);
    h->d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, answer, h,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                         64U, MHD_OPTION_CONNECTION_TIMEOUT, 30U, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return CT_ERR(e, CT_EIO, "cannot serve the dashboard at %s (is the port taken?)", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(h->url, sizeof h->url, "http://%s:%u/", host,
             info ? (unsigned)info->port : (unsigned)port);
    *out = h;
    return 0;
}

const char *ct_http_url(const ct_http_t *h) {
    return h->url;
}

void ct_http_stop(ct_http_t **self_p) {
    ct_http_t *h = *self_p;
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
    *self_p = NULL;
}
