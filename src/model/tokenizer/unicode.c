/* UTF-8 coding and GPT-2's byte-to-unicode table. */
#include "model/tokenizer/unicode.h"

uint32_t uc_decode(const char *s, size_t len, size_t *off)
{
    const unsigned char *p = (const unsigned char *)s + *off;
    size_t left = len - *off;
    unsigned char c = p[0];
    if (c < 0x80) {
        *off += 1;
        return c;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2; cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3; cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4; cp = c & 0x07u;
    } else {
        *off += 1;      /* continuation byte or 0xF8..0xFF as a lead */
        return UC_REPLACEMENT;
    }
    if (left < n) {
        *off += 1;
        return UC_REPLACEMENT;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *off += 1;
            return UC_REPLACEMENT;
        }
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    *off += n;
    return cp;
}

size_t uc_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF)
        return uc_encode(UC_REPLACEMENT, out);
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Printable Latin-1 bytes map to themselves; the other 68 bytes map, in
 * byte order, to U+0100, U+0101, ... */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t uc_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    unsigned n = 0;
    for (unsigned i = 0; i < b; i++)
        n += !byte_is_printable(i);
    return 0x100u + n;
}

int uc_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned want = cp - 0x100, n = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (!byte_is_printable(b)) {
            if (n == want)
                return (int)b;
            n++;
        }
    }
    return -1;
}
