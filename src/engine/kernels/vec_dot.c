/* Scalar quantized-activation dot products (see vec_dot.h): the integer
 * block sums and F32 combination orders of llama.cpp's scalar
 * ggml_vec_dot_*_q8_* and quantize_row_q8_*_ref, written from their
 * definitions. */
#include "engine/kernels/vec_dot.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "melt/quant.h"
#include "model/fp16.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

/* The F32 expressions below are the definition; no contraction to FMA
 * (fmaf is called where a fused multiply-add is meant). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static_assert(sizeof(melt_block_q8_1) == 36, "q8_1 block size");

static inline float h2f(uint16_t h) { return melt_fp16_to_fp32_inline(h); }

/* ---- activation quantizers ---- */

void melt_act_quantize_q8_0(const float *x, void *vy, int64_t n)
{
    melt_block_q8_0 *y = vy;
    const int64_t nb = n / MELT_QK8_0;
    for (int64_t i = 0; i < nb; i++, x += MELT_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < MELT_QK8_0; j++) {
            const float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = melt_fp32_to_fp16(d);
        for (int j = 0; j < MELT_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void melt_act_quantize_q8_1(const float *x, void *vy, int64_t n)
{
    melt_block_q8_1 *y = vy;
    const int64_t nb = n / 32;
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = melt_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = melt_fp32_to_fp16((float)sum * d);
    }
}

/* Round to nearest, ties to even, for |f| < 2^22 (as ggml's nearest_int). */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void melt_act_quantize_q8_K(const float *x, void *vy, int64_t n)
{
    melt_block_q8_K *y = vy;
    const int64_t nb = n / MELT_QK_K;
    for (int64_t i = 0; i < nb; i++, x += MELT_QK_K) {
        float max = 0, amax = 0;   /* the first element of largest magnitude */
        for (int j = 0; j < MELT_QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < MELT_QK_K; j++) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < MELT_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

static void act_f16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = melt_fp32_to_fp16(x[i]);
}

static void act_bf16(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = melt_fp32_to_bf16(x[i]);
}

/* ---- dot products over 32-element blocks ---- */

/* Integer block sums: what any SIMD version must reproduce exactly. Each
 * block's weight quants are unpacked to 32 int8 first and then dotted in
 * one plain loop: GCC 12 miscompiles the fused unpack-and-dot form with
 * AVX-512 VNNI (-march=native on Zen 4/5 gave wrong sums). */
static inline int dot32(const int8_t *a, const int8_t *b)
{
    int s = 0;
    for (int j = 0; j < 32; j++) s += a[j] * b[j];
    return s;
}

/* Low nibbles are elements 0..15, high nibbles 16..31; minus off. */
static inline void unpack_nibbles(const uint8_t qs[16], int off, int8_t a[32])
{
    for (int j = 0; j < 16; j++) {
        a[j] = (int8_t)((qs[j] & 0x0F) - off);
        a[j + 16] = (int8_t)((qs[j] >> 4) - off);
    }
}

/* q5: the nibbles plus bit j of qh as bit 4, minus off. */
static inline void unpack_q5(const uint8_t qs[16], const uint8_t qh_bytes[4], int off, int8_t a[32])
{
    uint32_t qh;
    memcpy(&qh, qh_bytes, sizeof qh);
    for (int j = 0; j < 16; j++) {
        a[j] = (int8_t)(((qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4)) - off);
        a[j + 16] = (int8_t)(((qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - off);
    }
}

static float vec_dot_q4_0(int64_t n, const void *vw, const void *va)
{
    const melt_block_q4_0 *x = vw;
    const melt_block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int8_t a[32];
        unpack_nibbles(x[ib].qs, 8, a);
        const int sumi = dot32(a, y[ib].qs);
        sumf += (float)sumi * h2f(x[ib].d) * h2f(y[ib].d);
    }
    return sumf;
}

static float vec_dot_q4_1(int64_t n, const void *vw, const void *va)
{
    const melt_block_q4_1 *x = vw;
    const melt_block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int8_t a[32];
        unpack_nibbles(x[ib].qs, 0, a);
        const int sumi = dot32(a, y[ib].qs);
        sumf += (h2f(x[ib].d) * h2f(y[ib].d)) * (float)sumi + h2f(x[ib].m) * h2f(y[ib].s);
    }
    return sumf;
}

static float vec_dot_q5_0(int64_t n, const void *vw, const void *va)
{
    const melt_block_q5_0 *x = vw;
    const melt_block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int8_t a[32];
        unpack_q5(x[ib].qs, x[ib].qh, 16, a);
        const int sumi = dot32(a, y[ib].qs);
        sumf += (h2f(x[ib].d) * h2f(y[ib].d)) * (float)sumi;
    }
    return sumf;
}

static float vec_dot_q5_1(int64_t n, const void *vw, const void *va)
{
    const melt_block_q5_1 *x = vw;
    const melt_block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int8_t a[32];
        unpack_q5(x[ib].qs, x[ib].qh, 0, a);
        const int sumi = dot32(a, y[ib].qs);
        sumf += (h2f(x[ib].d) * h2f(y[ib].d)) * (float)sumi + h2f(x[ib].m) * h2f(y[ib].s);
    }
    return sumf;
}

static float vec_dot_q8_0(int64_t n, const void *vw, const void *va)
{
    const melt_block_q8_0 *x = vw;
    const melt_block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const int sumi = dot32(x[ib].qs, y[ib].qs);
        sumf += (float)sumi * (h2f(x[ib].d) * h2f(y[ib].d));
    }
    return sumf;
}

