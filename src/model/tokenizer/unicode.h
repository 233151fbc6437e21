/* Unicode helpers for the tokenizers: UTF-8 decoding as llama.cpp does it,
 * per-codepoint class (general category group + White_Space) from the
 * generated tables, and GPT-2's byte <-> unicode mapping. Internal. */
#ifndef MELT_TOKENIZER_UNICODE_H
#define MELT_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Category codes (bits 0-2 of a class byte). */
enum {
    UC_UNASSIGNED = 0, /* Cn */
    UC_NUMBER = 1,     /* N* */
    UC_LETTER = 2,     /* L* */
    UC_SEPARATOR = 3,  /* Z* */
    UC_MARK = 4,       /* M* */
    UC_PUNCT = 5,      /* P* */
    UC_SYMBOL = 6,     /* S* */
    UC_CONTROL = 7,    /* Cc Cf Co Cs */
};
#define UC_CAT_MASK 0x07u
#define UC_WS 0x08u        /* White_Space property */
#define UC_OUT 0x80u       /* "no codepoint": outside the current chunk */

#define UC_REPLACEMENT 0xFFFDu

extern const uint16_t melt_uc_stage1[];
extern const uint8_t melt_uc_stage2[][128];

/* Class byte of a codepoint; UC_UNASSIGNED for values past U+10FFFF. */
static inline uint8_t uc_class(uint32_t cp)
{
    if (cp >= 0x110000u)
        return UC_UNASSIGNED;
    return melt_uc_stage2[melt_uc_stage1[cp >> 7]][cp & 127];
}

static inline unsigned uc_cat(uint8_t cls) { return cls & UC_CAT_MASK; }
static inline int uc_is_ws(uint8_t cls) { return (cls & UC_WS) != 0; }
static inline int uc_is_letter(uint8_t cls) { return !(cls & UC_OUT) && uc_cat(cls) == UC_LETTER; }
static inline int uc_is_number(uint8_t cls) { return !(cls & UC_OUT) && uc_cat(cls) == UC_NUMBER; }

/* Length of the UTF-8 sequence a lead byte announces (1 for stray
 * continuation bytes), as llama.cpp's unicode_len_utf8. */
static inline size_t uc_len_utf8(unsigned char c)
{
    static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* Decode one codepoint at s[*off] (off < len). A malformed or truncated
 * sequence yields U+FFFD and consumes one byte (llama.cpp's rule). */
uint32_t uc_decode(const char *s, size_t len, size_t *off);

/* Encode cp as UTF-8 into out (4 bytes room); returns bytes written.
 * Values past U+10FFFF encode U+FFFD. */
size_t uc_encode(uint32_t cp, char *out);

/* GPT-2 byte-level mapping: byte -> codepoint, and back (-1 if cp is not
 * the image of a byte). */
uint32_t uc_byte_to_cp(uint8_t b);
int uc_cp_to_byte(uint32_t cp);

#endif
