/* fsutil.c — mkdir -p, whole-file reads and atomic, durable file replacement. */
#include "cotrain/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ct_mkdirs(const char *path, ct_err_t *e) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return CT_ERR(e, CT_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return CT_ERR(e, CT_EIO, "cannot create directory %s: %s", buf, strerror(errno));
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return CT_ERR(e, CT_EIO, "%s exists and is not a directory", buf);
        *p = saved;
        if (saved == '\0') break;
    }
    return 0;
}

static int fsync_dir_of(const char *path, ct_err_t *e) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    const char *dir = dirname(buf);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : CT_ERR(e, CT_EIO, "fsync of directory %s failed: %s", dir,
                                         strerror(errno));
    close(fd);
    return rc;
}

int ct_write_file_atomic(const char *path, const void *data, size_t len, ct_err_t *e) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return CT_ERR(e, CT_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
    int rc = 0;
    const char *p = data;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = CT_ERR(e, CT_EIO, "writing %s failed: %s (is the disk full?)", tmp,
                        w < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)w;
    }
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
        if (fsync(fd) != 0) rc = CT_ERR(e, CT_EIO, "fsync of %s failed: %s", tmp, strerror(errno));
        close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", tmp, path, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir_of(path, e);
}

/* Reads exactly n bytes from fd into buf. */
static int read_all(int fd, char *buf, size_t n, const char *path, ct_err_t *e) {
    for (size_t done = 0; done < n;) {
        ssize_t r = read(fd, buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return CT_ERR(e, CT_EIO, "reading %s failed: %s", path,
                          r < 0 ? strerror(errno) : "file shrank while being read");
        done += (size_t)r;
    }
    return 0;
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
    char *b = malloc(n + 1);
    if (!b) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %zu bytes of %s", n, path);
    } else if ((rc = read_all(fd, b, n, path, e)) == 0) {
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
    else if ((rc = read_all(fd, buf, n, path, e)) == 0)
        *len = n;
    close(fd);
    return rc;
}