/* ---- dot products over 256-element super-blocks ---- */

/* The eight 6-bit scales and mins of a q4_K / q5_K block. */
static inline void k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        mn[j] = q[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Lane sums of a super-block: lane l (0..7) accumulates scale * q8 * a over
 * the elements with index = l mod 8, in index order — the integer sums a
 * SIMD version keeps in eight 32-bit lanes. a holds the 256 unpacked
 * weight quants; sub_scale[e / sub] scales element e. */
static inline void lane_sums(const int8_t *a, const int8_t *q8, const int *sub_scale, int sub,
                             int32_t lanes[8])
{
    for (int l = 0; l < 8; l++) lanes[l] = 0;
    for (int e = 0; e < MELT_QK_K; e += 8) {
        const int s = sub_scale[e / sub];
        for (int l = 0; l < 8; l++) lanes[l] += s * (q8[e + l] * a[e + l]);
    }
}

/* d * lanes added to sums (per lane), as ggml's scalar k-quant dots. */
static inline void add_lanes(float sums[8], float d, const int32_t lanes[8])
{
    for (int l = 0; l < 8; l++) sums[l] += d * (float)lanes[l];
}

static float finish_lanes(float sumf, const float sums[8])
{
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

static float vec_dot_q4_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q4_K *x = vw;
    const melt_block_q8_K *y = va;
    float sums[8] = {0}, sumf = 0;
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        int8_t a[MELT_QK_K];
        const uint8_t *q4 = x[i].qs;
        for (int j = 0; j < MELT_QK_K / 64; j++, q4 += 32)
            for (int l = 0; l < 32; l++) {
                a[j * 64 + l] = (int8_t)(q4[l] & 0xF);
                a[j * 64 + 32 + l] = (int8_t)(q4[l] >> 4);
            }
        uint8_t sc[8], mn[8];
        k4_scales(x[i].scales, sc, mn);
        int sub_scale[8];
        for (int j = 0; j < 8; j++) sub_scale[j] = sc[j];
        int sumi = 0;   /* the mins, through the 16-element sums of q8 */
        for (int j = 0; j < MELT_QK_K / 16; j++) sumi += y[i].bsums[j] * mn[j / 2];
        int32_t lanes[8];
        lane_sums(a, y[i].qs, sub_scale, 32, lanes);
        add_lanes(sums, h2f(x[i].d) * y[i].d, lanes);
        const float dmin = h2f(x[i].dmin) * y[i].d;
        sumf -= dmin * (float)sumi;
    }
    return finish_lanes(sumf, sums);
}

static float vec_dot_q5_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q5_K *x = vw;
    const melt_block_q8_K *y = va;
    float sums[8] = {0}, sumf = 0;
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        int8_t a[MELT_QK_K];
        const uint8_t *q4 = x[i].qs, *hm = x[i].qh;
        uint8_t m = 1;
        for (int j = 0; j < MELT_QK_K / 64; j++, q4 += 32, m = (uint8_t)(m << 2))
            for (int l = 0; l < 32; l++) {
                a[j * 64 + l] = (int8_t)((q4[l] & 0xF) + (hm[l] & m ? 16 : 0));
                a[j * 64 + 32 + l] = (int8_t)((q4[l] >> 4) + (hm[l] & (m << 1) ? 16 : 0));
            }
        uint8_t sc[8], mn[8];
        k4_scales(x[i].scales, sc, mn);
        int sub_scale[8];
        for (int j = 0; j < 8; j++) sub_scale[j] = sc[j];
        int sumi = 0;
        for (int j = 0; j < MELT_QK_K / 16; j++) sumi += y[i].bsums[j] * mn[j / 2];
        int32_t lanes[8];
        lane_sums(a, y[i].qs, sub_scale, 32, lanes);
        add_lanes(sums, h2f(x[i].d) * y[i].d, lanes);
        const float dmin = h2f(x[i].dmin) * y[i].d;
        sumf -= dmin * (float)sumi;
    }
    return finish_lanes(sumf, sums);
}

