/* test_ckpt_io.c — the checkpoint's raw tensor I/O (ckpt/ckpt_io.c): spans written from two
 * threads (direct writes from aligned memory, through the bounce buffer from unaligned memory,
 * buffered ends, pieces larger than one direct write) land byte for byte where the layout says,
 * the bytes between them stay as they were, ct_ckpt_io_hash equals the sha256 of the finished
 * file, reads in parts give the spans back; on a file system without O_DIRECT (/dev/shm) too; and
 * writes that fail (a file-size limit part way, /dev/full) fail with CT_EIO and "is the disk
 * full?". The end-to-end checks (HDF5 layout, crash loop, a full tmpfs) are in ckpt_e2e.sh. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ckpt/ckpt_io.h"
#include "check.h"

enum { MIB = 1 << 20 };

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
}

/* Writes L with two threads; returns the writer's result. */
static int write_all(const ct_ckpt_layout_t *L, ct_err_t *e) {
    ct_ckpt_writer_t *w = NULL;
    int rc = ct_ckpt_writer_create(&w, L, 1, e), rcs[2] = {0};
    if (rc != 0) return rc;
    ct_err_t errs[2] = {{0}, {0}};
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; t++) rcs[t] = ct_ckpt_writer_work(w, &errs[t]);
    for (int t = 0; t < 2; t++)
        if (rcs[t] != 0) {
            ct_ckpt_writer_destroy(&w);
            *e = errs[t];
            return rcs[t];
        }
    return ct_ckpt_writer_finish(&w, e);
}

/* A file in dir with 2 MiB of "metadata" bytes, and three spans: aligned memory at an aligned
 * offset, unaligned memory over more than one direct piece, and a small unaligned one. */
static void round_trip(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/t.h5", dir);
    unsigned char *meta = malloc(2 * MIB);
    fill(meta, 2 * MIB, 7);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(meta, 1, 2 * MIB, f) == 2 * MIB);
    if (f) fclose(f);
    size_t n1 = MIB + 1000, n2 = 20 * MIB + 12, n3 = 3000;
    unsigned char *a1 = aligned_alloc(4096, 2 * MIB), *raw2 = malloc(n2 + 4), *a3 = malloc(n3);
    unsigned char *a2 = raw2 + 4; /* unaligned: through the bounce buffer */
    fill(a1, n1, 1), fill(a2, n2, 2), fill(a3, n3, 3);
    ct_ckpt_layout_t L = {0};
    ct_err_t e = {0};
    snprintf(L.path, sizeof L.path, "%s", path);
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 2 * MIB, n2, a2, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 4096, n1, a1, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 100, n3, a3, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_seal(&L, 1, &e), 0);
    CHECK_EQ_INT((long long)L.size, 2 * MIB + n2);
    CHECK_EQ_INT((long long)L.rest_len, L.size - n1 - n2 - n3);
    char want[CT_SHA256_HEX], got[CT_SHA256_HEX];
    ct_hex_t piece[1];
    CHECK_EQ_INT(ct_ckpt_io_hash(&L, want, piece, &e), 0);
    CHECK_EQ_STR(piece[0], want); /* one piece: the whole file */
    CHECK_EQ_INT(write_all(&L, &e), 0);
    if (e.code) fprintf(stderr, "%s\n", e.msg);
    CHECK_EQ_INT(ct_sha256_file(path, got, &e), 0);
    CHECK_EQ_STR(got, want);
    /* the bytes around the spans are untouched */
    unsigned char *back = malloc(L.size);
    FILE *r = fopen(path, "rb");
    CHECK(r && fread(back, 1, L.size, r) == L.size);
    if (r) fclose(r);
    CHECK(memcmp(back, meta, 100) == 0);
    CHECK(memcmp(back + 100, a3, n3) == 0);
    CHECK(memcmp(back + 100 + n3, meta + 100 + n3, 4096 - 100 - n3) == 0);
    CHECK(memcmp(back + 4096 + n1, meta + 4096 + n1, 2 * MIB - 4096 - n1) == 0);
    free(back);
    /* read back in three parts into cleared memory */
    memset(a1, 0, n1), memset(a2, 0, n2), memset(a3, 0, n3);
    for (int p = 0; p < 3; p++) CHECK_EQ_INT(ct_ckpt_io_read(&L, p, 3, &e), 0);
    CHECK_EQ_INT(ct_ckpt_io_hash(&L, got, NULL, &e), 0);
    CHECK_EQ_STR(got, want);

    /* a file-size limit part way: the direct (or buffered) write fails cleanly */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 8 * MIB;
    signal(SIGXFSZ, SIG_IGN);
    CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ct_err_t e2 = {0};
    CHECK_EQ_INT(write_all(&L, &e2), CT_EIO);
    CHECK_CONTAINS(e2.msg, "is the disk full?");
    CHECK_CONTAINS(e2.msg, path);
    setrlimit(RLIMIT_FSIZE, &old);
    ct_ckpt_layout_free(&L);
    free(meta), free(a1), free(raw2), free(a3);
}

