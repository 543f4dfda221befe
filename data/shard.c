/* shard.c — writes and reads the HDF5 data shards (see shard.h for the layout).
 *
 * Reading works on the file's bytes already in memory (HDF5's core driver with a file image), so
 * the bytes that were hashed against the manifest are exactly the bytes that are parsed: nothing
 * can change on disk between the check and the use. HDF5's automatic error printing is switched
 * off for the calling thread; failures are reported through ct_err_t with HDF5's own reason. */
#include "cotrain/shard.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/fault.h"
#include "cotrain/fsutil.h"
#include "cotrain/h5image.h"

enum { CHUNK_TOKENS = 1 << 20, CHUNK_DOCS = 1 << 14, H5_REASON = 256 };
static const char FORMAT[] = "cotrain-shard/1";

int ct_shard_tokens_sha256(const uint32_t *tokens, int64_t n, int vocab_size,
                           char hex[CT_SHA256_HEX], ct_err_t *e) {
    ct_sha256_t *h = ct_sha256_begin();
    hex[0] = '\0';
    if (!h) return CT_ERR(e, CT_ENOMEM, "out of memory hashing the tokens of a shard");
    int width = vocab_size <= 65535 ? 2 : 4;
    unsigned char buf[4096 * 4];
    for (int64_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / (size_t)width && i < n; k++, i++)
            for (int b = 0; b < width; b++) buf[k * width + b] = (unsigned char)(tokens[i] >> (8 * b));
        ct_sha256_update(h, buf, k * width);
    }
    ct_sha256_end(&h, hex);
    return 0;
}

/* The description of the innermost HDF5 error on this thread's stack, for messages. */
static herr_t keep_desc(unsigned n, const H5E_error2_t *err, void *data) {
    (void)n;
    if (err->desc && err->desc[0]) snprintf(data, H5_REASON, "%s", err->desc);
    return 0;
}
static const char *h5_reason(char buf[H5_REASON]) {
    snprintf(buf, H5_REASON, "unknown HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_desc, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

static hid_t string_type(size_t size) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* Each writer below records HDF5's reason in why[] at the failing call: any later successful
 * HDF5 call (the cleanup) clears the error stack. */
static herr_t failed(char why[H5_REASON]) {
    h5_reason(why);
    return -1;
}

static herr_t write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                         const void *value, char why[H5_REASON]) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 || H5Awrite(a, mem_type, value) < 0 ? failed(why) : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return st;
}

static herr_t write_string_attr(hid_t obj, const char *name, const char *value,
                                char why[H5_REASON]) {
    hid_t t = string_type(strlen(value) + 1);
    herr_t st = write_attr(obj, name, t, t, value, why);
    H5Tclose(t);
    return st;
}

static herr_t write_int_attr(hid_t obj, const char *name, int64_t value, char why[H5_REASON]) {
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, why);
}

