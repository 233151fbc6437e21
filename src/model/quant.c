/* Scalar conversions and reference quantization.
 *
 * The quantizers reproduce llama.cpp's quantize_row_*_ref byte for byte:
 * every float operation happens in the same order and precision, rounding
 * uses the same tricks (nearest_int below, truncating casts, roundf), and
 * every scale is rounded to an IEEE half before it is used to requantize.
 * Do not "simplify" the arithmetic here: reassociating a sum or fusing a
 * multiply-add changes the bytes. Inputs must be finite.
 */
#include "melt/quant.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "model/fp16.h"
#include "model/quant_blocks.h"

/* A fused multiply-add would change the rounding, so contraction is off
 * here whatever the build flags say (GCC contracts by default in GNU C
 * modes when FMA is available; clang within expressions). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- half and bfloat16 ---- */

/* Matches x86 VCVTPS2PH with round-to-nearest-even: NaNs become quiet and
 * keep the top 9 payload bits. */
uint16_t melt_fp32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;

    if (ax > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 rounds to inf (ties go to even = inf) */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal half: >= 2^-14 */
        uint32_t odd = (ax >> 13) & 1u;
        ax += 0x0fffu + odd; /* round to nearest even on bit 13 */
        return (uint16_t)(sign | ((ax - 0x38000000u) >> 13));
    }
    /* half subnormal (or zero): q = round(value * 2^24) */
    uint32_t e = ax >> 23;
    int shift = 126 - (int)e; /* value = m * 2^(e-150); q = m >> shift */
    if (shift > 24)
        return sign; /* below 2^-25 (or exactly half of it): zero */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++; /* may carry into the smallest normal, which encodes correctly */
    return (uint16_t)(sign | q);
}

/* Exact; NaNs become quiet (as VCVTPH2PS does). */
float melt_fp16_to_fp32(uint16_t h)
{
    return melt_fp16_to_fp32_inline(h);
}

/* As ggml: round to nearest even, NaN forced quiet, subnormals kept. */
uint16_t melt_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

float melt_bf16_to_fp32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* ---- helpers shared by the k-quants ---- */

/* Round to nearest (ties to even) for |f| < 2^22: adding 1.5*2^23 leaves
 * the rounded integer in the low mantissa bits. */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline float h2f(uint16_t h) { return melt_fp16_to_fp32(h); }
static inline uint16_t f2h(float f) { return melt_fp32_to_fp16(f); }