static float vec_dot_q6_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q6_K *x = vw;
    const melt_block_q8_K *y = va;
    float sums[8] = {0}, sumf = 0;
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        int8_t a[MELT_QK_K];
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        for (int h = 0; h < MELT_QK_K; h += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                a[h + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                a[h + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                a[h + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                a[h + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        int sub_scale[16];
        for (int j = 0; j < 16; j++) sub_scale[j] = x[i].scales[j];
        int32_t lanes[8];
        lane_sums(a, y[i].qs, sub_scale, 16, lanes);
        add_lanes(sums, h2f(x[i].d) * y[i].d, lanes);
    }
    return finish_lanes(sumf, sums);
}

/* ---- plain types ---- */

/* F16 x F16 and BF16 x BF16 products are exact in F32; summed in double
 * in index order (ggml's scalar ggml_vec_dot_f16 / _bf16). */
static float vec_dot_f16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

static float vec_dot_bf16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)(melt_bf16_to_fp32(x[i]) * melt_bf16_to_fp32(y[i]));
    return (float)sum;
}

/* Sum of 16 lanes as a halving tree (lane l += lane l + 8, then + 4, + 2,
 * + 1): one 512-bit register reduced. */
static float tree16(float v[16])
{
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) v[l] += v[l + w];
    return v[0];
}

float melt_dot_f32_lanes(int64_t n, const float *a, const float *b)
{
    if (n % 16 == 0) {
        /* one accumulator of 16 lanes (llama.cpp's tinyBLAS sgemm) */
        float acc[16] = {0};
        for (int64_t i = 0; i < n; i += 16)
            for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
        return tree16(acc);
    }
    /* four accumulators of 16 lanes over steps of 64, added pairwise (0+2,
     * 1+3, then 0+1), reduced, and the tail added one by one (ggml's
     * ggml_vec_dot_f32) */
    float acc[4][16] = {{0}};
    const int64_t n64 = n - n % 64;
    for (int64_t i = 0; i < n64; i += 64)
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 16; l++)
                acc[r][l] = fmaf(a[i + 16 * r + l], b[i + 16 * r + l], acc[r][l]);
    for (int l = 0; l < 16; l++) {
        acc[0][l] += acc[2][l];
        acc[1][l] += acc[3][l];
    }
    for (int l = 0; l < 16; l++) acc[0][l] += acc[1][l];
    float s = tree16(acc[0]);
    for (int64_t i = n64; i < n; i++) s += a[i] * b[i];
    return s;
}

static float vec_dot_f32(int64_t n, const void *vw, const void *va)
{
    /* GGUF aligns tensor data (32 bytes by default) and F32 rows are whole
     * floats, so the mapping can be read as floats */
    return melt_dot_f32_lanes(n, vw, va);
}

/* ---- the table ---- */

static const melt_dot_traits traits[] = {
    {MELT_TYPE_F32, MELT_TYPE_F32, NULL, vec_dot_f32},
    {MELT_TYPE_F16, MELT_TYPE_F16, act_f16, vec_dot_f16},
    {MELT_TYPE_BF16, MELT_TYPE_BF16, act_bf16, vec_dot_bf16},
    {MELT_TYPE_Q4_0, MELT_TYPE_Q8_0, melt_act_quantize_q8_0, vec_dot_q4_0},
    {MELT_TYPE_Q4_1, MELT_TYPE_Q8_1, melt_act_quantize_q8_1, vec_dot_q4_1},
    {MELT_TYPE_Q5_0, MELT_TYPE_Q8_0, melt_act_quantize_q8_0, vec_dot_q5_0},
    {MELT_TYPE_Q5_1, MELT_TYPE_Q8_1, melt_act_quantize_q8_1, vec_dot_q5_1},
    {MELT_TYPE_Q8_0, MELT_TYPE_Q8_0, melt_act_quantize_q8_0, vec_dot_q8_0},
    {MELT_TYPE_Q4_K, MELT_TYPE_Q8_K, melt_act_quantize_q8_K, vec_dot_q4_K},
    {MELT_TYPE_Q5_K, MELT_TYPE_Q8_K, melt_act_quantize_q8_K, vec_dot_q5_K},
    {MELT_TYPE_Q6_K, MELT_TYPE_Q8_K, melt_act_quantize_q8_K, vec_dot_q6_K},
};

const melt_dot_traits *melt_dot_traits_scalar(uint32_t wtype)
{
    for (size_t i = 0; i < sizeof traits / sizeof traits[0]; i++)
        if (traits[i].weight_type == wtype) return &traits[i];
    return NULL;
}

size_t melt_dot_act_row_bytes(uint32_t wtype, int64_t n)
{
    const melt_dot_traits *t = melt_dot_traits_scalar(wtype);
    uint64_t bytes;
    if (!t || !t->from_f32 || n < 0 || !melt_type_row_bytes(t->act_type, (uint64_t)n, &bytes))
        return 0;
    return (size_t)bytes;
}
