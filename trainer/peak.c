/* peak.c — measures FP32 FMA throughput: each thread keeps enough independent accumulators in
 * flight (8 chains of 16 lanes) to cover FMA latency, so the loop runs at the FMA units' rate;
 * and keeps one careful measurement per machine in a cache file (see peak.h for why). */
#include "cotrain/peak.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cotrain/clock.h"
#include "cotrain/fsutil.h"

enum { CHAINS = 8, LANES = 16, ITERS = 1 << 18 };

/* One thread's work: CHAINS*LANES independent multiply-adds per iteration. */
static float fma_chains(float seed) {
    float acc[CHAINS][LANES];
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++)
            acc[c][l] = seed + (float)(c * LANES + l) * 1e-3f;
    const float a = 0.999999f, b = 1e-7f;
    for (int it = 0; it < ITERS; it++)
        for (int c = 0; c < CHAINS; c++)
            for (int l = 0; l < LANES; l++)
                acc[c][l] = acc[c][l] * a + b;
    float s = 0.0f;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < LANES; l++)
            s += acc[c][l];
    return s;
}

/* The best of `reps` runs of ~10 ms. */
static double measure(int reps) {
    double best = 0.0;
    volatile float sink = 0.0f; /* keeps the work from being optimised away */
    for (int rep = 0; rep < reps; rep++) {
        int threads = 1;
        double t0 = ct_now_s();
#pragma omp parallel
        {
#pragma omp single
            threads = omp_get_num_threads();
            float s = fma_chains((float)omp_get_thread_num());
#pragma omp atomic
            sink += s;
        }
        double dt = ct_now_s() - t0;
        double flops = 2.0 * CHAINS * LANES * (double)ITERS * threads / dt;
        if (flops > best) best = flops;
    }
    (void)sink;
    return best > 0.0 ? best : 1.0;
}

double ct_peak_flops(void) {
    return measure(3);
}

/* The CPU's model name from /proc/cpuinfo, made safe for a file name ("unknown-cpu" if none). */
static void cpu_model(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, n, "unknown-cpu");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        size_t w = 0;
        for (const char *p = colon + 1; *p && w + 1 < n; p++) {
            if (isalnum((unsigned char)*p))
                out[w++] = *p;
            else if (w > 0 && out[w - 1] != '-')
                out[w++] = '-';
        }
        while (w > 0 && out[w - 1] == '-')
            w--;
        out[w] = '\0';
        break;
    }
    if (f) fclose(f);
}

/* The cache folder (created), or "" when none can be named. */
static int cache_dir(char *out, size_t n, ct_err_t *e) {
    const char *d = getenv("COTRAIN_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (d && *d)
        CT_TRY(ct_path_fmt(out, n, e, "%s", d));
    else if (x && *x)
        CT_TRY(ct_path_fmt(out, n, e, "%s/cotrain", x));
    else if (h && *h)
        CT_TRY(ct_path_fmt(out, n, e, "%s/.cache/cotrain", h));
    else
        return CT_ERR(e, CT_ENOENT, "no cache folder: set COTRAIN_CACHE_DIR or HOME");
    return ct_mkdirs(out, e);
}

/* The figure cached in path, or 0. */
static double read_cache(const char *path, char *when, size_t n) {
    char *text = NULL;
    size_t len = 0;
    ct_err_t ignored = {0};
    if (ct_read_file(path, &text, &len, &ignored) != 0) return 0.0;
    cJSON *js = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(js, "gflops");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(js, "measured");
    double v = cJSON_IsNumber(g) && g->valuedouble > 0 ? g->valuedouble * 1e9 : 0.0;
    snprintf(when, n, "%s", cJSON_IsString(t) ? t->valuestring : "?");
    cJSON_Delete(js);
    return v;
}

void ct_peak_get(double config_gflops, const ct_log_t *lg, ct_peak_t *out) {
    if (config_gflops > 0) {
        out->flops = config_gflops * 1e9;
        snprintf(out->source, sizeof out->source, "train.peak_gflops");
        return;
    }
    char dir[CT_PATH_MAX], path[CT_PATH_MAX], cpu[160], when[64];
    int threads = omp_get_max_threads();
    ct_err_t e = {0};
    cpu_model(cpu, sizeof cpu);
    int rc = cache_dir(dir, sizeof dir, &e);
    if (rc == 0) rc = ct_path_fmt(path, sizeof path, &e, "%s/peak-%s-%dt.json", dir, cpu, threads);
    if (rc == 0 && (out->flops = read_cache(path, when, sizeof when)) > 0) {
        snprintf(out->source, sizeof out->source, "measured %s, cached in %s", when, path);
        return;
    }
    /* ~1 s: the best of 100 short runs, so a busy moment does not set the figure */
    out->flops = measure(100);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (rc == 0) {
        char text[512];
        int n = snprintf(text, sizeof text,
                         "{\"gflops\": %.6g, \"cpu\": \"%s\", \"threads\": %d, "
                         "\"measured\": \"%s\"}\n",
                         out->flops / 1e9, cpu, threads, when);
        rc = ct_write_file_atomic(path, text, (size_t)n, &e);
    }
    if (rc == 0) {
        snprintf(out->source, sizeof out->source, "measured now (%s), cached in %s", when, path);
    } else {
        snprintf(out->source, sizeof out->source, "measured now (%s), not cached", when);
        if (lg) ct_log(lg, CT_LOG_WARN, "the FP32 peak could not be cached: %s", e.msg);
    }
}
