/* The "avx512" kernel family: the avx2 family with AVX-512 matmuls,
 * softmax and attention, all with the scalar family's numerics bit for bit
 * (kernels/x86.h, vec_dot.h):
 *   q8_0, q4_0  16 weight rows in the 32-bit lanes of a zmm, times up to 16
 *               tokens: vpdpbusd against broadcast activation dwords gives
 *               each lane its exact integer block sum, so the F32 block
 *               terms are formed and added per lane in the scalar order,
 *               with no horizontal sums (tile_q32);
 *   q4_K, q6_K  the same layout for n_tok > 1 when the CPU has AVX512_VBMI
 *               (bytes grouped by lane with vpermb; vpmaddubsw + vpdpwssd),
 *               and for one token avx2's vec_dots on two rows per zmm;
 *   others      avx2's matmul;
 *   softmax, attention over an F16 cache: the scalar order, in lanes.
 * The q8_0 / q4_0 vec_dots (melt_vec_dot_avx512) use vpdpbusd on 256-bit
 * registers: unsigned weight quants (q4_0: the nibble; q8_0: w ^ 0x80) and
 * the offset taken off through the activations' sum, so every block sum is
 * exact for every int8 input. As avx2.c, the file builds with the plain
 * flags; the functions carry a target attribute and run only after
 * melt_cpu_detect() reported the features. */
#include "engine/kernels/x86.h"

#include <math.h>
#include <string.h>

#include "melt/cpu.h"
#include "melt/quant.h"
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

/* ---- q8_0 / q4_0 matmul: one weight row per 32-bit lane ----
 *
 * A tile is 16 weight rows (one per lane of a zmm) times up to 8 tokens.
 * For each block of 32, the rows' quants are transposed so that dword s of
 * lane r holds elements 4s..4s+3 of row r (unsigned: q4_0 nibbles, q8_0
 * w ^ 0x80); eight vpdpbusd against the token's activation dwords,
 * broadcast, then give every lane its row's exact integer block sum
 * (after taking off offset * sum(q8), prepared once per token and block).
 * The F32 term of the block is then formed and added to the lane's sum
 * with the scalar loop's operations in its order, so every output has the
 * scalar vec_dot's bits — for any tile position, token count or thread
 * split — while no horizontal sums are needed, the weights are unpacked
 * once for 8 tokens and each token's activations once for 16 rows. */

#define TILE_ROWS 16
#define TILE_TOKS 16
#define K_TILE_TOKS 64   /* k-quant tiles: their unpacking costs more, shared by more tokens */

/* Per token and block: offset * sum(q8) and the activation scale. */
typedef struct tok_block {
    int32_t ysum_off;
    float dy;
} tok_block;

/* The tok_blocks of n_tok activation rows of nb q8_0 blocks. */
VNNI_FN static void prepare_tok_blocks(const uint8_t *act, size_t stride, int n_tok, int64_t nb,
                                       int off, tok_block *tb)
{
    const __m256i ones = _mm256_set1_epi8(1);
    for (int t = 0; t < n_tok; t++) {
        const melt_block_q8_0 *yb = (const melt_block_q8_0 *)(act + (size_t)t * stride);
        for (int64_t ib = 0; ib < nb; ib++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)yb[ib].qs);
            tb[t * nb + ib].ysum_off = off * hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q));
            tb[t * nb + ib].dy = h2f(yb[ib].d);
        }
    }
}

/* Dword s (0..3) of the 16 bytes at p[r] + off, for 16 rows r, as lane r
 * of z[s]. */
VNNI_FN static inline void transpose16x4(const uint8_t *const p[TILE_ROWS], size_t off, __m512i z[4])
{
    __m512i q[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[k] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[k + 4] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[k + 8] + off)), 2);
        q[k] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[k + 12] + off)), 3);
    }
    /* chunk c of q[k] is row 4c + k: a 4x4 transpose within each chunk */
    const __m512i t0 = _mm512_unpacklo_epi32(q[0], q[1]), t1 = _mm512_unpackhi_epi32(q[0], q[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(q[2], q[3]), t3 = _mm512_unpackhi_epi32(q[2], q[3]);
    z[0] = _mm512_unpacklo_epi64(t0, t2);
    z[1] = _mm512_unpackhi_epi64(t0, t2);
    z[2] = _mm512_unpacklo_epi64(t1, t3);
    z[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* One tile: rows p[0..15] (bytes of block 0), NT tokens of activations at
 * act (stride apart) with their tok_blocks tb (nb apart); the sums of the
 * lanes in mask are stored to y (y_stride apart per token). */
VNNI_FN static inline __attribute__((always_inline)) void
tile_q32(bool q8, const uint8_t *const p[TILE_ROWS], __m512i gidx, int64_t nb, const uint8_t *act,
         size_t stride, const tok_block *tb, const int NT, float *y, int64_t y_stride, __mmask16 mask,
         const uint8_t *pf)
{
    const int bs = q8 ? (int)sizeof(melt_block_q8_0) : (int)sizeof(melt_block_q4_0);
    __m512 sumf[TILE_TOKS];
    for (int t = 0; t < NT; t++) sumf[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8((char)0x80);
    for (int64_t ib = 0; ib < nb; ib++) {
        const size_t boff = (size_t)ib * (size_t)bs;
        if (pf)   /* the next tile's rows (contiguous), a block's worth of them per block */
            for (int k = 0; k < TILE_ROWS * bs; k += 64)
                _mm_prefetch((const char *)pf + (size_t)ib * TILE_ROWS * (size_t)bs + k, _MM_HINT_T0);
        __m512i wq[8];
        if (q8) {
            transpose16x4(p, boff + 2, wq);
            transpose16x4(p, boff + 18, wq + 4);
#pragma GCC unroll 8
            for (int s = 0; s < 8; s++) wq[s] = _mm512_xor_si512(wq[s], flip);
        } else {
            transpose16x4(p, boff + 2, wq);
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                wq[s + 4] = _mm512_and_si512(_mm512_srli_epi32(wq[s], 4), m4);
                wq[s] = _mm512_and_si512(wq[s], m4);
            }
        }
        const __m512i dw = _mm512_i32gather_epi32(
            _mm512_add_epi32(gidx, _mm512_set1_epi32((int)boff)), (const void *)p[0], 1);
        const __m512 dx = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw));
        for (int t = 0; t < NT; t++) {
            const uint8_t *yq = act + (size_t)t * stride + (size_t)ib * sizeof(melt_block_q8_0) + 2;
            int32_t a[8];
            memcpy(a, yq, sizeof a);
            __m512i acc0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[0], _mm512_set1_epi32(a[0]));
            __m512i acc1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[1], _mm512_set1_epi32(a[1]));
#pragma GCC unroll 4
            for (int s = 2; s < 8; s += 2) {
                acc0 = _mm512_dpbusd_epi32(acc0, wq[s], _mm512_set1_epi32(a[s]));
                acc1 = _mm512_dpbusd_epi32(acc1, wq[s + 1], _mm512_set1_epi32(a[s + 1]));
            }
            const tok_block *k = &tb[(int64_t)t * nb + ib];
            const __m512 si = _mm512_cvtepi32_ps(
                _mm512_sub_epi32(_mm512_add_epi32(acc0, acc1), _mm512_set1_epi32(k->ysum_off)));
            const __m512 dy = _mm512_set1_ps(k->dy);
            /* q8_0: sumi * (dx * dy); q4_0: sumi * dx * dy (vec_dot.c) */
            const __m512 term = q8 ? _mm512_mul_ps(si, _mm512_mul_ps(dx, dy))
                                   : _mm512_mul_ps(_mm512_mul_ps(si, dx), dy);
            sumf[t] = _mm512_add_ps(sumf[t], term);
        }
    }
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(y + t * y_stride, mask, sumf[t]);
}

