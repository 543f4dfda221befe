/* ckpt_h5.c — the tensor files of a checkpoint: model.h5 (weights) and optim.h5 (AdamW moments),
 * one fp32 dataset per tensor under its Hugging Face name and shape.
 *
 * The vocabulary padding rows of wte are not stored (they are always zero) and are zeroed on
 * read. Datasets are contiguous and unfiltered: the checkpoint's MANIFEST hashes every byte, so a
 * per-chunk checksum would only cost time. Object times are off, so the same tensors always give
 * the same bytes. HDF5 writes and reads only the metadata: it lays the file out (each dataset's
 * space allocated at creation, 4 KiB-aligned, never filled) and says where each tensor lies;
 * ckpt_io.c moves the tensor bytes themselves (see there for why). Any HDF5 reader reads the
 * files as usual. */
#include "ckpt_h5.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "ckpt_io.h"
#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/h5image.h"

/* The stored shape of tensor t: its first stored_rows rows. */
static void stored_shape(const ct_tensor_info_t *t, hsize_t dims[2]) {
    dims[0] = (hsize_t)t->stored_rows;
    dims[1] = t->ndim == 2 ? (hsize_t)t->shape[1] : 0;
}

static herr_t keep_desc(unsigned n, const H5E_error2_t *err, void *data) {
    (void)n;
    if (err->desc && err->desc[0]) snprintf(data, 256, "%s", err->desc);
    return 0;
}

