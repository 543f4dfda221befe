/* h5image.h — an HDF5 file held in memory, opened read-only in place: HDF5's core driver with
 * file-image callbacks that hand it the caller's buffer instead of copying it (by default HDF5
 * copies an image into the property list and again into the open file; at ~11 us per freshly
 * touched page that doubled the cost of loading a shard). Shards (data/) and a checkpoint's
 * verified first piece (ckpt/) are read this way. */
#ifndef COTRAIN_H5IMAGE_H
#define COTRAIN_H5IMAGE_H

#include <hdf5.h>
#include <stddef.h>

/* Opens image[0..len) as an HDF5 file, read-only. `name` is for HDF5's messages; the open file
 * gets a name of its own (HDF5 takes a name as a file's identity, and the core driver refuses
 * the name of a file that exists). The image must stay alive and unchanged until H5Fclose.
 * Returns the file id, or a negative id with the reason on HDF5's error stack. */
hid_t ct_h5image_open(const void *image, size_t len, const char *name);

#endif
