/* fuzz_config.c — libFuzzer target: a run's config as JSON text (core/config.c), with the input
 * split at its first newline into a `--set key=value` and the JSON after it. A config that loads
 * must print as canonical JSON that loads again to the same canonical text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cotrain/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    const char *sets[1];
    int n_set = 0;
    const char *json = text;
    ct_err_t e = {0};
    if (nl) {
        *nl = '\0';
        if (ct_config_add_set(sets, &n_set, 1, text, &e) != 0) n_set = 0;
        json = nl + 1;
    }
    ct_config_t a, b;
    if (ct_config_load_text(&a, json, "fuzz", sets, n_set, &e) == 0) {
        char *canon = ct_config_canonical(&a, &e);
        if (canon) {
            ct_err_t again = {0};
            if (ct_config_load_text(&b, canon, "canonical", NULL, 0, &again) != 0) __builtin_trap();
            char *twice = ct_config_canonical(&b, &again);
            if (!twice || strcmp(canon, twice) != 0) __builtin_trap();
            free(twice);
        }
        free(canon);
    }
    free(text);
    return 0;
}
