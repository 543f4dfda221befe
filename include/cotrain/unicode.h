/* unicode.h — the little Unicode the GPT-2 pre-tokenizer needs: strict UTF-8 decoding that never
 * fails (an invalid byte is reported as one code point of its own) and the class of a code point
 * as the JS regex /\p{L}/u, /\p{N}/u, /\s/u in node sees it.
 *
 * The class table is generated from node itself by scripts/gen-unicode-tables (the reference
 * tokenizers are node programs), so letters, numbers and whitespace match theirs exactly for the
 * Unicode version recorded in CT_UNICODE_VERSION. Everything here is pure: no state. */
#ifndef COTRAIN_UNICODE_H
#define COTRAIN_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* The pre-tokenizer's classes. Invalid UTF-8 bytes are CT_UC_OTHER. */
typedef enum {
    CT_UC_OTHER = 0,  /* anything not below: punctuation, symbols, marks, controls, emoji */
    CT_UC_LETTER = 1, /* \p{L} */
    CT_UC_NUMBER = 2, /* \p{N}: digits of any script, fractions, Roman numerals, ... */
    CT_UC_SPACE = 3,  /* \s: ASCII \t\n\v\f\r and space, U+00A0, U+1680, U+2000..200A, U+2028,
                         U+2029, U+202F, U+205F, U+3000, U+FEFF */
} ct_uc_class_t;

/* Returned by ct_utf8_decode for a byte that does not start a valid sequence. */
#define CT_UTF8_INVALID 0xFFFFFFFFu

/* The Unicode version the class table was generated with (node's, e.g. "15.1"). */
const char *ct_unicode_version(void);

/* Class of code point cp (any uint32_t; surrogates, values above U+10FFFF and CT_UTF8_INVALID
 * are CT_UC_OTHER). */
ct_uc_class_t ct_unicode_class(uint32_t cp);

/* Decodes the code point starting at s[0] (n >= 1 bytes available) into *cp and returns its length
 * in bytes (1..4). Strict UTF-8 (RFC 3629): overlong forms, surrogates (ED A0..ED BF) and values
 * above U+10FFFF are invalid, as is a sequence cut short by the end of the buffer or by a byte that
 * is not a continuation byte. For an invalid sequence *cp = CT_UTF8_INVALID and the length is 1:
 * only the first byte is consumed and decoding resumes at the next, so every byte of the input
 * belongs to exactly one code point (valid or not) and an ASCII byte is always its own. */
static inline int ct_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    *cp = CT_UTF8_INVALID;
    if (b0 < 0xC2 || b0 > 0xF4) return 1; /* continuation byte, overlong C0/C1, or > U+10FFFF */
    if (b0 < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 1;
        *cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    /* The second byte's range depends on the lead byte: it rules out overlong forms (E0, F0),
     * surrogates (ED) and values above U+10FFFF (F4). */
    uint8_t lo = 0x80, hi = 0xBF;
    if (b0 == 0xE0)
        lo = 0xA0;
    else if (b0 == 0xED)
        hi = 0x9F;
    else if (b0 == 0xF0)
        lo = 0x90;
    else if (b0 == 0xF4)
        hi = 0x8F;
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    if (n < 3 || (s[2] & 0xC0) != 0x80) return 1;
    if (b0 < 0xF0) {
        *cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (n < 4 || (s[3] & 0xC0) != 0x80) return 1;
    *cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

#endif
