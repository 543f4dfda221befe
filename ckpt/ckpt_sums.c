/* ckpt_sums.c — a checkpoint's MANIFEST: parse it (bounds-checked, one line at a time, one
 * `malformed` exit), write it, and check a file or one piece of it against it. */
#include "ckpt_sums.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/fault.h"
#include "cotrain/fsutil.h"

const char *const ct_ckpt_file_names[CT_CKPT_NFILES] = {"config.json", "model.h5", "optim.h5",
                                                        "state.json"};

static const char CHUNK[] = "#chunk ";

int ct_ckpt_sums_reserve(ct_ckpt_sums_t *s, int k, uint64_t size, ct_err_t *e) {
    int n = ct_ckpt_pieces(size);
    free(s->piece[k]);
    s->piece[k] = ct_fault_calloc(n ? (size_t)n : 1, sizeof *s->piece[k]);
    if (!s->piece[k]) return CT_ERR(e, CT_ENOMEM, "out of memory for %d piece hashes", n);
    s->n_pieces[k] = n;
    s->has_pieces = 1;
    return 0;
}

void ct_ckpt_sums_free(ct_ckpt_sums_t *s) {
    if (!s) return;
    for (int k = 0; k < CT_CKPT_NFILES; k++)
        free(s->piece[k]);
    memset(s, 0, sizeof *s);
}

static int is_hex64(const char *p, const char *end) {
    return end - p >= 64 && strspn(p, "0123456789abcdef") >= 64;
}

