/* fuzz_file.h — for the fuzz targets whose parser reads a file: the input written to a file of
 * this process in /dev/shm (memory), its path returned, rewritten for each input. */
#ifndef COTRAIN_FUZZ_FILE_H
#define COTRAIN_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t size, const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "/dev/shm/cotrain-fuzz-%d-%s", (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t put = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || put != size) return NULL;
    return path;
}

#endif
