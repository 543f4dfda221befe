/* http.h — the coordinator's live dashboard: a read-only HTTP server (libmicrohttpd, its own
 * thread) over the run's public/ folder (public.h writes it), so anyone can watch the run.
 *
 *   GET /                      the dashboard (index.html), and its files beside it
 *   GET /log.jsonl, /run.json, /metrics.jsonl, /status.json, /data.js   the public files
 *   GET /api/status            status.json: run, data, checkpoints, groups, the last log lines
 *   GET /api/metrics?since=S   the lines of metrics.jsonl of steps after S (all without since)
 * Anything else gets 404; methods other than GET and HEAD 405. It reads files only (written
 * atomically by the coordinator's thread), never the ledger, so it cannot change or block the
 * run. */
#ifndef COTRAIN_HTTP_H
#define COTRAIN_HTTP_H

#include "cotrain/err.h"
#include "cotrain/log.h"

typedef struct ct_http ct_http_t;

/* Serves public_dir at addr ("ADDR:PORT", an IPv4 address; port 0 picks a free one). Errors:
 * CT_EINVAL (addr malformed: saying the form), CT_EIO (cannot listen there: why), CT_ENOMEM. */
int ct_http_start(ct_http_t **out, const char *addr, const char *public_dir, const ct_log_t *lg,
                  ct_err_t *e);

/* The URL it serves, with the port chosen ("http://127.0.0.1:41234/"). */
const char *ct_http_url(const ct_http_t *h);

/* Stops serving and frees; sets *self_p to NULL; NULL-safe. */
void ct_http_stop(ct_http_t **self_p);

#endif
