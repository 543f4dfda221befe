/* ckpt_load.c — verifies a checkpoint's files on every core, and loads its tensors reading each
 * byte once.
 *
 * SHA-256 is one sequential stream per input, so MANIFEST lists a hash per 64 MiB piece
 * (ckpt_sums.h): the pieces of all files are jobs that every thread takes in turn.
 *
 * Loading without reading twice: the tensors must not be placed from unverified bytes, and where
 * they go is in the HDF5 metadata, which must not be parsed unverified either. ckpt_h5.c gives
 * HDF5 one 1 MiB metadata block, so all of a tensor file's metadata lies in its first piece. The
 * load hashes piece 0 of model.h5 and optim.h5 (and config.json and state.json) first; HDF5 then
 * parses an in-memory image of the verified piece 0, zeros after it, for where the tensors lie;
 * then every thread takes pieces and reads each straight into the tensors' memory, hashing as it
 * reads, and compares (ct_ckpt_io_read_piece). A piece that does not match fails the load: its
 * bytes were placed but are never used, because the restore fails. When the metadata is not all
 * in piece 0 (a checkpoint written otherwise, or a model whose metadata overflows the block),
 * either the image does not parse or a byte between the tensors beyond piece 0 is not zero: that
 * file is then read again after all of it was verified, as files without pieces are. */
#include "ckpt_load.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_h5.h"
#include "ckpt_io.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"

/* Read size for hashing: big enough for few system calls, small enough to stay in cache. A check
 * of the small files alone (config.json, state.json: KiBs) runs on the calling thread with a
 * buffer of SMALL_BUF: a team of threads and their 1 MiB buffers cost more than the hashing. */
enum { HASH_BUF = 1 << 20, SMALL_BUF = 64 << 10 };

/* A job: hash piece `piece` of file `file` (-1: the whole file), or, when `lay` is set, read it
 * into the tensors that layout describes while hashing it. */
typedef struct job {
    int file, piece;
    const ct_ckpt_layout_t *lay;
} job_t;

typedef struct run {
    const char *dir;
    const ct_ckpt_sums_t *sums;
    job_t *jobs;
    int n_jobs, cap;
    atomic_int next, failed;
    atomic_int gap_nonzero[N_FILES]; /* a read piece > 0 had non-zero bytes between tensors */
    int small;                       /* only the small files: one thread, SMALL_BUF */
    ct_err_t err;                    /* the first failure */
} run_t;

