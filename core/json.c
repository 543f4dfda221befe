/* json.c — integer and string fields from cJSON trees, checked the one way (see json.h). */
#include "cotrain/json.h"

#include <math.h>

int ct_json_uint53(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= CT_JSON_INT_MAX) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

int ct_json_get_uint53(const cJSON *obj, const char *key, int64_t *out) {
    return ct_json_uint53(cJSON_GetObjectItemCaseSensitive(obj, key), out);
}

const char *ct_json_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