#define TILE_CASES(Q8)                                                                         \
    switch (nt) {                                                                              \
    case 1: tile_q32(Q8, p, gidx, nb, act, stride, tb, 1, y, y_stride, mask, pf); break;   \
    case 2: tile_q32(Q8, p, gidx, nb, act, stride, tb, 2, y, y_stride, mask, pf); break;   \
    case 3: tile_q32(Q8, p, gidx, nb, act, stride, tb, 3, y, y_stride, mask, pf); break;   \
    case 4: tile_q32(Q8, p, gidx, nb, act, stride, tb, 4, y, y_stride, mask, pf); break;   \
    case 5: tile_q32(Q8, p, gidx, nb, act, stride, tb, 5, y, y_stride, mask, pf); break;   \
    case 6: tile_q32(Q8, p, gidx, nb, act, stride, tb, 6, y, y_stride, mask, pf); break;   \
    case 7: tile_q32(Q8, p, gidx, nb, act, stride, tb, 7, y, y_stride, mask, pf); break;   \
    case 8: tile_q32(Q8, p, gidx, nb, act, stride, tb, 8, y, y_stride, mask, pf); break;   \
    case 9: tile_q32(Q8, p, gidx, nb, act, stride, tb, 9, y, y_stride, mask, pf); break;   \
    case 10: tile_q32(Q8, p, gidx, nb, act, stride, tb, 10, y, y_stride, mask, pf); break;   \
    case 11: tile_q32(Q8, p, gidx, nb, act, stride, tb, 11, y, y_stride, mask, pf); break;   \
    case 12: tile_q32(Q8, p, gidx, nb, act, stride, tb, 12, y, y_stride, mask, pf); break;   \
    case 13: tile_q32(Q8, p, gidx, nb, act, stride, tb, 13, y, y_stride, mask, pf); break;   \
    case 14: tile_q32(Q8, p, gidx, nb, act, stride, tb, 14, y, y_stride, mask, pf); break;   \
    case 15: tile_q32(Q8, p, gidx, nb, act, stride, tb, 15, y, y_stride, mask, pf); break;   \
    default: tile_q32(Q8, p, gidx, nb, act, stride, tb, 16, y, y_stride, mask, pf); break;  \
    }

VNNI_FN static void tile_q8_0(const uint8_t *const p[TILE_ROWS], __m512i gidx, int64_t nb,
                              const uint8_t *act, size_t stride, const tok_block *tb, int nt,
                              float *y, int64_t y_stride, __mmask16 mask, const uint8_t *pf)
{
    TILE_CASES(true)
}

VNNI_FN static void tile_q4_0(const uint8_t *const p[TILE_ROWS], __m512i gidx, int64_t nb,
                              const uint8_t *act, size_t stride, const tok_block *tb, int nt,
                              float *y, int64_t y_stride, __mmask16 mask, const uint8_t *pf)
{
    TILE_CASES(false)
}

/* This thread's rows of a q8_0 / q4_0 matmul. Tokens are taken in groups
 * whose tok_blocks fit buf (n_in floats: 16 tokens), then rows 16 at a
 * time, then tokens 8 at a time. */
VNNI_FN static void matmul_q32(const melt_weight *w, const void *xq, int n_tok, float *y,
                               float *buf, int ith, int nth)
{
    const bool q8 = w->type == MELT_TYPE_Q8_0;
    const int64_t nb = w->n_in / 32;
    const size_t stride = (size_t)nb * sizeof(melt_block_q8_0);
    tok_block *tb = (tok_block *)(void *)buf;
    const int group = (int)((size_t)w->n_in * sizeof(float) / ((size_t)nb * sizeof(tok_block)));
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int g0 = 0; g0 < n_tok; g0 += group) {
        const int ng = n_tok - g0 < group ? n_tok - g0 : group;
        const uint8_t *act = (const uint8_t *)xq + (size_t)g0 * stride;
        prepare_tok_blocks(act, stride, ng, nb, q8 ? 128 : 8, tb);
        for (int64_t r = r0; r < r1; r += TILE_ROWS) {
            const int nr = r1 - r < TILE_ROWS ? (int)(r1 - r) : TILE_ROWS;
            const uint8_t *p[TILE_ROWS];
            int32_t off[TILE_ROWS];
            for (int i = 0; i < TILE_ROWS; i++) {   /* lanes past the slice repeat its last row */
                p[i] = w->data + (uint64_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
                off[i] = (int32_t)(p[i] - p[0]);
            }
            const __m512i gidx = _mm512_loadu_si512(off);
            const __mmask16 mask = (__mmask16)((1u << nr) - 1);
            for (int t = 0; t < ng; t += TILE_TOKS) {
                const int nt = ng - t < TILE_TOKS ? ng - t : TILE_TOKS;
                float *yt = y + (int64_t)(g0 + t) * w->n_out + r;
                /* while the first tokens run, fetch the next tile's rows */
                const uint8_t *pf = t == 0 && r + TILE_ROWS < r1 ? p[0] + TILE_ROWS * w->row_bytes : NULL;
                if (q8)
                    tile_q8_0(p, gidx, nb, act + (size_t)t * stride, stride, tb + (int64_t)t * nb, nt, yt,
                              w->n_out, mask, pf);
                else
                    tile_q4_0(p, gidx, nb, act + (size_t)t * stride, stride, tb + (int64_t)t * nb, nt, yt,
                              w->n_out, mask, pf);
            }
        }
    }
}

/* ---- q4_K matmul: one weight row per 32-bit lane ----
 *
 * The scalar q4_K dot (vec_dot.c) keeps eight integer lanes per
 * super-block, lane l8 summing scale * w * q8 over the elements whose
 * index is l8 mod 8. In a sub-block of 32 those are the four elements
 * l8, l8 + 8, l8 + 16, l8 + 24: one dword once the bytes of each
 * 32-element chunk are permuted to that order (vpermb, AVX512_VBMI), for
 * the weights and the activations alike. With 16 rows in the lanes of a
 * zmm (rows transposed 16 x 16 dwords at a time), vpmaddubsw gives two
 * int16 pair sums per dword and vpdpwssd adds sc times both to lane l8 of
 * each row: exact integer lanes; the F32 steps then follow
 * the scalar order per row and token (sums[l8] += d * lane; sumf -=
 * dmin * mins; sumf += sums[0..7] at the end). */

#define VBMI_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

static bool vbmi_usable(void)
{
    return __builtin_cpu_supports("avx512vbmi");
}

/* Byte 32c + 4 l8 + m (c < 2, l8 < 8, m < 4) takes byte 32c + l8 + 8m. */
VBMI_FN static inline __m512i k_group_perm(void)
{
    uint8_t idx[64];
    for (int c = 0; c < 2; c++)
        for (int l8 = 0; l8 < 8; l8++)
            for (int m = 0; m < 4; m++) idx[32 * c + 4 * l8 + m] = (uint8_t)(32 * c + l8 + 8 * m);
    return _mm512_loadu_si512(idx);
}

/* r[k] (16 dwords each) transposed: c[k] lane j = r[j] dword k. */
VBMI_FN static inline __attribute__((always_inline)) void transpose16x16(const __m512i r[16], __m512i c[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4g + i], chunk q: rows 4g..4g+3 at dword 4q + i */
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x44);
        const __m512i w0 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x44);
        const __m512i v1 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xEE);
        const __m512i w1 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xEE);
        c[i] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        c[4 + i] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
        c[8 + i] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        c[12 + i] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
    }
}

/* The unpacked weights of one q4_K super-block of 16 rows. */
typedef struct k4_tile {
    __m512i lo[32], hi[32];   /* [chunk * 8 + l8]: sub-block 2 chunk, resp. 2 chunk + 1 */
    __m512i sc[8];            /* the sub-block scale in both int16 halves */
    __m512i mn[8];
    __m512 d, dmin;
} k4_tile;

