/* ckpt_io.h — private to the checkpoint module: the raw bytes of the tensor files. ckpt_h5.c lays
 * a file out with HDF5 (metadata, one contiguous dataset per tensor) and says where each tensor's
 * bytes go; this module moves those bytes between memory and the file and hashes the file. */
#ifndef COTRAIN_CKPT_IO_H
#define COTRAIN_CKPT_IO_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"
#include "ckpt_sums.h"

/* One tensor's bytes: file[off, off + len) <-> mem[0, len). */
typedef struct ct_ckpt_span {
    uint64_t off;
    uint64_t len;
    void *mem; /* the source when writing, the destination when reading; not owned */
} ct_ckpt_span_t;

/* A tensor file: where its tensors lie, and (for writing) every other byte of it. */
typedef struct ct_ckpt_layout {
    char path[4096];
    uint64_t size;          /* the file's size */
    int n, cap;             /* spans used and allocated */
    ct_ckpt_span_t *spans;  /* sorted by offset and disjoint after ct_ckpt_layout_seal */
    unsigned char *rest;    /* writing: the bytes outside the spans (HDF5's metadata), in order */
    uint64_t rest_len;
} ct_ckpt_layout_t;

/* Appends a span. Errors: CT_ENOMEM. */
int ct_ckpt_layout_add(ct_ckpt_layout_t *L, uint64_t off, uint64_t len, void *mem, ct_err_t *e);

/* Sorts the spans and checks them against the file at L->path: disjoint and inside the file
 * (`writing`: the file is extended to the last span's end if shorter, and every byte outside
 * the spans is read into L->rest). Fills L->size. Errors: CT_ECORRUPT (spans overlap or run past
 * the end of the file: not a checkpoint this code wrote), CT_EIO, CT_ENOMEM. */
int ct_ckpt_layout_seal(ct_ckpt_layout_t *L, int writing, ct_err_t *e);

/* Frees what L holds (not the spans' memory) and zeroes it. NULL-safe. */
void ct_ckpt_layout_free(ct_ckpt_layout_t *L);

/* Writing the tensors of sealed files, from several threads at once. The work is cut into
 * pieces: aligned runs go with O_DIRECT (straight from the tensor's memory when the file system
 * allows its alignment, else through an aligned bounce buffer) so the bytes skip the page cache;
 * the ends, and file systems that refuse O_DIRECT (tmpfs), go through write().
 *   create  opens the files and plans the pieces (files[] must outlive the writer)
 *   work    called by every writing thread at once: writes pieces until none is left or any
 *           thread failed; returns this thread's failure
 *   finish  after every work call returned: fsyncs and closes the files, destroys the writer
 * Errors: CT_EIO naming the file, the offset and the reason (ENOSPC, EIO, a short write), with
 * "is the disk full?"; CT_ENOMEM. destroy (NULL-safe) frees a writer that is not finished. */
typedef struct ct_ckpt_writer ct_ckpt_writer_t;
int ct_ckpt_writer_create(ct_ckpt_writer_t **w, const ct_ckpt_layout_t *files, int n,
                          ct_err_t *e);
int ct_ckpt_writer_work(ct_ckpt_writer_t *w, ct_err_t *e);
int ct_ckpt_writer_finish(ct_ckpt_writer_t **w, ct_err_t *e);
void ct_ckpt_writer_destroy(ct_ckpt_writer_t **w);

/* sha256 of the file as the writer leaves it: whole into hex[CT_SHA256_HEX] (when not NULL) and
 * of each 64 MiB piece into pieces[0 .. ct_ckpt_pieces(L->size)) (when not NULL; ckpt_sums.h),
 * from L->rest and the spans' memory (no file access), so it can run beside the write; the two
 * kinds can be asked of two threads. Errors: CT_ENOMEM. */
int ct_ckpt_io_hash(const ct_ckpt_layout_t *L, char *hex, ct_hex_t *pieces, ct_err_t *e);

/* Reads part `part` of `parts` (by bytes) of the spans of the sealed file into their memory, so
 * that several threads can share the work. Errors: CT_EIO (a read error, or the file shorter
 * than when sealed), naming the file. */
int ct_ckpt_io_read(const ct_ckpt_layout_t *L, int part, int parts, ct_err_t *e);

/* Reads piece `piece` (ckpt_sums.h: 64 MiB) of the file L describes (sealed for reading) in one
 * pass: the tensors' bytes straight into their memory, every other byte through scratch[0..cap),
 * all of them hashed in file order, and compares the hash with `want`. The piece's bytes are
 * used only by the caller, and only once this returned 0. *gap_nonzero (may be NULL) is set when
 * a byte outside the tensors is not zero. Errors: CT_EIO (naming the file), CT_ECORRUPT (the
 * hash differs: naming the file and the piece), CT_ENOMEM. */
int ct_ckpt_io_read_piece(const ct_ckpt_layout_t *L, int piece, const char *want,
                          unsigned char *scratch, size_t cap, int *gap_nonzero, ct_err_t *e);

#endif
