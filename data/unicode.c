/* unicode.c — code point classes for the GPT-2 pre-tokenizer, looked up in the two-stage table
 * that scripts/gen-unicode-tables generated from node's regex engine (unicode_tables.inc). */
#include "cotrain/unicode.h"

#include "unicode_tables.inc"

const char *ct_unicode_version(void) {
    return CT_UC_TABLE_UNICODE_VERSION;
}

ct_uc_class_t ct_unicode_class(uint32_t cp) {
    if (cp >= CT_UC_TABLE_LIMIT) return CT_UC_OTHER; /* also CT_UTF8_INVALID */
    const uint8_t *block = uc_stage2[uc_stage1[cp >> 7]];
    return (ct_uc_class_t)((block[(cp & 127) >> 2] >> (2 * (cp & 3))) & 3);
}
