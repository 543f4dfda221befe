/* ledger_vfs.c — the ledger's SQLite goes through fault.h's plan too.
 *
 * Why: the coordinator's promise (no acknowledged change lost, the ledger never corrupt) rests on
 * how it meets a failing disk or a failed allocation inside SQLite: a transaction must then fail
 * whole, with a clear error, and the ledger reopen as it was. The only way to see every such
 * failure is to make it happen, at each call in turn, as fault_ckpt does for checkpoints. So the
 * ledger opens its database through a VFS ("cotrain") that is the platform's own with each
 * file's xWrite and xSync asking ct_fault_hit first (CT_FAULT_WRITE, CT_FAULT_FSYNC: then
 * SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC, as the real call failing would give), and SQLite's
 * allocator asks it too (CT_FAULT_ALLOC: NULL, which SQLite turns into SQLITE_NOMEM).
 *
 * Like fault.h's points, this is always in, not behind a build option: unarmed, it costs a
 * relaxed atomic load a write, sync or allocation, which the call itself dwarfs. The allocator
 * can be installed only before SQLite initializes: when something in the process used SQLite
 * first, allocations are not counted (the VFS still is). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fault.h"
#include "ledger_db.h"

/* A file of ours: the platform's file right after the methods pointer. */
typedef struct shim_file {
    sqlite3_file base; /* pMethods: io_methods below */
    sqlite3_file *real;
} shim_file_t;

static sqlite3_vfs vfs;
static const sqlite3_io_methods *real_methods_of(sqlite3_file *f) {
    return ((shim_file_t *)f)->real->pMethods;
}
#define REAL(f) (((shim_file_t *)(f))->real)

static int x_close(sqlite3_file *f) {
    return real_methods_of(f)->xClose(REAL(f));
}
static int x_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    return real_methods_of(f)->xRead(REAL(f), buf, n, off);
}
static int x_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    if (ct_fault_hit(CT_FAULT_WRITE)) return SQLITE_IOERR_WRITE;
    return real_methods_of(f)->xWrite(REAL(f), buf, n, off);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
    return real_methods_of(f)->xTruncate(REAL(f), size);
}
static int x_sync(sqlite3_file *f, int flags) {
    if (ct_fault_hit(CT_FAULT_FSYNC)) return SQLITE_IOERR_FSYNC;
    return real_methods_of(f)->xSync(REAL(f), flags);
}
static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    return real_methods_of(f)->xFileSize(REAL(f), size);
}
static int x_lock(sqlite3_file *f, int level) {
    return real_methods_of(f)->xLock(REAL(f), level);
}
static int x_unlock(sqlite3_file *f, int level) {
    return real_methods_of(f)->xUnlock(REAL(f), level);
}
static int x_check_reserved(sqlite3_file *f, int *out) {
    return real_methods_of(f)->xCheckReservedLock(REAL(f), out);
}
static int x_file_control(sqlite3_file *f, int op, void *arg) {
    return real_methods_of(f)->xFileControl(REAL(f), op, arg);
}
static int x_sector_size(sqlite3_file *f) {
    return real_methods_of(f)->xSectorSize(REAL(f));
}
static int x_device(sqlite3_file *f) {
    return real_methods_of(f)->xDeviceCharacteristics(REAL(f));
}
static int x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
    return real_methods_of(f)->xShmMap(REAL(f), page, size, extend, out);
}
static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    return real_methods_of(f)->xShmLock(REAL(f), offset, n, flags);
}
static void x_shm_barrier(sqlite3_file *f) {
    real_methods_of(f)->xShmBarrier(REAL(f));
}
static int x_shm_unmap(sqlite3_file *f, int delete_flag) {
    return real_methods_of(f)->xShmUnmap(REAL(f), delete_flag);
}
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out) {
    return real_methods_of(f)->xFetch(REAL(f), off, n, out);
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return real_methods_of(f)->xUnfetch(REAL(f), off, p);
}

/* Version 3: every method the platform's files have (WAL needs the shared-memory ones). */
static const sqlite3_io_methods io_methods = {
    3,           x_close,   x_read,     x_write,          x_truncate,     x_sync,
    x_file_size, x_lock,    x_unlock,   x_check_reserved, x_file_control, x_sector_size,
    x_device,    x_shm_map, x_shm_lock, x_shm_barrier,    x_shm_unmap,    x_fetch,
    x_unfetch};

static int x_open(sqlite3_vfs *self, const char *name, sqlite3_file *f, int flags, int *out_flags) {
    sqlite3_vfs *real = self->pAppData;
    shim_file_t *s = (shim_file_t *)f;
    s->real = (sqlite3_file *)(s + 1);
    s->base.pMethods = NULL;
    int rc = real->xOpen(real, name, s->real, flags, out_flags);
    /* the platform's file answers through us only when it opened (SQLite calls xClose then) */
    if (s->real->pMethods) s->base.pMethods = &io_methods;
    return rc;
}

/* ---- SQLite's allocations, each size kept in front of the block ---- */

enum { HDR = 8 }; /* SQLite needs 8-byte alignment; malloc's 16 plus 8 keeps it */

static void *m_malloc(int n) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return NULL;
    int64_t *p = malloc((size_t)n + HDR);
    if (!p) return NULL;
    p[0] = n;
    return p + 1;
}
static void m_free(void *p) {
    if (p) free((int64_t *)p - 1);
}
static void *m_realloc(void *p, int n) {
    if (ct_fault_hit(CT_FAULT_ALLOC)) return NULL;
    int64_t *q = realloc((int64_t *)p - 1, (size_t)n + HDR);
    if (!q) return NULL;
    q[0] = n;
    return q + 1;
}
static int m_size(void *p) {
    return p ? (int)((int64_t *)p)[-1] : 0;
}
static int m_roundup(int n) {
    return (n + 7) & ~7;
}
static int m_init(void *arg) {
    (void)arg;
    return SQLITE_OK;
}
static void m_shutdown(void *arg) {
    (void)arg;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered; /* SQLITE_OK once the VFS is in */

static void install(void) {
    static const sqlite3_mem_methods mem = {m_malloc,  m_free, m_realloc,  m_size,
                                            m_roundup, m_init, m_shutdown, NULL};
    /* SQLITE_MISUSE when SQLite is already initialized: allocations are then not counted */
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real) {
        registered = SQLITE_ERROR;
        return;
    }
    /* the platform's VFS with our xOpen; its other methods read pAppData only in xOpen */
    vfs = *real;
    vfs.szOsFile = (int)sizeof(shim_file_t) + real->szOsFile;
    vfs.zName = "cotrain";
    vfs.pAppData = real;
    vfs.xOpen = x_open;
    vfs.pNext = NULL;
    registered = sqlite3_vfs_register(&vfs, 0);
}

const char *ldb_vfs(void) {
    pthread_once(&once, install);
    return registered == SQLITE_OK ? vfs.zName : NULL;
}
