/* test_ckpt.c — checkpoint directories through ckpt/ alone (no model: a tensor table made up
 * here), against straight re-computations: the MANIFEST's whole-file and 64 MiB piece hashes
 * against sha256 of the files' bytes, restore against the saved buffers, and every way a
 * checkpoint can be damaged (a byte in one piece, a cut file, a malformed or re-ordered piece
 * line, a MANIFEST changed after verification) refused with the file and piece named. An older
 * MANIFEST without piece lines still verifies and loads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cotrain/ckpt.h"
#include "cotrain/fsutil.h"

enum { COLS = 4096, ROWS = 5000, STORED = 4900, WINDOW = 8 };
#define MIB (1 << 20)

static ct_tensor_info_t TABLE[3];
static int g_one_pass; /* the last restore_equals read every byte once */
static size_t N_FLOATS;

/* Three tensors, the first with padding rows that are never stored, the second of a size that
 * leaves an alignment gap before the third: model.h5 is ~78 MiB (two pieces), optim.h5 ~157 MiB
 * (three). */
static void make_table(void) {
    const struct {
        const char *name;
        int rows, cols, stored;
    } t[3] = {
        {"a.weight", ROWS, COLS, STORED}, {"c.weight", 300, 1000, 300}, {"b.bias", COLS, 0, COLS}};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        ct_tensor_info_t *x = &TABLE[i];
        snprintf(x->name, sizeof x->name, "%s", t[i].name);
        x->offset = off;
        x->ndim = t[i].cols ? 2 : 1;
        x->shape[0] = t[i].rows;
        x->shape[1] = t[i].cols;
        x->numel = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        x->stored_rows = t[i].stored;
        off += x->numel;
    }
    N_FLOATS = off;
}

/* A body whose buffers hold a pattern of `seed` (padding rows zero, as the model keeps them). */
typedef struct body_mem {
    ct_ckpt_body_t b;
    double loss[WINDOW], norm[WINDOW];
} body_mem_t;

static void make_body(body_mem_t *m, unsigned seed) {
    memset(m, 0, sizeof *m);
    ct_ckpt_body_t *b = &m->b;
    b->tensors = TABLE;
    b->n_tensors = 3;
    b->params = malloc(N_FLOATS * sizeof(float));
    b->adam_m = malloc(N_FLOATS * sizeof(float));
    b->adam_v = malloc(N_FLOATS * sizeof(float));
    for (size_t i = 0; i < N_FLOATS; i++) {
        b->params[i] = (float)((i * 2654435761u + seed) % 1000003) * 1e-3f;
        b->adam_m[i] = -b->params[i];
        b->adam_v[i] = b->params[i] * 0.5f;
    }
    size_t pad = (size_t)STORED * COLS, end = (size_t)ROWS * COLS;
    memset(b->params + pad, 0, (end - pad) * sizeof(float));
    memset(b->adam_m + pad, 0, (end - pad) * sizeof(float));
    memset(b->adam_v + pad, 0, (end - pad) * sizeof(float));
    b->adam_steps = 7 + seed;
    b->guard = (ct_ckpt_guard_t){
        .cap = WINDOW, .count = 3, .head = 3, .loss = m->loss, .grad_norm = m->norm};
    /* 0.1 * 3 is 0.30000000000000004: only 17 digits read it back exactly */
    for (int i = 0; i < 3; i++)
        m->loss[i] = 2.5 + i / 3.0, m->norm[i] = 0.1 * (i + 1);
}

static void free_body(body_mem_t *m) {
    free(m->b.params), free(m->b.adam_m), free(m->b.adam_v);
}

static ct_ckpt_info_t info_for(int64_t step) {
    ct_ckpt_info_t info = {.step = step, .tokens = step * 1000, .world_size = 2};
    memset(info.config_sha256, 'c', 64);
    memset(info.data_sha256, 'd', 64);
    snprintf(info.tokenizer, sizeof info.tokenizer, "gpt2");
    snprintf(info.cursor.shard_id, sizeof info.cursor.shard_id, "00000-0123456789abcdef");
    info.cursor.seed = 5;
    return info;
}

