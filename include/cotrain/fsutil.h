/* fsutil.h — small file-system helpers: create directory paths and write files atomically
 * (temp name, fsync, rename, fsync of the directory), so a reader sees the old file or the new
 * one, never half of one. */
#ifndef COTRAIN_FSUTIL_H
#define COTRAIN_FSUTIL_H

#include <stddef.h>

#include "cotrain/err.h"

/* mkdir -p: creates `path` and its missing parents (mode 0755). Returns 0 or CT_EIO naming the
 * component that failed and why. */
int ct_mkdirs(const char *path, ct_err_t *e);

/* Replaces `path` with `len` bytes of `data` atomically and durably. On failure the previous
 * file (if any) is untouched, the temp file removed, and CT_EIO names the step that failed. */
int ct_write_file_atomic(const char *path, const void *data, size_t len, ct_err_t *e);

/* Makes the finished file `tmp` durable and puts it in place as `path`: fsync(tmp), rename, fsync
 * of the directory. On failure `tmp` is removed, any previous `path` is untouched, and CT_EIO says
 * which step failed. */
int ct_commit_file(const char *tmp, const char *path, ct_err_t *e);

/* Reads the whole file into *buf (malloc'd, one extra NUL byte after *len bytes; the caller
 * frees it). Errors: CT_ENOENT (cannot open, with path and reason), CT_EIO, CT_ENOMEM. */
int ct_read_file(const char *path, char **buf, size_t *len, ct_err_t *e);

/* Reads the whole file into the caller's buf[0..cap) and sets *len. Errors: CT_ENOENT, CT_EIO
 * (including a file larger than cap). */
int ct_read_file_into(const char *path, void *buf, size_t cap, size_t *len, ct_err_t *e);

#endif