VBMI_FN static void k4_tile_load(const uint8_t *const p[TILE_ROWS], size_t boff, __m512i perm, k4_tile *k)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int h = 0; h < 2; h++) {
        __m512i r[16], c[16];
        for (int i = 0; i < 16; i++)
            r[i] = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(p[i] + boff + 16 + 64 * h));
        transpose16x16(r, c);
        for (int i = 0; i < 16; i++) {
            k->lo[16 * h + i] = _mm512_and_si512(c[i], m4);
            k->hi[16 * h + i] = _mm512_and_si512(_mm512_srli_epi32(c[i], 4), m4);
        }
    }
    __m512i w[4];   /* d | dmin << 16, scales[0..3], [4..7], [8..11] */
    transpose16x4(p, boff, w);
    const __m512i m6 = _mm512_set1_epi8(0x3f), m2 = _mm512_set1_epi8(0x03);
    __m512i sm[4];   /* as avx2.c's k4_scales: sc 0..3, sc 4..7, mn 0..3, mn 4..7 */
    sm[0] = _mm512_and_si512(w[1], m6);
    sm[1] = _mm512_or_si512(_mm512_and_si512(w[3], m4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w[1], 6), m2), 4));
    sm[2] = _mm512_and_si512(w[2], m6);
    sm[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w[3], 4), m4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w[2], 6), m2), 4));
    const __m512i byte = _mm512_set1_epi32(0xff);
    for (int b = 0; b < 8; b++) {
        const __m512i sc = _mm512_and_si512(_mm512_srli_epi32(sm[b / 4], 8 * (b % 4)), byte);
        k->sc[b] = _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16));   /* (sc, sc) as int16 */
        k->mn[b] = _mm512_and_si512(_mm512_srli_epi32(sm[2 + b / 4], 8 * (b % 4)), byte);
    }
    k->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w[0]));
    k->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(w[0], 16)));
}

/* One token against a loaded super-block: acc[0..7] (sums) and acc[8]
 * (sumf) updated as vec_dot_q4_K does for each of the 16 rows. */
VBMI_FN static inline void k4_tile_token(const k4_tile *k, const melt_block_q8_K *yb, __m512i perm,
                                         __m512 acc[9])
{
    _Alignas(64) uint8_t ya[256];
    for (int c = 0; c < 4; c++)
        _mm512_store_si512(ya + 64 * c, _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(yb->qs + 64 * c)));
    _Alignas(32) int32_t bs2[8];   /* bsums[2 sb] + bsums[2 sb + 1] */
    _mm256_store_si256((__m256i *)bs2, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb->bsums),
                                                         _mm256_set1_epi16(1)));
    __m512i lane[8];
#pragma GCC unroll 8
    for (int l8 = 0; l8 < 8; l8++) lane[l8] = _mm512_setzero_si512();
    const __m512i z = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 8
        for (int l8 = 0; l8 < 8; l8++) {
            int32_t a_lo, a_hi;
            memcpy(&a_lo, ya + 64 * j + 4 * l8, 4);
            memcpy(&a_hi, ya + 64 * j + 32 + 4 * l8, 4);
            /* two int16 sums of two products each (at most 2 * 15 * 128), then
             * sc times both added to the lane: exact */
            const __m512i p_lo = _mm512_maddubs_epi16(k->lo[8 * j + l8], _mm512_set1_epi32(a_lo));
            const __m512i p_hi = _mm512_maddubs_epi16(k->hi[8 * j + l8], _mm512_set1_epi32(a_hi));
            lane[l8] = _mm512_dpwssd_epi32(lane[l8], p_lo, k->sc[2 * j]);
            lane[l8] = _mm512_dpwssd_epi32(lane[l8], p_hi, k->sc[2 * j + 1]);
        }
    __m512i sumi = z;
#pragma GCC unroll 8
    for (int b = 0; b < 8; b++) sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(k->mn[b], _mm512_set1_epi32(bs2[b])));
    const __m512 yd = _mm512_set1_ps(yb->d);
    const __m512 d = _mm512_mul_ps(k->d, yd);
#pragma GCC unroll 8
    for (int l8 = 0; l8 < 8; l8++) acc[l8] = _mm512_add_ps(acc[l8], _mm512_mul_ps(d, _mm512_cvtepi32_ps(lane[l8])));
    acc[8] = _mm512_sub_ps(acc[8], _mm512_mul_ps(_mm512_mul_ps(k->dmin, yd), _mm512_cvtepi32_ps(sumi)));
}

/* This thread's rows of a q4_K matmul: rows 16 at a time, tokens 8 at a
 * time, super-blocks in order. */
VBMI_FN static void matmul_q4_K(const melt_weight *w, const void *xq, int n_tok, float *y, int ith, int nth)
{
    const int64_t nb = w->n_in / MELT_QK_K;
    const size_t stride = (size_t)nb * sizeof(melt_block_q8_K);
    const __m512i perm = k_group_perm();
    k4_tile kt;
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r += TILE_ROWS) {
        const int nr = r1 - r < TILE_ROWS ? (int)(r1 - r) : TILE_ROWS;
        const uint8_t *p[TILE_ROWS];
        for (int i = 0; i < TILE_ROWS; i++) p[i] = w->data + (uint64_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        const uint8_t *pf = r + TILE_ROWS < r1 ? p[0] + TILE_ROWS * w->row_bytes : NULL;
        for (int t0 = 0; t0 < n_tok; t0 += K_TILE_TOKS) {
            const int nt = n_tok - t0 < K_TILE_TOKS ? n_tok - t0 : K_TILE_TOKS;
            __m512 acc[K_TILE_TOKS][9];
            for (int t = 0; t < nt; t++)
                for (int i = 0; i < 9; i++) acc[t][i] = _mm512_setzero_ps();
            for (int64_t i = 0; i < nb; i++) {
                const size_t boff = (size_t)i * sizeof(melt_block_q4_K);
                if (pf && t0 == 0)
                    for (size_t k = 0; k < TILE_ROWS * sizeof(melt_block_q4_K); k += 64)
                        _mm_prefetch((const char *)pf + (size_t)i * TILE_ROWS * sizeof(melt_block_q4_K) + k,
                                     _MM_HINT_T0);
                k4_tile_load(p, boff, perm, &kt);
                for (int t = 0; t < nt; t++) {
                    const melt_block_q8_K *yb =
                        (const melt_block_q8_K *)((const uint8_t *)xq + (size_t)(t0 + t) * stride) + i;
                    k4_tile_token(&kt, yb, perm, acc[t]);
                }
            }
            for (int t = 0; t < nt; t++) {
                __m512 s = acc[t][8];
                for (int l8 = 0; l8 < 8; l8++) s = _mm512_add_ps(s, acc[t][l8]);
                _mm512_mask_storeu_ps(y + (int64_t)(t0 + t) * w->n_out + r, mask, s);
            }
        }
    }
}

/* How many row pairs ahead the one-token q4_K / q6_K products prefetch. */
#ifndef K_PF_PAIRS
#define K_PF_PAIRS 2
#endif

/* ---- q4_K, one token: two rows per zmm ----
 *
 * avx2.c's vec_dot_q4_K (its integer lanes and F32 steps per row) on two
 * rows at once, one in each 256-bit half, with the activations' byte
 * spread done once per matmul instead of once per row. */

VNNI_FN static inline __m256i spread256(__m256i v)
{
    const __m256i sp = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    return _mm256_shuffle_epi8(v, sp);
}

VNNI_FN static inline __m512i spread512(__m512i v)
{
    const __m512i sp = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
    return _mm512_shuffle_epi8(v, sp);
}