static int add_job(run_t *r, int file, int piece, const ct_ckpt_layout_t *lay, ct_err_t *e) {
    if (r->n_jobs == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        job_t *p = ct_fault_realloc(r->jobs, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory planning the check of %s", r->dir);
        r->jobs = p;
        r->cap = cap;
    }
    r->jobs[r->n_jobs++] = (job_t){.file = file, .piece = piece, .lay = lay};
    return 0;
}

/* Jobs for the pieces [from, n) of file k, or the whole file when MANIFEST lists no pieces. */
static int add_pieces(run_t *r, int k, int from, const ct_ckpt_layout_t *lay, ct_err_t *e) {
    if (!r->sums->has_pieces) return from == 0 ? add_job(r, k, -1, NULL, e) : 0;
    for (int i = from; i < r->sums->n_pieces[k]; i++)
        CT_TRY(add_job(r, k, i, lay, e));
    return 0;
}

static void fail_once(run_t *r, int rc, const ct_err_t *why) {
    if (rc == 0 || atomic_exchange(&r->failed, 1)) return;
    r->err = *why;
    r->err.code = rc;
}

/* Runs the planned jobs on every core (each thread with its own scratch), then forgets them. */
static int run_jobs(run_t *r, ct_err_t *e) {
    int threads = r->small ? 1 : 2 * omp_get_max_threads();
    size_t size = r->small ? SMALL_BUF : HASH_BUF;
    if (threads > r->n_jobs) threads = r->n_jobs;
    atomic_store(&r->next, 0);
#pragma omp parallel num_threads(threads > 0 ? threads : 1) if (threads > 1)
    {
        ct_err_t why = {0};
        unsigned char *buf = ct_fault_malloc(size);
        if (!buf) fail_once(r, CT_ERR(&why, CT_ENOMEM, "out of memory checking %s", r->dir), &why);
        for (int j;
             buf && (j = atomic_fetch_add(&r->next, 1)) < r->n_jobs && !atomic_load(&r->failed);) {
            const job_t *jb = &r->jobs[j];
            int gap = 0, rc;
            if (jb->lay) {
                rc = ct_ckpt_io_read_piece(jb->lay, jb->piece, r->sums->piece[jb->file][jb->piece],
                                           buf, size, jb->piece > 0 ? &gap : NULL, &why);
                if (gap) atomic_store(&r->gap_nonzero[jb->file], 1);
            } else {
                rc = ct_ckpt_sums_check(r->dir, r->sums, jb->file, jb->piece, buf, size, &why);
            }
            fail_once(r, rc, &why);
        }
        free(buf);
    }
    r->n_jobs = 0;
    if (!atomic_load(&r->failed)) return 0;
    *e = r->err;
    return r->err.code;
}

/* A tensor file exists with the size its pieces need (without pieces: exists). */
static int check_size(const run_t *r, int k, ct_err_t *e) {
    char path[CT_PATH_MAX];
    struct stat st;
    CT_TRY(ct_path_join(path, sizeof path, r->dir, ct_ckpt_file_names[k], e));
    if (stat(path, &st) != 0)
        return CT_ERR(e, CT_ENOENT, "checkpoint %s is incomplete: %s: %s", r->dir,
                      ct_ckpt_file_names[k], strerror(errno));
    if (r->sums->has_pieces && ct_ckpt_pieces((uint64_t)st.st_size) != r->sums->n_pieces[k])
        return CT_ERR(e, CT_ECORRUPT,
                      "checkpoint %s: %s has %lld bytes, but its MANIFEST lists "
                      "%d pieces of 64 MiB: the file was cut or grown; use another checkpoint",
                      r->dir, ct_ckpt_file_names[k], (long long)st.st_size, r->sums->n_pieces[k]);
    return 0;
}

int ct_ckpt_check(const char *dir, const ct_ckpt_sums_t *sums, int what, ct_err_t *e) {
    /* without pieces the biggest file goes first, so the others run beside it */
    static const int order[N_FILES] = {OPTIM, MODEL, CONFIG, STATE};
    run_t r = {.dir = dir, .sums = sums, .small = what == CT_CKPT_CHECK_SMALL};
    int rc = 0;
    for (int f = 0; f < N_FILES && rc == 0; f++) {
        int k = order[f];
        if (what == CT_CKPT_CHECK_SMALL && (k == MODEL || k == OPTIM))
            rc = check_size(&r, k, e);
        else
            rc = add_pieces(&r, k, 0, NULL, e);
    }
    if (rc == 0) rc = run_jobs(&r, e);
    free(r.jobs);
    return rc;
}

/* The path and the groups of tensor file k (MODEL or OPTIM) of the body; returns how many groups
 * (or an error). */
static int file_groups(const char *dir, int k, ct_ckpt_body_t *b, char path[CT_PATH_MAX],
                       ct_ckpt_group_t g[2], ct_err_t *e) {
    CT_TRY(ct_path_join(path, CT_PATH_MAX, dir, ct_ckpt_file_names[k], e));
    if (k == MODEL) {
        g[0] = (ct_ckpt_group_t){"", b->params};
        return 1;
    }
    g[0] = (ct_ckpt_group_t){"m", b->adam_m};
    g[1] = (ct_ckpt_group_t){"v", b->adam_v};
    return 2;
}

/* Where the tensors of file k lie, parsed from the file itself (verified whole before). */
static int locate_file(const char *dir, int k, ct_ckpt_body_t *b, ct_ckpt_layout_t *L,
                       ct_err_t *e) {
    char path[CT_PATH_MAX];
    ct_ckpt_group_t g[2];
    int ng = file_groups(dir, k, b, path, g, e);
    if (ng < 0) return ng;
    return ct_ckpt_h5_locate(path, b->tensors, b->n_tensors, g, ng,
                             k == OPTIM ? &b->adam_steps : NULL, L, e);
}

/* Where the tensors of file k lie, parsed from an image of its verified piece 0 (the file's
 * first bytes mapped over anonymous zero pages of the file's size: nothing is copied, and no
 * byte past piece 0 reaches HDF5). Fails when the metadata does not all lie in piece 0. */
static int locate_piece0(const char *dir, int k, ct_ckpt_body_t *b, ct_ckpt_layout_t *L,
                         ct_err_t *e) {
    char path[CT_PATH_MAX];
    ct_ckpt_group_t g[2];
    int ng = file_groups(dir, k, b, path, g, e);
    if (ng < 0) return ng;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    void *image = MAP_FAILED;
    int rc = fstat(fd, &st) == 0 && st.st_size > 0 ? 0 : CT_ERR(e, CT_EIO, "cannot size %s", path);
    size_t size = rc == 0 ? (size_t)st.st_size : 0;
    size_t head = size < CT_CKPT_PIECE ? size : (size_t)CT_CKPT_PIECE;
    if (rc == 0)
        image = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (rc == 0 && (image == MAP_FAILED || mmap(image, head, PROT_READ | PROT_WRITE,
                                                MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED))
        rc = CT_ERR(e, CT_ENOMEM, "cannot map %s: %s", path, strerror(errno));
    close(fd);
    if (rc == 0)
        rc = ct_ckpt_h5_locate_image(path, image, size, b->tensors, b->n_tensors, g, ng,
                                     k == OPTIM ? &b->adam_steps : NULL, L, e);
    if (image != MAP_FAILED) munmap(image, size);
    return rc;
}

/* Reads the tensors of the located file L on every core, and frees L. */
static int read_parts(ct_ckpt_layout_t *L, ct_err_t *e) {
    int parts = omp_get_max_threads(), rc = 0;
#pragma omp parallel for num_threads(parts) reduction(min : rc)
    for (int p = 0; p < parts; p++) {
        ct_err_t why = {0};
        int r = ct_ckpt_io_read(L, p, parts, &why);
        if (r != 0) {
#pragma omp critical(ckpt_read_parts)
            if (e->code == 0) *e = why;
        }
        rc = r < rc ? r : rc;
    }
    ct_ckpt_layout_free(L);
    return rc;
}

int ct_ckpt_load(const char *dir, const ct_ckpt_sums_t *sums, ct_ckpt_body_t *body, int *one_pass,
                 ct_err_t *e) {
    run_t r = {.dir = dir, .sums = sums};
    ct_ckpt_layout_t lay[N_FILES];
    int fast[N_FILES] = {0}, load[N_FILES] = {0}, rc = 0;
    memset(lay, 0, sizeof lay);
    load[MODEL] = 1;
    load[OPTIM] = body->adam_m != NULL;
    if (sums->has_pieces) {
        /* the small files and piece 0 of the tensor files; then the layouts from those */
        for (int k = 0; k < N_FILES && rc == 0; k++)
            rc = k == MODEL || k == OPTIM ? add_job(&r, k, 0, NULL, e)
                                          : add_pieces(&r, k, 0, NULL, e);
        if (rc == 0) rc = run_jobs(&r, e);
        for (int k = MODEL; k <= OPTIM && rc == 0; k++) {
            ct_err_t ignored = {0};
            fast[k] = load[k] && locate_piece0(dir, k, body, &lay[k], &ignored) == 0;
            rc = add_pieces(&r, k, fast[k] ? 0 : 1, fast[k] ? &lay[k] : NULL, e);
        }
    } else {
        rc = ct_ckpt_check(dir, sums, CT_CKPT_CHECK_ALL, e);
    }
    if (rc == 0) rc = run_jobs(&r, e);
    /* every byte is verified now; a file not read in the same pass is read now */
    *one_pass = rc == 0;
    for (int k = MODEL; k <= OPTIM; k++) {
        if (fast[k] && (rc != 0 || atomic_load(&r.gap_nonzero[k]))) {
            ct_ckpt_layout_free(&lay[k]);
            fast[k] = 0;
        }
        if (rc == 0 && load[k] && !fast[k]) {
            *one_pass = 0;
            if ((rc = locate_file(dir, k, body, &lay[k], e)) == 0) rc = read_parts(&lay[k], e);
        }
        if (fast[k]) ct_ckpt_layout_free(&lay[k]);
    }
    free(r.jobs);
    return rc;
}