/* Creates and writes a chunked, checksummed 1-D dataset of n elements. */
static herr_t write_dataset(hid_t f, const char *name, hid_t file_type, hid_t mem_type,
                            hsize_t n, hsize_t chunk, const void *data, char why[H5_REASON]) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(1, &n, NULL);
    if (chunk > n) chunk = n;
    hid_t d = -1;
    herr_t st = 0;
    if (H5Pset_chunk(dcpl, 1, &chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0 ||
        (d = H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) {
        st = failed(why);
    } else if (ct_fault_hit(CT_FAULT_WRITE)) {
        snprintf(why, H5_REASON, "%s", ct_fault_strerror(1, 0));
        st = -1;
    } else if (H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        st = failed(why);
    }
    if (d >= 0 && H5Dclose(d) < 0 && st == 0) st = failed(why);
    H5Sclose(sp);
    H5Pclose(dcpl);
    return st;
}

/* doc_ids as fixed-length, NUL-padded UTF-8 strings as long as the longest id: HDF5 cannot
 * checksum variable-length data, and every dataset of a shard is checksummed. */
static herr_t write_ids(hid_t f, const ct_shard_t *s, char why[H5_REASON]) {
    size_t width = 1, n = (size_t)s->n_docs; /* > 0: checked by check_content */
    for (size_t d = 0; d < n; d++)
        if (strlen(s->doc_ids[d]) > width) width = strlen(s->doc_ids[d]);
    char *packed = n <= SIZE_MAX / 2 / width ? ct_fault_calloc(n, width) : NULL;
    if (!packed) {
        snprintf(why, H5_REASON, "out of memory");
        return -1;
    }
    for (size_t d = 0; d < n; d++) memcpy(packed + d * width, s->doc_ids[d], strlen(s->doc_ids[d]));
    hid_t t = string_type(width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    herr_t st = write_dataset(f, "doc_ids", t, t, (hsize_t)s->n_docs, CHUNK_DOCS, packed, why);
    H5Tclose(t);
    free(packed);
    return st;
}

static int check_content(const ct_shard_t *s, const char *path, ct_err_t *e) {
    if (s->n_tokens <= 0 || s->n_docs <= 0)
        return CT_ERR(e, CT_EINVAL, "shard %s would be empty (%lld tokens, %lld documents)", path,
                      (long long)s->n_tokens, (long long)s->n_docs);
    for (int64_t i = 0; i < s->n_tokens; i++)
        if (s->tokens[i] >= (uint32_t)s->vocab_size)
            return CT_ERR(e, CT_EINVAL, "shard %s: token %u at %lld is outside the vocabulary (%d)",
                          path, s->tokens[i], (long long)i, s->vocab_size);
    if (s->doc_offsets[0] != 0 || s->doc_offsets[s->n_docs] != s->n_tokens)
        return CT_ERR(e, CT_EINVAL, "shard %s: document offsets do not span the tokens", path);
    for (int64_t d = 0; d < s->n_docs; d++)
        if (s->doc_offsets[d + 1] < s->doc_offsets[d])
            return CT_ERR(e, CT_EINVAL, "shard %s: document offsets decrease at %lld", path,
                          (long long)d);
    return 0;
}

int ct_shard_write(const char *path, ct_shard_t *s, ct_err_t *e) {
    CT_TRY(check_content(s, path, e));
    char tmp[CT_PATH_MAX], why[H5_REASON] = "";
    CT_TRY(ct_path_fmt(tmp, sizeof tmp, e, "%s.tmp", path));
    CT_TRY(ct_shard_tokens_sha256(s->tokens, s->n_tokens, s->vocab_size, s->tokens_sha256, e));
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0); /* the root group: no times in the file */
    /* creating the file, each dataset's H5Dwrite and the flush at close are writes for the fault
       plan: HDF5's own calls cannot be failed one by one */
    int injected = ct_fault_hit(CT_FAULT_WRITE);
    hid_t f = injected ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (injected)
        snprintf(why, sizeof why, "%s", ct_fault_strerror(1, 0));
    else if (f < 0)
        h5_reason(why);
    H5Pclose(fcpl);
    if (f < 0) return CT_ERR(e, CT_EIO, "cannot create %s: %s", tmp, why);
    hid_t tok_type = s->vocab_size <= 65535 ? H5T_STD_U16LE : H5T_STD_U32LE;
    const char *step = "tokens";
    herr_t st = write_dataset(f, "tokens", tok_type, H5T_NATIVE_UINT32, (hsize_t)s->n_tokens,
                              CHUNK_TOKENS, s->tokens, why);
    if (st >= 0) {
        step = "doc_offsets";
        st = write_dataset(f, "doc_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64,
                           (hsize_t)s->n_docs + 1, CHUNK_DOCS, s->doc_offsets, why);
    }
    if (st >= 0) {
        step = "doc_ids";
        st = write_ids(f, s, why);
    }
    if (st >= 0) {
        step = "attributes";
        if (write_string_attr(f, "format", FORMAT, why) < 0 ||
            write_string_attr(f, "tokenizer", s->tokenizer, why) < 0 ||
            write_int_attr(f, "vocab_size", s->vocab_size, why) < 0 ||
            write_int_attr(f, "n_tokens", s->n_tokens, why) < 0 ||
            write_int_attr(f, "n_docs", s->n_docs, why) < 0 ||
            write_string_attr(f, "tokens_sha256", s->tokens_sha256, why) < 0)
            st = -1;
    }
    if (H5Fclose(f) < 0 && st >= 0) {
        step = "closing the file";
        st = failed(why);
    } else if (st >= 0 && ct_fault_hit(CT_FAULT_WRITE)) {
        step = "closing the file";
        st = -1;
        snprintf(why, sizeof why, "%s", ct_fault_strerror(1, 0));
    }
    if (st < 0) {
        int rc = CT_ERR(e, CT_EIO, "writing %s (%s) failed: %s (is the disk full?)", tmp, step,
                        why);
        remove(tmp);
        return rc;
    }
    return ct_commit_file(tmp, path, e);
}

/* Reads a scalar attribute as int64, or a string into buf[size]. 0 or -1. */
static int read_int_attr(hid_t f, const char *name, int64_t *v) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t st = H5Aread(a, H5T_NATIVE_INT64, v);
    H5Aclose(a);
    return st < 0 ? -1 : 0;
}
static int read_string_attr(hid_t f, const char *name, char *buf, size_t size) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) && H5Tget_size(ft) <= size) {
        hid_t t = string_type(H5Tget_size(ft));
        memset(buf, 0, size);
        rc = H5Aread(a, t, buf) < 0 ? -1 : 0;
        H5Tclose(t);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* Opens dataset `name` and returns its length (1-D) in *n, or -1. */
static hid_t open_1d(hid_t f, const char *name, int64_t *n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t dim = 0;
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, &dim, NULL) == 1;
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        H5Dclose(d);
        return -1;
    }
    *n = (int64_t)dim;
    return d;
}

