/* The "avx512" kernel family: the avx2 family with q8_0 and q4_0 vec_dots
 * whose integer block sums use AVX-512 VNNI's vpdpbusd (on 256-bit
 * registers, AVX512VL), so the same numerics as the scalar family, bit for
 * bit (kernels/x86.h).
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds groups of four into
 * int32 without saturation, so with unsigned weight quants (q4_0: the
 * nibble; q8_0: w + 128, i.e. w ^ 0x80) and the offset taken off through a
 * second vpdpbusd of the offset with the activations, every block sum is
 * exact for every int8 input. As avx2.c, the file builds with the plain
 * flags; the functions carry a target attribute and run only after
 * melt_cpu_detect() reported the features. */
#include "engine/kernels/x86.h"

#include <string.h>

#include "melt/cpu.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

bool melt_kernels_avx512_usable(void)
{
    const melt_cpu_features *f = melt_cpu_detect();
    return melt_kernels_avx2_usable() && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <pthread.h>

#define VNNI_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

VNNI_FN static inline float h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

VNNI_FN static inline int hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Lane k = the total of v[k] (as avx2.c). */
VNNI_FN static inline __m256i sums_of_8(const __m256i v[8])
{
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* sum u[j] * y[j] - off * y[j] over 32 bytes, as 8 int32 partial sums. */
VNNI_FN static inline __m256i dot_u8_i8(__m256i u, __m256i y, int off)
{
    const __m256i z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, u, y),
                            _mm256_dpbusd_epi32(z, _mm256_set1_epi8((char)off), y));
}

VNNI_FN static inline __m256i isum_q8_0(const melt_block_q8_0 *x, const melt_block_q8_0 *y)
{
    const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs),
                                       _mm256_set1_epi8((char)0x80));
    return dot_u8_i8(u, _mm256_loadu_si256((const __m256i *)y->qs), 128);
}

VNNI_FN static inline __m256i isum_q4_0(const melt_block_q4_0 *x, const melt_block_q8_0 *y)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)x->qs);
    const __m256i u = _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
        _mm256_set1_epi8(0x0F));
    return dot_u8_i8(u, _mm256_loadu_si256((const __m256i *)y->qs), 8);
}

/* The block terms, as vec_dot.c writes them (one block, and 8 at once). */
VNNI_FN static inline float term_q8_0(const melt_block_q8_0 *x, const melt_block_q8_0 *y, int sumi)
{
    return (float)sumi * (h2f(x->d) * h2f(y->d));
}

VNNI_FN static inline float term_q4_0(const melt_block_q4_0 *x, const melt_block_q8_0 *y, int sumi)
{
    return (float)sumi * h2f(x->d) * h2f(y->d);
}

#define HALVES8(p, f)                                                                       \
    _mm256_cvtph_ps(_mm_setr_epi16((short)(p)[0].f, (short)(p)[1].f, (short)(p)[2].f,       \
                                   (short)(p)[3].f, (short)(p)[4].f, (short)(p)[5].f,       \
                                   (short)(p)[6].f, (short)(p)[7].f))

VNNI_FN static inline __m256 term8_q8_0(const melt_block_q8_0 *x, const melt_block_q8_0 *y, __m256 s)
{
    return _mm256_mul_ps(s, _mm256_mul_ps(HALVES8(x, d), HALVES8(y, d)));
}

VNNI_FN static inline __m256 term8_q4_0(const melt_block_q4_0 *x, const melt_block_q8_0 *y, __m256 s)
{
    return _mm256_mul_ps(_mm256_mul_ps(s, HALVES8(x, d)), HALVES8(y, d));
}

/* Block terms 8 at a time, added to the result one by one in block order
 * (the scalar loop's F32 order). */
#define DOT32(NAME, WBLOCK)                                                                \
    VNNI_FN static float vec_dot_##NAME(int64_t n, const void *vw, const void *va)         \
    {                                                                                      \
        const WBLOCK *x = vw;                                                              \
        const melt_block_q8_0 *y = va;                                                     \
        const int64_t nb = n / 32;                                                         \
        float sumf = 0;                                                                    \
        int64_t ib = 0;                                                                    \
        for (; ib + 8 <= nb; ib += 8) {                                                    \
            __m256i v[8];                                                                  \
            for (int k = 0; k < 8; k++) v[k] = isum_##NAME(x + ib + k, y + ib + k);        \
            float t[8];                                                                    \
            _mm256_storeu_ps(t, term8_##NAME(x + ib, y + ib, _mm256_cvtepi32_ps(sums_of_8(v)))); \
            for (int k = 0; k < 8; k++) sumf += t[k];                                      \
        }                                                                                  \
        for (; ib < nb; ib++)                                                              \
            sumf += term_##NAME(x + ib, y + ib, hsum_i32(isum_##NAME(x + ib, y + ib)));      \
        return sumf;                                                                       \
    }

DOT32(q8_0, melt_block_q8_0)
DOT32(q4_0, melt_block_q4_0)

melt_vec_dot_fn melt_vec_dot_avx512(uint32_t wtype)
{
    if (!melt_kernels_avx512_usable()) return NULL;
    if (wtype == MELT_TYPE_Q8_0) return vec_dot_q8_0;
    if (wtype == MELT_TYPE_Q4_0) return vec_dot_q4_0;
    return NULL;
}

/* q8_0 / q4_0 weights one row at a time (as avx2.c); others: avx2's matmul. */
static void avx512_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok,
                          float *y, float *buf, int ith, int nth)
{
    const melt_vec_dot_fn dot = melt_vec_dot_avx512(w->type);
    if (!dot) {
        melt_ops_avx2()->matmul(w, x, xq, n_tok, y, buf, ith, nth);
        return;
    }
    melt_ops_matmul_by_dot(w, dot, x, xq, n_tok, y, ith, nth);
}

static melt_ops avx512_ops;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void avx512_init(void)
{
    avx512_ops = *melt_ops_avx2();
    avx512_ops.name = "avx512";
    avx512_ops.matmul = avx512_matmul;
}

const melt_ops *melt_ops_avx512(void)
{
    if (!melt_kernels_avx512_usable()) return NULL;
    pthread_once(&avx512_once, avx512_init);
    return &avx512_ops;
}

#else /* not x86-64 with GCC or clang */

melt_vec_dot_fn melt_vec_dot_avx512(uint32_t wtype)
{
    return NULL;
}

const melt_ops *melt_ops_avx512(void)
{
    return NULL;
}

#endif
