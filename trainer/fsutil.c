/* fsutil.c — mkdir -p and atomic, durable file replacement. */
#include "cotrain/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
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
    if (rc == 0 && fsync(fd) != 0)
        rc = CT_ERR(e, CT_EIO, "fsync of %s failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = CT_ERR(e, CT_EIO, "closing %s failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = CT_ERR(e, CT_EIO, "renaming %s to %s failed: %s", tmp, path, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir_of(path, e);
}