static void join(char path[CT_PATH_MAX], const char *dir, const char *name) {
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_path_join(path, CT_PATH_MAX, dir, name, &e), 0);
}

static char *slurp(const char *path, size_t *len) {
    char *t = NULL;
    ct_err_t e = {0};
    if (ct_read_file(path, &t, len, &e) != 0) fprintf(stderr, "%s\n", e.msg);
    return t;
}

static void put(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(text, 1, len, f) == len);
    if (f) fclose(f);
}

/* The MANIFEST against sha256 of the files' bytes: whole files, then every piece, in order. */
static void check_manifest(const char *dir) {
    static const char *const files[] = {"config.json", "model.h5", "optim.h5", "state.json"};
    char path[CT_PATH_MAX], want[CT_SHA256_HEX], line[256];
    join(path, dir, "MANIFEST");
    size_t mlen = 0;
    char *manifest = slurp(path, &mlen), *p = manifest;
    CHECK(manifest != NULL);
    if (!manifest) return;
    size_t flen[4];
    char *bytes[4];
    for (int k = 0; k < 4; k++) {
        join(path, dir, files[k]);
        bytes[k] = slurp(path, &flen[k]);
        ct_sha256_hex(bytes[k], flen[k], want);
        snprintf(line, sizeof line, "%s  %s\n", want, files[k]);
        CHECK(strncmp(p, line, strlen(line)) == 0);
        p += strlen(line);
    }
    int pieces[4] = {0};
    for (int k = 0; k < 4; k++)
        for (size_t a = 0, i = 0; a < flen[k]; a += 64 * (size_t)MIB, i++) {
            size_t b = a + 64 * (size_t)MIB < flen[k] ? a + 64 * (size_t)MIB : flen[k];
            ct_sha256_hex(bytes[k] + a, b - a, want);
            snprintf(line, sizeof line, "#chunk %s %zu %s\n", files[k], i, want);
            CHECK(strncmp(p, line, strlen(line)) == 0);
            p += strlen(line);
            pieces[k]++;
        }
    CHECK_EQ_INT(p - manifest, (long long)mlen);
    CHECK_EQ_INT(pieces[1], 2);
    CHECK_EQ_INT(pieces[2], 3);
    /* the id is the MANIFEST's sha256 */
    ct_ckpt_info_t info;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ckpt_verify(dir, &info, &e), 0);
    ct_sha256_hex(manifest, mlen, want);
    CHECK_EQ_STR(info.id, want);
    CHECK_EQ_INT(info.pieces, 1);
    for (int k = 0; k < 4; k++)
        free(bytes[k]);
    free(manifest);
}

/* Restores dir into fresh buffers (garbage first) and compares with `want`; *why (may be NULL)
 * gets the restore's error. */
static int restore_equals(const char *dir, const body_mem_t *want, ct_err_t *why) {
    body_mem_t got;
    make_body(&got, 99);
    memset(got.b.params, 0x7f, N_FLOATS * sizeof(float)); /* padding must come back zero */
    got.b.guard.count = got.b.guard.head = 0;
    ct_ckpt_info_t info;
    ct_err_t e = {0};
    int rc = ct_ckpt_restore(dir, &got.b, &info, &e);
    if (why) *why = e;
    int same = rc == 0 && !memcmp(got.b.params, want->b.params, N_FLOATS * sizeof(float)) &&
               !memcmp(got.b.adam_m, want->b.adam_m, N_FLOATS * sizeof(float)) &&
               !memcmp(got.b.adam_v, want->b.adam_v, N_FLOATS * sizeof(float)) &&
               got.b.adam_steps == want->b.adam_steps && got.b.guard.count == 3 &&
               got.b.guard.head == 3 && !memcmp(got.loss, want->loss, 3 * sizeof(double)) &&
               !memcmp(got.norm, want->norm, 3 * sizeof(double));
    g_one_pass = rc == 0 && info.one_pass;
    if (rc == 0) {
        CHECK_EQ_STR(info.tokenizer, "gpt2");
        CHECK_EQ_INT(info.world_size, 2);
        CHECK_EQ_INT(info.cursor.seed, 5);
    }
    free_body(&got);
    return same;
}

