/* Half-precision to float, inline for the kernels' inner loops (the F16
 * KV cache and F16 weights convert one element at a time). Exact for every
 * half: the exponent and mantissa move into a float's fields and one
 * multiply by 2^112 rebases the exponent (subnormal halves included);
 * infinities and NaNs are set directly (NaNs made quiet, payload kept, as
 * the F16C instruction does). melt_fp16_to_fp32 is this function. */
#ifndef MELT_MODEL_FP16_H
#define MELT_MODEL_FP16_H

#include <stdint.h>
#include <string.h>

static inline float melt_fp16_to_fp32_inline(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = (uint32_t)(h & 0x7fffu) << 13;   /* exponent+mantissa in float place */
    uint32_t u;
    if (em >= 0x0f800000u) {                             /* exponent 31: inf or NaN */
        u = sign | 0x7f800000u | (em & 0x007fffffu);
        if (em & 0x007fffffu)
            u |= 0x00400000u;
    } else {
        float f;
        memcpy(&f, &em, sizeof f);
        f *= 0x1p112f;
        memcpy(&u, &f, sizeof u);
        u |= sign;
    }
    float out;
    memcpy(&out, &u, sizeof out);
    return out;
}

#endif
