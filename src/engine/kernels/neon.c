/* The "neon" and "neon-dotprod" kernel families: the scalar family's
 * numerics (vec_dot.h) with AArch64 Advanced SIMD vec_dots, matmuls of
 * several tokens and activation quantizers; exactness per type in
 * kernels/neon.h.
 *
 * The file is compiled with the project's plain flags (baseline Armv8-A,
 * where NEON is always present); each function using the dot product
 * extension carries DOTPROD_FN (a per-function target attribute) and is
 * reached only after melt_cpu_detect() reported it. On other
 * architectures only the NULL-returning entry points remain.
 *
 * Integer block sums. Plain NEON multiplies int8 by int8 into int16
 * (vmull_s8: exact for every pair, -128 * -128 included) and adds pairs of
 * those into int32 (vpadal), so any int8 input is exact. Dotprod adds
 * groups of four int8 products into int32 (vdotq_s32), exact as well. The
 * k-quants keep vec_dot.c's eight lanes (element index mod 8): 8 bytes
 * loaded from an 8-aligned index hold lanes 0..7 in order, so vmull_s8's
 * int16 results are already per lane; for dotprod a table look-up first
 * gathers each lane's four bytes of a 32-element sub-block into one
 * 4-byte group (LANE_GATHER). */
#include "engine/kernels/neon.h"

#include <stddef.h>
#include <string.h>

#include "melt/cpu.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

/* The F32 expressions are the scalar family's definition: no contraction
 * of a multiply and an add into a fused multiply-add (vfmaq is written
 * where one is meant). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

bool melt_kernels_neon_usable(void)
{
    return melt_cpu_detect()->neon;
}

bool melt_kernels_neon_dotprod_usable(void)
{
    const melt_cpu_features *f = melt_cpu_detect();
    return f->neon && f->dotprod;
}

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))

#include <arm_neon.h>
#include <pthread.h>

/* GCC's arm_neon.h defines vdotq_s32 for arch=armv8.2-a+dotprod, and a
 * function may only inline it when its target includes all of that (a CPU
 * with the extension implements Armv8.2-A); clang's for "dotprod". */
#if defined(__clang__)
#define DOTPROD_FN __attribute__((target("dotprod")))
#else
#define DOTPROD_FN __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

/* vdotq_s32, as an instruction where the compiler's arm_neon.h declares it
 * only for files built with the extension (clang before 16). */
#if defined(__clang__) && __clang_major__ < 16
DOTPROD_FN static inline int32x4_t sdot_s32(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}
#else
#define sdot_s32 vdotq_s32
#endif

/* Exact (every half is a float); the hardware conversion keeps NaN
 * payloads quiet as melt_fp16_to_fp32 does. */
static inline float h2f(uint16_t h)
{
    __fp16 f;
    memcpy(&f, &h, sizeof f);
    return (float)f;
}

/* Four halves as floats. */
static inline float32x4_t halves4(uint16_t a, uint16_t b, uint16_t c, uint16_t d)
{
    const uint16_t h[4] = {a, b, c, d};
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}
#define HALVES4(p, f) halves4((p)[0].f, (p)[1].f, (p)[2].f, (p)[3].f)

/* ---- activation quantizers (the bytes of vec_dot.c's) ---- */

static inline float amax_32(const float *x)
{
    float32x4_t m = vabsq_f32(vld1q_f32(x));
    for (int j = 4; j < 32; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
    return vmaxvq_f32(m);
}

/* round(x[j] * id) (ties away from zero, as roundf) for 32 values known to
 * lie in [-127.5, 127.5], into q; returns their sum. */
static inline int round_32(const float *x, float id, int8_t *q)
{
    int16x8_t s = vdupq_n_s16(0);
    for (int j = 0; j < 32; j += 8) {
        const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + j), id));
        const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4), id));
        const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
        vst1_s8(q + j, vmovn_s16(h));
        s = vaddq_s16(s, h);
    }
    return vaddlvq_s16(s);
}

static void act_q8_0(const float *x, void *vy, int64_t n)
{
    melt_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / MELT_QK8_0; i++, x += MELT_QK8_0) {
        const float d = amax_32(x) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = melt_fp32_to_fp16(d);
        round_32(x, id, y[i].qs);
    }
}

static void act_q8_1(const float *x, void *vy, int64_t n)
{
    melt_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float d = amax_32(x) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = melt_fp32_to_fp16(d);
        const int sum = round_32(x, id, y[i].qs);
        y[i].s = melt_fp32_to_fp16((float)sum * d);
    }
}

