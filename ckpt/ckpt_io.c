/* ckpt_io.c — moves the tensor bytes of a checkpoint file between memory and disk, and hashes the
 * file without reading it back.
 *
 * Why not H5Dwrite: HDF5 writes through the page cache, so a 1.5 GB save paid for every page
 * twice (allocated and copied by write(), then written back by fsync) and the MANIFEST's sha256
 * read all of it back again. Here ckpt_h5.c lets HDF5 lay the file out (metadata, and each
 * dataset's contiguous space allocated but left unwritten); the tensors then go to their offsets
 * with O_DIRECT, and the file's sha256 is computed in file order from memory (tensors) and from
 * the few bytes HDF5 wrote (read once, before the tensors go in), on another core meanwhile. */
#include "ckpt_io.h"

#include "ckpt_sums.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint tensors are stored as little-endian fp32 and copied raw"
#endif

/* Bytes per write() / read() / direct write: one multi-hundred-megabyte call ran ~15x slower
 * than the same bytes in 4 MiB calls on this class of machine. */
enum { PIECE = 4 << 20 };

/* Bytes read and then hashed at a time on a load: small enough to be hashed while still in the
 * core's cache. */
enum { HASH_CHUNK = 1 << 20 };

int ct_ckpt_layout_add(ct_ckpt_layout_t *L, uint64_t off, uint64_t len, void *mem, ct_err_t *e) {
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        ct_ckpt_span_t *p = ct_fault_realloc(L->spans, (size_t)cap * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory laying out %s", L->path);
        L->spans = p;
        L->cap = cap;
    }
    L->spans[L->n++] = (ct_ckpt_span_t){.off = off, .len = len, .mem = mem};
    return 0;
}

static int by_offset(const void *a, const void *b) {
    const ct_ckpt_span_t *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}


int ct_ckpt_layout_seal(ct_ckpt_layout_t *L, int writing, ct_err_t *e) {
    qsort(L->spans, (size_t)L->n, sizeof *L->spans, by_offset);
    uint64_t end = 0;
    for (int i = 0; i < L->n; i++) {
        if (L->spans[i].off < end || L->spans[i].off + L->spans[i].len < L->spans[i].off)
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor data overlaps at byte %llu: the file is "
                          "damaged or was not written by cotrain", L->path,
                          (unsigned long long)L->spans[i].off);
        end = L->spans[i].off + L->spans[i].len;
    }
    int fd = open(L->path, (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s: %s", L->path, strerror(errno));
    struct stat st = {0};
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = CT_ERR(e, CT_EIO, "cannot stat %s: %s", L->path, strerror(errno));
    } else if ((uint64_t)st.st_size < end && !writing) {
        rc = CT_ERR(e, CT_ECORRUPT, "%s is %lld bytes, its tensors end at byte %llu: the file "
                    "is truncated", L->path, (long long)st.st_size, (unsigned long long)end);
    } else if ((uint64_t)st.st_size < end) {
        int injected = ct_fault_hit(CT_FAULT_WRITE);
        if (injected || ftruncate(fd, (off_t)end) != 0)
            rc = CT_ERR(e, CT_EIO, "cannot extend %s: %s (is the disk full?)", L->path,
                        ct_fault_strerror(injected, errno));
    }
    L->size = (uint64_t)st.st_size < end ? end : (uint64_t)st.st_size;
    if (rc == 0 && writing) {
        L->rest_len = L->size;
        for (int i = 0; i < L->n; i++) L->rest_len -= L->spans[i].len;
        L->rest = ct_fault_malloc(L->rest_len ? L->rest_len : 1);
        if (!L->rest) rc = CT_ERR(e, CT_ENOMEM, "out of memory laying out %s", L->path);
        uint64_t at = 0, got = 0;
        for (int i = 0; i <= L->n && rc == 0; i++) {
            uint64_t to = i < L->n ? L->spans[i].off : L->size;
            rc = ct_read_all(fd, L->rest + got, to - at, (int64_t)at, L->path, e);
            got += to - at;
            if (i < L->n) at = L->spans[i].off + L->spans[i].len;
        }
    }
    close(fd);
    return rc;
}

void ct_ckpt_layout_free(ct_ckpt_layout_t *L) {
    if (!L) return;
    free(L->spans);
    free(L->rest);
    memset(L, 0, sizeof *L);
}