/* Piece hashes from memory against a straight re-computation over the written file: a file of
 * two whole 64 MiB pieces and a tail, with spans that cross both piece boundaries and one that
 * ends exactly on a boundary. */
static void pieces(const char *dir) {
    enum { P = 64 * MIB };
    char path[512];
    snprintf(path, sizeof path, "%s/p.h5", dir);
    size_t size = 2 * (size_t)P + 3 * MIB + 5;
    unsigned char *meta = malloc(size), *mem = malloc(size);
    fill(meta, size, 9);
    fill(mem, size, 4);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(meta, 1, size, f) == size);
    if (f) fclose(f);
    ct_ckpt_layout_t L = {0};
    ct_err_t e = {0};
    snprintf(L.path, sizeof L.path, "%s", path);
    /* [4096, P + 8192): across the first boundary; [P + 12288, 2P): ends on the second;
       [2P + 4096, size - 1): across nothing, the tail */
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 4096, P + 4096, mem + 4096, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, P + 12288, P - 12288, mem + P + 12288, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 2 * (uint64_t)P + 4096, size - 1 - 2 * (size_t)P - 4096,
                                    mem + 2 * (size_t)P + 4096, &e), 0);
    CHECK_EQ_INT(ct_ckpt_layout_seal(&L, 1, &e), 0);
    CHECK_EQ_INT(ct_ckpt_pieces(L.size), 3);
    ct_hex_t got[3], whole;
    CHECK_EQ_INT(ct_ckpt_io_hash(&L, whole, got, &e), 0);
    CHECK_EQ_INT(write_all(&L, &e), 0);
    unsigned char *back = malloc(size);
    FILE *r = fopen(path, "rb");
    CHECK(r && fread(back, 1, size, r) == size);
    if (r) fclose(r);
    char want[CT_SHA256_HEX];
    for (int i = 0; i < 3; i++) {
        size_t a = (size_t)i * P, b = a + P < size ? a + P : size;
        ct_sha256_hex(back + a, b - a, want);
        CHECK_EQ_STR(got[i], want);
    }
    ct_sha256_hex(back, size, want);
    CHECK_EQ_STR(whole, want);
    ct_ckpt_layout_free(&L);
    free(meta), free(mem), free(back);
}

int main(void) {
    char dir[] = "/tmp/ct_test_ckpt_io_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    round_trip(dir); /* ext4 and the like: O_DIRECT */
    pieces(dir);
    check_rm_tree(dir);
    char shm[] = "/dev/shm/ct_test_ckpt_io_XXXXXX";
    if (mkdtemp(shm)) { /* tmpfs: no O_DIRECT, everything buffered */
        round_trip(shm);
        check_rm_tree(shm);
    }
    /* a device that is always full */
    ct_ckpt_layout_t L = {0};
    ct_err_t e = {0};
    unsigned char *buf = calloc(1, MIB);
    snprintf(L.path, sizeof L.path, "/dev/full");
    CHECK_EQ_INT(ct_ckpt_layout_add(&L, 0, MIB, buf, &e), 0);
    CHECK_EQ_INT(write_all(&L, &e), CT_EIO);
    CHECK_CONTAINS(e.msg, "No space left on device (is the disk full?)");
    ct_ckpt_layout_free(&L);
    free(buf);
    return CHECK_RESULT();
}
