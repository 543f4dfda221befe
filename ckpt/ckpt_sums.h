/* ckpt_sums.h — private to the checkpoint module: a checkpoint's MANIFEST, the hashes it is
 * verified by (DESIGN.md, "MANIFEST").
 *
 *   <sha256>  config.json          whole-file hashes, in this order (sha256sum -c format)
 *   <sha256>  model.h5
 *   <sha256>  optim.h5
 *   <sha256>  state.json
 *   #chunk config.json 0 <sha256>  then one line per 64 MiB piece of each file, same order:
 *   #chunk model.h5 0 <sha256>     piece i is bytes [i * 2^26, (i + 1) * 2^26), the last
 *   ...                            shorter; a file of n bytes has ceil(n / 2^26) pieces
 *
 * The piece lines are what lets a load verify on every core: SHA-256 is one sequential stream
 * per input, so one hash over a 1 GB file keeps one core busy however many there are. An older
 * MANIFEST without piece lines is still read (whole files are hashed then). */
#ifndef COTRAIN_CKPT_SUMS_H
#define COTRAIN_CKPT_SUMS_H

#include <stdint.h>

#include "cotrain/err.h"
#include "cotrain/hash.h"

enum { CT_CKPT_CONFIG, CT_CKPT_MODEL, CT_CKPT_OPTIM, CT_CKPT_STATE, CT_CKPT_NFILES };
enum { CT_CKPT_PIECE_SHIFT = 26 }; /* 64 MiB pieces */
#define CT_CKPT_PIECE ((uint64_t)1 << CT_CKPT_PIECE_SHIFT)

/* The files of a checkpoint besides MANIFEST, in MANIFEST order. */
extern const char *const ct_ckpt_file_names[CT_CKPT_NFILES];

typedef char ct_hex_t[CT_SHA256_HEX];

typedef struct ct_ckpt_sums {
    ct_hex_t file[CT_CKPT_NFILES]; /* whole-file sha256 */
    int has_pieces;                /* 0: an older MANIFEST, whole-file hashes only */
    int n_pieces[CT_CKPT_NFILES];
    ct_hex_t *piece[CT_CKPT_NFILES]; /* (n_pieces[k]) malloc'd */
    ct_hex_t id;                     /* sha256 of the MANIFEST's bytes: the checkpoint's id */
} ct_ckpt_sums_t;

/* Pieces of a file of `size` bytes. */
static inline int ct_ckpt_pieces(uint64_t size) {
    return (int)((size + CT_CKPT_PIECE - 1) >> CT_CKPT_PIECE_SHIFT);
}

/* Makes room for the piece hashes of file k of `size` bytes (sets n_pieces[k], has_pieces).
 * Errors: CT_ENOMEM. */
int ct_ckpt_sums_reserve(ct_ckpt_sums_t *s, int k, uint64_t size, ct_err_t *e);

/* Reads and checks dir/MANIFEST into the zeroed *s (fills id). Errors: CT_ENOENT (no MANIFEST:
 * not a checkpoint), CT_ECORRUPT (malformed, naming the line). On failure *s holds nothing. */
int ct_ckpt_sums_read(const char *dir, ct_ckpt_sums_t *s, ct_err_t *e);

/* Writes s as dir/MANIFEST atomically and durably and fills s->id. Errors: CT_EIO, CT_ENOMEM. */
int ct_ckpt_sums_write(const char *dir, ct_ckpt_sums_t *s, ct_err_t *e);

/* Frees the piece hashes and zeroes *s. NULL-safe. */
void ct_ckpt_sums_free(ct_ckpt_sums_t *s);

/* Hashes the file at path whole and by pieces into s->file[k] and s->piece[k] (reserved here).
 * For the small files a save writes itself. Errors: CT_ENOENT, CT_EIO, CT_ENOMEM. */
int ct_ckpt_sums_hash_file(const char *path, ct_ckpt_sums_t *s, int k, ct_err_t *e);

/* Checks piece i of file k (the whole file when i < 0) of dir against s, reading it through
 * buf[0..cap) (the caller's scratch, reused across calls so its pages are touched once).
 * Errors: CT_ENOENT (the file is missing), CT_EIO, CT_ECORRUPT (a mismatch, or a file whose size
 * does not fit its pieces: naming the file, the piece and both hashes). */
int ct_ckpt_sums_check(const char *dir, const ct_ckpt_sums_t *s, int k, int i, unsigned char *buf,
                       size_t cap, ct_err_t *e);

#endif