static void act_q8_K(const float *x, void *vy, int64_t n)
{
    melt_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / MELT_QK_K; i++, x += MELT_QK_K) {
        float32x4_t m = vdupq_n_f32(0);
        for (int j = 0; j < MELT_QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;   /* the first element of largest magnitude, sign kept */
        for (int j = 0; j < MELT_QK_K; j++)
            if (x[j] == amax || x[j] == -amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.f / max;
        /* round to nearest even (ggml's nearest_int), at most 127 */
        for (int j = 0; j < MELT_QK_K; j += 16) {
            int16x8_t h[2];
            for (int k = 0; k < 2; k++) {
                int32x4_t v[2];
                for (int q = 0; q < 2; q++)
                    v[q] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 8 * k + 4 * q), iscale)),
                                     vdupq_n_s32(127));
                h[k] = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            }
            vst1q_s8(y[i].qs + j, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
            y[i].bsums[j / 16] = (int16_t)vaddvq_s16(vaddq_s16(h[0], h[1]));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- blocks of 32: weights unpacked to 32 int8 (two registers) ---- */

static inline void unpack_q8_0(const void *vx, int8x16_t w[2])
{
    const melt_block_q8_0 *x = vx;
    w[0] = vld1q_s8(x->qs);
    w[1] = vld1q_s8(x->qs + 16);
}

/* Low nibbles (elements 0..15) and high nibbles (16..31). */
static inline void nibbles_32(const uint8_t qs[16], uint8x16_t u[2])
{
    const uint8x16_t q = vld1q_u8(qs);
    u[0] = vandq_u8(q, vdupq_n_u8(0x0F));
    u[1] = vshrq_n_u8(q, 4);
}

/* Bit j of the 16 bits at qh as 0x10 in byte j. */
static inline uint8x16_t bit4_16(const uint8_t qh[2])
{
    static const uint8_t bits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    return vandq_u8(vtstq_u8(v, vld1q_u8(bits)), vdupq_n_u8(0x10));
}

static inline void signed_minus(const uint8x16_t u[2], int off, int8x16_t w[2])
{
    for (int k = 0; k < 2; k++)
        w[k] = vsubq_s8(vreinterpretq_s8_u8(u[k]), vdupq_n_s8((int8_t)off));
}

static inline void unpack_q4_0(const void *vx, int8x16_t w[2])
{
    const melt_block_q4_0 *x = vx;
    uint8x16_t u[2];
    nibbles_32(x->qs, u);
    signed_minus(u, 8, w);
}

static inline void unpack_q4_1(const void *vx, int8x16_t w[2])
{
    const melt_block_q4_1 *x = vx;
    uint8x16_t u[2];
    nibbles_32(x->qs, u);
    signed_minus(u, 0, w);
}

static inline void unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int off, int8x16_t w[2])
{
    uint8x16_t u[2];
    nibbles_32(qs, u);
    u[0] = vorrq_u8(u[0], bit4_16(qh));
    u[1] = vorrq_u8(u[1], bit4_16(qh + 2));
    signed_minus(u, off, w);
}

static inline void unpack_q5_0(const void *vx, int8x16_t w[2])
{
    const melt_block_q5_0 *x = vx;
    unpack_q5(x->qs, x->qh, 16, w);
}

static inline void unpack_q5_1(const void *vx, int8x16_t w[2])
{
    const melt_block_q5_1 *x = vx;
    unpack_q5(x->qs, x->qh, 0, w);
}

/* The block's integer sum as 4 int32 partial sums: plain and dotprod. */
static inline int32x4_t isum_neon(const int8x16_t w[2], const int8_t *q)
{
    int32x4_t acc = vdupq_n_s32(0);
    for (int k = 0; k < 2; k++) {
        const int8x16_t y = vld1q_s8(q + 16 * k);
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w[k]), vget_low_s8(y)));
        acc = vpadalq_s16(acc, vmull_high_s8(w[k], y));
    }
    return acc;
}

DOTPROD_FN static inline int32x4_t isum_dotprod(const int8x16_t w[2], const int8_t *q)
{
    const int32x4_t acc = sdot_s32(vdupq_n_s32(0), w[0], vld1q_s8(q));
    return sdot_s32(acc, w[1], vld1q_s8(q + 16));
}

/* The F32 term of one block, written as vec_dot.c writes it, and of four
 * consecutive blocks at once (lane k: block k) with the same operations. */
static inline float term_q8_0(const melt_block_q8_0 *x, const melt_block_q8_0 *y, int sumi)
{
    return (float)sumi * (h2f(x->d) * h2f(y->d));
}

static inline float term_q4_0(const melt_block_q4_0 *x, const melt_block_q8_0 *y, int sumi)
{
    return (float)sumi * h2f(x->d) * h2f(y->d);
}

static inline float term_q5_0(const melt_block_q5_0 *x, const melt_block_q8_0 *y, int sumi)
{
    return (h2f(x->d) * h2f(y->d)) * (float)sumi;
}

static inline float term_q4_1(const melt_block_q4_1 *x, const melt_block_q8_1 *y, int sumi)
{
    return (h2f(x->d) * h2f(y->d)) * (float)sumi + h2f(x->m) * h2f(y->s);
}

static inline float term_q5_1(const melt_block_q5_1 *x, const melt_block_q8_1 *y, int sumi)
{
    return (h2f(x->d) * h2f(y->d)) * (float)sumi + h2f(x->m) * h2f(y->s);
}