/* ---- write ---- */

/* Bytes per direct write: one 4 MiB direct write at a time leaves the disk idle between them;
 * 16 MiB (which the kernel splits into requests in flight together) wrote gpt2's 1.5 GB in
 * 1.56 s against 1.96 s at 4 MiB from one thread here, and two writer threads keep the disk
 * busier still. */
enum { DIRECT_PIECE = 16 << 20 };

/* A piece of work: file[off, off + len) from mem, with O_DIRECT or through write(). */
typedef struct {
    int file, direct;
    uint64_t off, len;
    const unsigned char *mem;
} piece_t;

/* Per file: a buffered descriptor and a direct one (-1: none) with the alignments the file
 * system asks of it. */
typedef struct {
    const char *path;
    int fd, dfd;
    uint64_t mem_align, off_align;
} wfile_t;

struct ct_ckpt_writer {
    int n_files, n_pieces;
    wfile_t *files;
    piece_t *pieces;
    atomic_int next;    /* the next piece to take */
    atomic_int failed;  /* set by the first thread that fails: the others stop */
    atomic_int working; /* threads inside ct_ckpt_writer_work */
    atomic_int synced;  /* every piece written and every file fsync'd */
};

/* Opens f's direct descriptor if the file system supports O_DIRECT on it (statx's
 * STATX_DIOALIGN says so, and with which alignments; tmpfs says no). */
