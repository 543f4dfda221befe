/* fsutil.h — small file-system helpers: checked path joins, the one read/write-all loop, create
 * directory paths and write files atomically (temp name, fsync, rename, fsync of the directory),
 * so a reader sees the old file or the new one, never half of one. */
#ifndef COTRAIN_FSUTIL_H
#define COTRAIN_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/err.h"

/* Largest path the helpers build; longer ones are refused, never cut short. */
enum { CT_PATH_MAX = 4096 };

/* Writes "dir/name" into out[n]. Errors: CT_EINVAL when it does not fit (never truncates). */
int ct_path_join(char *out, size_t n, const char *dir, const char *name, ct_err_t *e);

/* Formats a path into out[n] like snprintf. Errors: CT_EINVAL when it does not fit. */
int ct_path_fmt(char *out, size_t n, ct_err_t *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Moves exactly n bytes between buf and fd: at byte `off`, or at the file position when off < 0.
 * Short transfers and EINTR are retried. Errors: CT_EIO naming `path` (for messages only), the
 * offset and the reason ("unexpected end of file" for a short read; "is the disk full?" on
 * writes). */
int ct_read_all(int fd, void *buf, size_t n, int64_t off, const char *path, ct_err_t *e);
int ct_write_all(int fd, const void *buf, size_t n, int64_t off, const char *path, ct_err_t *e);

/* fsync of a file or directory by path. Errors: CT_EIO naming it. */
int ct_fsync_path(const char *path, ct_err_t *e);

/* mkdir -p: creates `path` and its missing parents (mode 0755). Returns 0 or CT_EIO naming the
 * component that failed and why. */
int ct_mkdirs(const char *path, ct_err_t *e);

/* Replaces `path` with `len` bytes of `data` atomically and durably (through ct_commit_file).
 * On failure the temp file is removed and CT_EIO names the step that failed; the previous file
 * (if any) is untouched unless only the final fsync of the directory failed (see below). */
int ct_write_file_atomic(const char *path, const void *data, size_t len, ct_err_t *e);

/* Makes the finished file `tmp` durable and puts it in place as `path`: fsync(tmp), rename, fsync
 * of the directory. A failure before the rename removes `tmp` and leaves any previous `path`
 * untouched; the rename is the commit point, so when only the directory's fsync fails after it,
 * the new `path` is in place (whole, but not known to survive a crash). Either way CT_EIO says
 * which step failed. */
int ct_commit_file(const char *tmp, const char *path, ct_err_t *e);

/* Reads the whole file into *buf (malloc'd, one extra NUL byte after *len bytes; the caller
 * frees it). Errors: CT_ENOENT (cannot open, with path and reason), CT_EIO, CT_ENOMEM. */
int ct_read_file(const char *path, char **buf, size_t *len, ct_err_t *e);

/* Reads the whole file into the caller's buf[0..cap) and sets *len. Errors: CT_ENOENT, CT_EIO
 * (including a file larger than cap). */
int ct_read_file_into(const char *path, void *buf, size_t cap, size_t *len, ct_err_t *e);

/* Reads up to `want` bytes of `path` from byte `off` into *buf (malloc'd, the caller frees; *n
 * bytes: fewer at the file's end, none at it); *size gets the file's size. Errors: CT_ENOENT /
 * CT_EIO (unreadable: naming it), CT_EINVAL (off past the end: saying so), CT_ENOMEM. */
int ct_read_range(const char *path, int64_t off, size_t want, void **buf, size_t *n,
                  int64_t *size, ct_err_t *e);

/* Removes path and everything below it (links are removed, not followed): 0, or -1 with errno
 * set by the first removal that failed. */
int ct_rm_tree(const char *path);

#endif