static void copy_tree(const char *from, const char *to) {
    char cmd[2 * CT_PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    CHECK(system(cmd) == 0);
}

/* Runs `tail` (Python) after h5py has listed the tensors of the HDF5 file at path as s, sorted
 * (offset, size) pairs, with the file's bytes in b; returns what it printed as a number (-1 if
 * nothing) and its exit status in *status. */
static long h5_query(const char *path, const char *tail, int *status) {
    char cmd[CT_PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import h5py, sys\n"
             "f = h5py.File(sys.argv[1], \"r\")\n"
             "s = []\n"
             "f.visititems(lambda n, o: s.append((o.id.get_offset(), o.id.get_storage_size()))"
             " if isinstance(o, h5py.Dataset) else None)\n"
             "s.sort()\n"
             "b = open(sys.argv[1], \"rb\").read()\n"
             "%s\n"
             "' '%s'",
             tail, path);
    FILE *p = popen(cmd, "r");
    long at = -1;
    if (p && fscanf(p, "%ld", &at) != 1) at = -1;
    int st = p ? pclose(p) : -1;
    if (status) *status = st;
    return at;
}

/* The offset of a byte between two tensors past the first 64 MiB of the HDF5 file at path (the
 * alignment gap after the tensor that crosses the piece boundary), or -1. */
static long gap_past_piece0(const char *path) {
    return h5_query(path,
                    "print(next(a + n for (a, n), (c, _) in zip(s, s[1:]) "
                    "if a + n > 1 << 26 and c > a + n))",
                    NULL);
}

/* Rewrites dir's MANIFEST to match its files (whole and pieces), as a forger would. */
static void rehash(const char *dir) {
    char cmd[CT_PATH_MAX + 900];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import hashlib, os, sys\n"
             "d = sys.argv[1]\n"
             "names = [\"config.json\", \"model.h5\", \"optim.h5\", \"state.json\"]\n"
             "data = {n: open(os.path.join(d, n), \"rb\").read() for n in names}\n"
             "out = [hashlib.sha256(data[n]).hexdigest() + \"  \" + n for n in names]\n"
             "for n in names:\n"
             "    b = data[n]\n"
             "    out += [\"#chunk %%s %%d %%s\" %% (n, i, hashlib.sha256(b[i << 26:(i + 1) << 26])"
             ".hexdigest()) for i in range((len(b) + (1 << 26) - 1) >> 26)]\n"
             "open(os.path.join(d, \"MANIFEST\"), \"w\").write(\"\\n\".join(out) + \"\\n\")\n"
             "' '%s'",
             dir);
    CHECK(system(cmd) == 0);
}

/* A copy of good's checkpoint with MANIFEST replaced by `text`; verify's result and message. */
static int verify_with_manifest(const char *good, const char *bad, const char *text, ct_err_t *e) {
    char path[CT_PATH_MAX];
    copy_tree(good, bad);
    join(path, bad, "MANIFEST");
    put(path, text, strlen(text));
    ct_err_clear(e);
    return ct_ckpt_verify(bad, NULL, e);
}