/* The eight 6-bit scales (sc) and mins (mn) of a q4_K block as bytes. */
static inline void k4_scale_bytes(const uint8_t *q, uint64_t *sc, uint64_t *mn)
{
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t w[3];
    memcpy(w, q, sizeof w);
    *sc = (w[0] & m6) | (uint64_t)((w[2] & m4) | (((w[0] >> 6) & m2) << 4)) << 32;
    *mn = (w[1] & m6) | (uint64_t)(((w[2] >> 4) & m4) | (((w[1] >> 6) & m2) << 4)) << 32;
}

/* sum_j bsums[j] * mn[j / 2] (exact) for two rows' mins at once. */
VNNI_FN static inline void k4_mins2(const int16_t bsums[16], uint64_t mn_a, uint64_t mn_b, int *sa, int *sb)
{
    const __m256i m = _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)mn_b, (long long)mn_a));
    const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)bsums));
    const __m256i b1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(bsums + 8)));
    __m256i s = _mm256_add_epi32(_mm256_madd_epi16(b0, _mm256_unpacklo_epi16(m, m)),
                                 _mm256_madd_epi16(b1, _mm256_unpackhi_epi16(m, m)));
    s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4e));
    s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xb1));
    *sa = _mm256_cvtsi256_si32(s);
    *sb = _mm_cvtsi128_si32(_mm256_extracti128_si256(s, 1));
}

VNNI_FN static void dot2_q4_K(int64_t nb, const melt_block_q4_K *xa, const melt_block_q4_K *xb,
                              const melt_block_q8_K *y, const uint8_t *ys, float *out_a, float *out_b)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    /* per 64-bit half, int16 (sc[2j], sc[2j+1]) in each dword from bytes sc[0..7] */
    __m512i pat[4];
    for (int j = 0; j < 4; j++) pat[j] = _mm512_set1_epi32((int)(0x80008000u | (uint32_t)(2 * j) | (uint32_t)(2 * j + 1) << 16));
    const __m512i idx1 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i idx2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512 sums = _mm512_setzero_ps();
    float sumf_a = 0, sumf_b = 0;
    for (int64_t i = 0; i < nb; i++) {
        /* the next pair of rows (contiguous after these), two blocks' worth
         * per block: the hardware prefetcher loses track of two
         * interleaved streams */
        for (int o = 0; o < 2 * (int)sizeof *xa; o += 64)
            _mm_prefetch((const char *)(xa + 2 * K_PF_PAIRS * nb + 2 * i) + o, _MM_HINT_T0);
        uint64_t sc_a, mn_a, sc_b, mn_b;
        k4_scale_bytes(xa[i].scales, &sc_a, &mn_a);
        k4_scale_bytes(xb[i].scales, &sc_b, &mn_b);
        int sumi_a, sumi_b;
        k4_mins2(y[i].bsums, mn_a, mn_b, &sumi_a, &sumi_b);
        const __m512i scv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi64x((long long)sc_a)),
                                               _mm256_set1_epi64x((long long)sc_b), 1);
        __m512i acc_lo = _mm512_setzero_si512(), acc_hi = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i q = spread512(_mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xa[i].qs + 32 * j))),
                _mm256_loadu_si256((const __m256i *)(xb[i].qs + 32 * j)), 1));
            const __m512i ylo = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(ys + 256 * i + 64 * j)));
            const __m512i yhi = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(ys + 256 * i + 64 * j + 32)));
            const __m512i pl = _mm512_maddubs_epi16(_mm512_and_si512(q, m4), ylo);
            const __m512i ph = _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), yhi);
            const __m512i sc = _mm512_shuffle_epi8(scv, pat[j]);
            acc_lo = _mm512_dpwssd_epi32(acc_lo, _mm512_unpacklo_epi16(pl, ph), sc);
            acc_hi = _mm512_dpwssd_epi32(acc_hi, _mm512_unpackhi_epi16(pl, ph), sc);
        }
        const __m512i lanes = _mm512_add_epi32(_mm512_permutex2var_epi64(acc_lo, idx1, acc_hi),
                                               _mm512_permutex2var_epi64(acc_lo, idx2, acc_hi));
        const float da = h2f(xa[i].d) * y[i].d, db = h2f(xb[i].d) * y[i].d;
        const __m512 d = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(da)),
                                                              _mm256_castps_pd(_mm256_set1_ps(db)), 1));
        sums = _mm512_add_ps(sums, _mm512_mul_ps(d, _mm512_cvtepi32_ps(lanes)));
        const float dmin_a = h2f(xa[i].dmin) * y[i].d, dmin_b = h2f(xb[i].dmin) * y[i].d;
        sumf_a -= dmin_a * (float)sumi_a;
        sumf_b -= dmin_b * (float)sumi_b;
    }
    float s[16];
    _mm512_storeu_ps(s, sums);
    for (int l = 0; l < 8; l++) sumf_a += s[l];
    for (int l = 0; l < 8; l++) sumf_b += s[8 + l];
    *out_a = sumf_a;
    *out_b = sumf_b;
}

/* This thread's rows of a q4_K matrix times one token; buf (n_in floats)
 * holds the spread activations. */
VNNI_FN static void matvec_q4_K(const melt_weight *w, const void *xq, float *y, float *buf, int ith, int nth)
{
    const int64_t nb = w->n_in / MELT_QK_K;
    const melt_block_q8_K *yb = xq;
    uint8_t *ys = (uint8_t *)buf;
    for (int64_t i = 0; i < nb; i++)
        for (int c = 0; c < 8; c++)
            _mm256_storeu_si256((__m256i *)(ys + 256 * i + 32 * c),
                                spread256(_mm256_loadu_si256((const __m256i *)(yb[i].qs + 32 * c))));
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2)
        dot2_q4_K(nb, (const melt_block_q4_K *)(w->data + (uint64_t)r * w->row_bytes),
                  (const melt_block_q4_K *)(w->data + (uint64_t)(r + 1) * w->row_bytes), yb, ys, &y[r], &y[r + 1]);
    if (r < r1) y[r] = melt_vec_dot_avx2(MELT_TYPE_Q4_K)(w->n_in, w->data + (uint64_t)r * w->row_bytes, xq);
}

/* ---- q6_K, one token: two rows per zmm (avx2.c's vec_dot_q6_K) ---- */

VNNI_FN static inline __m512i load2_spread(const uint8_t *a, const uint8_t *b)
{
    return spread512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                                        _mm256_loadu_si256((const __m256i *)b), 1));
}

/* ys: the spread activation quants; yo: 32 * (pair sums of ys) as int16,
 * what the offset of 32 takes off. */