/* Symmetric quantization of n values to [-nmax, nmax-1] (stored + nmax),
 * weighted by x^2, searching 19 scales around nmax/max. Returns the
 * scale. (llama.cpp: make_qx_quants with rmse_type 1, no weights.) */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        return 0.f;
    }
    float iscale = (float)(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Asymmetric quantization x ~ scale*L - the_min, L in [0, nmax], by
 * weighted least squares over nstep+1 candidate scales. (llama.cpp:
 * make_qkx2_quants with use_mad false.) */
static float make_qkx2_quants(int n, int nmax, const float *x,
                              const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* 6-bit scale and min of sub-block j from the packed 12 bytes. */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d,
                                    uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static inline void set_scale_min_k4(int j, uint8_t *q, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ---- 32-element block types ---- */

static void quantize_q4_0(const float *x, melt_block_q4_0 *y, int64_t nb)
{
    const int qk = MELT_QK4_0;
    for (int64_t i = 0; i < nb; i++, x += qk) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < qk; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[qk / 2 + j] * id;
            const uint8_t q0 = (uint8_t)imin(15, (int8_t)(x0 + 8.5f));
            const uint8_t q1 = (uint8_t)imin(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void dequantize_q4_0(const melt_block_q4_0 *x, float *y, int64_t nb)
{
    const int qk = MELT_QK4_0;
    for (int64_t i = 0; i < nb; i++, y += qk) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < qk / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + qk / 2] = (float)x1 * d;
        }
    }
}

static void quantize_q4_1(const float *x, melt_block_q4_1 *y, int64_t nb)
{
    const int qk = MELT_QK4_1;
    for (int64_t i = 0; i < nb; i++, x += qk) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[qk / 2 + j] - min) * id;
            const uint8_t q0 = (uint8_t)imin(15, (int8_t)(x0 + 0.5f));
            const uint8_t q1 = (uint8_t)imin(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void dequantize_q4_1(const melt_block_q4_1 *x, float *y, int64_t nb)
{
    const int qk = MELT_QK4_1;
    for (int64_t i = 0; i < nb; i++, y += qk) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        for (int j = 0; j < qk / 2; ++j) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            y[j] = (float)x0 * d + m;
            y[j + qk / 2] = (float)x1 * d + m;
        }
    }
}

static void quantize_q5_0(const float *x, melt_block_q5_0 *y, int64_t nb)
{
    const int qk = MELT_QK5_0;
    for (int64_t i = 0; i < nb; i++, x += qk) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < qk; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[qk / 2 + j] * id;
            const uint8_t q0 = (uint8_t)imin(31, (int8_t)(x0 + 16.5f));
            const uint8_t q1 = (uint8_t)imin(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + qk / 2);
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

static void dequantize_q5_0(const melt_block_q5_0 *x, float *y, int64_t nb)
{
    const int qk = MELT_QK5_0;
    for (int64_t i = 0; i < nb; i++, y += qk) {
        const float d = h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < qk / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = ((x[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
            y[j] = (float)x0 * d;
            y[j + qk / 2] = (float)x1 * d;
        }
    }
}

static void quantize_q5_1(const float *x, melt_block_q5_1 *y, int64_t nb)
{
    const int qk = MELT_QK5_1;
    for (int64_t i = 0; i < nb; i++, x += qk) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[qk / 2 + j] - min) * id;
            const uint8_t q0 = (uint8_t)(x0 + 0.5f);
            const uint8_t q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + qk / 2);
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

static void dequantize_q5_1(const melt_block_q5_1 *x, float *y, int64_t nb)
{
    const int qk = MELT_QK5_1;
    for (int64_t i = 0; i < nb; i++, y += qk) {
        const float d = h2f(x[i].d);
        const float m = h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < qk / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = (x[i].qs[j] & 0x0F) | h0;
            const int x1 = (x[i].qs[j] >> 4) | h1;
            y[j] = (float)x0 * d + m;
            y[j + qk / 2] = (float)x1 * d + m;
        }
    }
}

static void quantize_q8_0(const float *x, melt_block_q8_0 *y, int64_t nb)
{
    const int qk = MELT_QK8_0;
    for (int64_t i = 0; i < nb; i++, x += qk) {
        float amax = 0.0f;
        for (int j = 0; j < qk; j++) {
            float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < qk; ++j)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void dequantize_q8_0(const melt_block_q8_0 *x, float *y, int64_t nb)
{
    const int qk = MELT_QK8_0;
    for (int64_t i = 0; i < nb; i++, y += qk) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < qk; ++j)
            y[j] = (float)x[i].qs[j] * d;
    }
}

/* ---- k-quants (256-element super-blocks) ---- */

/* Shared by q4_K and q5_K: per-sub-block scales and mins by make_qkx2,
 * packed to 6 bits against half-precision d / dmin, then every element
 * requantized against the packed values into L (0..nmax). */
static void quantize_k_scales(const float *x, int nmax, float rmin, int nstep,
                              uint16_t *d_out, uint16_t *dmin_out,
                              uint8_t scales[MELT_K_SCALE_SIZE],
                              uint8_t L[MELT_QK_K])
{
    uint8_t Laux[32];
    float weights[32];
    float mins[MELT_QK_K / 32];
    float sc[MELT_QK_K / 32];
    float max_scale = 0, max_min = 0;

    for (int j = 0; j < MELT_QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        sc[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j,
                                 &mins[j], Laux, rmin, 0.1f, nstep);
        if (sc[j] > max_scale)
            max_scale = sc[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales, 0, MELT_K_SCALE_SIZE);
    for (int j = 0; j < MELT_QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * sc[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        set_scale_min_k4(j, scales, ls, lm);
    }
    *d_out = f2h(max_scale / 63.f);
    *dmin_out = f2h(max_min / 63.f);

    for (int j = 0; j < MELT_QK_K / 32; ++j) {
        uint8_t s, m;
        get_scale_min_k4(j, scales, &s, &m);
        const float d = h2f(*d_out) * (float)s;
        if (!d)
            continue; /* keep make_qkx2's levels */
        const float dm = h2f(*dmin_out) * (float)m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quantize_q4_K(const float *x, melt_block_q4_K *y, int64_t nb)
{
    uint8_t L[MELT_QK_K];
    for (int64_t i = 0; i < nb; i++, x += MELT_QK_K) {
        quantize_k_scales(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < MELT_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void dequantize_q4_K(const melt_block_q4_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = h2f(x[i].d);
        const float min = h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < MELT_QK_K; j += 64, q += 32, is += 2) {
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void quantize_q5_K(const float *x, melt_block_q5_K *y, int64_t nb)
{
    uint8_t L[MELT_QK_K];
    for (int64_t i = 0; i < nb; i++, x += MELT_QK_K) {
        quantize_k_scales(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh;
        uint8_t *ql = y[i].qs;
        memset(qh, 0, MELT_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < MELT_QK_K; n += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                int l2 = L[n + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

static void dequantize_q5_K(const melt_block_q5_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs;
        const uint8_t *qh = x[i].qh;
        const float d = h2f(x[i].d);
        const float min = h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        unsigned u1 = 1, u2 = 2;
        for (int j = 0; j < MELT_QK_K; j += 64, ql += 32, is += 2) {
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

static void quantize_q6_K(const float *x, melt_block_q6_K *y, int64_t nb)
{
    int8_t L[MELT_QK_K];
    float scales[MELT_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += MELT_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < MELT_QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = f2h(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < MELT_QK_K / 16; ++ib)
            y[i].scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < MELT_QK_K / 16; ++j) {
            float d = h2f(y[i].d) * (float)y[i].scales[j];
            if (!d)
                continue; /* keep make_qx's levels */
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = imax(-32, imin(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql;
        uint8_t *qh = y[i].qh;
        for (int j = 0; j < MELT_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

static void dequantize_q6_K(const melt_block_q6_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < MELT_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* Activations for k-quant dot products (llama.cpp quantize_row_q8_K_ref:
 * 127 levels, d stored as float, bsums = sums of 16 quants). */
static void quantize_q8_K(const float *x, melt_block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += MELT_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < MELT_QK_K; ++j) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < MELT_QK_K; ++j)
            y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < MELT_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii)
                sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

static void dequantize_q8_K(const melt_block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += MELT_QK_K)
        for (int j = 0; j < MELT_QK_K; ++j)
            y[j] = x[i].d * (float)x[i].qs[j];
}

/* ---- dispatch ---- */

bool melt_type_supported(uint32_t type)
{
    switch (type) {
    case MELT_TYPE_F32:
    case MELT_TYPE_F16:
    case MELT_TYPE_BF16:
    case MELT_TYPE_Q8_0:
    case MELT_TYPE_Q4_0:
    case MELT_TYPE_Q4_1:
    case MELT_TYPE_Q5_0:
    case MELT_TYPE_Q5_1:
    case MELT_TYPE_Q4_K:
    case MELT_TYPE_Q5_K:
    case MELT_TYPE_Q6_K:
    case MELT_TYPE_Q8_K:
        return true;
    default:
        return false;
    }
}

/* Blocks in n elements of type, or -1 when n does not fit the type. */
static int64_t n_blocks(uint32_t type, int64_t n)
{
    const melt_type_traits *t = melt_type_traits_of(type);
    if (!t || n < 0 || n % t->block_elems != 0)
        return -1;
    return n / t->block_elems;
}

int melt_quantize_row_ref(uint32_t type, const float *x, void *y, int64_t n)
{
    if (!melt_type_supported(type))
        return MELT_EUNSUPPORTED;
    int64_t nb = n_blocks(type, n);
    if (nb < 0 || (n > 0 && (!x || !y)))
        return MELT_EINVAL;
    switch (type) {
    case MELT_TYPE_F32:
        if (n > 0)
            memmove(y, x, (size_t)n * sizeof(float));
        break;
    case MELT_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)y)[i] = melt_fp32_to_fp16(x[i]);
        break;
    case MELT_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)y)[i] = melt_fp32_to_bf16(x[i]);
        break;
    case MELT_TYPE_Q4_0: quantize_q4_0(x, y, nb); break;
    case MELT_TYPE_Q4_1: quantize_q4_1(x, y, nb); break;
    case MELT_TYPE_Q5_0: quantize_q5_0(x, y, nb); break;
    case MELT_TYPE_Q5_1: quantize_q5_1(x, y, nb); break;
    case MELT_TYPE_Q8_0: quantize_q8_0(x, y, nb); break;
    case MELT_TYPE_Q4_K: quantize_q4_K(x, y, nb); break;
    case MELT_TYPE_Q5_K: quantize_q5_K(x, y, nb); break;
    case MELT_TYPE_Q6_K: quantize_q6_K(x, y, nb); break;
    case MELT_TYPE_Q8_K: quantize_q8_K(x, y, nb); break;
    default: return MELT_EUNSUPPORTED;
    }
    return MELT_OK;
}

int melt_dequantize_row_ref(uint32_t type, const void *x, float *y, int64_t n)
{
    if (!melt_type_supported(type))
        return MELT_EUNSUPPORTED;
    int64_t nb = n_blocks(type, n);
    if (nb < 0 || (n > 0 && (!x || !y)))
        return MELT_EINVAL;
    switch (type) {
    case MELT_TYPE_F32:
        if (n > 0)
            memmove(y, x, (size_t)n * sizeof(float));
        break;
    case MELT_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            y[i] = melt_fp16_to_fp32(((const uint16_t *)x)[i]);
        break;
    case MELT_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            y[i] = melt_bf16_to_fp32(((const uint16_t *)x)[i]);
        break;
    case MELT_TYPE_Q4_0: dequantize_q4_0(x, y, nb); break;
    case MELT_TYPE_Q4_1: dequantize_q4_1(x, y, nb); break;
    case MELT_TYPE_Q5_0: dequantize_q5_0(x, y, nb); break;
    case MELT_TYPE_Q5_1: dequantize_q5_1(x, y, nb); break;
    case MELT_TYPE_Q8_0: dequantize_q8_0(x, y, nb); break;
    case MELT_TYPE_Q4_K: dequantize_q4_K(x, y, nb); break;
    case MELT_TYPE_Q5_K: dequantize_q5_K(x, y, nb); break;
    case MELT_TYPE_Q6_K: dequantize_q6_K(x, y, nb); break;
    case MELT_TYPE_Q8_K: dequantize_q8_K(x, y, nb); break;
    default: return MELT_EUNSUPPORTED;
    }
    return MELT_OK;
}