static inline float32x4_t term4_q8_0(const melt_block_q8_0 *x, const melt_block_q8_0 *y, float32x4_t s)
{
    return vmulq_f32(s, vmulq_f32(HALVES4(x, d), HALVES4(y, d)));
}

static inline float32x4_t term4_q4_0(const melt_block_q4_0 *x, const melt_block_q8_0 *y, float32x4_t s)
{
    return vmulq_f32(vmulq_f32(s, HALVES4(x, d)), HALVES4(y, d));
}

static inline float32x4_t term4_q5_0(const melt_block_q5_0 *x, const melt_block_q8_0 *y, float32x4_t s)
{
    return vmulq_f32(vmulq_f32(HALVES4(x, d), HALVES4(y, d)), s);
}

static inline float32x4_t term4_q4_1(const melt_block_q4_1 *x, const melt_block_q8_1 *y, float32x4_t s)
{
    return vaddq_f32(vmulq_f32(vmulq_f32(HALVES4(x, d), HALVES4(y, d)), s),
                     vmulq_f32(HALVES4(x, m), HALVES4(y, s)));
}

static inline float32x4_t term4_q5_1(const melt_block_q5_1 *x, const melt_block_q8_1 *y, float32x4_t s)
{
    return vaddq_f32(vmulq_f32(vmulq_f32(HALVES4(x, d), HALVES4(y, d)), s),
                     vmulq_f32(HALVES4(x, m), HALVES4(y, s)));
}

/* The dot products of one weight row with nt activation rows (1..MAX_TOK,
 * row t at act + t * act_stride) into out[t * out_stride]: each with
 * exactly the operations of the one-row vec_dot, the weights unpacked once
 * for all rows (the matmul of several tokens). */
#define MAX_TOK 4
typedef void (*dots_fn)(int64_t n, const void *w, const uint8_t *act, size_t act_stride, int nt,
                        float *out, int64_t out_stride);
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Blocks of 32 for family FAM: integer sums and F32 terms of 4 blocks at a
 * time, the terms added to each row's sum one by one in block order (the
 * scalar loop's F32 order); the last nb % 4 blocks one by one. vec_dot is
 * the body for one row, dots for up to MAX_TOK. */