VNNI_FN static void dot2_q6_K(int64_t nb, const melt_block_q6_K *xa, const melt_block_q6_K *xb,
                              const melt_block_q8_K *y, const uint8_t *ys, const uint8_t *yo, float *out_a,
                              float *out_b)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m0 = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5));
    const __m512i m1 = _mm512_broadcast_i32x4(_mm_setr_epi8(2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7));
    const __m512i n0 = _mm512_broadcast_i32x4(_mm_setr_epi8(8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13));
    const __m512i n1 = _mm512_broadcast_i32x4(_mm_setr_epi8(10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15));
    /* q6_scales' patterns: low 128 bits of each row's half m0 / n0, high m1 / n1 */
    const __m512i g0 = _mm512_mask_blend_epi64(0xCC, m0, m1), g4 = _mm512_mask_blend_epi64(0xCC, n0, n1);
    const __m512i idx1 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i idx2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512 sums = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* the next pair of rows (contiguous after these), two blocks' worth
         * per block: the hardware prefetcher loses track of two
         * interleaved streams */
        for (int o = 0; o < 2 * (int)sizeof *xa; o += 64)
            _mm_prefetch((const char *)(xa + 2 * K_PF_PAIRS * nb + 2 * i) + o, _MM_HINT_T0);
        __m512i acc_lo = _mm512_setzero_si512(), acc_hi = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *qa = xa[i].ql + 64 * h, *qb = xb[i].ql + 64 * h;
            const __m512i l0 = load2_spread(qa, qb), l1 = load2_spread(qa + 32, qb + 32);
            const __m512i hh = load2_spread(xa[i].qh + 32 * h, xb[i].qh + 32 * h);
            const __m512i u0 = _mm512_or_si512(_mm512_and_si512(l0, m4),
                                               _mm512_slli_epi16(_mm512_and_si512(hh, _mm512_set1_epi8(0x03)), 4));
            const __m512i u1 = _mm512_or_si512(_mm512_and_si512(l1, m4),
                                               _mm512_slli_epi16(_mm512_and_si512(hh, _mm512_set1_epi8(0x0C)), 2));
            const __m512i u2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), m4),
                                               _mm512_and_si512(hh, _mm512_set1_epi8(0x30)));
            const __m512i u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m4),
                                               _mm512_srli_epi16(_mm512_and_si512(hh, _mm512_set1_epi8((char)0xC0)), 2));
            const size_t o = (size_t)(256 * i + 128 * h);
#define Q6P(u, k)                                                                                    \
    _mm512_sub_epi16(_mm512_maddubs_epi16(u, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(ys + o + 32 * (k))))), \
                     _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(yo + o + 32 * (k)))))
            const __m512i p0 = Q6P(u0, 0), p1 = Q6P(u1, 1), p2 = Q6P(u2, 2), p3 = Q6P(u3, 3);
#undef Q6P
            const __m512i s16 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_broadcastsi128_si256(
                    _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(xa[i].scales + 8 * h))))),
                _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(xb[i].scales + 8 * h)))),
                1);
            const __m512i sa = _mm512_shuffle_epi8(s16, g0), sb = _mm512_shuffle_epi8(s16, g4);
            acc_lo = _mm512_dpwssd_epi32(acc_lo, _mm512_unpacklo_epi16(p0, p1), sa);
            acc_hi = _mm512_dpwssd_epi32(acc_hi, _mm512_unpackhi_epi16(p0, p1), sa);
            acc_lo = _mm512_dpwssd_epi32(acc_lo, _mm512_unpacklo_epi16(p2, p3), sb);
            acc_hi = _mm512_dpwssd_epi32(acc_hi, _mm512_unpackhi_epi16(p2, p3), sb);
        }
        const __m512i lanes = _mm512_add_epi32(_mm512_permutex2var_epi64(acc_lo, idx1, acc_hi),
                                               _mm512_permutex2var_epi64(acc_lo, idx2, acc_hi));
        const float da = h2f(xa[i].d) * y[i].d, db = h2f(xb[i].d) * y[i].d;
        const __m512 d = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(da)),
                                                              _mm256_castps_pd(_mm256_set1_ps(db)), 1));
        sums = _mm512_add_ps(sums, _mm512_mul_ps(d, _mm512_cvtepi32_ps(lanes)));
    }
    float s[16], sa = 0, sb = 0;
    _mm512_storeu_ps(s, sums);
    for (int l = 0; l < 8; l++) sa += s[l];
    for (int l = 0; l < 8; l++) sb += s[8 + l];
    *out_a = sa;
    *out_b = sb;
}

/* This thread's rows of a q6_K matrix times one token; buf (n_in floats)
 * holds the spread activations and their offset terms. */
VNNI_FN static void matvec_q6_K(const melt_weight *w, const void *xq, float *y, float *buf, int ith, int nth)
{
    const int64_t nb = w->n_in / MELT_QK_K;
    const melt_block_q8_K *yb = xq;
    uint8_t *ys = (uint8_t *)buf, *yo = ys + w->n_in;
    for (int64_t i = 0; i < nb; i++)
        for (int c = 0; c < 8; c++) {
            const __m256i v = spread256(_mm256_loadu_si256((const __m256i *)(yb[i].qs + 32 * c)));
            _mm256_storeu_si256((__m256i *)(ys + 256 * i + 32 * c), v);
            _mm256_storeu_si256((__m256i *)(yo + 256 * i + 32 * c), _mm256_maddubs_epi16(_mm256_set1_epi8(32), v));
        }
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2)
        dot2_q6_K(nb, (const melt_block_q6_K *)(w->data + (uint64_t)r * w->row_bytes),
                  (const melt_block_q6_K *)(w->data + (uint64_t)(r + 1) * w->row_bytes), yb, ys, yo, &y[r],
                  &y[r + 1]);
    if (r < r1) y[r] = melt_vec_dot_avx2(MELT_TYPE_Q6_K)(w->n_in, w->data + (uint64_t)r * w->row_bytes, xq);
}

/* ---- q6_K matmul: as q4_K, sub-blocks of 16 ----
 *
 * In a quarter of 32 elements (one 4-bit field of ql and a 2-bit field of
 * qh per element) the dword of group l8 holds l8, l8 + 8 (sub-block s) and
 * l8 + 16, l8 + 24 (sub-block s + 1): vpmaddubsw gives their two int16
 * sums of u * q8 (u = w + 32 in 0..63), minus 32 * (the two q8) taken off
 * as int16 (|result| <= 24320), and vpdpwssd adds (sc[s], sc[s+1]) times
 * them to the lane: exact. */

typedef struct k6_tile {
    __m512i u[64];    /* [quarter * 8 + l8], quarter = 4 * half + field */
    __m512i sc[8];    /* (sc[2i], sc[2i+1]) as int16 */
    __m512 d;
} k6_tile;

VBMI_FN static void k6_tile_load(const uint8_t *const p[TILE_ROWS], size_t boff, __m512i perm, k6_tile *k)
{
    __m512i ql[32], qh[16];
    for (int h = 0; h < 2; h++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++)
            r[i] = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(p[i] + boff + 64 * h));
        transpose16x16(r, ql + 16 * h);
    }
    {
        __m512i r[16];
        for (int i = 0; i < 16; i++)
            r[i] = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(p[i] + boff + 128));
        transpose16x16(r, qh);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03), m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; h++)
        for (int l8 = 0; l8 < 8; l8++) {
            const __m512i a = ql[16 * h + l8], b = ql[16 * h + 8 + l8], c = qh[8 * h + l8];
            __m512i *u = k->u + 32 * h + l8;
            u[0] = _mm512_or_si512(_mm512_and_si512(a, m4), _mm512_slli_epi32(_mm512_and_si512(c, m2), 4));
            u[8] = _mm512_or_si512(_mm512_and_si512(b, m4),
                                   _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 2), m2), 4));
            u[16] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a, 4), m4), _mm512_and_si512(c, m30));
            u[24] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(b, 4), m4),
                                    _mm512_and_si512(_mm512_srli_epi32(c, 2), m30));
        }
    __m512i s4[4], t4[4];
    transpose16x4(p, boff + 192, s4);   /* scales 4i..4i+3 */
    transpose16x4(p, boff + 194, t4);   /* t4[3]: scales 14, 15, d */
    for (int i = 0; i < 4; i++) {
        const __m512i lo = _mm512_srai_epi16(_mm512_slli_epi16(s4[i], 8), 8);   /* words: sc[4i], sc[4i+2] */
        const __m512i hi = _mm512_srai_epi16(s4[i], 8);                         /* sc[4i+1], sc[4i+3] */
        k->sc[2 * i] = _mm512_mask_blend_epi16(0xAAAAAAAA, lo, _mm512_slli_epi32(hi, 16));
        k->sc[2 * i + 1] = _mm512_mask_blend_epi16(0xAAAAAAAA, _mm512_srli_epi32(lo, 16), hi);
    }
    k->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(t4[3], 16)));
}

