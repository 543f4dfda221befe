/* fsutil.c — checked paths, the read/write-all loop, mkdir -p, whole-file reads and atomic,
 * durable file replacement. Every write, fsync, rename and directory creation here asks the
 * fault-injection plan first (fault.h), so tests can fail each of them in turn. */
#include "cotrain/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/fault.h"

int ct_path_join(char *out, size_t n, const char *dir, const char *name, ct_err_t *e) {
    int w = snprintf(out, n, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= n)
        return CT_ERR(e, CT_EINVAL, "path too long (over %zu bytes): %.200s/%.200s", n - 1, dir,
                      name);
    return 0;
}

int ct_path_fmt(char *out, size_t n, ct_err_t *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n)
        return CT_ERR(e, CT_EINVAL, "path too long (over %zu bytes): %.200s...", n - 1, out);
    return 0;
}

/* The one loop behind ct_read_all and ct_write_all. */
static int transfer(int fd, int writing, void *buf, size_t n, int64_t off, const char *path,
                    ct_err_t *e) {
    unsigned char *p = buf;
    for (size_t done = 0; done < n;) {
        size_t k = n - done;
        ssize_t r;
        int injected = writing && ct_fault_hit(CT_FAULT_WRITE);
        if (injected)
            r = -1;
        else if (off >= 0)
            r = writing ? pwrite(fd, p + done, k, (off_t)(off + (int64_t)done))
                        : pread(fd, p + done, k, (off_t)(off + (int64_t)done));
        else
            r = writing ? write(fd, p + done, k) : read(fd, p + done, k);
        if (r < 0 && !injected && errno == EINTR) continue;
        if (r <= 0) {
            unsigned long long at = (unsigned long long)(off >= 0 ? off : 0) + done;
            const char *why = r == 0 ? (writing ? "nothing written" : "unexpected end of file")
                                     : ct_fault_strerror(injected, errno);
            return writing ? CT_ERR(e, CT_EIO,
                                    "writing %s failed at byte %llu: %s (is the disk "
                                    "full?)",
                                    path, at, why)
                           : CT_ERR(e, CT_EIO, "reading %s failed at byte %llu: %s", path, at, why);
        }
        done += (size_t)r;
    }
    return 0;
}

int ct_read_all(int fd, void *buf, size_t n, int64_t off, const char *path, ct_err_t *e) {
    return transfer(fd, 0, buf, n, off, path, e);
}

int ct_write_all(int fd, const void *buf, size_t n, int64_t off, const char *path, ct_err_t *e) {
    return transfer(fd, 1, (void *)buf, n, off, path, e);
}

int ct_fsync_path(const char *path, ct_err_t *e) {
    struct stat st;
    int dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
    int injected = ct_fault_hit(CT_FAULT_FSYNC), rc = 0;
    if (injected || fsync(fd) != 0)
        rc = CT_ERR(e, CT_EIO, "fsync of %s failed: %s", path, ct_fault_strerror(injected, errno));
    close(fd);
    return rc;
}

int ct_mkdirs(const char *path, ct_err_t *e) {
    char buf[CT_PATH_MAX];
    CT_TRY(ct_path_fmt(buf, sizeof buf, e, "%s", path));
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        int injected = ct_fault_hit(CT_FAULT_WRITE);
        if (injected || (mkdir(buf, 0755) != 0 && errno != EEXIST))
            return CT_ERR(e, CT_EIO, "cannot create directory %s: %s", buf,
                          ct_fault_strerror(injected, errno));
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return CT_ERR(e, CT_EIO, "%s exists and is not a directory", buf);
        *p = saved;
        if (saved == '\0') break;
    }
    return 0;
}

static int fsync_dir_of(const char *path, ct_err_t *e) {
    char buf[CT_PATH_MAX];
    CT_TRY(ct_path_fmt(buf, sizeof buf, e, "%s", path));
    return ct_fsync_path(dirname(buf), e);
}