/* Appends piece hash `hex` to file k's list (growing it). */
static int push_piece(ct_ckpt_sums_t *s, int k, const char *hex, ct_err_t *e) {
    int n = s->n_pieces[k];
    if ((n & (n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power of two */
        ct_hex_t *p = realloc(s->piece[k], (size_t)(n ? 2 * n : 1) * sizeof *p);
        if (!p) return CT_ERR(e, CT_ENOMEM, "out of memory reading a MANIFEST");
        s->piece[k] = p;
    }
    memcpy(s->piece[k][n], hex, 64);
    s->piece[k][n][64] = '\0';
    s->n_pieces[k] = n + 1;
    return 0;
}

/* Parses text[0..len) (NUL-terminated) into s. */
static int parse(const char *text, size_t len, const char *path, ct_ckpt_sums_t *s, ct_err_t *e) {
    const char *p = text, *end = text + len;
    int line = 1;
    for (int k = 0; k < CT_CKPT_NFILES; k++, line++) {
        const char *name = ct_ckpt_file_names[k];
        size_t nl = strlen(name);
        if (!is_hex64(p, end) || (size_t)(end - p) < 64 + 2 + nl + 1 || p[64] != ' ' ||
            p[65] != ' ' || memcmp(p + 66, name, nl) != 0 || p[66 + nl] != '\n')
            goto malformed;
        memcpy(s->file[k], p, 64);
        s->file[k][64] = '\0';
        p += 66 + nl + 1;
    }
    /* piece lines: every file in order, each from piece 0 up, none left out */
    int k = 0;
    for (; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || (size_t)(eol - p) < sizeof CHUNK - 1 || memcmp(p, CHUNK, sizeof CHUNK - 1))
            goto malformed;
        p += sizeof CHUNK - 1;
        while (k < CT_CKPT_NFILES) {
            size_t nl = strlen(ct_ckpt_file_names[k]);
            if ((size_t)(eol - p) > nl && !memcmp(p, ct_ckpt_file_names[k], nl) && p[nl] == ' ')
                break;
            if (s->n_pieces[k] == 0) goto malformed; /* a file without pieces */
            k++;
        }
        if (k == CT_CKPT_NFILES) goto malformed;
        p += strlen(ct_ckpt_file_names[k]) + 1;
        char want[16];
        int wn = snprintf(want, sizeof want, "%d ", s->n_pieces[k]);
        if (eol - p < wn || memcmp(p, want, (size_t)wn) != 0) goto malformed; /* out of order */
        p += wn;
        if (eol - p != 64 || !is_hex64(p, eol)) goto malformed;
        CT_TRY(push_piece(s, k, p, e));
        s->has_pieces = 1;
        p = eol + 1;
    }
    if (s->has_pieces && (k != CT_CKPT_NFILES - 1 || s->n_pieces[k] == 0)) goto malformed;
    return 0;
malformed:
    return CT_ERR(e, CT_ECORRUPT,
                  "%s is malformed at line %d (expected \"<sha256>  <file>\" "
                  "for %s, %s and %s, then optional \"#chunk <file> <piece> <sha256>\" lines "
                  "covering every file): the checkpoint was damaged; use another one",
                  path, line, ct_ckpt_file_names[0], ct_ckpt_file_names[1], ct_ckpt_file_names[3]);
}

int ct_ckpt_sums_read(const char *dir, ct_ckpt_sums_t *s, ct_err_t *e) {
    char path[CT_PATH_MAX], *text = NULL;
    size_t len = 0;
    ct_err_t why = {0};
    memset(s, 0, sizeof *s);
    CT_TRY(ct_path_join(path, sizeof path, dir, "MANIFEST", e));
    if (ct_read_file(path, &text, &len, &why) != 0)
        return CT_ERR(e, CT_ENOENT, "%s is not a checkpoint: %s", dir, why.msg);
    int rc = parse(text, len, path, s, e);
    if (rc == 0) ct_sha256_hex(text, len, s->id);
    free(text);
    if (rc != 0) ct_ckpt_sums_free(s);
    return rc;
}

int ct_ckpt_sums_write(const char *dir, ct_ckpt_sums_t *s, ct_err_t *e) {
    char path[CT_PATH_MAX];
    size_t cap = 4 * 128, used = 0;
    for (int k = 0; k < CT_CKPT_NFILES; k++)
        cap += (size_t)s->n_pieces[k] * 128;
    char *text = ct_fault_malloc(cap);
    if (!text) return CT_ERR(e, CT_ENOMEM, "out of memory writing a MANIFEST");
    for (int k = 0; k < CT_CKPT_NFILES; k++)
        used += (size_t)snprintf(text + used, cap - used, "%s  %s\n", s->file[k],
                                 ct_ckpt_file_names[k]);
    for (int k = 0; k < CT_CKPT_NFILES; k++)
        for (int i = 0; i < s->n_pieces[k]; i++)
            used += (size_t)snprintf(text + used, cap - used, "%s%s %d %s\n", CHUNK,
                                     ct_ckpt_file_names[k], i, s->piece[k][i]);
    int rc = ct_path_join(path, sizeof path, dir, "MANIFEST", e);
    if (rc == 0) rc = ct_write_file_atomic(path, text, used, e);
    if (rc == 0) ct_sha256_hex(text, used, s->id);
    free(text);
    return rc;
}

int ct_ckpt_sums_hash_file(const char *path, ct_ckpt_sums_t *s, int k, ct_err_t *e) {
    char *text = NULL;
    size_t len = 0;
    CT_TRY(ct_read_file(path, &text, &len, e));
    int rc = ct_ckpt_sums_reserve(s, k, len, e);
    if (rc == 0) {
        ct_sha256_hex(text, len, s->file[k]);
        for (int i = 0; i < s->n_pieces[k]; i++) {
            uint64_t a = (uint64_t)i * CT_CKPT_PIECE, b = a + CT_CKPT_PIECE;
            ct_sha256_hex(text + a, (size_t)((b < len ? b : len) - a), s->piece[k][i]);
        }
    }
    free(text);
    return rc;
}

int ct_ckpt_sums_check(const char *dir, const ct_ckpt_sums_t *s, int k, int i, unsigned char *buf,
                       size_t cap, ct_err_t *e) {
    char path[CT_PATH_MAX], got[CT_SHA256_HEX];
    CT_TRY(ct_path_join(path, sizeof path, dir, ct_ckpt_file_names[k], e));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CT_ERR(e, CT_ENOENT, "checkpoint %s is incomplete: cannot open %s: %s", dir,
                      ct_ckpt_file_names[k], strerror(errno));
    struct stat st;
    int rc = 0;
    ct_sha256_t *h = ct_sha256_begin();
    if (!h) rc = CT_ERR(e, CT_ENOMEM, "out of memory hashing %s", path);
    if (rc == 0 && fstat(fd, &st) != 0)
        rc = CT_ERR(e, CT_EIO, "cannot stat %s: %s", path, strerror(errno));
    uint64_t size = rc == 0 ? (uint64_t)st.st_size : 0, a = 0, b = size;
    if (rc == 0 && i >= 0) {
        if (ct_ckpt_pieces(size) != s->n_pieces[k])
            rc = CT_ERR(e, CT_ECORRUPT,
                        "checkpoint %s: %s has %llu bytes, but its MANIFEST "
                        "lists %d pieces of 64 MiB: the file was cut or grown; use another "
                        "checkpoint",
                        dir, ct_ckpt_file_names[k], (unsigned long long)size, s->n_pieces[k]);
        a = (uint64_t)i * CT_CKPT_PIECE;
        b = a + CT_CKPT_PIECE < size ? a + CT_CKPT_PIECE : size;
        posix_fadvise(fd, (off_t)a, (off_t)(b - a), POSIX_FADV_WILLNEED);
    }
    for (uint64_t at = a; rc == 0 && at < b; at += cap) {
        size_t n = (size_t)(b - at < cap ? b - at : cap);
        rc = ct_read_all(fd, buf, n, (int64_t)at, path, e);
        if (rc == 0) ct_sha256_update(h, buf, n);
    }
    close(fd);
    if (h) ct_sha256_end(&h, got);
    if (rc != 0) return rc;
    const char *want = i >= 0 ? s->piece[k][i] : s->file[k];
    if (strcmp(got, want) != 0) {
        char which[64] = "";
        if (i >= 0)
            snprintf(which, sizeof which, " piece %d (bytes from %llu)", i, (unsigned long long)a);
        return CT_ERR(e, CT_ECORRUPT,
                      "checkpoint %s: %s%s has sha256 %.16s..., its MANIFEST "
                      "says %.16s...: the file was changed or damaged; use another checkpoint",
                      dir, ct_ckpt_file_names[k], which, got, want);
    }
    return 0;
}