VBMI_FN static inline void k6_tile_token(const k6_tile *k, const melt_block_q8_K *yb, __m512i perm,
                                         __m512 acc[8])
{
    _Alignas(64) uint8_t ya[256];
    _Alignas(64) int16_t corr[128];   /* 32 * (q8[l8 + 16 s] + q8[l8 + 8 + 16 s]), in ya's order */
    const __m512i c32 = _mm512_set1_epi8(32);
    for (int c = 0; c < 4; c++) {
        const __m512i v = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(yb->qs + 64 * c));
        _mm512_store_si512(ya + 64 * c, v);
        _mm512_store_si512(corr + 32 * c, _mm512_maddubs_epi16(c32, v));
    }
    __m512i lane[8];
#pragma GCC unroll 8
    for (int l8 = 0; l8 < 8; l8++) lane[l8] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int qq = 0; qq < 8; qq++)
#pragma GCC unroll 8
        for (int l8 = 0; l8 < 8; l8++) {
            int32_t a, cr;
            memcpy(&a, ya + 32 * qq + 4 * l8, 4);
            memcpy(&cr, corr + 16 * qq + 2 * l8, 4);
            const __m512i pr = _mm512_sub_epi16(_mm512_maddubs_epi16(k->u[8 * qq + l8], _mm512_set1_epi32(a)),
                                                _mm512_set1_epi32(cr));
            lane[l8] = _mm512_dpwssd_epi32(lane[l8], pr, k->sc[qq]);
        }
    const __m512 d = _mm512_mul_ps(k->d, _mm512_set1_ps(yb->d));
#pragma GCC unroll 8
    for (int l8 = 0; l8 < 8; l8++) acc[l8] = _mm512_add_ps(acc[l8], _mm512_mul_ps(d, _mm512_cvtepi32_ps(lane[l8])));
}

VBMI_FN static void matmul_q6_K(const melt_weight *w, const void *xq, int n_tok, float *y, int ith, int nth)
{
    const int64_t nb = w->n_in / MELT_QK_K;
    const size_t stride = (size_t)nb * sizeof(melt_block_q8_K);
    const __m512i perm = k_group_perm();
    k6_tile kt;
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r += TILE_ROWS) {
        const int nr = r1 - r < TILE_ROWS ? (int)(r1 - r) : TILE_ROWS;
        const uint8_t *p[TILE_ROWS];
        for (int i = 0; i < TILE_ROWS; i++) p[i] = w->data + (uint64_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        const uint8_t *pf = r + TILE_ROWS < r1 ? p[0] + TILE_ROWS * w->row_bytes : NULL;
        for (int t0 = 0; t0 < n_tok; t0 += K_TILE_TOKS) {
            const int nt = n_tok - t0 < K_TILE_TOKS ? n_tok - t0 : K_TILE_TOKS;
            __m512 acc[K_TILE_TOKS][8];
            for (int t = 0; t < nt; t++)
                for (int i = 0; i < 8; i++) acc[t][i] = _mm512_setzero_ps();
            for (int64_t i = 0; i < nb; i++) {
                const size_t boff = (size_t)i * sizeof(melt_block_q6_K);
                if (pf && t0 == 0)
                    for (size_t k = 0; k < TILE_ROWS * sizeof(melt_block_q6_K); k += 64)
                        _mm_prefetch((const char *)pf + (size_t)i * TILE_ROWS * sizeof(melt_block_q6_K) + k,
                                     _MM_HINT_T0);
                k6_tile_load(p, boff, perm, &kt);
                for (int t = 0; t < nt; t++) {
                    const melt_block_q8_K *yb =
                        (const melt_block_q8_K *)((const uint8_t *)xq + (size_t)(t0 + t) * stride) + i;
                    k6_tile_token(&kt, yb, perm, acc[t]);
                }
            }
            for (int t = 0; t < nt; t++) {
                __m512 s = _mm512_setzero_ps();   /* finish_lanes(0, sums) */
                for (int l8 = 0; l8 < 8; l8++) s = _mm512_add_ps(s, acc[t][l8]);
                _mm512_mask_storeu_ps(y + (int64_t)(t0 + t) * w->n_out + r, mask, s);
            }
        }
    }
}

/* q8_0 / q4_0 (and q4_K, q6_K with VBMI) weights by tiles (above); others:
 * avx2's matmul. */
static void avx512_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok,
                          float *y, float *buf, int ith, int nth)
{
    if (w->type == MELT_TYPE_Q8_0 || w->type == MELT_TYPE_Q4_0) {
        matmul_q32(w, xq, n_tok, y, buf, ith, nth);
        return;
    }
    if (n_tok == 1 && w->type == MELT_TYPE_Q4_K) {
        matvec_q4_K(w, xq, y, buf, ith, nth);
        return;
    }
    if (n_tok == 1 && w->type == MELT_TYPE_Q6_K) {
        matvec_q6_K(w, xq, y, buf, ith, nth);
        return;
    }
    /* one token: the tiles' unpacking is not shared, the vec_dot is faster */
    if (n_tok >= 2 && w->type == MELT_TYPE_Q4_K && vbmi_usable()) {
        matmul_q4_K(w, xq, n_tok, y, ith, nth);
        return;
    }
    if (n_tok >= 2 && w->type == MELT_TYPE_Q6_K && vbmi_usable()) {
        matmul_q6_K(w, xq, n_tok, y, ith, nth);
        return;
    }
    melt_ops_avx2()->matmul(w, x, xq, n_tok, y, buf, ith, nth);
}

/* ---- attention over an F16 cache ----
 *
 * The scalar family's numerics (kernels/scalar.c, scalar_attend) with the
 * work spread over lanes without changing any value's order: each score
 * in the scalar's 16 lanes (dimension d in lane d % 16, in order) with the
 * lanes of 16 positions tree-added together by shuffles, and the weighted
 * sum of V for 16 dimensions at once with the scalar's 16 lanes (position
 * j in lane j % 16) as 16 registers, added as the same halving tree. The
 * products (F16 times F16-rounded values) are exact in F32, so a fused
 * multiply-add rounds as the scalar's multiply then add. */

/* x rounded to F16 and back (vcvtps2ph rounds to nearest even, as
 * melt_fp32_to_fp16, and quiets NaNs the same way). */
VNNI_FN static inline __m512 round_f16x16(__m512 x)
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* The 16 lanes of v added as a halving tree: l + 8, then + 4, + 2, + 1. */
VNNI_FN static inline float tree16_ps(__m512 v)
{
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xEE));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x01));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x0E));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x01));
    return _mm512_cvtss_f32(v);
}

/* 16 registers each tree-added (as tree16_ps) into one lane of the result:
 * level w pairs registers so that every shuffle moves whole halves, and
 * each lane's sum has the same pairs as tree16_ps; the result's lanes come
 * out in the order fixed by the pairing and are put back by one permute. */
VNNI_FN static inline __m512 tree16_x16(__m512 a[16])
{
    __m512 t[8], u[4], r[2];
    for (int p = 0; p < 8; p++)   /* lanes l + (l + 8) */
        t[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[p], a[p + 8], 0x44), _mm512_shuffle_f32x4(a[p], a[p + 8], 0xEE));
    for (int p = 0; p < 4; p++)   /* + 4 */
        u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(t[p], t[p + 4], 0x88), _mm512_shuffle_f32x4(t[p], t[p + 4], 0xDD));
    for (int p = 0; p < 2; p++)   /* + 2 */
        r[p] = _mm512_add_ps(_mm512_shuffle_ps(u[p], u[p + 2], 0x44), _mm512_shuffle_ps(u[p], u[p + 2], 0xEE));
    /* + 1 */
    const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], 0x88), _mm512_shuffle_ps(r[0], r[1], 0xDD));
    /* lane of position i */
    const __m512i idx = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(idx, f);
}