int ct_write_file_atomic(const char *path, const void *data, size_t len, ct_err_t *e) {
    char tmp[CT_PATH_MAX];
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s.tmp.%ld", path, (long)getpid()));
    int injected = ct_fault_hit(CT_FAULT_WRITE);
    int fd = injected ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, ct_fault_strerror(injected, errno));
    int rc = ct_write_all(fd, data, len, -1, tmp, e);
    if (close(fd) != 0 && rc == 0)
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s", tmp, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return ct_commit_file(tmp, path, e);
}

int ct_commit_file(const char *tmp, const char *path, ct_err_t *e) {
    int rc = 0;
    int fd = open(tmp, O_RDONLY);
    if (fd < 0) {
        rc = CT_ERR(e, CT_EIO, "cannot open %s to sync it: %s", tmp, strerror(errno));
    } else {
        int injected = ct_fault_hit(CT_FAULT_FSYNC);
        if (injected || fsync(fd) != 0)
            rc = CT_ERR(e, CT_EIO, "fsync of %s failed: %s", tmp,
                        ct_fault_strerror(injected, errno));
        close(fd);
    }
    int injected = rc == 0 && ct_fault_hit(CT_FAULT_RENAME);
    if (rc == 0 && (injected || rename(tmp, path) != 0))
        rc = CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", tmp, path,
                    ct_fault_strerror(injected, errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir_of(path, e);
}

/* Opens path and returns its fd and size, or an error naming it. */
static int open_regular(const char *path, int *fd, size_t *size, ct_err_t *e) {
    *fd = open(path, O_RDONLY);
    if (*fd < 0) return CT_ERR(e, CT_ENOENT, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return CT_ERR(e, CT_EIO, "%s is not a readable regular file", path);
    }
    *size = (size_t)st.st_size;
    return 0;
}

int ct_read_file(const char *path, char **buf, size_t *len, ct_err_t *e) {
    *buf = NULL;
    *len = 0;
    int fd, rc = 0;
    size_t n;
    CT_TRY(open_regular(path, &fd, &n, e));
    char *b = ct_fault_malloc(n + 1);
    if (!b) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %zu bytes of %s", n, path);
    } else if ((rc = ct_read_all(fd, b, n, 0, path, e)) == 0) {
        b[n] = '\0';
        *buf = b;
        *len = n;
        b = NULL;
    }
    free(b);
    close(fd);
    return rc;
}

int ct_read_file_into(const char *path, void *buf, size_t cap, size_t *len, ct_err_t *e) {
    int fd, rc = 0;
    size_t n;
    CT_TRY(open_regular(path, &fd, &n, e));
    if (n > cap)
        rc = CT_ERR(e, CT_EIO, "%s has %zu bytes, more than the %zu expected (did it change?)",
                    path, n, cap);
    else if ((rc = ct_read_all(fd, buf, n, 0, path, e)) == 0)
        *len = n;
    close(fd);
    return rc;
}

int ct_read_range(const char *path, int64_t off, size_t want, void **buf, size_t *n, int64_t *size,
                  ct_err_t *e) {
    int fd, rc = 0;
    size_t total;
    *buf = NULL;
    *n = 0;
    CT_TRY(open_regular(path, &fd, &total, e));
    *size = (int64_t)total;
    if (off < 0 || off > (int64_t)total) {
        close(fd);
        return CT_ERR(e, CT_EINVAL, "offset %lld is past the end of %s (%zu bytes)", (long long)off,
                      path, total);
    }
    size_t k = total - (size_t)off < want ? total - (size_t)off : want;
    void *b = malloc(k ? k : 1);
    if (!b)
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %zu bytes of %s", k, path);
    else if ((rc = ct_read_all(fd, b, k, off, path, e)) == 0) {
        *buf = b;
        *n = k;
    } else {
        free(b);
    }
    close(fd);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int ct_rm_tree(const char *path) {
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
