/* The "avx2" kernel family: the scalar family's numerics (vec_dot.h) with
 * AVX2 + FMA + F16C vec_dots; exactness per type in kernels/x86.h.
 *
 * The file is compiled with the project's plain flags: each function that
 * uses AVX2 carries AVX2_FN (a per-function target attribute), so the
 * compiler emits AVX2 code only there, and nothing here runs unless
 * melt_cpu_detect() reported AVX2, FMA and F16C. (Building the whole
 * project with -march=native is avoided on purpose: GCC 12 miscompiled a
 * fused unpack-and-dot loop with AVX-512 VNNI; see vec_dot.c.)
 *
 * Integer block sums use maddubs (unsigned x signed bytes, pairs into
 * int16) on unsigned weight quants in 0..63, with the offset (q4_0: 8,
 * q5_0: 16, q6_K: 32) taken off as offset * sum(q8) through a second
 * maddubs: exact for every int8 activation including -128 (the usual
 * sign(q8, w) trick is not, for q8 = -128). q8_0 weights are sign-extended
 * to int16 and multiplied with madd, exact for every pair of int8. */
#include "engine/kernels/x86.h"

#include <string.h>

#include "melt/cpu.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

/* The F32 expressions are the scalar family's definition: no contraction
 * of a multiply and an add into a fused multiply-add (fmadd is written
 * where one is meant). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

bool melt_kernels_avx2_usable(void)
{
    const melt_cpu_features *f = melt_cpu_detect();
    return f->avx2 && f->fma && f->f16c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <pthread.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

AVX2_FN static inline float h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

AVX2_FN static inline int hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The total of each of eight vectors of 8 int32, as one vector (lane k =
 * sum of v[k]). */
AVX2_FN static inline __m256i sums_of_8(const __m256i v[8])
{
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]);
    const __m256i h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]);
    const __m256i h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i a = _mm256_hadd_epi32(h01, h23);   /* v0..v3: low half | high half */
    const __m256i b = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* 32 nibbles of 16 bytes as bytes: low nibbles (elements 0..15) in the
 * low half, high nibbles (16..31) in the high half. */
AVX2_FN static inline __m256i nibbles_32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q),
                                                 _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* Bit j of the little-endian 32 bits at qh as 0x10 in byte j. */
AVX2_FN static inline __m256i bit4_from_bits_32(const uint8_t qh[4])
{
    uint32_t b;
    memcpy(&b, qh, sizeof b);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL);
    /* every bit but bit j%8 set in byte j: all ones iff bit j was set */
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), spread);
    v = _mm256_cmpeq_epi8(_mm256_or_si256(v, bit), _mm256_set1_epi8(-1));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Sum over 32 bytes of u[j] * y[j] - off * y[j] (u in 0..63), as 8 int32
 * partial sums. */
AVX2_FN static inline __m256i dot_u8_i8(__m256i u, __m256i y, int off)
{
    __m256i p = _mm256_maddubs_epi16(u, y);
    if (off) p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8((char)off), y));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* ---- blocks of 32: the integer block sum as 8 int32 partial sums ---- */

AVX2_FN static inline __m256i isum_q8_0(const void *vx, const void *vy)
{
    const melt_block_q8_0 *x = vx, *y = vy;
    const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->qs));
    const __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x->qs + 16)));
    const __m256i y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)y->qs));
    const __m256i y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(y->qs + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(x0, y0), _mm256_madd_epi16(x1, y1));
}

AVX2_FN static inline __m256i isum_q4_0(const void *vx, const void *vy)
{
    const melt_block_q4_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    return dot_u8_i8(nibbles_32(x->qs), _mm256_loadu_si256((const __m256i *)y->qs), 8);
}

AVX2_FN static inline __m256i isum_q4_1(const void *vx, const void *vy)
{
    const melt_block_q4_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    return dot_u8_i8(nibbles_32(x->qs), _mm256_loadu_si256((const __m256i *)y->qs), 0);
}

AVX2_FN static inline __m256i isum_q5_0(const void *vx, const void *vy)
{
    const melt_block_q5_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    const __m256i u = _mm256_or_si256(nibbles_32(x->qs), bit4_from_bits_32(x->qh));
    return dot_u8_i8(u, _mm256_loadu_si256((const __m256i *)y->qs), 16);
}

AVX2_FN static inline __m256i isum_q5_1(const void *vx, const void *vy)
{
    const melt_block_q5_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    const __m256i u = _mm256_or_si256(nibbles_32(x->qs), bit4_from_bits_32(x->qh));
    return dot_u8_i8(u, _mm256_loadu_si256((const __m256i *)y->qs), 0);
}