#define DOT32(NAME, FAM, ATTR, WBLOCK, ABLOCK)                                               \
    ATTR static ALWAYS_INLINE void body_##NAME##_##FAM(int64_t n, const void *vw,            \
                                                       const uint8_t *act, size_t as, int nt, \
                                                       float *out, int64_t os)               \
    {                                                                                        \
        const WBLOCK *x = vw;                                                                \
        const int64_t nb = n / 32;                                                           \
        float sumf[MAX_TOK] = {0};                                                           \
        int64_t ib = 0;                                                                      \
        int8x16_t w0[2], w1[2], w2[2], w3[2];                                                \
        for (; ib + 4 <= nb; ib += 4) {                                                      \
            unpack_##NAME(x + ib, w0);                                                       \
            unpack_##NAME(x + ib + 1, w1);                                                   \
            unpack_##NAME(x + ib + 2, w2);                                                   \
            unpack_##NAME(x + ib + 3, w3);                                                   \
            for (int t = 0; t < nt; t++) {                                                   \
                const ABLOCK *y = (const ABLOCK *)(act + (size_t)t * as) + ib;               \
                const int32x4_t s = vpaddq_s32(vpaddq_s32(isum_##FAM(w0, y[0].qs), isum_##FAM(w1, y[1].qs)), \
                                               vpaddq_s32(isum_##FAM(w2, y[2].qs), isum_##FAM(w3, y[3].qs))); \
                float tt[4];                                                                 \
                vst1q_f32(tt, term4_##NAME(x + ib, y, vcvtq_f32_s32(s)));                    \
                for (int k = 0; k < 4; k++) sumf[t] += tt[k];                                \
            }                                                                                \
        }                                                                                    \
        for (; ib < nb; ib++) {                                                              \
            unpack_##NAME(x + ib, w0);                                                       \
            for (int t = 0; t < nt; t++) {                                                   \
                const ABLOCK *y = (const ABLOCK *)(act + (size_t)t * as) + ib;               \
                sumf[t] += term_##NAME(x + ib, y, vaddvq_s32(isum_##FAM(w0, y->qs)));        \
            }                                                                                \
        }                                                                                    \
        for (int t = 0; t < nt; t++) out[t * os] = sumf[t];                                  \
    }                                                                                        \
    ATTR static float vec_dot_##NAME##_##FAM(int64_t n, const void *vw, const void *va)      \
    {                                                                                        \
        float r;                                                                             \
        body_##NAME##_##FAM(n, vw, va, 0, 1, &r, 1);                                         \
        return r;                                                                            \
    }                                                                                        \
    ATTR static void dots_##NAME##_##FAM(int64_t n, const void *vw, const uint8_t *act, size_t as, \
                                         int nt, float *out, int64_t os)                     \
    {                                                                                        \
        body_##NAME##_##FAM(n, vw, act, as, nt, out, os);                                    \
    }

DOT32(q8_0, neon, , melt_block_q8_0, melt_block_q8_0)
DOT32(q4_0, neon, , melt_block_q4_0, melt_block_q8_0)
DOT32(q4_1, neon, , melt_block_q4_1, melt_block_q8_1)
DOT32(q5_0, neon, , melt_block_q5_0, melt_block_q8_0)
DOT32(q5_1, neon, , melt_block_q5_1, melt_block_q8_1)
DOT32(q8_0, dotprod, DOTPROD_FN, melt_block_q8_0, melt_block_q8_0)
DOT32(q4_0, dotprod, DOTPROD_FN, melt_block_q4_0, melt_block_q8_0)
DOT32(q4_1, dotprod, DOTPROD_FN, melt_block_q4_1, melt_block_q8_1)
DOT32(q5_0, dotprod, DOTPROD_FN, melt_block_q5_0, melt_block_q8_0)
DOT32(q5_1, dotprod, DOTPROD_FN, melt_block_q5_1, melt_block_q8_1)

/* ---- super-blocks of 256 ---- */

/* The eight 6-bit scales and mins of a q4_K / q5_K block (vec_dot.c's). */
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

/* sum_j bsums[j] * mn[j / 2], exact for any int16 bsums. */
static inline int k_mins(const int16_t bsums[16], const uint8_t mn[8])
{
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    int32x4_t s = vmulq_s32(vpaddlq_s16(vld1q_s16(bsums)), vmovl_s16(vget_low_s16(m)));
    s = vmlaq_s32(s, vpaddlq_s16(vld1q_s16(bsums + 8)), vmovl_s16(vget_high_s16(m)));
    return vaddvq_s32(s);
}

/* Per-lane int16 sums of a[e] * q[e] over 16 elements (two per lane);
 * |a| <= 32 keeps every sum in range. */
static inline int16x8_t lanes16(int8x16_t a, int8x16_t q)
{
    return vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(q)), a, q);
}

/* acc_lo (lanes 0..3) and acc_hi (4..7) += p * scale. */
static inline void lanes_add(int32x4_t acc[2], int16x8_t p, int16_t scale)
{
    acc[0] = vmlal_n_s16(acc[0], vget_low_s16(p), scale);
    acc[1] = vmlal_high_n_s16(acc[1], p, scale);
}

/* sums (lanes 0..3, 4..7) += d * (float)lanes: vec_dot.c's add_lanes. */
static inline void add_lanes(float32x4_t sums[2], float d, const int32x4_t acc[2])
{
    for (int k = 0; k < 2; k++) sums[k] = vaddq_f32(sums[k], vmulq_n_f32(vcvtq_f32_s32(acc[k]), d));
}

static inline float finish_lanes(float sumf, const float32x4_t sums[2])
{
    float s[8];
    vst1q_f32(s, sums[0]);
    vst1q_f32(s + 4, sums[1]);
    for (int l = 0; l < 8; l++) sumf += s[l];
    return sumf;
}

/* One 32-element sub-block of unsigned weight quants u (elements 0..15,
 * 16..31; at most 31) against q8 (32 bytes), times scale, into acc. */
static inline void sub32_neon(const uint8x16_t u[2], const int8_t *q8, int16_t scale, int32x4_t acc[2])
{
    const int8x16_t a1 = vreinterpretq_s8_u8(u[1]), y1 = vld1q_s8(q8 + 16);
    int16x8_t p = lanes16(vreinterpretq_s8_u8(u[0]), vld1q_s8(q8));
    p = vmlal_s8(p, vget_low_s8(a1), vget_low_s8(y1));
    p = vmlal_high_s8(p, a1, y1);
    lanes_add(acc, p, scale);
}

/* The table look-up that gathers lane l's bytes of a 32-element run
 * (indices l, l+8, l+16, l+24) into bytes 4l..4l+3: lanes 0..3 from
 * LANE_GATHER[0], lanes 4..7 from LANE_GATHER[1]. */
static const uint8_t LANE_GATHER[2][16] = {
    {0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27},
    {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31},
};

static inline void gather_u8(uint8x16_t a, uint8x16_t b, uint8x16_t out[2])
{
    const uint8x16x2_t t = {{a, b}};
    out[0] = vqtbl2q_u8(t, vld1q_u8(LANE_GATHER[0]));
    out[1] = vqtbl2q_u8(t, vld1q_u8(LANE_GATHER[1]));
}

/* As sub32_neon with u already gathered by lane (gather_u8): the q8 bytes
 * are gathered the same way and each 4-byte group dotted. */
DOTPROD_FN static inline void sub32_dotprod(const uint8x16_t u[2], const int8_t *q8, int32_t scale,
                                            int32x4_t acc[2])
{
    uint8x16_t g[2];
    gather_u8(vld1q_u8((const uint8_t *)q8), vld1q_u8((const uint8_t *)q8 + 16), g);
    for (int k = 0; k < 2; k++) {
        const int32x4_t s = sdot_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(u[k]), vreinterpretq_s8_u8(g[k]));
        acc[k] = vmlaq_n_s32(acc[k], s, scale);
    }
}

