/* ledger_db.h — the ledger's private parts, shared by its files: ledger.c (SQLite plumbing,
 * opening, leases, groups, records, metrics), ledger_ckpt.c (the checkpoint registry and
 * credit), ledger_outer.c (volunteer mode's deltas and outer steps) and ledger_vfs.c (SQLite's
 * file and memory calls under fault.h's plan). Not a public header:
 * nothing outside coordinator/ledger*.c includes it. */
#ifndef COTRAIN_LEDGER_DB_H
#define COTRAIN_LEDGER_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "cotrain/fsutil.h"
#include "cotrain/ledger.h"
#include "cotrain/plan.h"

#define FORMAT "cotrain-ledger/3"

enum { AVAILABLE = 0, LEASED = 1, DONE = 2, COMMITTED = 3 }; /* a unit's state (units table) */

enum { CACHE_MAX = 64 };

typedef struct stmt {
    const char *sql; /* a literal: compared by address */
    sqlite3_stmt *st;
} stmt_t;

struct ct_ledger {
    sqlite3 *db;
    char path[CT_PATH_MAX];
    int n_shards; /* the base: the manifest's shards trained on (plan.h) */
    uint64_t seed;
    const ct_manifest_t *m; /* the run's manifest (the caller's) */
    int held_out;
    ct_plan_t *plan;        /* the base and the data changes in effect (the changes table) */
    ct_plan_t *plan_before; /* the plan before the open transaction changed it (ldb_plan_keep) */
    int plan_level;         /* ... kept at this level of ct_ledger_begin (0: ldb_transaction) */
    int64_t *order;         /* (order_cap) scratch for an epoch's order */
    int64_t order_cap;
    /* meta's counters, kept in memory and written through: a rolled-back transaction leaves a
       gap, never a value handed out twice */
    int64_t fence, done_seq, metrics_gen;
    int in_tx;    /* levels of ct_ledger_begin .. ct_ledger_end open */
    int deferred; /* ct_ledger_defer_sync: commits wait for ct_ledger_sync, not the disk */
    int wal_fd;   /* the WAL file, for ct_ledger_sync (-1 until its first call) */
    stmt_t cache[CACHE_MAX];
    int n_cache;
};

/* Statements: prepared once and cached by their SQL literal's address, arguments bound by
 * `types` ('i' int64, 'd' double, 't' text). ldb_run runs one that returns no rows (*changes,
 * may be NULL, gets the rows changed); ldb_int64 runs one that gives a number (the first column
 * of its first row; 0 without a row); ldb_step_row steps a query (1: a row, 0: the end, or an
 * error); ldb_done resets a statement for its next use. Errors: CT_EIO naming the SQL. */
int ldb_prepare(ct_ledger_t *l, sqlite3_stmt **st, ct_err_t *e, const char *sql, const char *types,
                ...);
int ldb_run(ct_ledger_t *l, int *changes, ct_err_t *e, const char *sql, const char *types, ...);
int ldb_int64(ct_ledger_t *l, int64_t *out, ct_err_t *e, const char *sql, const char *types, ...);
int ldb_step_row(ct_ledger_t *l, sqlite3_stmt *st, const char *what, ct_err_t *e);
void ldb_done(ct_ledger_t *l, sqlite3_stmt *st);

/* body(l, arg, e) in one transaction (or in the caller's, inside ct_ledger_begin). */
int ldb_transaction(ct_ledger_t *l, int (*body)(ct_ledger_t *, void *, ct_err_t *), void *arg,
                    ct_err_t *e);

/* Logs a public-log record of `type` with fields f (consumed). */
int ldb_record(ct_ledger_t *l, const char *type, cJSON *f, ct_err_t *e);

/* The name of the VFS every ledger connection opens with (registered on the first call: see
 * ledger_vfs.c), or NULL when it could not be (then SQLite's default). */
const char *ldb_vfs(void);

/* "<shard id>:<epoch>" as records name units (NULL when out of memory). */
cJSON *ldb_unit_name(const char *shard_id, int64_t epoch);

/* Runs `sql`, an UPDATE ... RETURNING shard, epoch, appending the units it returns to arr (*n of
 * them); ldb_return_units logs the units it sets back to available as one shards_returned
 * record saying why (*n, may be NULL, gets how many). */
int ldb_units_of(ct_ledger_t *l, cJSON *arr, int *n, ct_err_t *e, const char *sql,
                 const char *types, ...);
int ldb_return_units(ct_ledger_t *l, int *n, const char *why, ct_err_t *e, const char *sql,
                     const char *types, ...);

/* A connection to the ledger at `path` (read-only unless writable), nothing read or made yet.
 * Errors: CT_EIO, CT_ENOMEM. */
int ldb_open_conn(ct_ledger_t **out, const char *path, int writable, ct_err_t *e);

/* meta's text `key` into buf ("" when absent), and setting it. Errors: CT_EIO. */
int ldb_meta_text(ct_ledger_t *l, const char *key, char *buf, size_t cap, ct_err_t *e);
int ldb_set_meta(ct_ledger_t *l, const char *key, const char *value, ct_err_t *e);

/* Shard `idx`'s id (an index of the plan). */
const char *ldb_shard_id(const ct_ledger_t *l, int64_t idx);

/* The plan built from the changes table (opening the ledger). Errors: as ct_plan_apply. */
int ldb_plan_load(ct_ledger_t *l, ct_err_t *e);

/* Before the open transaction changes the plan: a copy of it is kept, to be put back if the
 * transaction (or the savepoint it was kept in) rolls back. Errors: as ct_plan_apply (nothing
 * was changed). */
int ldb_plan_keep(ct_ledger_t *l, ct_err_t *e);

/* The next epoch to begin (one past the last made), and beginning it: its units, in the order
 * of ct_data_shard_order. */
int ldb_next_epoch(ct_ledger_t *l, int64_t *next, ct_err_t *e);
int ldb_begin_epoch(ct_ledger_t *l, ct_err_t *e);

/* The head checkpoint: its id ("" when none) and step (-1). */
int ldb_head(ct_ledger_t *l, char id[CT_SHA256_HEX], int64_t *step, ct_err_t *e);

#endif