/* att[j] = tree16(lanes of q . k_j) * scale for n_kv positions, head_dim a
 * multiple of 16. */
VNNI_FN static void attn_scores(float *att, const float *qr, const uint16_t *k, size_t stride,
                                int n_kv, int head_dim, float scale)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    int j = 0;
    if (head_dim == 64) {   /* the common size: q in four registers */
        const __m512 q0 = _mm512_loadu_ps(qr), q1 = _mm512_loadu_ps(qr + 16);
        const __m512 q2 = _mm512_loadu_ps(qr + 32), q3 = _mm512_loadu_ps(qr + 48);
        for (; j + 16 <= n_kv; j += 16) {
            __m512 acc[16];
#pragma GCC unroll 16
            for (int p = 0; p < 16; p++) {
                const __m256i *kj = (const __m256i *)(k + (size_t)(j + p) * stride);
                /* from +0, as the scalar's lanes: a -0 product gives +0 */
                __m512 s = _mm512_fmadd_ps(q0, _mm512_cvtph_ps(_mm256_loadu_si256(kj)), _mm512_setzero_ps());
                s = _mm512_fmadd_ps(q1, _mm512_cvtph_ps(_mm256_loadu_si256(kj + 1)), s);
                s = _mm512_fmadd_ps(q2, _mm512_cvtph_ps(_mm256_loadu_si256(kj + 2)), s);
                acc[p] = _mm512_fmadd_ps(q3, _mm512_cvtph_ps(_mm256_loadu_si256(kj + 3)), s);
            }
            _mm512_storeu_ps(att + j, _mm512_mul_ps(tree16_x16(acc), vscale));
        }
    } else {
        for (; j + 16 <= n_kv; j += 16) {
            __m512 acc[16];
            for (int p = 0; p < 16; p++) {
                const uint16_t *kj = k + (size_t)(j + p) * stride;
                __m512 s = _mm512_setzero_ps();
                for (int d = 0; d < head_dim; d += 16)
                    s = _mm512_fmadd_ps(_mm512_loadu_ps(qr + d),
                                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kj + d))), s);
                acc[p] = s;
            }
            _mm512_storeu_ps(att + j, _mm512_mul_ps(tree16_x16(acc), vscale));
        }
    }
    for (; j < n_kv; j++) {
        const uint16_t *kj = k + (size_t)j * stride;
        __m512 s = _mm512_setzero_ps();
        for (int d = 0; d < head_dim; d += 16)
            s = _mm512_fmadd_ps(_mm512_loadu_ps(qr + d), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kj + d))),
                                s);
        att[j] = tree16_ps(s) * scale;
    }
}

/* out (head_dim floats, a multiple of 16, at most ATTN_V_MAX_DIM) = the
 * 16-lane sums of att[j] * v_j[d], tree-added. Positions go by blocks
 * that stay in L1 while every group of 16 dimensions takes its turn with
 * its 16 lane registers (kept in acc between blocks). */
#define ATTN_V_MAX_DIM 256
#define ATTN_V_BLOCK 64
VNNI_FN static void attn_values(float *out, const float *att, const uint16_t *v, size_t stride, int n_kv,
                                int head_dim)
{
    __m512 acc[ATTN_V_MAX_DIM / 16][16];
    const int n_c = head_dim / 16, n_full = n_kv - n_kv % 16;
    for (int c = 0; c < n_c; c++)
        for (int l = 0; l < 16; l++) acc[c][l] = _mm512_setzero_ps();
    for (int j0 = 0; j0 < n_full; j0 += ATTN_V_BLOCK) {
        const int j1 = j0 + ATTN_V_BLOCK < n_full ? j0 + ATTN_V_BLOCK : n_full;
        for (int c = 0; c < n_c; c++) {
            __m512 a[16];
            for (int l = 0; l < 16; l++) a[l] = acc[c][l];
            const uint16_t *vc = v + 16 * c;
            for (int j = j0; j < j1; j += 16)
#pragma GCC unroll 16
                for (int l = 0; l < 16; l++) {
                    const __m512 vv =
                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vc + (size_t)(j + l) * stride)));
                    a[l] = _mm512_fmadd_ps(_mm512_set1_ps(att[j + l]), vv, a[l]);
                }
            for (int l = 0; l < 16; l++) acc[c][l] = a[l];
        }
    }
    for (int c = 0; c < n_c; c++) {
        __m512 *a = acc[c];
        for (int l = 0; n_full + l < n_kv; l++) {
            const int j = n_full + l;
            const __m512 vv =
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * c + (size_t)j * stride)));
            a[l] = _mm512_fmadd_ps(_mm512_set1_ps(att[j]), vv, a[l]);
        }
        for (int w = 8; w >= 1; w /= 2)
            for (int l = 0; l < w; l++) a[l] = _mm512_add_ps(a[l], a[l + w]);
        _mm512_storeu_ps(out + 16 * c, a[0]);
    }
}

/* melt_kernel_expf (kernels/scalar.c) on 16 lanes: the same fused
 * multiply-adds, ldexpf as vscalefps (one rounding, subnormals included),
 * and the same special cases. */
VNNI_FN static inline __m512 expf16(__m512 x)
{
    const __m512 shift = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 nn = _mm512_sub_ps(_mm512_setzero_ps(), n);
    const __m512 b = _mm512_fmadd_ps(nn, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                     _mm512_fmadd_ps(nn, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    __m512 r = _mm512_scalef_ps(j, n);
    /* |n| > 192: inf or 0; NaN x: x (checked in this order, as the scalar) */
    const __m512 absn = _mm512_abs_ps(n);
    const __mmask16 big = _mm512_cmp_ps_mask(absn, _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __mmask16 pos = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_GT_OQ);
    r = _mm512_mask_mov_ps(r, big, _mm512_mask_mov_ps(_mm512_setzero_ps(), pos, _mm512_set1_ps(INFINITY)));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(r, nan & (__mmask16)~big, x);
}

/* The scalar family's softmax (kernels/scalar.c): exp 16 at a time, each
 * group summed as a halving tree in F32, the groups in double, then the
 * scale (float)(1 / sum). */
VNNI_FN static void avx512_softmax(float *x, int n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    float max = _mm512_reduce_max_ps(vmax);
    for (; i < n; i++)
        if (x[i] > max) max = x[i];
    const __m512 vm = _mm512_set1_ps(max);
    double sum = 0;
    for (i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_mov_ps(m, expf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, v);
        /* tree: l += l + 8, then + 4, + 2, + 1 */
        v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xEE));
        v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x01));
        v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x0E));
        v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x01));
        sum += (double)_mm512_cvtss_f32(v);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    const float invf = (float)(1.0 / sum);
    for (; i < n; i++) x[i] *= invf;
}

VNNI_FN static void avx512_attend(float *out, const float *q, const melt_kv_view *kv, int n_kv,
                                  int head_dim, float scale, float *att)
{
    if (!kv->f16 || head_dim % 16 != 0 || head_dim > ATTN_V_MAX_DIM) {
        melt_ops_scalar()->attend(out, q, kv, n_kv, head_dim, scale, att);
        return;
    }
    float *qr = att + n_kv;
    for (int d = 0; d < head_dim; d += 16) _mm512_storeu_ps(qr + d, round_f16x16(_mm512_loadu_ps(q + d)));
    attn_scores(att, qr, kv->k, kv->stride, n_kv, head_dim, scale);
    avx512_softmax(att, n_kv);
    for (int j = 0; j < n_kv; j += 16) {
        const __mmask16 m = n_kv - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_kv - j)) - 1);
        _mm512_mask_storeu_ps(att + j, m, round_f16x16(_mm512_maskz_loadu_ps(m, att + j)));
    }
    attn_values(out, att, kv->v, kv->stride, n_kv, head_dim);
}