/* ---- the F32 term of one block, written as vec_dot.c writes it ---- */

AVX2_FN static inline float term_q8_0(const void *vx, const void *vy, int sumi)
{
    const melt_block_q8_0 *x = vx, *y = vy;
    return (float)sumi * (h2f(x->d) * h2f(y->d));
}

AVX2_FN static inline float term_q4_0(const void *vx, const void *vy, int sumi)
{
    const melt_block_q4_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    return (float)sumi * h2f(x->d) * h2f(y->d);
}

AVX2_FN static inline float term_q5_0(const void *vx, const void *vy, int sumi)
{
    const melt_block_q5_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    return (h2f(x->d) * h2f(y->d)) * (float)sumi;
}

AVX2_FN static inline float term_q4_1(const void *vx, const void *vy, int sumi)
{
    const melt_block_q4_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    return (h2f(x->d) * h2f(y->d)) * (float)sumi + h2f(x->m) * h2f(y->s);
}

AVX2_FN static inline float term_q5_1(const void *vx, const void *vy, int sumi)
{
    const melt_block_q5_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    return (h2f(x->d) * h2f(y->d)) * (float)sumi + h2f(x->m) * h2f(y->s);
}

/* The same terms for 8 consecutive blocks at once (lane k: block k), from
 * their integer sums as floats: the same F32 operations per lane. */
#define HALVES8(p, f)                                                                       \
    _mm256_cvtph_ps(_mm_setr_epi16((short)(p)[0].f, (short)(p)[1].f, (short)(p)[2].f,       \
                                   (short)(p)[3].f, (short)(p)[4].f, (short)(p)[5].f,       \
                                   (short)(p)[6].f, (short)(p)[7].f))

AVX2_FN static inline __m256 term8_q8_0(const void *vx, const void *vy, __m256 s)
{
    const melt_block_q8_0 *x = vx, *y = vy;
    return _mm256_mul_ps(s, _mm256_mul_ps(HALVES8(x, d), HALVES8(y, d)));
}

AVX2_FN static inline __m256 term8_q4_0(const void *vx, const void *vy, __m256 s)
{
    const melt_block_q4_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    return _mm256_mul_ps(_mm256_mul_ps(s, HALVES8(x, d)), HALVES8(y, d));
}

AVX2_FN static inline __m256 term8_q5_0(const void *vx, const void *vy, __m256 s)
{
    const melt_block_q5_0 *x = vx;
    const melt_block_q8_0 *y = vy;
    return _mm256_mul_ps(_mm256_mul_ps(HALVES8(x, d), HALVES8(y, d)), s);
}

AVX2_FN static inline __m256 term8_q4_1(const void *vx, const void *vy, __m256 s)
{
    const melt_block_q4_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    return _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(HALVES8(x, d), HALVES8(y, d)), s),
                         _mm256_mul_ps(HALVES8(x, m), HALVES8(y, s)));
}

AVX2_FN static inline __m256 term8_q5_1(const void *vx, const void *vy, __m256 s)
{
    const melt_block_q5_1 *x = vx;
    const melt_block_q8_1 *y = vy;
    return _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(HALVES8(x, d), HALVES8(y, d)), s),
                         _mm256_mul_ps(HALVES8(x, m), HALVES8(y, s)));
}

/* A dot product over blocks of 32: integer sums and F32 terms of 8 blocks
 * at a time, then the terms added to sumf one by one in block order (the
 * scalar loop's F32 order); the last nb % 8 blocks one at a time. */
#define DOT32(NAME, WBLOCK, ABLOCK)                                                    \
    AVX2_FN static float vec_dot_##NAME(int64_t n, const void *vw, const void *va)     \
    {                                                                                  \
        const WBLOCK *x = vw;                                                          \
        const ABLOCK *y = va;                                                          \
        const int64_t nb = n / 32;                                                     \
        float sumf = 0;                                                                \
        int64_t ib = 0;                                                                \
        for (; ib + 8 <= nb; ib += 8) {                                                \
            __m256i v[8];                                                              \
            for (int k = 0; k < 8; k++) v[k] = isum_##NAME(x + ib + k, y + ib + k);    \
            float t[8];                                                                \
            _mm256_storeu_ps(t, term8_##NAME(x + ib, y + ib,                           \
                                              _mm256_cvtepi32_ps(sums_of_8(v))));      \
            for (int k = 0; k < 8; k++) sumf += t[k];                                  \
        }                                                                              \
        for (; ib < nb; ib++)                                                          \
            sumf += term_##NAME(x + ib, y + ib, hsum_i32(isum_##NAME(x + ib, y + ib)));  \
        return sumf;                                                                   \
    }

