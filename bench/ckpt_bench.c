/* ckpt_bench.c — checkpoint save and load time for a model of a bundled config, with optimizer
 * state. Saves RUN_DIR/checkpoints/ckpt-00000001 (the real ct_ckpt_save through
 * ct_snapshot_save: write, fsync, hash, MANIFEST, rename) and restores it into a second trainer
 * (ct_ckpt_restore through ct_snapshot_restore: verify every piece on every core, read). With --drop-caches it asks the kernel to drop its page cache before the load (root
 * only), so the load reads the disk. Prints one JSON object: bytes, save_s, load_s. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cotrain/clock.h"
#include "cotrain/config.h"
#include "cotrain/snapshot.h"

static int drop_caches(void) {
    sync();
    FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
    if (!f) return -1;
    int ok = fputs("3\n", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *config = "gpt2", *dir = NULL;
    int drop = 0, c;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"dir", required_argument, 0, 'd'},
                                         {"drop-caches", no_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'd': dir = optarg; break;
        case 'D': drop = 1; break;
        case 'h':
            printf("usage: ct_bench_ckpt --dir RUN_DIR [--config NAME] [--drop-caches]\n");
            return 0;
        default: fprintf(stderr, "ct_bench_ckpt: bad option (see --help)\n"); return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "ct_bench_ckpt: --dir RUN_DIR is required\n");
        return 2;
    }
    ct_err_t e = {0};
    ct_config_t cfg;
    ct_trainer_t *a = NULL, *b = NULL;
    const char *sets[] = {"train.micro_batch=1", "train.global_batch=1"};
    int rc = ct_hash_init(&e);
    if (rc == 0) rc = ct_config_load(&cfg, config, CT_CONFIG_DIR, sets, 2, &e);
    if (rc == 0 && cfg.model.vocab_size == 0) cfg.model.vocab_size = 256;
    if (rc == 0) rc = ct_trainer_create(&a, &cfg, NULL, NULL, &e);
    if (rc == 0) rc = ct_trainer_create(&b, &cfg, NULL, NULL, &e);
    char *json = rc == 0 ? ct_config_canonical(&cfg, &e) : NULL;
    ct_ckpt_info_t info = {.world_size = 1, .tokens = 0};
    snprintf(info.cursor.shard_id, sizeof info.cursor.shard_id, "bench");
    ct_sha256_hex(json ? json : "", json ? strlen(json) : 0, info.config_sha256);
    char path[4096];
    double t0 = ct_now_s(), t1 = t0, t2 = t0;
    if (rc == 0 && json) {
        ct_trainer_set_steps(a, 1);
        rc = ct_snapshot_save(dir, a, json, &info, path, sizeof path, &e);
        t1 = ct_now_s();
        if (rc == 0 && drop && drop_caches() != 0)
            fprintf(stderr, "ct_bench_ckpt: cannot drop the page cache (not root?)\n");
        t2 = ct_now_s();
        if (rc == 0) rc = ct_snapshot_restore(path, b, &info, &e);
    }
    double t3 = ct_now_s();
    if (rc != 0) {
        fprintf(stderr, "ct_bench_ckpt: %s\n", e.msg);
        return 1;
    }
    long long bytes = 0;
    for (const char *f = "model.h5\0optim.h5\0config.json\0state.json\0MANIFEST\0"; *f;
         f += strlen(f) + 1) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", path, f);
        FILE *fp = fopen(p, "rb");
        if (fp && fseek(fp, 0, SEEK_END) == 0) bytes += ftell(fp);
        if (fp) fclose(fp);
    }
    int same = memcmp(ct_model_params(ct_trainer_model(a)), ct_model_params(ct_trainer_model(b)),
                      ct_model_num_params(ct_trainer_model(a)) * sizeof(float)) == 0;
    printf("{\"config\": \"%s\", \"bytes\": %lld, \"save_s\": %.3f, \"load_s\": %.3f, "
           "\"dropped_caches\": %d, \"weights_identical\": %s}\n",
           config, bytes, t1 - t0, t3 - t2, drop, same ? "true" : "false");
    free(json);
    ct_trainer_destroy(&a);
    ct_trainer_destroy(&b);
    return same ? 0 : 1;
}