/* Reads doc_ids (fixed-length strings) into s->doc_ids as separately owned strings. */
static int read_ids(hid_t f, ct_shard_t *s, const char *name, ct_err_t *e) {
    int64_t n = -1;
    hid_t d = open_1d(f, "doc_ids", &n);
    hid_t ft = d < 0 ? -1 : H5Dget_type(d);
    size_t width = ft < 0 ? 0 : H5Tget_size(ft);
    int ok = ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) &&
             width > 0 && width <= 4096 && n == s->n_docs;
    if (ft >= 0) H5Tclose(ft);
    if (!ok) {
        if (d >= 0) H5Dclose(d);
        return CT_ERR(e, CT_ECORRUPT, "shard %s: dataset doc_ids is missing, not fixed-length "
                      "strings, or has %lld entries for %lld documents", name, (long long)n,
                      (long long)s->n_docs);
    }
    int rc = 0;
    char *packed = NULL, why[H5_REASON];
    hid_t t = string_type(width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    /* one spare NUL after the last id: an id of exactly `width` bytes is not NUL-terminated in
     * the file, and strndup may look (ASan's strict_string_checks do) for a terminator */
    CT_ALLOC(e, packed, (size_t)n * width + 1, out);
    CT_ALLOC(e, s->doc_ids, (size_t)n, out);
    if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed) < 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s: cannot read doc_ids: %s", name, h5_reason(why));
        goto out;
    }
    for (int64_t i = 0; i < n && rc == 0; i++)
        if (!(s->doc_ids[i] = strndup(packed + (size_t)i * width, width)))
            rc = CT_ERR(e, CT_ENOMEM, "out of memory reading the ids of shard %s", name);
out:
    free(packed);
    H5Tclose(t);
    H5Dclose(d);
    return rc;
}

