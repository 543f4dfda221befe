/* public.h — the coordinator's public log on disk: RUN_DIR/public/log.jsonl and run.json,
 * derived from the ledger's records (ledger.h) and signed with the coordinator's key
 * (RUN_DIR/coordinator.key; formats in publog.h).
 *
 * The ledger is the truth: every record is committed with the change it records. The file
 * follows it: a thread of this object's own, reading the ledger through a connection of its own,
 * seals and appends the records after their transaction (so the log never holds up replies;
 * under load it may lag, then catches up), and run.json names the head at most once a second and
 * at the end, when the dashboard's data is written too:
 * status.json (run, data, checkpoints, groups, unit counts, the last records' lines), which the
 * live dashboard reads through the coordinator's HTTP server, and data.js (the same and the
 * metrics), which the page opened from disk loads. A line is a pure function of the records before
 * it (Ed25519 signatures are deterministic), so after a crash the file is derived again and comes
 * out byte for byte the same: what is there is kept while it matches, the rest is written again. */
#ifndef COTRAIN_PUBLIC_H
#define COTRAIN_PUBLIC_H

#include "cotrain/err.h"
#include "cotrain/ledger.h"
#include "cotrain/log.h"
#include "cotrain/manifest.h"
#include "cotrain/publog.h"

typedef struct ct_public ct_public_t;

/* What the public directory shows besides the log. Pointers are borrowed. */
typedef struct ct_public_opts {
    const char *run_dir;
    const char *config_json; /* the run's canonical config */
    const ct_manifest_t *m;  /* the run's data */
    int held_out;            /* data.eval_shards */
    const char *web_dir;     /* the dashboard's files (index.html, ...), or NULL: none */
} ct_public_opts_t;

/* Opens RUN_DIR/public for the ledger at path `db` (ct_ledger_open made it; this opens a reader
 * of its own): the key (made once), the dashboard's files copied in, then log.jsonl brought in
 * line with the ledger (a line that does not match its record, and everything after it, is
 * written again, logged as a warning) and run.json, and the dashboard's data (status.json;
 * data.js for a page opened from disk, with the metrics of RUN_DIR/public/metrics.jsonl)
 * written; then starts the writer's thread, which follows the ledger from there, up to the
 * records ct_public_poke says are on disk. Errors: CT_EIO, CT_ECORRUPT (the key), CT_ENOMEM. */
int ct_public_open(ct_public_t **out, const ct_public_opts_t *o, const char *db, const ct_log_t *lg,
                   ct_err_t *e);

/* Tells the writer that the records up to seq `upto` are on disk (those after it may still be
 * lost to a power cut, and are not shown yet): it writes them at once. */
void ct_public_poke(ct_public_t *p, int64_t upto);

/* The CPU seconds the writer's thread has used (0 for NULL). */
double ct_public_cpu_s(const ct_public_t *p);

/* Stops the writer, writes what is left and run.json, closes, sets *self_p to NULL; NULL-safe. */
void ct_public_close(ct_public_t **self_p);

#endif