DOT32(q8_0, melt_block_q8_0, melt_block_q8_0)
DOT32(q4_0, melt_block_q4_0, melt_block_q8_0)
DOT32(q4_1, melt_block_q4_1, melt_block_q8_1)
DOT32(q5_0, melt_block_q5_0, melt_block_q8_0)
DOT32(q5_1, melt_block_q5_1, melt_block_q8_1)

/* ---- super-blocks of 256 ----
 *
 * vec_dot.c defines eight integer lanes per super-block: lane l sums
 * scale * w * q8 over the elements whose index is l mod 8. Every 8 bytes
 * loaded from an 8-aligned element index hold lanes 0..7 in order, so
 * after the in-lane byte order 0,8,1,9,...,7,15 (SPREAD) a maddubs pairs
 * two elements of the same lane: its int16 k (per 128-bit half) belongs to
 * lane k. Two such vectors P, Q interleaved (unpacklo/hi_epi16) and
 * madd'ed with their sub-block scales give int32 lanes 0..3 resp. 4..7 per
 * half; the two halves are added at the end. */

AVX2_FN static inline __m256i spread(__m256i v)
{
    const __m256i s = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                       0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    return _mm256_shuffle_epi8(v, s);
}

AVX2_FN static inline __m256i load_spread(const void *p)
{
    return spread(_mm256_loadu_si256((const __m256i *)p));
}

/* acc_lo/acc_hi += the lanes of P * sa + Q * sb (sa, sb per 128-bit half
 * in the int32 pattern s). */
AVX2_FN static inline void lanes_add(__m256i *acc_lo, __m256i *acc_hi, __m256i p, __m256i q,
                                     __m256i s)
{
    *acc_lo = _mm256_add_epi32(*acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(p, q), s));
    *acc_hi = _mm256_add_epi32(*acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(p, q), s));
}

AVX2_FN static inline __m256i lanes_total(__m256i acc_lo, __m256i acc_hi)
{
    return _mm256_add_epi32(_mm256_permute2x128_si256(acc_lo, acc_hi, 0x20),
                            _mm256_permute2x128_si256(acc_lo, acc_hi, 0x31));
}

/* The eight 6-bit scales (bytes 0..7 of sm) and mins (bytes 8..15) of a
 * q4_K / q5_K block, unpacked four at a time in 32-bit words (the values
 * of vec_dot.c's k4_scales). */
static inline void k4_scales(const uint8_t *q, uint32_t sm[4])
{
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t w[3];
    memcpy(w, q, sizeof w);
    sm[0] = w[0] & m6;                                         /* sc 0..3 */
    sm[1] = (w[2] & m4) | (((w[0] >> 6) & m2) << 4);           /* sc 4..7 */
    sm[2] = w[1] & m6;                                         /* mn 0..3 */
    sm[3] = ((w[2] >> 4) & m4) | (((w[1] >> 6) & m2) << 4);    /* mn 4..7 */
}

/* sum_j bsums[j] * mn[j / 2], exact for any int16 bsums. */
AVX2_FN static inline int k_mins(const int16_t bsums[16], const uint32_t sm[4])
{
    const __m128i mn = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sm[3], (int)sm[2]));
    __m128i s = _mm_add_epi32(
        _mm_madd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_unpacklo_epi16(mn, mn)),
        _mm_madd_epi16(_mm_loadu_si128((const __m128i *)(bsums + 8)), _mm_unpackhi_epi16(mn, mn)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The madd pattern (sc[2j], sc[2j+1]) as int16 in every 32-bit lane. */
static inline int32_t k4_pair(const uint32_t sm[4], int j)
{
    const uint32_t w = sm[j / 2] >> (16 * (j % 2));
    return (int32_t)((w & 0xff) | ((w & 0xff00) << 8));
}

AVX2_FN static float finish_lanes(float sumf, __m256 sums)
{
    float s[8];
    _mm256_storeu_ps(s, sums);
    for (int l = 0; l < 8; l++) sumf += s[l];
    return sumf;
}

AVX2_FN static float vec_dot_q4_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q4_K *x = vw;
    const melt_block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        uint32_t sm[4];
        k4_scales(x[i].scales, sm);
        const int sumi = k_mins(y[i].bsums, sm);
        __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q = load_spread(x[i].qs + 32 * j);
            const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(q, m4),
                                                   load_spread(y[i].qs + 64 * j));
            const __m256i r = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                                   load_spread(y[i].qs + 64 * j + 32));
            lanes_add(&acc_lo, &acc_hi, p, r, _mm256_set1_epi32(k4_pair(sm, j)));
        }
        const __m256i lanes = lanes_total(acc_lo, acc_hi);
        const float d = h2f(x[i].d) * y[i].d;
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes)));
        const float dmin = h2f(x[i].dmin) * y[i].d;
        sumf -= dmin * (float)sumi;
    }
    return finish_lanes(sumf, sums);
}