/* n_group query heads sharing one KV head (ops.h attend_group): each
 * head's scores and softmax as avx512_attend, then the V sums of all the
 * heads together, so that each V row is converted from F16 once for the
 * group. The sums keep the scalar's lanes (position j in lane j % 16, in
 * order): lane l's register for (head, 16 dimensions) walks positions l,
 * l + 16, ..., and the 16 lane registers are then tree-added as above. */
#define GROUP_MAX 8
#define GROUP_MAX_DIM 128
VNNI_FN static void group_values(float *out, const float *att, int n_group, const uint16_t *v, size_t stride,
                                 int n_kv, int head_dim)
{
    _Static_assert(GROUP_MAX == 8, "the loop below holds 2 x 8 accumulators");
    __m512 lanes[GROUP_MAX][GROUP_MAX_DIM / 16][16];
    const int n_c = head_dim / 16;
    for (int l = 0; l < 16; l++)
        for (int c = 0; c < n_c; c += 2) {
            __m512 a0[GROUP_MAX], a1[GROUP_MAX];
            for (int g = 0; g < GROUP_MAX; g++) a0[g] = a1[g] = _mm512_setzero_ps();
            for (int j = l; j < n_kv; j += 16) {
                const uint16_t *vj = v + (size_t)j * stride + 16 * c;
                const __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)vj));
                const __m512 v1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vj + 16)));
#pragma GCC unroll 8
                for (int g = 0; g < GROUP_MAX; g++) {
                    if (g < n_group) {
                        const __m512 w = _mm512_set1_ps(att[(size_t)g * n_kv + j]);
                        a0[g] = _mm512_fmadd_ps(w, v0, a0[g]);
                        a1[g] = _mm512_fmadd_ps(w, v1, a1[g]);
                    }
                }
            }
            for (int g = 0; g < n_group; g++) {
                lanes[g][c][l] = a0[g];
                lanes[g][c + 1][l] = a1[g];
            }
        }
    for (int g = 0; g < n_group; g++)
        for (int c = 0; c < n_c; c++) {
            __m512 *a = lanes[g][c];
            for (int w = 8; w >= 1; w /= 2)
                for (int l = 0; l < w; l++) a[l] = _mm512_add_ps(a[l], a[l + w]);
            _mm512_storeu_ps(out + (size_t)g * head_dim + 16 * c, a[0]);
        }
}

VNNI_FN static void avx512_attend_group(float *out, const float *q, int n_group, const melt_kv_view *kv,
                                        int n_kv, int head_dim, float scale, float *att)
{
    if (!kv->f16 || head_dim % 32 != 0 || head_dim > GROUP_MAX_DIM || n_group > GROUP_MAX) {
        for (int g = 0; g < n_group; g++)
            avx512_attend(out + (size_t)g * head_dim, q + (size_t)g * head_dim, kv, n_kv, head_dim, scale, att);
        return;
    }
    float *qr = att + (size_t)n_group * n_kv;
    for (int g = 0; g < n_group; g++) {
        float *ag = att + (size_t)g * n_kv;
        const float *qg = q + (size_t)g * head_dim;
        for (int d = 0; d < head_dim; d += 16) _mm512_storeu_ps(qr + d, round_f16x16(_mm512_loadu_ps(qg + d)));
        attn_scores(ag, qr, kv->k, kv->stride, n_kv, head_dim, scale);
        avx512_softmax(ag, n_kv);
        for (int j = 0; j < n_kv; j += 16) {
            const __mmask16 m = n_kv - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_kv - j)) - 1);
            _mm512_mask_storeu_ps(ag + j, m, round_f16x16(_mm512_maskz_loadu_ps(m, ag + j)));
        }
    }
    group_values(out, att, n_group, kv->v, kv->stride, n_kv, head_dim);
}

/* ---- activation quantizers ----
 *
 * vec_dot.c's melt_act_quantize_q8_0 and _q8_K, 16 lanes at a time, with
 * the same bytes: the same F32 operations per element, roundf (halves
 * away from zero) as truncation plus one where the remainder is at least
 * one half, and q8_K's scale taken from the first element of largest
 * magnitude. */

VNNI_FN static inline __m512 roundf16(__m512 v)
{
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(_mm512_set1_ps(1.0f)),
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u))));   /* +-1 as v */
    return _mm512_mask_add_ps(t, up, t, one);
}

VNNI_FN static void act_q8_0(const float *x, void *vy, int64_t n)
{
    melt_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = melt_fp32_to_fp16(d);
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i qa = _mm512_cvttps_epi32(roundf16(_mm512_mul_ps(a, vid)));
        const __m512i qb = _mm512_cvttps_epi32(roundf16(_mm512_mul_ps(b, vid)));
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtepi32_epi8(qb));
    }
}

VNNI_FN static void act_q8_K(const float *x, void *vy, int64_t n)
{
    melt_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / MELT_QK_K; i++, x += MELT_QK_K) {
        __m512 vmax = _mm512_setzero_ps();
        for (int j = 0; j < MELT_QK_K; j += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
        const float amax = _mm512_reduce_max_ps(vmax);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;   /* the first element with |x| == amax */
        for (int j = 0; j < MELT_QK_K; j += 16) {
            const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (m) {
                max = x[j + __builtin_ctz(m)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vs = _mm512_set1_ps(iscale), magic = _mm512_set1_ps(12582912.f);
        for (int j = 0; j < MELT_QK_K; j += 16) {
            /* nearest_int: (bits of v + 1.5 * 2^23) & 0x7fffff - 0x400000 */
            const __m512 v = _mm512_add_ps(_mm512_mul_ps(vs, _mm512_loadu_ps(x + j)), magic);
            __m512i q = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007fffff)),
                                         _mm512_set1_epi32(0x00400000));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y[i].qs + j), _mm512_cvtepi32_epi8(q));
        }
        for (int j = 0; j < MELT_QK_K / 16; j++) {
            const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(y[i].qs + 16 * j)));
            y[i].bsums[j] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1 / iscale;
    }
}

/* The scalar family's act_convert with the quantizers above for the
 * q8_0 and q8_K dot types. */
static void avx512_act_convert(uint32_t wtype, const float *x, int n_tok, int64_t n_in, void *xq, int ith,
                               int nth)
{
    void (*q)(const float *, void *, int64_t) = NULL;
    if (wtype == MELT_TYPE_Q4_0 || wtype == MELT_TYPE_Q5_0 || wtype == MELT_TYPE_Q8_0) q = act_q8_0;
    if (wtype == MELT_TYPE_Q4_K || wtype == MELT_TYPE_Q5_K || wtype == MELT_TYPE_Q6_K) q = act_q8_K;
    if (!q) {
        melt_ops_scalar()->act_convert(wtype, x, n_tok, n_in, xq, ith, nth);
        return;
    }
    const size_t rb = melt_dot_act_row_bytes(wtype, n_in);
    int64_t t0, t1;
    melt_ops_slice(n_tok, ith, nth, &t0, &t1);
    for (int64_t i = t0; i < t1; i++) q(x + i * n_in, (uint8_t *)xq + (size_t)i * rb, n_in);
}

static melt_ops avx512_ops;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void avx512_init(void)
{
    avx512_ops = *melt_ops_avx2();
    avx512_ops.name = "avx512";
    avx512_ops.matmul = avx512_matmul;
    avx512_ops.attend = avx512_attend;
    avx512_ops.attend_group = avx512_attend_group;
    avx512_ops.softmax = avx512_softmax;
    avx512_ops.act_convert = avx512_act_convert;
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
