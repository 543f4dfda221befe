/* fuzz_file.h — for the fuzz targets whose parser reads a file: the input written to a file of
 * this process in $COTRAIN_FUZZ_DIR (run.sh and scripts/bench make one in /dev/shm and remove
 * it after; default /dev/shm), its path returned, rewritten for each input. */
#ifndef COTRAIN_FUZZ_FILE_H
#define COTRAIN_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The folder for this process's files. */
static inline const char *fuzz_dir(void) {
    const char *d = getenv("COTRAIN_FUZZ_DIR");
    return d && d[0] ? d : "/dev/shm";
}

static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/cotrain-fuzz-%d-%s", fuzz_dir(), (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t put = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || put != size) return NULL;
    return path;
}

#endif
