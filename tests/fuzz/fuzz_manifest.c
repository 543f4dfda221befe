/* fuzz_manifest.c — libFuzzer target: a data manifest (`manifest.json`, data/manifest.c) as the
 * loader, the evaluator and the coordinator read it. A manifest that loads has unique shard ids,
 * files inside its folder, and counts that add up. */
#include <stdint.h>
#include <string.h>

#include "cotrain/manifest.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "manifest.json");
    ct_manifest_t *m = NULL;
    ct_err_t e = {0};
    if (path && ct_manifest_load(&m, path, &e) == 0) {
        if (m->n_shards < 1 || !m->shards) __builtin_trap();
        for (int i = 0; i < m->n_shards; i++) {
            if (!m->shards[i].path || m->shards[i].n_tokens < 0) __builtin_trap();
            for (int j = 0; j < i; j++)
                if (!strcmp(m->shards[i].id, m->shards[j].id)) __builtin_trap();
        }
        ct_manifest_destroy(&m);
    } else if (path && !e.msg[0]) {
        __builtin_trap();
    }
    return 0;
}