static void damaged(const char *root, const char *good, const body_mem_t *saved) {
    char bad[CT_PATH_MAX], path[CT_PATH_MAX];
    ct_err_t e = {0};
    snprintf(bad, sizeof bad, "%s/bad", root);

    /* one byte in piece 1 of optim.h5 */
    copy_tree(good, bad);
    join(path, bad, "optim.h5");
    check_flip_byte(path, 64L * MIB + 12345, 0x55);
    CHECK_EQ_INT(ct_ckpt_verify(bad, NULL, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "optim.h5 piece 1");
    CHECK(!restore_equals(bad, saved, &e));
    CHECK_EQ_INT(e.code, CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "optim.h5 piece 1");
    /* ... and in piece 0, which holds the file's metadata */
    copy_tree(good, bad);
    check_flip_byte(path, 100, 0x55);
    CHECK(!restore_equals(bad, saved, &e));
    CHECK_CONTAINS(e.msg, "optim.h5 piece 0");

    /* model.h5 cut short: its size no longer fits its pieces */
    copy_tree(good, bad);
    join(path, bad, "model.h5");
    CHECK(truncate(path, 64L * MIB) == 0);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ckpt_verify(bad, NULL, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "model.h5 has 67108864 bytes");

    /* a file missing */
    copy_tree(good, bad);
    join(path, bad, "state.json");
    unlink(path);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ckpt_verify(bad, NULL, &e), CT_ENOENT);
    CHECK_CONTAINS(e.msg, "state.json");

    /* MANIFEST edits: piece lines dropped (an older checkpoint: still fine), re-ordered,
       one missing, a bad hash, trailing garbage */
    size_t len = 0;
    join(path, good, "MANIFEST");
    char *text = slurp(path, &len), *chunks = strstr(text, "#chunk ");
    CHECK(chunks != NULL);
    char *old = strndup(text, (size_t)(chunks - text));
    CHECK_EQ_INT(verify_with_manifest(good, bad, old, &e), 0);
    ct_ckpt_info_t info;
    CHECK_EQ_INT(ct_ckpt_verify(bad, &info, &e), 0);
    CHECK_EQ_INT(info.pieces, 0);
    CHECK(restore_equals(bad, saved, NULL));

    /* a byte between the tensors past piece 0 that is not zero (the metadata of a file written
       otherwise): the one-pass layout from piece 0 is not trusted, the file is read again after
       it verified; with the MANIFEST rewritten to match, the restore still gives the weights */
    copy_tree(good, bad);
    join(path, bad, "model.h5");
    long gap = gap_past_piece0(path);
    CHECK(gap > 0);
    check_flip_byte(path, gap, 0x01);
    rehash(bad);
    CHECK_EQ_INT(ct_ckpt_verify(bad, NULL, &e), 0);
    CHECK(restore_equals(bad, saved, NULL));
    CHECK(!g_one_pass);

    char *line2 = strchr(chunks, '\n') + 1, *line3 = strchr(line2, '\n') + 1;
    char *swapped = malloc(len + 1);
    /* swap the 2nd and 3rd piece lines (model.h5 0 and 1) */
    size_t head = (size_t)(line2 - text), l2 = (size_t)(line3 - line2);
    char *line4 = strchr(line3, '\n') + 1;
    size_t l3 = (size_t)(line4 - line3);
    memcpy(swapped, text, head);
    memcpy(swapped + head, line3, l3);
    memcpy(swapped + head + l3, line2, l2);
    strcpy(swapped + head + l3 + l2, line4);
    CHECK_EQ_INT(verify_with_manifest(good, bad, swapped, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "MANIFEST is malformed at line 6");

    char *dropped = strdup(text);
    memmove(dropped + head, line3, strlen(line3) + 1); /* model.h5 piece 0 gone */
    CHECK(verify_with_manifest(good, bad, dropped, &e) == CT_ECORRUPT);

    char *badhex = strdup(text);
    badhex[chunks - text + strlen("#chunk config.json 0 ")] = 'G';
    CHECK_EQ_INT(verify_with_manifest(good, bad, badhex, &e), CT_ECORRUPT);
    CHECK_CONTAINS(e.msg, "line 5");

    char *extra = malloc(len + 32);
    snprintf(extra, len + 32, "%sjunk\n", text);
    CHECK_EQ_INT(verify_with_manifest(good, bad, extra, &e), CT_ECORRUPT);

    free(text), free(old), free(swapped), free(dropped), free(badhex), free(extra);
}

/* ct_ckpt_latest passes over a damaged newer checkpoint, logging why. */
static void latest(const char *run, const body_mem_t *saved) {
    ct_err_t e = {0};
    ct_ckpt_info_t info = info_for(20);
    CHECK_EQ_INT(ct_ckpt_save(run, &saved->b, "{}\n", &info, NULL, 0, &e), 0);
    char path[CT_PATH_MAX], out[CT_PATH_MAX];
    join(path, run, "checkpoints/ckpt-00000020/model.h5");
    check_flip_byte(path, 5000, 0x55);
    FILE *logf = tmpfile();
    ct_log_t lg = {.level = CT_LOG_INFO, .role = "test", .rank = -1, .out = logf};
    int skipped = -1;
    /* the quick check (a resume's) passes it: only its restore hashes model.h5 */
    CHECK_EQ_INT(ct_ckpt_latest(run, INT64_MAX, 0, out, sizeof out, &skipped, &info, NULL, &e), 0);
    CHECK_CONTAINS(out, "ckpt-00000020");
    CHECK(!restore_equals(out, saved, &e));
    CHECK_CONTAINS(e.msg, "model.h5 piece 0");
    CHECK_EQ_INT(ct_ckpt_latest(run, 20, 0, out, sizeof out, &skipped, &info, NULL, &e), 0);
    CHECK_CONTAINS(out, "ckpt-00000010");
    /* the full check passes over it, saying why */
    CHECK_EQ_INT(ct_ckpt_latest(run, INT64_MAX, 1, out, sizeof out, &skipped, &info, &lg, &e), 0);
    CHECK_EQ_INT(skipped, 1);
    CHECK_CONTAINS(out, "ckpt-00000010");
    CHECK_EQ_INT(info.step, 10);
    char buf[4096] = "";
    rewind(logf);
    size_t n = fread(buf, 1, sizeof buf - 1, logf);
    buf[n] = '\0';
    fclose(logf);
    CHECK_CONTAINS(buf, "skipping checkpoint");
    CHECK_CONTAINS(buf, "model.h5 piece 0");
    /* nothing verifies: the error lists why */
    join(path, run, "checkpoints/ckpt-00000010/state.json");
    check_flip_byte(path, 3, 0x55);
    ct_err_clear(&e);
    CHECK_EQ_INT(ct_ckpt_latest(run, INT64_MAX, 1, out, sizeof out, NULL, NULL, NULL, &e),
                 CT_ENOENT);
    CHECK_CONTAINS(e.msg, "2 damaged");
    CHECK_CONTAINS(e.msg, "state.json");
}

/* A model of one big tensor and thousands of small ones: HDF5's metadata overflows its first
 * block into a second one past the first 64 MiB piece, so the layout cannot come from piece 0
 * alone; the restore then reads the files again once they verified, and still gives the weights
 * back exactly. */
static void metadata_past_piece0(const char *root) {
    enum { SMALL = 6000 };
    ct_tensor_info_t *tab = calloc(SMALL + 1, sizeof *tab);
    size_t off = 0;
    for (int i = 0; i <= SMALL; i++) {
        ct_tensor_info_t *t = &tab[i];
        snprintf(t->name, sizeof t->name, i ? "small.%05d.weight" : "big.weight", i);
        t->ndim = 1;
        t->shape[0] = t->stored_rows = i ? 3 : 20 << 20; /* 80 MiB, then 12 bytes each */
        t->numel = (size_t)t->shape[0];
        t->offset = off;
        off += t->numel;
    }
    float *p = malloc(off * sizeof *p), *m = malloc(off * sizeof *m), *v = malloc(off * sizeof *v);
    float *q = calloc(off, sizeof *q), *qm = calloc(off, sizeof *qm), *qv = calloc(off, sizeof *qv);
    for (size_t i = 0; i < off; i++)
        p[i] = (float)i, m[i] = -(float)i, v[i] = 0.5f * (float)i;
    ct_ckpt_body_t b = {.tensors = tab,
                        .n_tensors = SMALL + 1,
                        .params = p,
                        .adam_m = m,
                        .adam_v = v,
                        .adam_steps = 3};
    ct_ckpt_info_t info = info_for(30);
    char dir[CT_PATH_MAX], run[CT_PATH_MAX], path[CT_PATH_MAX];
    ct_err_t e = {0};
    join(run, root, "many");
    CHECK_EQ_INT(ct_ckpt_save(run, &b, "{}\n", &info, dir, sizeof dir, &e), 0);
    join(path, dir, "model.h5");
    ct_ckpt_body_t r = {
        .tensors = tab, .n_tensors = SMALL + 1, .params = q, .adam_m = qm, .adam_v = qv};
    CHECK_EQ_INT(ct_ckpt_restore(dir, &r, &info, &e), 0);
    CHECK_EQ_INT(info.one_pass, 0);
    CHECK(!memcmp(p, q, off * sizeof *p) && !memcmp(m, qm, off * sizeof *m) &&
          !memcmp(v, qv, off * sizeof *v));
    CHECK_EQ_INT(r.adam_steps, 3);
    /* and it really was the slow path: model.h5 has metadata past its first piece */
    int status = -1;
    h5_query(path,
             "keep = bytearray(b)\n"
             "for a, n in s: keep[a:a + n] = bytes(n)\n"
             "sys.exit(0 if any(keep[1 << 26:]) else 1)",
             &status);
    CHECK_EQ_INT(status, 0);
    free(tab), free(p), free(m), free(v), free(q), free(qm), free(qv);
}

/* Keys the schema marks as changeable on resume may differ; others are named. */
static void check_config(const char *dir) {
    ct_config_t now;
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_ckpt_load_config(dir, &now, &e), 0);
    now.log.every = 17;
    now.train.micro_batch = 1;
    CHECK_EQ_INT(ct_ckpt_check_config(dir, &now, &e), 0);
    now.train.lr = 0.5;
    CHECK_EQ_INT(ct_ckpt_check_config(dir, &now, &e), CT_ECONFIG);
    CHECK_CONTAINS(e.msg, "train.lr: was 0.0006, now 0.5");
}