/* q4_K and q5_K: chunk j (64 elements) holds sub-block 2j in the low
 * nibbles of its 32 bytes and 2j+1 in the high nibbles; q5_K adds bit 2j
 * resp. 2j+1 of qh[l] as 0x10. For dotprod the bytes of qs and qh are
 * gathered by lane first (nibble and bit extraction work byte by byte, so
 * they commute with the gathering). A super-block's eight sub-blocks are
 * unpacked once, then dotted with each activation row. */
#define DOT_K4(NAME, FAM, ATTR, WBLOCK, GATHER)                                              \
    ATTR static ALWAYS_INLINE void body_##NAME##_##FAM(int64_t n, const void *vw,            \
                                                       const uint8_t *act, size_t as, int nt, \
                                                       float *out, int64_t os)               \
    {                                                                                        \
        const WBLOCK *x = vw;                                                                \
        const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);                      \
        float32x4_t sums[MAX_TOK][2];                                                        \
        float sumf[MAX_TOK];                                                                 \
        for (int t = 0; t < nt; t++) {                                                       \
            sums[t][0] = sums[t][1] = vdupq_n_f32(0);                                        \
            sumf[t] = 0;                                                                     \
        }                                                                                    \
        for (int64_t i = 0; i < n / MELT_QK_K; i++) {                                        \
            uint8_t sc[8], mn[8];                                                            \
            k4_scales(x[i].scales, sc, mn);                                                  \
            uint8x16_t h[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};                                \
            const uint8_t *qh = qh_of_##NAME(x + i);                                         \
            if (qh) {                                                                        \
                h[0] = vld1q_u8(qh);                                                         \
                h[1] = vld1q_u8(qh + 16);                                                    \
                if (GATHER) gather_u8(h[0], h[1], h);                                        \
            }                                                                                \
            uint8x16_t u[8][2];   /* sub-block j: u[j] */                                    \
            for (int j = 0; j < 4; j++) {                                                    \
                uint8x16_t q[2] = {vld1q_u8(x[i].qs + 32 * j), vld1q_u8(x[i].qs + 32 * j + 16)}; \
                if (GATHER) gather_u8(q[0], q[1], q);                                        \
                for (int k = 0; k < 2; k++) {                                                \
                    u[2 * j][k] = vandq_u8(q[k], m4);                                        \
                    u[2 * j + 1][k] = vshrq_n_u8(q[k], 4);                                   \
                    if (qh) {                                                                \
                        const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * j)));          \
                        const uint8x16_t bh = vdupq_n_u8((uint8_t)(2u << (2 * j)));          \
                        u[2 * j][k] = vorrq_u8(u[2 * j][k], vandq_u8(vtstq_u8(h[k], bl), b4)); \
                        u[2 * j + 1][k] = vorrq_u8(u[2 * j + 1][k], vandq_u8(vtstq_u8(h[k], bh), b4)); \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            const float dx = h2f(x[i].d), dminx = h2f(x[i].dmin);                            \
            for (int t = 0; t < nt; t++) {                                                   \
                const melt_block_q8_K *y = (const melt_block_q8_K *)(act + (size_t)t * as) + i; \
                const int sumi = k_mins(y->bsums, mn);                                       \
                int32x4_t acc[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};                         \
                for (int j = 0; j < 8; j++) sub32_##FAM(u[j], y->qs + 32 * j, sc[j], acc);   \
                add_lanes(sums[t], dx * y->d, acc);                                          \
                const float dmin = dminx * y->d;                                             \
                sumf[t] -= dmin * (float)sumi;                                               \
            }                                                                                \
        }                                                                                    \
        for (int t = 0; t < nt; t++) out[t * os] = finish_lanes(sumf[t], sums[t]);           \
    }                                                                                        \
    ATTR static float vec_dot_##NAME##_##FAM(int64_t n, const void *vw, const void *va)      \
    {                                                                                        \
        float r;                                                                             \
        body_##NAME##_##FAM(n, vw, va, 0, 1, &r, 1);                                         \
        return r;                                                                            \
    }                                                                                        \
    ATTR static void dots_##NAME##_##FAM(int64_t n, const void *vw, const uint8_t *act, size_t as, \
                                         int nt, float *out, int64_t os)                     \
    {                                                                                        \
        body_##NAME##_##FAM(n, vw, act, as, nt, out, os);                                    \
    }

/* The fifth bits of a block: none for q4_K. */
static inline const uint8_t *qh_of_q4_K(const melt_block_q4_K *x)
{
    (void)x;
    return NULL;
}

