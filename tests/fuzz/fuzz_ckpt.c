/* fuzz_ckpt.c — libFuzzer target: a checkpoint's small files as `--resume` and the coordinator
 * read them (ckpt/: MANIFEST, then state.json). The first input byte picks what the rest is:
 * even, MANIFEST itself (whose hashes the fuzzer cannot forge: the line grammar and the pieces'
 * are what it reaches); odd, state.json, with a MANIFEST this target writes to match it, so the
 * state's parser (cursor, guard window, ids) is reached. Whatever the bytes, a refusal says why
 * and a checkpoint that checks has a well-formed cursor. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cotrain/ckpt.h"
#include "cotrain/hash.h"
#include "fuzz_file.h"

/* dir/name := data[0..n), its sha256 into hex (may be NULL). */
static int put(const char *dir, const char *name, const void *data, size_t n, char *hex) {
    char path[640];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    if (fclose(f) != 0 || w != n) return -1;
    if (hex) ct_sha256_hex(data, n, hex);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[512], hc[CT_SHA256_HEX], hm[CT_SHA256_HEX];
    if (!dir[0]) { /* the files no input changes, written once */
        static const char config[] = "{\"model\":{\"n_layer\":1}}\n";
        snprintf(dir, sizeof dir, "%s/cotrain-fuzz-%d-ckpt", fuzz_dir(), (int)getpid());
        ct_sha256_hex("", 0, hm);
        if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
            put(dir, "config.json", config, sizeof config - 1, hc) ||
            put(dir, "model.h5", "", 0, NULL) || put(dir, "optim.h5", "", 0, NULL))
            __builtin_trap(); /* no folder to fuzz in: COTRAIN_FUZZ_DIR must be writable */
    }
    if (size < 1) return 0;
    char hs[CT_SHA256_HEX], manifest[1024];
    if (data[0] % 2 == 0) {
        if (put(dir, "state.json", "{}", 2, NULL) || put(dir, "MANIFEST", data + 1, size - 1, NULL))
            return 0;
    } else {
        if (put(dir, "state.json", data + 1, size - 1, hs)) return 0;
        int n = snprintf(manifest, sizeof manifest,
                         "%s  config.json\n%s  model.h5\n%s  optim.h5\n%s  state.json\n", hc, hm,
                         hm, hs);
        if (put(dir, "MANIFEST", manifest, (size_t)n, NULL)) return 0;
    }
    ct_ckpt_info_t info;
    ct_err_t e = {0};
    if (ct_ckpt_check_small(dir, &info, &e) == 0) {
        if (info.step < 0 || info.cursor.epoch < 0 || info.cursor.shard_pos < 0 ||
            info.cursor.offset < 0 || !ct_sha256_hex_valid(info.id))
            __builtin_trap();
    } else if (!e.msg[0]) {
        __builtin_trap();
    }
    return 0;
}
