/* h5image.c — opening an in-memory HDF5 file in place (see h5image.h). */
#include "cotrain/h5image.h"

#include <stdio.h>
#include <stdlib.h>

/* The callbacks' data: the image, shared by the property lists and the open file HDF5 makes
 * from it (each copy takes a reference; the last release frees it). */
typedef struct image {
    void *buf;
    size_t len;
    int refs;
} image_t;

/* Every "allocation" of the image is the buffer itself: read-only, never resized or freed. */
static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op;
    image_t *im = udata;
    return size == im->len ? im->buf : NULL;
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                          void *udata) {
    (void)size, (void)op, (void)udata;
    return dest == src ? dest : NULL; /* only ever "copied" onto itself */
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata) {
    (void)ptr, (void)op, (void)udata;
    return 0;
}

static void *udata_copy(void *udata) {
    image_t *im = udata;
    __atomic_add_fetch(&im->refs, 1, __ATOMIC_RELAXED);
    return im;
}

static herr_t udata_free(void *udata) {
    image_t *im = udata;
    if (__atomic_sub_fetch(&im->refs, 1, __ATOMIC_ACQ_REL) == 0) free(im);
    return 0;
}

hid_t ct_h5image_open(const void *image, size_t len, const char *name) {
    image_t *im = malloc(sizeof *im);
    if (!im) return -1;
    *im = (image_t){.buf = (void *)image, .len = len, .refs = 1};
    H5FD_file_image_callbacks_t cb = {image_malloc, image_memcpy, NULL, image_free,
                                      udata_copy,   udata_free,   im};
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0 &&
        H5Pset_file_image_callbacks(fapl, &cb) >= 0 && H5Pset_file_image(fapl, im->buf, len) >= 0) {
        /* two images of one file may be open at once (two loaders): the address is unique
           while the image is open; no file of this name is touched */
        char uname[4200];
        snprintf(uname, sizeof uname, "%.4000s@%p", name, image);
        f = H5Fopen(uname, H5F_ACC_RDONLY, fapl);
    }
    if (fapl >= 0) H5Pclose(fapl);
    udata_free(im); /* ours; the property list's and the file's copies hold their own */
    return f;
}