static void open_direct(wfile_t *f) {
    f->dfd = -1;
    struct statx sx;
    if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 ||
        !(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_offset_align == 0 ||
        sx.stx_dio_mem_align == 0 || DIRECT_PIECE % sx.stx_dio_offset_align != 0)
        return;
    f->mem_align = sx.stx_dio_mem_align;
    f->off_align = sx.stx_dio_offset_align;
    f->dfd = open(f->path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static int add_piece(ct_ckpt_writer_t *w, int *cap, piece_t p, ct_err_t *e) {
    if (p.len == 0) return 0;
    if (w->n_pieces == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        piece_t *q = ct_fault_realloc(w->pieces, (size_t)*cap * sizeof *q);
        if (!q) return CT_ERR(e, CT_ENOMEM, "out of memory writing %s", w->files[p.file].path);
        w->pieces = q;
    }
    w->pieces[w->n_pieces++] = p;
    return 0;
}

/* Cuts span s of file k into pieces: [off, a) and [b, end) through write() in PIECE calls, the
 * aligned middle [a, b) direct in DIRECT_PIECE calls. */
static int plan_span(ct_ckpt_writer_t *w, int *cap, int k, const ct_ckpt_span_t *s,
                     ct_err_t *e) {
    const wfile_t *f = &w->files[k];
    const unsigned char *p = s->mem;
    uint64_t end = s->off + s->len, a = end, b = end;
    if (f->dfd >= 0) {
        uint64_t x = (s->off + f->off_align - 1) / f->off_align * f->off_align;
        uint64_t y = end / f->off_align * f->off_align;
        if (x < y) a = x, b = y;
    }
    uint64_t cuts[3][2] = {{s->off, a}, {a, b}, {b, end}};
    for (int r = 0; r < 3; r++) {
        uint64_t step = r == 1 ? DIRECT_PIECE : PIECE;
        for (uint64_t at = cuts[r][0]; at < cuts[r][1]; at += step) {
            uint64_t n = cuts[r][1] - at < step ? cuts[r][1] - at : step;
            piece_t pc = {.file = k, .direct = r == 1, .off = at, .len = n,
                          .mem = p + (at - s->off)};
            CT_TRY(add_piece(w, cap, pc, e));
        }
    }
    return 0;
}

void ct_ckpt_writer_destroy(ct_ckpt_writer_t **w_p) {
    ct_ckpt_writer_t *w = *w_p;
    if (!w) return;
    for (int k = 0; k < w->n_files; k++) {
        if (w->files[k].dfd >= 0) close(w->files[k].dfd);
        if (w->files[k].fd >= 0) close(w->files[k].fd);
    }
    free(w->files);
    free(w->pieces);
    free(w);
    *w_p = NULL;
}

int ct_ckpt_writer_create(ct_ckpt_writer_t **w_p, const ct_ckpt_layout_t *files, int n,
                          ct_err_t *e) {
    ct_ckpt_writer_t *w = ct_fault_calloc(1, sizeof *w);
    wfile_t *f = ct_fault_calloc((size_t)n, sizeof *f);
    *w_p = w;
    if (!w || !f) {
        free(f);
        free(w);
        *w_p = NULL;
        return CT_ERR(e, CT_ENOMEM, "out of memory writing %s", files[0].path);
    }
    w->files = f;
    atomic_init(&w->next, 0);
    atomic_init(&w->failed, 0);
    atomic_init(&w->working, 0);
    atomic_init(&w->synced, 0);
    int cap = 0, rc = 0;
    for (int k = 0; k < n; k++) w->files[k].fd = w->files[k].dfd = -1;
    for (int k = 0; k < n && rc == 0; k++) {
        w->n_files = k + 1;
        f[k].path = files[k].path;
        f[k].fd = open(f[k].path, O_WRONLY | O_CLOEXEC);
        if (f[k].fd < 0) {
            rc = CT_ERR(e, CT_EIO, "cannot open %s: %s", f[k].path, strerror(errno));
            break;
        }
        open_direct(&f[k]);
        for (int i = 0; i < files[k].n && rc == 0; i++)
            rc = plan_span(w, &cap, k, &files[k].spans[i], e);
    }
    if (rc != 0) ct_ckpt_writer_destroy(w_p);
    return rc;
}

/* Writes piece pc with O_DIRECT, from its memory when that is aligned as the file system asks,
 * else through *bounce (DIRECT_PIECE bytes, allocated on first need, freed by the caller).
 * Returns 1 when the file system refused O_DIRECT after all (the caller writes it buffered). */
static int write_direct(const wfile_t *f, const piece_t *pc, unsigned char **bounce,
                        ct_err_t *e) {
    const unsigned char *src = pc->mem;
    if ((uintptr_t)src % f->mem_align != 0) {
        if (!*bounce) {
            size_t a = f->mem_align < 4096 ? 4096 : (size_t)f->mem_align;
            *bounce = ct_fault_aligned_alloc(a, DIRECT_PIECE);
            if (!*bounce) return CT_ERR(e, CT_ENOMEM, "out of memory writing %s", f->path);
        }
        src = memcpy(*bounce, src, (size_t)pc->len);
    }
    ssize_t r;
    int injected = ct_fault_hit(CT_FAULT_WRITE);
    do r = injected ? -1 : pwrite(f->dfd, src, (size_t)pc->len, (off_t)pc->off);
    while (r < 0 && !injected && errno == EINTR);
    if (r < 0 && !injected && errno == EINVAL) return 1;
    if (r != (ssize_t)pc->len) /* a short direct write cannot be resumed aligned */
        return CT_ERR(e, CT_EIO, "writing %s failed at byte %llu: %s (is the disk full?)",
                      f->path, (unsigned long long)(pc->off + (r > 0 ? (uint64_t)r : 0)),
                      r < 0 ? ct_fault_strerror(injected, errno) : "short write");
    return 0;
}

/* fsyncs every file: one fsync per file covers both of its descriptors (the buffered ends, the
 * direct writes' block allocations) and the device's write cache. */
static int sync_files(ct_ckpt_writer_t *w, ct_err_t *e) {
    for (int k = 0; k < w->n_files; k++) {
        int injected = ct_fault_hit(CT_FAULT_FSYNC);
        if (injected || fsync(w->files[k].fd) != 0)
            return CT_ERR(e, CT_EIO, "fsync of %s failed: %s (is the disk full?)",
                          w->files[k].path, ct_fault_strerror(injected, errno));
    }
    atomic_store(&w->synced, 1);
    return 0;
}

int ct_ckpt_writer_work(ct_ckpt_writer_t *w, ct_err_t *e) {
    unsigned char *bounce = NULL;
    int rc = 0;
    atomic_fetch_add(&w->working, 1);
    for (int i; rc == 0 && !atomic_load(&w->failed) &&
                (i = atomic_fetch_add(&w->next, 1)) < w->n_pieces;) {
        const piece_t *pc = &w->pieces[i];
        const wfile_t *f = &w->files[pc->file];
        int buffered = !pc->direct;
        if (pc->direct && (rc = write_direct(f, pc, &bounce, e)) == 1) rc = 0, buffered = 1;
        if (rc == 0 && buffered)
            rc = ct_write_all(f->fd, pc->mem, (size_t)pc->len, (int64_t)pc->off, f->path, e);
    }
    free(bounce);
    if (rc != 0) atomic_store(&w->failed, 1);
    /* The last thread out syncs now rather than in finish: the flush then overlaps whatever the
       caller's other threads still do (hashing). When the count drops to 0, every piece has been
       taken and every taken piece written; a thread that enters later finds none left and syncs
       again (harmless). */
    if (atomic_fetch_sub(&w->working, 1) == 1 && rc == 0 && !atomic_load(&w->failed))
        rc = sync_files(w, e);
    return rc;
}

int ct_ckpt_writer_finish(ct_ckpt_writer_t **w_p, ct_err_t *e) {
    ct_ckpt_writer_t *w = *w_p;
    int rc = atomic_load(&w->synced) ? 0 : sync_files(w, e);
    for (int k = 0; k < w->n_files; k++) {
        if (w->files[k].dfd >= 0) close(w->files[k].dfd);
        w->files[k].dfd = -1;
        if (close(w->files[k].fd) != 0 && rc == 0)
            rc = CT_ERR(e, CT_EIO, "closing %s failed: %s (is the disk full?)",
                        w->files[k].path, strerror(errno));
        w->files[k].fd = -1;
    }
    ct_ckpt_writer_destroy(w_p);
    return rc;
}

/* ---- hash, read ---- */

/* Feeds mem[0..n), the file's bytes from `at` on, to the whole-file hash (when whole is not NULL)
 * and to the hashes of the pieces it falls in (when pieces is not NULL), finishing each piece at
 * its end. */
static void hash_run(ct_sha256_t *whole, ct_sha256_t **piece, ct_hex_t *pieces, uint64_t at,
                     const unsigned char *mem, uint64_t n) {
    if (whole) ct_sha256_update(whole, mem, (size_t)n);
    while (pieces && n > 0 && *piece) {
        uint64_t room = CT_CKPT_PIECE - (at & (CT_CKPT_PIECE - 1)), k = n < room ? n : room;
        ct_sha256_update(*piece, mem, (size_t)k);
        at += k, mem += k, n -= k;
        if ((at & (CT_CKPT_PIECE - 1)) == 0) {
            ct_sha256_end(piece, pieces[(at >> CT_CKPT_PIECE_SHIFT) - 1]);
            *piece = ct_sha256_begin();
        }
    }
}

int ct_ckpt_io_hash(const ct_ckpt_layout_t *L, char *hex, ct_hex_t *pieces, ct_err_t *e) {
    ct_sha256_t *h = hex ? ct_sha256_begin() : NULL, *piece = pieces ? ct_sha256_begin() : NULL;
    if ((hex && !h) || (pieces && !piece)) {
        if (h) ct_sha256_end(&h, hex);
        if (piece) ct_sha256_end(&piece, pieces[0]);
        return CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", L->path);
    }
    const unsigned char *rest = L->rest;
    uint64_t at = 0;
    for (int i = 0; i <= L->n; i++) {
        uint64_t to = i < L->n ? L->spans[i].off : L->size;
        hash_run(h, &piece, pieces, at, rest, to - at);
        rest += to - at;
        if (i == L->n) break;
        hash_run(h, &piece, pieces, to, L->spans[i].mem, L->spans[i].len);
        at = L->spans[i].off + L->spans[i].len;
    }
    int rc = pieces && !piece ? CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", L->path) : 0;
    /* the last piece, when the file does not end on a piece boundary; else a spare context */
    char spare[CT_SHA256_HEX];
    if (piece)
        ct_sha256_end(&piece, (L->size & (CT_CKPT_PIECE - 1)) != 0
                                  ? pieces[L->size >> CT_CKPT_PIECE_SHIFT]
                                  : spare);
    if (h) ct_sha256_end(&h, hex);
    return rc;
}

int ct_ckpt_io_read(const ct_ckpt_layout_t *L, int part, int parts, ct_err_t *e) {
    uint64_t total = 0;
    for (int i = 0; i < L->n; i++) total += L->spans[i].len;
    /* this part's share of the spans' bytes, as if they were one run: [lo, hi) */
    uint64_t lo = total / (uint64_t)parts * (uint64_t)part;
    uint64_t hi = part == parts - 1 ? total : total / (uint64_t)parts * (uint64_t)(part + 1);
    int fd = open(L->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s: %s", L->path, strerror(errno));
    int rc = 0;
    uint64_t base = 0; /* bytes of the spans before span i */
    for (int i = 0; i < L->n && rc == 0 && base < hi; base += L->spans[i++].len) {
        const ct_ckpt_span_t *s = &L->spans[i];
        uint64_t a = lo > base ? lo - base : 0, b = hi - base < s->len ? hi - base : s->len;
        for (uint64_t at = a; at < b && rc == 0; at += PIECE) {
            uint64_t k = b - at < PIECE ? b - at : PIECE;
            rc = ct_read_all(fd, (unsigned char *)s->mem + at, (size_t)k, (int64_t)(s->off + at),
                             L->path, e);
        }
    }
    close(fd);
    return rc;
}

/* The first span of L ending after byte `at` (L->n when none). */
static int first_span_after(const ct_ckpt_layout_t *L, uint64_t at) {
    int lo = 0, hi = L->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (L->spans[mid].off + L->spans[mid].len <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Reads file[a, b) into dst and hashes it; *nonzero |= any byte not zero (for the gaps). */
static int read_hash(int fd, const ct_ckpt_layout_t *L, uint64_t a, uint64_t b,
                     unsigned char *dst, ct_sha256_t *h, int *nonzero, ct_err_t *e) {
    for (uint64_t at = a; at < b; at += HASH_CHUNK) {
        size_t k = (size_t)(b - at < HASH_CHUNK ? b - at : HASH_CHUNK);
        unsigned char *p = dst + (at - a);
        CT_TRY(ct_read_all(fd, p, k, (int64_t)at, L->path, e));
        ct_sha256_update(h, p, k);
        if (nonzero)
            for (size_t i = 0; i < k && !*nonzero; i++) *nonzero = p[i] != 0;
    }
    return 0;
}

int ct_ckpt_io_read_piece(const ct_ckpt_layout_t *L, int piece, const char *want,
                          unsigned char *scratch, size_t cap, int *gap_nonzero, ct_err_t *e) {
    uint64_t a = (uint64_t)piece * CT_CKPT_PIECE, b = a + CT_CKPT_PIECE;
    if (b > L->size) b = L->size;
    int fd = open(L->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s: %s", L->path, strerror(errno));
    posix_fadvise(fd, (off_t)a, (off_t)(b - a), POSIX_FADV_WILLNEED);
    ct_sha256_t *h = ct_sha256_begin();
    int rc = h ? 0 : CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", L->path);
    uint64_t at = a;
    for (int i = first_span_after(L, a); rc == 0 && at < b; i++) {
        const ct_ckpt_span_t *s = i < L->n ? &L->spans[i] : NULL;
        uint64_t gap_end = s && s->off < b ? s->off : b;
        /* the bytes before the span (HDF5's metadata, alignment gaps): through scratch */
        while (rc == 0 && at < gap_end) {
            uint64_t k = gap_end - at < cap ? gap_end - at : cap;
            rc = read_hash(fd, L, at, at + k, scratch, h, gap_nonzero, e);
            at += k;
        }
        if (!s || s->off >= b || rc != 0) break;
        /* the span's part in this piece: straight into the tensor's memory */
        uint64_t end = s->off + s->len < b ? s->off + s->len : b;
        rc = read_hash(fd, L, at, end, (unsigned char *)s->mem + (at - s->off), h, NULL, e);
        at = end;
    }
    close(fd);
    char got[CT_SHA256_HEX] = "";
    if (h) ct_sha256_end(&h, got);
    if (rc == 0 && strcmp(got, want) != 0)
        rc = CT_ERR(e, CT_ECORRUPT, "%s piece %d (bytes from %llu) has sha256 %.16s..., its "
                    "MANIFEST says %.16s...: the file was changed or damaged; use another "
                    "checkpoint", L->path, piece, (unsigned long long)a, got, want);
    return rc;
}