/* HDF5's reason for the failure that just happened (before any cleanup call clears it). */
static const char *reason(char buf[256]) {
    snprintf(buf, 256, "unknown HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_desc, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

/* Datasets of at least this many bytes start on a multiple of it, so their bytes can go to disk
 * with O_DIRECT (ckpt_io.c) from the first byte; smaller ones are written through the page cache.
 * The padding costs at most 4 KiB per tensor. */
enum { ALIGN = 4096 };

/* HDF5 puts metadata (object headers, the root group) in blocks of this size; one block this big
 * holds all of a checkpoint file's metadata, at the start of the file, so a load can parse the
 * layout from the first 64 MiB piece alone once that piece is verified (ckpt.c). */
enum { META_BLOCK = 1 << 20 };

enum { NAME_MAX_ = CT_TENSOR_NAME_MAX + 64 };

/* "group/tensor", or the tensor's name for the root group. */
static int full_name(char name[NAME_MAX_], const char *group, const ct_tensor_info_t *t,
                     const char *path, ct_err_t *e) {
    if (snprintf(name, NAME_MAX_, "%s%s%s", group, *group ? "/" : "", t->name) >= NAME_MAX_)
        return CT_ERR(e, CT_EINVAL, "%s: group name %s is too long", path, group);
    return 0;
}

static int create_group(hid_t file, const char *group, const ct_tensor_info_t *tab, int n,
                        const float *buf, hid_t dcpl, ct_ckpt_layout_t *L, ct_err_t *e) {
    char why[256], name[NAME_MAX_];
    for (int i = 0; i < n; i++) {
        const ct_tensor_info_t *t = &tab[i];
        hsize_t dims[2];
        stored_shape(t, dims);
        CT_TRY(full_name(name, group, t, L->path, e));
        hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
        hid_t d = H5Dcreate2(file, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        haddr_t off = d < 0 ? HADDR_UNDEF : H5Dget_offset(d);
        int rc = off == HADDR_UNDEF ? CT_ERR(e, CT_EIO, "creating %s in %s failed: %s (is the "
                                             "disk full?)", name, L->path, reason(why))
                                    : 0;
        uint64_t bytes = (uint64_t)dims[0] * (t->ndim == 2 ? dims[1] : 1) * sizeof(float);
        if (rc == 0) rc = ct_ckpt_layout_add(L, off, bytes, (void *)(buf + t->offset), e);
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
        if (rc) return rc;
    }
    return 0;
}

/* An empty layout for the file at path; HDF5's error printing off (its reasons go into e). */
static int start(const char *path, ct_ckpt_layout_t *L, ct_err_t *e) {
    memset(L, 0, sizeof *L);
    CT_TRY(ct_path_fmt(L->path, sizeof L->path, e, "%s", path));
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

int ct_ckpt_h5_create(const char *path, const ct_tensor_info_t *t, int n,
                      const ct_ckpt_group_t *g, int n_groups, const int64_t *steps,
                      ct_ckpt_layout_t *L, ct_err_t *e) {
    char why[256];
    CT_TRY(start(path, L, e));
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_obj_track_times(fcpl, 0);
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_obj_track_times(gcpl, 0);
    H5Pset_create_intermediate_group(lcpl, 0);
    H5Pset_alignment(fapl, ALIGN, ALIGN);
    H5Pset_meta_block_size(fapl, META_BLOCK);
    /* space allocated at creation (so its offset is known) and never filled: the tensors are
       written once, by the writer in ckpt_io.c */
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    /* creating the file and flushing its metadata at close are writes for the fault plan */
    int injected = ct_fault_hit(CT_FAULT_WRITE);
    hid_t f = injected ? -1 : H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    int rc = f < 0 ? CT_ERR(e, CT_EIO, "cannot create %s: %s", path,
                            injected ? ct_fault_strerror(1, 0) : reason(why))
                   : 0;
    for (int k = 0; k < n_groups && rc == 0; k++) {
        if (g[k].name[0]) {
            hid_t grp = H5Gcreate2(f, g[k].name, lcpl, gcpl, H5P_DEFAULT);
            if (grp < 0) {
                rc = CT_ERR(e, CT_EIO, "writing %s failed: %s", path, reason(why));
                break;
            }
            H5Gclose(grp);
        }
        rc = create_group(f, g[k].name, t, n, g[k].buf, dcpl, L, e);
    }
    if (rc == 0 && steps) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t at = H5Acreate2(f, "steps", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (at < 0 || H5Awrite(at, H5T_NATIVE_INT64, steps) < 0)
            rc = CT_ERR(e, CT_EIO, "writing %s failed: %s", path, reason(why));
        if (at >= 0) H5Aclose(at);
        H5Sclose(sp);
    }
    if (f >= 0) {
        herr_t closed = H5Fclose(f);
        injected = closed >= 0 && ct_fault_hit(CT_FAULT_WRITE);
        if ((closed < 0 || injected) && rc == 0)
            rc = CT_ERR(e, CT_EIO, "closing %s failed: %s (is the disk full?)", path,
                        injected ? ct_fault_strerror(1, 0) : reason(why));
    }
    H5Pclose(fcpl);
    H5Pclose(fapl);
    H5Pclose(dcpl);
    H5Pclose(gcpl);
    H5Pclose(lcpl);
    if (rc == 0) rc = ct_ckpt_layout_seal(L, 1, e);
    if (rc != 0) ct_ckpt_layout_free(L);
    return rc;
}

/* Where each tensor of buf lies in the open file: checks that the dataset exists with the table's
 * shape, is little-endian fp32, and is stored contiguously in the file itself (as
 * ct_ckpt_h5_create makes it), so its bytes can be read raw. */
static int locate_group(hid_t file, const char *group, const ct_tensor_info_t *tab, int n,
                        float *buf, ct_ckpt_layout_t *L, ct_err_t *e) {
    char name[NAME_MAX_];
    const char *path = L->path;
    for (int i = 0; i < n; i++) {
        const ct_tensor_info_t *t = &tab[i];
        hsize_t want[2], got[2] = {0, 0};
        stored_shape(t, want);
        CT_TRY(full_name(name, group, t, path, e));
        hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
        if (d < 0) return CT_ERR(e, CT_ECORRUPT, "%s has no tensor %s", path, name);
        hid_t sp = H5Dget_space(d), ty = H5Dget_type(d), pl = H5Dget_create_plist(d);
        int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
        if (nd == t->ndim) H5Sget_simple_extent_dims(sp, got, NULL);
        uint64_t bytes = (uint64_t)want[0] * (t->ndim == 2 ? want[1] : 1) * sizeof(float);
        int raw = ty >= 0 && H5Tequal(ty, H5T_IEEE_F32LE) > 0 && pl >= 0 &&
                  H5Pget_layout(pl) == H5D_CONTIGUOUS && H5Pget_external_count(pl) == 0 &&
                  H5Dget_storage_size(d) == bytes;
        haddr_t off = raw ? H5Dget_offset(d) : HADDR_UNDEF;
        if (pl >= 0) H5Pclose(pl);
        if (ty >= 0) H5Tclose(ty);
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
        H5Eclear2(H5E_DEFAULT);
        if (nd != t->ndim || got[0] != want[0] || (nd == 2 && got[1] != want[1]))
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor %s has shape (%llu, %llu), the model needs "
                          "(%llu, %llu): the checkpoint's config and its weights disagree",
                          path, name, (unsigned long long)got[0], (unsigned long long)got[1],
                          (unsigned long long)want[0], (unsigned long long)want[1]);
        if (off == HADDR_UNDEF)
            return CT_ERR(e, CT_ECORRUPT, "%s: tensor %s is not stored as cotrain stores it "
                          "(contiguous little-endian fp32 in the file)", path, name);
        CT_TRY(ct_ckpt_layout_add(L, off, bytes, buf + t->offset, e));
        /* padding rows are not stored; they are zero */
        memset(buf + t->offset + bytes / sizeof(float), 0, t->numel * sizeof(float) - bytes);
    }
    return 0;
}

/* Locates every group's tensors in the open file f (closing it), then seals L for reading. */
static int locate_in(hid_t f, const ct_tensor_info_t *t, int n, const ct_ckpt_group_t *g,
                     int n_groups, int64_t *steps, ct_ckpt_layout_t *L, ct_err_t *e) {
    char why[256];
    if (f < 0)
        return CT_ERR(e, CT_ECORRUPT, "%s is not a readable HDF5 file: %s", L->path, reason(why));
    int rc = 0;
    for (int k = 0; k < n_groups && rc == 0; k++)
        rc = locate_group(f, g[k].name, t, n, g[k].buf, L, e);
    if (rc == 0 && steps) {
        hid_t at = H5Aopen(f, "steps", H5P_DEFAULT);
        if (at < 0 || H5Aread(at, H5T_NATIVE_INT64, steps) < 0 || *steps < 0)
            rc = CT_ERR(e, CT_ECORRUPT, "%s: attribute steps is missing or invalid", L->path);
        if (at >= 0) H5Aclose(at);
    }
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    if (rc == 0) rc = ct_ckpt_layout_seal(L, 0, e);
    if (rc != 0) ct_ckpt_layout_free(L);
    return rc;
}

int ct_ckpt_h5_locate(const char *path, const ct_tensor_info_t *t, int n,
                      const ct_ckpt_group_t *g, int n_groups, int64_t *steps,
                      ct_ckpt_layout_t *L, ct_err_t *e) {
    CT_TRY(start(path, L, e));
    return locate_in(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), t, n, g, n_groups, steps, L, e);
}

int ct_ckpt_h5_locate_image(const char *path, void *image, size_t size,
                            const ct_tensor_info_t *t, int n, const ct_ckpt_group_t *g,
                            int n_groups, int64_t *steps, ct_ckpt_layout_t *L, ct_err_t *e) {
    CT_TRY(start(path, L, e));
    hid_t f = ct_h5image_open(image, size, path);
    return locate_in(f, t, n, g, n_groups, steps, L, e);
}
