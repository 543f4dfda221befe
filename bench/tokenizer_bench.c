/* tokenizer_bench.c — ct_bench_tokenizer: gpt2 encoding throughput (MB/s of text) of one corpus
 * file, repeated in memory, for each thread count asked for. scripts/bench data runs it beside
 * bench/tokenizer_ref.mjs (the npm reference) on the same text and compares.
 *
 *   ct_bench_tokenizer --corpus FILE [--repeat N] [--reps R] [--threads 1,2]
 *
 * Each measurement calls ct_encode_parallel on the whole text — the API `cotrain prep` uses for a
 * large document — so it includes creating the per-thread encoders and filling their caches
 * from cold; "1" threads is the single-threaded encoder. The last line of stdout is one JSON
 * object: bytes, tokens, ids_sha256 (of the ids as little-endian int32, to check against the
 * reference), and per thread count the median and best MB/s (1 MB = 1e6 bytes) over R runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"
#include "cotrain/hash.h"
#include "cotrain/tokenizer.h"

enum { MAX_THREAD_COUNTS = 8, MAX_REPS = 100 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: ct_bench_tokenizer --corpus FILE [--repeat N] [--reps R] "
                    "[--threads LIST]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *corpus = NULL, *threads_arg = "1,2";
    int repeat = 1, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--corpus"))
            corpus = argv[++i];
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads"))
            threads_arg = argv[++i];
        else
            return usage();
    }
    int threads[MAX_THREAD_COUNTS], n_threads = 0;
    for (const char *p = threads_arg; *p && n_threads < MAX_THREAD_COUNTS;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > 1024) return usage();
        threads[n_threads++] = (int)t;
        p = *end == ',' ? end + 1 : end;
    }
    if (!corpus || repeat < 1 || reps < 1 || reps > MAX_REPS || n_threads == 0) return usage();

    ct_err_t e = {0};
    ct_tokenizer_t *tok = NULL;
    char *file = NULL, *text = NULL;
    size_t flen = 0;
    ct_ids_t ids = {0};
    int rc = ct_hash_init(&e);
    if (rc == 0) rc = ct_read_file(corpus, &file, &flen, &e);
    if (rc == 0) rc = ct_tokenizer_open(&tok, "gpt2", &e);
    size_t len = flen * (size_t)repeat;
    if (rc == 0 && !(text = malloc(len + 1))) rc = CT_ERR(&e, CT_ENOMEM, "no memory for the text");
    if (rc < 0) goto out;
    for (int r = 0; r < repeat; r++)
        memcpy(text + (size_t)r * flen, file, flen);

    char hex[CT_SHA256_HEX] = "";
    printf("{\"bytes\": %zu, \"repeat\": %d, \"reps\": %d, \"results\": [", len, repeat, reps);
    for (int t = 0; t < n_threads; t++) {
        double mbs[MAX_REPS];
        for (int r = 0; r < reps && rc == 0; r++) {
            ids.n = 0;
            double t0 = ct_now_s();
            rc = ct_encode_parallel(tok, text, len, threads[t], &ids, NULL, &e);
            mbs[r] = len / 1e6 / (ct_now_s() - t0);
        }
        if (rc < 0) break;
        char h[CT_SHA256_HEX];
        ct_sha256_hex(ids.ids, ids.n * sizeof *ids.ids, h);
        if (hex[0] && strcmp(hex, h)) {
            rc = CT_ERR(&e, CT_ESTATE, "%d threads gave other ids than %d", threads[t], threads[0]);
            break;
        }
        memcpy(hex, h, sizeof h);
        fprintf(stderr, "cotrain gpt2, %d thread%s, MB/s of each run:", threads[t],
                threads[t] == 1 ? "" : "s");
        for (int r = 0; r < reps; r++)
            fprintf(stderr, " %.1f", mbs[r]);
        fprintf(stderr, "\n");
        qsort(mbs, (size_t)reps, sizeof *mbs, cmp_double);
        fprintf(stderr, "cotrain gpt2, %d thread%s: %.1f MB/s median of %d (best %.1f)\n",
                threads[t], threads[t] == 1 ? "" : "s", mbs[reps / 2], reps, mbs[reps - 1]);
        printf("%s{\"threads\": %d, \"mb_per_s\": %.3f, \"mb_per_s_best\": %.3f}", t ? ", " : "",
               threads[t], mbs[reps / 2], mbs[reps - 1]);
    }
    if (rc == 0) printf("], \"tokens\": %zu, \"ids_sha256\": \"%s\"}\n", ids.n, hex);
out:
    if (rc < 0) fprintf(stderr, "ct_bench_tokenizer: %s\n", e.msg);
    ct_ids_free(&ids);
    ct_tokenizer_destroy(&tok);
    free(text);
    free(file);
    return rc < 0 ? ct_exit_code(rc) : 0;
}
