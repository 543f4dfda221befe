/* inspect.c — `cotrain inspect CKPT_DIR`: verifies a checkpoint and prints what it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "cotrain/ckpt.h"
#include "cotrain/fsutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: cotrain inspect CKPT_DIR\n"
               "\n"
               "Verifies a checkpoint (every file against its MANIFEST) and prints its step,\n"
               "tokens, id, parent, data (tokenizer, manifest hash), data cursor, config, file\n"
               "sizes and hashes, and the hash of every 64 MiB piece.\n"
               "Exit codes: 0 verified, 1 runtime failure, 2 missing, damaged or bad usage.\n");
}

/* The MANIFEST (already verified) as a table: each file's size and sha256, then the sha256 of
 * each 64 MiB piece when the checkpoint lists them. */
static void print_files(const char *dir) {
    char path[CT_PATH_MAX], line[512];
    ct_err_t e = {0};
    if (ct_path_join(path, sizeof path, dir, "MANIFEST", &e) != 0) return;
    FILE *f = fopen(path, "r");
    long long total = 0;
    int pieces = 0;
    while (f && fgets(line, sizeof line, f)) {
        char hash[65], name[256];
        int index;
        struct stat st;
        if (sscanf(line, "#chunk %255s %d %64s", name, &index, hash) == 3) {
            if (pieces++ == 0) printf("pieces of 64 MiB (each verified on its own):\n");
            printf("  %-12s %5d  sha256 %s\n", name, index, hash);
        } else if (sscanf(line, "%64s %255s", hash, name) == 2) {
            if (ct_path_join(path, sizeof path, dir, name, &e) != 0) continue;
            long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
            total += size;
            printf("  %-12s %14lld bytes  sha256 %s\n", name, size, hash);
            if (!strcmp(name, "state.json"))
                printf("  %-12s %14lld bytes\n", "total", total);
        }
    }
    if (f) fclose(f);
    if (!pieces) printf("pieces: none listed (an older checkpoint: whole files are verified)\n");
}

int ct_cmd_inspect(int argc, char **argv, const ct_log_t *lg) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    ct_err_t e = {0};
    ct_ckpt_info_t info;
    int rc = ct_hash_init(&e);
    if (rc == 0) rc = ct_ckpt_verify(argv[1], &info, &e);
    if (rc != 0) {
        ct_log(lg, CT_LOG_ERROR, "inspect: %s", e.msg);
        return ct_exit_code(rc);
    }
    char path[CT_PATH_MAX], *config = NULL;
    size_t len = 0;
    if (ct_path_join(path, sizeof path, argv[1], "config.json", &e) == 0)
        ct_read_file(path, &config, &len, &e);
    const ct_data_cursor_t *c = &info.cursor;
    printf("checkpoint %s: verified\n"
           "  step         %lld\n"
           "  tokens       %lld\n"
           "  world size   %d\n"
           "  id           %s\n"
           "  parent       %s\n"
           "  config       sha256 %s\n"
           "  data         %s tokens, manifest sha256 %s\n"
           "  data cursor  epoch %lld, shard %s (position %lld), offset %lld, samples %lld\n"
           "files:\n",
           argv[1], (long long)info.step, (long long)info.tokens, info.world_size, info.id,
           info.parent[0] ? info.parent : "(none: the run started here)", info.config_sha256,
           info.tokenizer[0] ? info.tokenizer : "(unrecorded)",
           info.data_sha256[0] ? info.data_sha256 : "(unrecorded: an older checkpoint)",
           (long long)c->epoch, c->shard_id, (long long)c->shard_pos, (long long)c->offset,
           (long long)c->samples);
    print_files(argv[1]);
    printf("config: %s", config ? config : "(unreadable)\n");
    free(config);
    return 0;
}