AVX2_FN static float vec_dot_q5_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q5_K *x = vw;
    const melt_block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        uint32_t sm[4];
        k4_scales(x[i].scales, sm);
        const int sumi = k_mins(y[i].bsums, sm);
        const __m256i hb = load_spread(x[i].qh);
        __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i m_lo = _mm256_set1_epi8((char)(1 << (2 * j)));
            const __m256i m_hi = _mm256_set1_epi8((char)(1 << (2 * j + 1)));
            const __m256i h_lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, m_lo), m_lo), b4);
            const __m256i h_hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, m_hi), m_hi), b4);
            const __m256i q = load_spread(x[i].qs + 32 * j);
            const __m256i u_lo = _mm256_or_si256(_mm256_and_si256(q, m4), h_lo);
            const __m256i u_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h_hi);
            const __m256i p = _mm256_maddubs_epi16(u_lo, load_spread(y[i].qs + 64 * j));
            const __m256i r = _mm256_maddubs_epi16(u_hi, load_spread(y[i].qs + 64 * j + 32));
            lanes_add(&acc_lo, &acc_hi, p, r, _mm256_set1_epi32(k4_pair(sm, j)));
        }
        const __m256i lanes = lanes_total(acc_lo, acc_hi);
        const float d = h2f(x[i].d) * y[i].d;
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes)));
        const float dmin = h2f(x[i].dmin) * y[i].d;
        sumf -= dmin * (float)sumi;
    }
    return finish_lanes(sumf, sums);
}

/* q6_K: sub-blocks of 16, so each 128-bit half of a 32-element vector has
 * its own scale; u = w + 32 in 0..63, the 32 taken off through sum(q8). */
AVX2_FN static inline __m256i q6_lanes_int16(__m256i u, const int8_t *q8)
{
    const __m256i y = load_spread(q8);
    return _mm256_sub_epi16(_mm256_maddubs_epi16(u, y),
                            _mm256_maddubs_epi16(_mm256_set1_epi8(32), y));
}

/* The madd patterns of one 128-element half from its eight scales s[0..7]
 * (as int16 in both halves of s16): for g = 0 resp. 4, the low half holds
 * (s[g], s[g+2]) and the high half (s[g+1], s[g+3]) in every 32-bit lane. */
AVX2_FN static inline __m256i q6_scales(__m256i s16, int g)
{
    const __m256i m0 = _mm256_setr_epi8(0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5,
                                        2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7);
    const __m256i m4 = _mm256_setr_epi8(8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13,
                                        10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15);
    return _mm256_shuffle_epi8(s16, g ? m4 : m0);
}

AVX2_FN static float vec_dot_q6_K(int64_t n, const void *vw, const void *va)
{
    const melt_block_q6_K *x = vw;
    const melt_block_q8_K *y = va;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 sums = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / MELT_QK_K; i++) {
        __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i l0 = load_spread(ql), l1 = load_spread(ql + 32), hh = load_spread(qh);
            const __m256i u0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(hh, _mm256_set1_epi8(0x03)), 4));
            const __m256i u1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(hh, _mm256_set1_epi8(0x0C)), 2));
            const __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                               _mm256_and_si256(hh, _mm256_set1_epi8(0x30)));
            const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_srli_epi16(_mm256_and_si256(hh, _mm256_set1_epi8((char)0xC0)), 2));
            const __m256i p0 = q6_lanes_int16(u0, q8), p1 = q6_lanes_int16(u1, q8 + 32);
            const __m256i p2 = q6_lanes_int16(u2, q8 + 64), p3 = q6_lanes_int16(u3, q8 + 96);
            const __m256i s16 = _mm256_broadcastsi128_si256(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(x[i].scales + 8 * h))));
            lanes_add(&acc_lo, &acc_hi, p0, p1, q6_scales(s16, 0));
            lanes_add(&acc_lo, &acc_hi, p2, p3, q6_scales(s16, 4));
        }
        const __m256i lanes = lanes_total(acc_lo, acc_hi);
        const float d = h2f(x[i].d) * y[i].d;
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes)));
    }
    return finish_lanes(0, sums);
}

/* ---- plain types ---- */

/* melt_dot_f32_lanes with its 16 lanes as two registers (lanes 0..7 and
 * 8..15): the same fused multiply-adds and the same reduction tree. */
