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

int ct_read_file(const char *path, char **buf, size_t *len, ct_err_t *e) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return CT_ERR(e, CT_ENOENT, "cannot open %s: %s", path, strerror(errno));
    int rc = 0;
    struct stat st;
    char *b = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CT_ERR(e, CT_EIO, "%s is not a readable regular file", path);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    b = malloc(n + 1);
    if (!b) {
        rc = CT_ERR(e, CT_ENOMEM, "out of memory reading %zu bytes of %s", n, path);
        goto out;
    }
    for (size_t done = 0; done < n;) {
        ssize_t r = read(fd, b + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = CT_ERR(e, CT_EIO, "reading %s failed: %s", path,
                        r < 0 ? strerror(errno) : "file shrank while being read");
            goto out;
        }
        done += (size_t)r;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    b = NULL;
out:
    free(b);
    close(fd);
    return rc;
}
