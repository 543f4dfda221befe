/* json.h — the helpers every reader of cotrain's JSON files shares (cJSON does the parsing).
 *
 * JSON numbers are doubles, so integers are exact only up to 2^53: every integer field cotrain
 * reads from outside (configs, manifests, checkpoint state, protocol headers) goes through
 * ct_json_uint53, which refuses anything else instead of rounding it. */
#ifndef COTRAIN_JSON_H
#define COTRAIN_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cotrain/err.h"

/* 2^53: the largest integer every JSON reader holds exactly. */
#define CT_JSON_INT_MAX 9007199254740992.0

/* Returns 1 and sets *out when v is a whole JSON number in [0, 2^53]; 0 otherwise (also for a
 * NULL v, a string, a fraction or a negative number), leaving *out alone. */
int ct_json_uint53(const cJSON *v, int64_t *out);

/* ct_json_uint53 of member `key` of obj (case-sensitive). */
int ct_json_get_uint53(const cJSON *obj, const char *key, int64_t *out);

/* The string member `key` of obj, or NULL when it is missing or not a string. */
const char *ct_json_get_string(const cJSON *obj, const char *key);

/* Adds item (taken; NULL: its making ran out of memory) to the object obj under key, or to the
 * array obj when key is NULL; frees it when it cannot (cJSON's own calls leave it to the caller
 * then, an easy leak). 1 or 0. */
int ct_json_add_owned(cJSON *obj, const char *key, cJSON *item);

/* v as canonical JSON (RFC 8785: no whitespace, members sorted by their names' UTF-16 code
 * units, strings escaped the one way), malloc'd: the bytes a signature covers, so the same
 * value always gives the same text. Holds only what a signed record may: integers up to 2^53
 * (anything else goes as a string), valid UTF-8, no member twice. Errors: CT_EINVAL (naming what
 * is not allowed), CT_ENOMEM. */
char *ct_json_canonical(const cJSON *v, ct_err_t *e);

#endif