int main(void) {
    char root[] = "/tmp/ct_test_ckpt_XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    ct_err_t e = {0};
    CHECK_EQ_INT(ct_hash_init(&e), 0);
    make_table();
    body_mem_t saved;
    make_body(&saved, 1);
    ct_ckpt_info_t info = info_for(10);
    char dir[CT_PATH_MAX];
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    char *json = ct_config_canonical(&cfg, &e);
    CHECK_EQ_INT(ct_ckpt_save(root, &saved.b, json, &info, dir, sizeof dir, &e), 0);
    if (e.code) fprintf(stderr, "%s\n", e.msg);
    CHECK_CONTAINS(dir, "checkpoints/ckpt-00000010");
    check_manifest(dir);
    CHECK(restore_equals(dir, &saved, NULL));
    CHECK(g_one_pass); /* the layout came from the verified piece 0 */
    /* the optimizer state verified, not loaded (what the tools do) */
    body_mem_t got;
    make_body(&got, 7);
    float *m = got.b.adam_m, *v = got.b.adam_v;
    got.b.adam_m = got.b.adam_v = NULL;
    memset(got.b.params, 0, N_FLOATS * sizeof(float));
    ct_ckpt_info_t info2;
    CHECK_EQ_INT(ct_ckpt_restore(dir, &got.b, &info2, &e), 0);
    CHECK(memcmp(got.b.params, saved.b.params, N_FLOATS * sizeof(float)) == 0);
    got.b.adam_m = m, got.b.adam_v = v;
    free_body(&got);
    check_config(dir);
    damaged(root, dir, &saved);
    latest(root, &saved);
    metadata_past_piece0(root);
    free(json);
    free_body(&saved);
    check_rm_tree(root);
    return CHECK_RESULT();
}
