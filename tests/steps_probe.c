/* steps_probe.c — which steps a run's data loader gives a document's tokens to, found by running
 * the loader itself (data/data.c: what training reads) and comparing each sample with the
 * document's windows, token for token: the oracle for `cotrain lineage`'s computed steps.
 *
 *   steps_probe MANIFEST SEQ_LEN GLOBAL_BATCH SEED HELD_OUT STEPS SHARD_MANIFEST SHARD FROM TO
 *               [CHANGES]
 *
 * prints, one per line, each step (from 1) among the first STEPS whose samples include a window
 * of shard SHARD (an index) of SHARD_MANIFEST (the run's data, or data it added) that overlaps
 * its tokens [FROM, TO). CHANGES: a file of the run's data changes (plan.h's JSON array), which
 * the loader then follows from the first step. Exit status 0, 1 on an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/data.h"
#include "cotrain/fsutil.h"
#include "cotrain/manifest.h"
#include "cotrain/shard.h"

int main(int argc, char **argv) {
    if (argc != 11 && argc != 12) {
        fprintf(stderr,
                "usage: steps_probe MANIFEST SEQ_LEN GLOBAL_BATCH SEED HELD_OUT STEPS "
                "SHARD_MANIFEST SHARD FROM TO [CHANGES]\n");
        return 1;
    }
    int L = atoi(argv[2]), B = atoi(argv[3]), held = atoi(argv[5]), shard = atoi(argv[8]);
    long long steps = atoll(argv[6]), from = atoll(argv[9]), to = atoll(argv[10]);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    int W = L + 1;
    ct_err_t e = {0};
    ct_data_t *d = NULL;
    ct_manifest_t *sm = NULL;
    cJSON *changes = NULL;
    char *text = NULL;
    size_t text_len = 0;
    if (argc == 12 && (ct_read_file(argv[11], &text, &text_len, &e) != 0 ||
                       !(changes = cJSON_Parse(text)))) {
        fprintf(stderr, "steps_probe: %s: %s\n", argv[11], e.msg[0] ? e.msg : "not JSON");
        return 1;
    }
    free(text);
    const ct_data_opts_t o = {.seq_len = L, .seed = seed, .global_batch = B, .world = 1,
                              .held_out = held, .changes = changes};
    if (ct_data_open(&d, argv[1], &o, &e) != 0 || ct_manifest_load(&sm, argv[7], &e) != 0) {
        fprintf(stderr, "steps_probe: %s\n", e.msg);
        return 1;
    }
    if (shard < 0 || shard >= sm->n_shards) {
        fprintf(stderr, "steps_probe: %s has no shard %d\n", argv[7], shard);
        return 1;
    }
    const ct_manifest_shard_t *ms = &sm->shards[shard];
    char *buf = NULL;
    size_t len = 0;
    ct_shard_t s = {0};
    int *rows = malloc((size_t)B * (size_t)W * sizeof *rows);
    if (!rows || ct_read_file(ms->path, &buf, &len, &e) != 0 ||
        ct_shard_read_image(buf, len, ms->id, 0, &s, &e) != 0) {
        fprintf(stderr, "steps_probe: %s\n", e.msg[0] ? e.msg : "out of memory");
        return 1;
    }
    for (long long step = 1; step <= steps; step++) {
        if (ct_data_next(d, rows, &e) != 0) {
            fprintf(stderr, "steps_probe: %s\n", e.msg);
            return 1;
        }
        int hit = 0;
        for (int r = 0; r < B && !hit; r++)
            for (long long w = from / W; w * W < to && (w + 1) * W <= s.n_tokens && !hit; w++) {
                int same = 1;
                for (int k = 0; k < W && same; k++)
                    same = rows[(size_t)r * W + k] == (int)s.tokens[w * W + k];
                hit = same;
            }
        if (hit) printf("%lld\n", step);
    }
    ct_shard_clear(&s);
    free(buf);
    free(rows);
    ct_data_destroy(&d);
    ct_manifest_destroy(&sm);
    cJSON_Delete(changes);
    return 0;
}