static inline const uint8_t *qh_of_q5_K(const melt_block_q5_K *x)
{
    return x->qh;
}

DOT_K4(q4_K, neon, , melt_block_q4_K, 0)
DOT_K4(q5_K, neon, , melt_block_q5_K, 0)
DOT_K4(q4_K, dotprod, DOTPROD_FN, melt_block_q4_K, 1)
DOT_K4(q5_K, dotprod, DOTPROD_FN, melt_block_q5_K, 1)

/* q6_K (both families): sub-blocks of 16, so each 16-byte register has its
 * own scale; weights w + 32 in 0..63 made signed by subtracting 32. A
 * super-block's 256 weights are unpacked once (register e / 16 holds
 * elements e..e+15), then dotted with each activation row. */
static ALWAYS_INLINE void body_q6_K(int64_t n, const void *vw, const uint8_t *act, size_t as, int nt,
                                    float *out, int64_t os)
{
    const melt_block_q6_K *x = vw;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x03);
    const int8x16_t off = vdupq_n_s8(32);
    float32x4_t sums[MAX_TOK][2];
    for (int t = 0; t < nt; t++) sums[t][0] = sums[t][1] = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        int8x16_t a[16];
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x[i].ql + 64 * half, *qh = x[i].qh + 32 * half;
            for (int k = 0; k < 2; k++) {   /* elements 16k..16k+15 of each quarter */
                const uint8x16_t l0 = vld1q_u8(ql + 16 * k), l1 = vld1q_u8(ql + 32 + 16 * k);
                const uint8x16_t hh = vld1q_u8(qh + 16 * k);
                const uint8x16_t u[4] = {
                    vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hh, m2), 4)),
                    vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 2), m2), 4)),
                    vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 4), m2), 4)),
                    vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hh, 6), 4)),
                };
                for (int quarter = 0; quarter < 4; quarter++)   /* element 128 half + 32 quarter + 16 k */
                    a[8 * half + 2 * quarter + k] = vsubq_s8(vreinterpretq_s8_u8(u[quarter]), off);
            }
        }
        const float dx = h2f(x[i].d);
        for (int t = 0; t < nt; t++) {
            const melt_block_q8_K *y = (const melt_block_q8_K *)(act + (size_t)t * as) + i;
            int32x4_t acc[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
            for (int r = 0; r < 16; r++) lanes_add(acc, lanes16(a[r], vld1q_s8(y->qs + 16 * r)), x[i].scales[r]);
            add_lanes(sums[t], dx * y->d, acc);
        }
    }
    for (int t = 0; t < nt; t++) out[t * os] = finish_lanes(0, sums[t]);
}

static float vec_dot_q6_K_neon(int64_t n, const void *vw, const void *va)
{
    float r;
    body_q6_K(n, vw, va, 0, 1, &r, 1);
    return r;
}

static void dots_q6_K_neon(int64_t n, const void *vw, const uint8_t *act, size_t as, int nt, float *out,
                           int64_t os)
{
    body_q6_K(n, vw, act, as, nt, out, os);
}

/* ---- plain types ---- */

/* melt_dot_f32_lanes with its 16 lanes as four registers (lanes 4r..4r+3
 * in v[r]): the same fused multiply-adds, the same reduction tree. */
static inline float tree16(const float32x4_t v[4])
{
    const float32x4_t t8_lo = vaddq_f32(v[0], v[2]);   /* l += l + 8 */
    const float32x4_t t8_hi = vaddq_f32(v[1], v[3]);
    const float32x4_t t4 = vaddq_f32(t8_lo, t8_hi);     /* + 4 */
    const float32x2_t t2 = vadd_f32(vget_low_f32(t4), vget_high_f32(t4));   /* + 2 */
    return vget_lane_f32(t2, 0) + vget_lane_f32(t2, 1);                     /* + 1 */
}

static float vec_dot_f32_neon(int64_t n, const void *vw, const void *va)
{
    const float *a = vw, *b = va;
    if (n % 16 == 0) {
        float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
        for (int64_t i = 0; i < n; i += 16)
            for (int r = 0; r < 4; r++)
                acc[r] = vfmaq_f32(acc[r], vld1q_f32(a + i + 4 * r), vld1q_f32(b + i + 4 * r));
        return tree16(acc);
    }
    float32x4_t acc[16];   /* accumulator r of 16 lanes: acc[4r..4r+3] */
    for (int r = 0; r < 16; r++) acc[r] = vdupq_n_f32(0);
    const int64_t n64 = n - n % 64;
    for (int64_t i = 0; i < n64; i += 64)
        for (int r = 0; r < 16; r++)
            acc[r] = vfmaq_f32(acc[r], vld1q_f32(a + i + 4 * r), vld1q_f32(b + i + 4 * r));
    for (int q = 0; q < 4; q++) {   /* 0 += 2, 1 += 3, then 0 += 1 */
        acc[q] = vaddq_f32(acc[q], acc[8 + q]);
        acc[4 + q] = vaddq_f32(acc[4 + q], acc[12 + q]);
        acc[q] = vaddq_f32(acc[q], acc[4 + q]);
    }
    float s = tree16(acc);
    for (int64_t i = n64; i < n; i++) s += a[i] * b[i];
    return s;
}