/* Everything after the file is open: attributes, tokens, offsets, ids, and their consistency. */
static int read_contents(hid_t f, const char *name, int with_ids, int64_t cap, ct_shard_t *s,
                         ct_err_t *e) {
    int rc = 0;
    char fmt[64], why[H5_REASON];
    int64_t vocab = 0, n_tokens = -1, n_docs = -1;
    if (read_string_attr(f, "format", fmt, sizeof fmt) != 0 || strcmp(fmt, FORMAT) != 0 ||
        read_string_attr(f, "tokenizer", s->tokenizer, sizeof s->tokenizer) != 0 ||
        read_string_attr(f, "tokens_sha256", s->tokens_sha256, sizeof s->tokens_sha256) != 0 ||
        read_int_attr(f, "vocab_size", &vocab) != 0 || read_int_attr(f, "n_docs", &n_docs) != 0 ||
        read_int_attr(f, "n_tokens", &n_tokens) != 0 || vocab <= 0 || vocab > (1LL << 31) ||
        n_docs <= 0)
        return CT_ERR(e, CT_ECORRUPT, "shard %s is not a %s file (attributes missing or wrong): "
                      "re-create it with `cotrain prep`", name, FORMAT);
    s->vocab_size = (int)vocab;
    s->n_docs = n_docs;
    hid_t d = open_1d(f, "tokens", &s->n_tokens);
    if (d < 0 || s->n_tokens != n_tokens) {
        if (d >= 0) H5Dclose(d);
        return CT_ERR(e, CT_ECORRUPT, "shard %s: dataset tokens is missing or its length differs "
                      "from the n_tokens attribute (%lld)", name, (long long)n_tokens);
    }
    if (!s->tokens) {
        CT_ALLOC(e, s->tokens, (size_t)s->n_tokens, out_d);
    } else if (s->n_tokens > cap) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s holds %lld tokens, more than the %lld expected",
                    name, (long long)s->n_tokens, (long long)cap);
        goto out_d;
    }
    if (H5Dread(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->tokens) < 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s: cannot read tokens: %s", name, h5_reason(why));
        goto out_d;
    }
    for (int64_t i = 0; i < s->n_tokens; i++)
        if (s->tokens[i] >= (uint32_t)s->vocab_size) {
            rc = CT_ERR(e, CT_ECORRUPT, "shard %s: token %u at position %lld is outside its "
                        "vocabulary (%d)", name, s->tokens[i], (long long)i, s->vocab_size);
            goto out_d;
        }
    H5Dclose(d);
    int64_t n_off = -1;
    d = open_1d(f, "doc_offsets", &n_off);
    if (d < 0 || n_off != n_docs + 1) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s: dataset doc_offsets is missing or has %lld entries "
                    "for %lld documents", name, (long long)n_off, (long long)n_docs);
        goto out_d;
    }
    CT_ALLOC(e, s->doc_offsets, (size_t)n_off, out_d);
    if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->doc_offsets) < 0) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s: cannot read doc_offsets: %s", name, h5_reason(why));
        goto out_d;
    }
    if (s->doc_offsets[0] != 0 || s->doc_offsets[n_docs] != s->n_tokens) {
        rc = CT_ERR(e, CT_ECORRUPT, "shard %s: doc_offsets do not span the tokens", name);
        goto out_d;
    }
    for (int64_t i = 0; i < n_docs; i++)
        if (s->doc_offsets[i + 1] < s->doc_offsets[i]) {
            rc = CT_ERR(e, CT_ECORRUPT, "shard %s: doc_offsets decrease at %lld", name,
                        (long long)i);
            goto out_d;
        }
    if (with_ids) rc = read_ids(f, s, name, e);
out_d:
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int read_image(const void *image, size_t len, const char *name, int with_ids,
                      uint32_t *tokens, int64_t cap, ct_shard_t *s, ct_err_t *e) {
    memset(s, 0, sizeof *s);
    char why[H5_REASON];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = ct_h5image_open(image, len, name);
    if (f < 0) {
        h5_reason(why);
        return CT_ERR(e, CT_ECORRUPT, "shard %s is not a readable HDF5 file: %s", name, why);
    }
    s->tokens = tokens;
    s->tokens_borrowed = tokens != NULL;
    int rc = read_contents(f, name, with_ids, cap, s, e);
    H5Fclose(f);
    if (rc != 0) ct_shard_clear(s);
    return rc;
}

int ct_shard_read_image(const void *image, size_t len, const char *name, int with_ids,
                        ct_shard_t *s, ct_err_t *e) {
    return read_image(image, len, name, with_ids, NULL, 0, s, e);
}

int ct_shard_read_image_into(const void *image, size_t len, const char *name, uint32_t *tokens,
                             int64_t cap, ct_shard_t *s, ct_err_t *e) {
    return read_image(image, len, name, 0, tokens, cap, s, e);
}

void ct_shard_clear(ct_shard_t *s) {
    if (!s->tokens_borrowed) free(s->tokens);
    free(s->doc_offsets);
    if (s->doc_ids)
        for (int64_t i = 0; i < s->n_docs; i++) free(s->doc_ids[i]);
    free(s->doc_ids);
    memset(s, 0, sizeof *s);
}