AVX2_FN static float tree16_ps(__m256 lo, __m256 hi)
{
    const __m256 t8 = _mm256_add_ps(lo, hi);                     /* l + 8 */
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));  /* + 4 */
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));                      /* + 2 */
    t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));                  /* + 1 */
    return _mm_cvtss_f32(t);
}

AVX2_FN static float vec_dot_f32(int64_t n, const void *vw, const void *va)
{
    const float *a = vw, *b = va;
    if (n % 16 == 0) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
            hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
        }
        return tree16_ps(lo, hi);
    }
    __m256 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
    const int64_t n64 = n - n % 64;
    for (int64_t i = 0; i < n64; i += 64)
        for (int r = 0; r < 8; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r), acc[r]);
    /* accumulator r of 16 lanes is acc[2r], acc[2r+1]: 0 += 2, 1 += 3, 0 += 1 */
    for (int h = 0; h < 2; h++) {
        acc[h] = _mm256_add_ps(acc[h], acc[4 + h]);
        acc[2 + h] = _mm256_add_ps(acc[2 + h], acc[6 + h]);
        acc[h] = _mm256_add_ps(acc[h], acc[2 + h]);
    }
    float s = tree16_ps(acc[0], acc[1]);
    for (int64_t i = n64; i < n; i++) s += a[i] * b[i];
    return s;
}

/* F16 x F16: products exact in F32 (as the scalar version), summed in
 * double in four lanes (two registers of 4, added at the end) instead of
 * index order, then the tail in order: not bit-identical (x86.h). */
AVX2_FN static float vec_dot_f16(int64_t n, const void *vw, const void *va)
{
    const uint16_t *x = vw, *y = va;
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                       _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    acc0 = _mm256_add_pd(acc0, acc1);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(acc0), _mm256_extractf128_pd(acc0, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
    for (; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

/* ---- the table and the family ---- */

static const struct {
    uint32_t type;
    melt_vec_dot_fn vec_dot;
} avx2_dots[] = {
    {MELT_TYPE_F32, vec_dot_f32},   {MELT_TYPE_F16, vec_dot_f16},   {MELT_TYPE_Q4_0, vec_dot_q4_0},
    {MELT_TYPE_Q4_1, vec_dot_q4_1}, {MELT_TYPE_Q5_0, vec_dot_q5_0}, {MELT_TYPE_Q5_1, vec_dot_q5_1},
    {MELT_TYPE_Q8_0, vec_dot_q8_0}, {MELT_TYPE_Q4_K, vec_dot_q4_K}, {MELT_TYPE_Q5_K, vec_dot_q5_K},
    {MELT_TYPE_Q6_K, vec_dot_q6_K},
};

melt_vec_dot_fn melt_vec_dot_avx2(uint32_t wtype)
{
    if (!melt_kernels_avx2_usable()) return NULL;
    for (size_t i = 0; i < sizeof avx2_dots / sizeof avx2_dots[0]; i++)
        if (avx2_dots[i].type == wtype) return avx2_dots[i].vec_dot;
    return NULL;
}

/* As the scalar matmul (activations converted by the scalar act_convert,
 * rows of this thread's slice, every token per row), with the AVX2
 * vec_dot; types without one go to the scalar matmul. (Two rows at a time,
 * sharing the activation loads, was tried: a few percent faster at most
 * widths, but 2-3x slower at some (q8_0 rows of 768 or 1536, q4_0 of
 * 1536), so one row at a time.) */
static void avx2_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                        float *buf, int ith, int nth)
{
    const melt_vec_dot_fn dot = melt_vec_dot_avx2(w->type);
    if (!dot) {
        melt_ops_scalar()->matmul(w, x, xq, n_tok, y, buf, ith, nth);
        return;
    }
    melt_ops_matmul_by_dot(w, dot, x, xq, n_tok, y, ith, nth);
}

static melt_ops avx2_ops;
static pthread_once_t avx2_once = PTHREAD_ONCE_INIT;

static void avx2_init(void)
{
    avx2_ops = *melt_ops_scalar();
    avx2_ops.name = "avx2";
    avx2_ops.matmul = avx2_matmul;
}

const melt_ops *melt_ops_avx2(void)
{
    if (!melt_kernels_avx2_usable()) return NULL;
    pthread_once(&avx2_once, avx2_init);
    return &avx2_ops;
}

#else /* not x86-64 with GCC or clang */

melt_vec_dot_fn melt_vec_dot_avx2(uint32_t wtype)
{
    return NULL;
}

const melt_ops *melt_ops_avx2(void)
{
    return NULL;
}

#endif