/* F16 / BF16: 8 exact F32 products at a time summed into four double
 * lanes as the avx2 family's F16 dot does (products 0..3 into lanes 0..3
 * of one accumulator, 4..7 of another; the two added, then lanes 0+2,
 * 1+3, then those two), then the tail in order. */
static inline float sum_products(float64x2_t acc[4], const uint16_t *x, const uint16_t *y, int64_t i,
                                 int64_t n, float (*conv)(uint16_t))
{
    acc[0] = vaddq_f64(acc[0], acc[2]);
    acc[1] = vaddq_f64(acc[1], acc[3]);
    const float64x2_t t = vaddq_f64(acc[0], acc[1]);
    double sum = vgetq_lane_f64(t, 0) + vgetq_lane_f64(t, 1);
    for (; i < n; i++) sum += (double)(conv(x[i]) * conv(y[i]));
    return (float)sum;
}

static inline void add_products(float64x2_t acc[4], float32x4_t p_lo, float32x4_t p_hi)
{
    acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(p_lo)));
    acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(p_lo));
    acc[2] = vaddq_f64(acc[2], vcvt_f64_f32(vget_low_f32(p_hi)));
    acc[3] = vaddq_f64(acc[3], vcvt_high_f64_f32(p_hi));
}

static float vec_dot_f16_neon(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    float64x2_t acc[4] = {vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0)};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t hx = vreinterpretq_f16_u16(vld1q_u16(x + i));
        const float16x8_t hy = vreinterpretq_f16_u16(vld1q_u16(y + i));
        add_products(acc, vmulq_f32(vcvt_f32_f16(vget_low_f16(hx)), vcvt_f32_f16(vget_low_f16(hy))),
                     vmulq_f32(vcvt_high_f32_f16(hx), vcvt_high_f32_f16(hy)));
    }
    return sum_products(acc, x, y, i, n, h2f);
}

static float bf16_to_f32(uint16_t h)
{
    return melt_bf16_to_fp32(h);
}

static inline float32x4_t bf16x4(uint16x4_t h)
{
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

static float vec_dot_bf16_neon(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    float64x2_t acc[4] = {vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0)};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t hx = vld1q_u16(x + i), hy = vld1q_u16(y + i);
        add_products(acc, vmulq_f32(bf16x4(vget_low_u16(hx)), bf16x4(vget_low_u16(hy))),
                     vmulq_f32(bf16x4(vget_high_u16(hx)), bf16x4(vget_high_u16(hy))));
    }
    return sum_products(acc, x, y, i, n, bf16_to_f32);
}

/* ---- the tables and the families ---- */

/* Per weight type: the vec_dots, and the several-token dots (NULL: one
 * vec_dot per token) of each family. */
typedef struct neon_kernel {
    uint32_t type;
    melt_vec_dot_fn neon, dotprod;
    dots_fn dots_neon, dots_dotprod;
} neon_kernel;

static const neon_kernel neon_kernels[] = {
    {MELT_TYPE_F32, vec_dot_f32_neon, vec_dot_f32_neon, NULL, NULL},
    {MELT_TYPE_F16, vec_dot_f16_neon, vec_dot_f16_neon, NULL, NULL},
    {MELT_TYPE_BF16, vec_dot_bf16_neon, vec_dot_bf16_neon, NULL, NULL},
    {MELT_TYPE_Q4_0, vec_dot_q4_0_neon, vec_dot_q4_0_dotprod, dots_q4_0_neon, dots_q4_0_dotprod},
    {MELT_TYPE_Q4_1, vec_dot_q4_1_neon, vec_dot_q4_1_dotprod, dots_q4_1_neon, dots_q4_1_dotprod},
    {MELT_TYPE_Q5_0, vec_dot_q5_0_neon, vec_dot_q5_0_dotprod, dots_q5_0_neon, dots_q5_0_dotprod},
    {MELT_TYPE_Q5_1, vec_dot_q5_1_neon, vec_dot_q5_1_dotprod, dots_q5_1_neon, dots_q5_1_dotprod},
    {MELT_TYPE_Q8_0, vec_dot_q8_0_neon, vec_dot_q8_0_dotprod, dots_q8_0_neon, dots_q8_0_dotprod},
    {MELT_TYPE_Q4_K, vec_dot_q4_K_neon, vec_dot_q4_K_dotprod, dots_q4_K_neon, dots_q4_K_dotprod},
    {MELT_TYPE_Q5_K, vec_dot_q5_K_neon, vec_dot_q5_K_dotprod, dots_q5_K_neon, dots_q5_K_dotprod},
    {MELT_TYPE_Q6_K, vec_dot_q6_K_neon, vec_dot_q6_K_neon, dots_q6_K_neon, dots_q6_K_neon},
};

static const neon_kernel *kernel_of(uint32_t wtype)
{
    for (size_t i = 0; i < sizeof neon_kernels / sizeof neon_kernels[0]; i++)
        if (neon_kernels[i].type == wtype) return &neon_kernels[i];
    return NULL;
}

melt_vec_dot_fn melt_vec_dot_neon(uint32_t wtype, bool dotprod)
{
    if (dotprod ? !melt_kernels_neon_dotprod_usable() : !melt_kernels_neon_usable()) return NULL;
    const neon_kernel *k = kernel_of(wtype);
    return !k ? NULL : dotprod ? k->dotprod : k->neon;
}

melt_act_from_f32_fn melt_act_from_f32_neon(uint32_t wtype)
{
    const melt_dot_traits *t = melt_dot_traits_scalar(wtype);
    if (!t) return NULL;
    switch (t->act_type) {
    case MELT_TYPE_Q8_0: return act_q8_0;
    case MELT_TYPE_Q8_1: return act_q8_1;
    case MELT_TYPE_Q8_K: return act_q8_K;
    default: return t->from_f32;   /* f16 / bf16 rounding: not worth vectors */
    }
}

/* As the scalar family's act_convert, with the NEON quantizers. */
static void neon_act_convert(uint32_t wtype, const float *x, int n_tok, int64_t n_in, void *xq,
                             int ith, int nth)
{
    const melt_act_from_f32_fn conv = melt_act_from_f32_neon(wtype);
    const size_t rb = melt_dot_act_row_bytes(wtype, n_in);
    int64_t t0, t1;
    melt_ops_slice(n_tok, ith, nth, &t0, &t1);
    for (int64_t i = t0; i < t1; i++) conv(x + i * n_in, (uint8_t *)xq + (size_t)i * rb, n_in);
}

/* This thread's rows of w, each row against the tokens MAX_TOK at a time
 * (its weights unpacked once per group) with dots, or one vec_dot per
 * output where the type has no dots; types without a dot type (none
 * here) go to the scalar family, which dequantizes. Every output is the
 * vec_dot of its row and token, so the split does not change a bit. */
static void matmul_with(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                        float *buf, int ith, int nth, bool dotprod)
{
    const neon_kernel *k = kernel_of(w->type);
    if (!k) {
        melt_ops_scalar()->matmul(w, x, xq, n_tok, y, buf, ith, nth);
        return;
    }
    const dots_fn dots = dotprod ? k->dots_dotprod : k->dots_neon;
    if (!dots) {
        melt_ops_matmul_by_dot(w, dotprod ? k->dotprod : k->neon, x, xq, n_tok, y, ith, nth);
        return;
    }
    const size_t rb = melt_dot_act_row_bytes(w->type, w->n_in);
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w->data + (uint64_t)r * w->row_bytes;
        for (int t = 0; t < n_tok; t += MAX_TOK) {
            const int nt = n_tok - t < MAX_TOK ? n_tok - t : MAX_TOK;
            dots(w->n_in, row, (const uint8_t *)xq + (size_t)t * rb, rb, nt, y + (int64_t)t * w->n_out + r,
                 w->n_out);
        }
    }
}

static void neon_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                        float *buf, int ith, int nth)
{
    matmul_with(w, x, xq, n_tok, y, buf, ith, nth, false);
}

static void dotprod_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                           float *buf, int ith, int nth)
{
    matmul_with(w, x, xq, n_tok, y, buf, ith, nth, true);
}

static melt_ops neon_ops, dotprod_ops;
static pthread_once_t neon_once = PTHREAD_ONCE_INIT;

static void neon_init(void)
{
    neon_ops = *melt_ops_scalar();
    neon_ops.name = "neon";
    neon_ops.act_convert = neon_act_convert;
    neon_ops.matmul = neon_matmul;
    dotprod_ops = neon_ops;
    dotprod_ops.name = "neon-dotprod";
    dotprod_ops.matmul = dotprod_matmul;
}

const melt_ops *melt_ops_neon(void)
{
    if (!melt_kernels_neon_usable()) return NULL;
    pthread_once(&neon_once, neon_init);
    return &neon_ops;
}

const melt_ops *melt_ops_neon_dotprod(void)
{
    if (!melt_kernels_neon_dotprod_usable()) return NULL;
    pthread_once(&neon_once, neon_init);
    return &dotprod_ops;
}

#else /* not AArch64 with GCC or clang */

melt_vec_dot_fn melt_vec_dot_neon(uint32_t wtype, bool dotprod)
{
    return NULL;
}

melt_act_from_f32_fn melt_act_from_f32_neon(uint32_t wtype)
{
    return NULL;
}

const melt_ops *melt_ops_neon(void)
{
    return NULL;
}

const melt_ops *melt_ops_neon_dotprod(void)
{
    return NULL;
}

#endif
