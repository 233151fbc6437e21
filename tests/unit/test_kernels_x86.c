/* x86 SIMD kernels (kernels/avx2.c, kernels/avx512.c) against the scalar family they copy:
 * bit for bit where kernels/x86.h says so, within a stated bound for F16.
 * Every test is skipped on a CPU without the features its family needs. */
#include "testutil.h"

#include <math.h>

#include "engine/kernels/vec_dot.h"
#include "engine/kernels/x86.h"
#include "engine/ops.h"
#include "melt/engine.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static void need_avx2(void)
{
    if (!melt_kernels_avx2_usable()) skip();
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case MELT_TYPE_F32: return "f32";
    case MELT_TYPE_F16: return "f16";
    case MELT_TYPE_Q4_0: return "q4_0";
    case MELT_TYPE_Q4_1: return "q4_1";
    case MELT_TYPE_Q5_0: return "q5_0";
    case MELT_TYPE_Q5_1: return "q5_1";
    case MELT_TYPE_Q8_0: return "q8_0";
    case MELT_TYPE_Q4_K: return "q4_K";
    case MELT_TYPE_Q5_K: return "q5_K";
    case MELT_TYPE_Q6_K: return "q6_K";
    default: return "?";
    }
}

/* The weight types with an AVX2 vec_dot bit-identical to the scalar one. */
static const uint32_t exact_types[] = {
    MELT_TYPE_Q8_0, MELT_TYPE_Q4_0, MELT_TYPE_Q4_1, MELT_TYPE_Q5_0, MELT_TYPE_Q5_1,
    MELT_TYPE_Q4_K, MELT_TYPE_Q5_K, MELT_TYPE_Q6_K, MELT_TYPE_F32,
};
#define N_EXACT (sizeof exact_types / sizeof exact_types[0])

static int64_t block_of(uint32_t t)
{
    switch (t) {
    case MELT_TYPE_Q4_K: case MELT_TYPE_Q5_K: case MELT_TYPE_Q6_K: return 256;
    case MELT_TYPE_F32: case MELT_TYPE_F16: return 1;
    default: return 32;
    }
}

static void expect_same_float(uint32_t t, int64_t n, const char *what, float want, float got)
{
    uint32_t bw, bg;
    memcpy(&bw, &want, sizeof bw);
    memcpy(&bg, &got, sizeof bg);
    if (bw != bg)
        fail_msg("%s n=%lld (%s): scalar %.9g (0x%08x), avx2 %.9g (0x%08x)", type_name(t),
                 (long long)n, what, (double)want, (unsigned)bw, (double)got, (unsigned)bg);
}

/* A weight row quantized from random floats (scale 'amp') and the
 * activations converted by the scalar family's quantizer. */
static void random_row(uint32_t t, int64_t n, float amp, uint64_t *seed, void **w, void **a)
{
    float *wf = xmalloc((size_t)n * sizeof *wf), *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) wf[i] = amp * test_rand_f32(seed);
    for (int64_t i = 0; i < n; i++) x[i] = amp * test_rand_f32(seed);
    uint64_t wb;
    assert_true(melt_type_row_bytes(t, (uint64_t)n, &wb));
    *w = xmalloc(wb);
    assert_int_equal(melt_quantize_row_ref(t, wf, *w, n), 0);
    const melt_dot_traits *tr = melt_dot_traits_scalar(t);
    if (tr->from_f32) {
        *a = xmalloc(melt_dot_act_row_bytes(t, n));
        tr->from_f32(x, *a, n);
        free(x);
    } else {
        *a = x;
    }
    free(wf);
}

static void compare_exact(uint32_t t, int64_t n, const void *w, const void *a, const char *what)
{
    const melt_vec_dot_fn fast = melt_vec_dot_avx2(t);
    assert_non_null(fast);
    expect_same_float(t, n, what, melt_dot_traits_scalar(t)->vec_dot(n, w, a), fast(n, w, a));
}

static void avx2_vec_dots_are_bit_identical_to_scalar_on_random_rows(void **state)
{
    (void)state;
    need_avx2();
    static const int64_t nblocks[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 64};
    uint64_t seed = 0x5eed1234;
    for (size_t k = 0; k < N_EXACT; k++) {
        const uint32_t t = exact_types[k];
        for (size_t b = 0; b < sizeof nblocks / sizeof nblocks[0]; b++) {
            for (int rep = 0; rep < 4; rep++) {
                const int64_t n = nblocks[b] * (t == MELT_TYPE_F32 ? 32 : block_of(t));
                const float amp = rep == 3 ? 1e4f : rep == 2 ? 1e-3f : 1.0f;
                void *w, *a;
                random_row(t, n, amp, &seed, &w, &a);
                compare_exact(t, n, w, a, "quantized random floats");
                free(w);
                free(a);
            }
        }
    }
}

static void avx2_f32_dot_is_bit_identical_for_every_length(void **state)
{
    (void)state;
    need_avx2();
    uint64_t seed = 77;
    for (int64_t n = 1; n <= 300; n++) {
        float *x = xmalloc((size_t)n * sizeof *x), *y = xmalloc((size_t)n * sizeof *y);
        for (int64_t i = 0; i < n; i++) {
            x[i] = test_rand_f32(&seed) * 3.0f;
            y[i] = test_rand_f32(&seed) * 3.0f;
        }
        compare_exact(MELT_TYPE_F32, n, x, y, "random floats");
        free(x);
        free(y);
    }
}

/* A random finite half with exponent in [lo, hi] (biased, 1..30). */
static uint16_t rand_half(uint64_t *seed, int lo, int hi)
{
    const uint64_t r = test_rand_u64(seed);
    const int e = lo + (int)(r % (uint64_t)(hi - lo + 1));
    return (uint16_t)(((r >> 20) & 0x8000u) | ((unsigned)e << 10) | ((r >> 32) & 0x3ffu));
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

/* Raw blocks: every quant byte random (so int8 weights reach -128), the
 * scales random halves of moderate size, or the largest half when max. */
static void raw_weights(uint32_t t, int64_t n, uint64_t *seed, bool max, uint8_t *w)
{
    uint64_t bytes;
    assert_true(melt_type_row_bytes(t, (uint64_t)n, &bytes));
    for (uint64_t i = 0; i < bytes; i++) w[i] = (uint8_t)(test_rand_u64(seed) >> 56);
    size_t bs, off[2] = {0, 2};
    int nh = 1;
    switch (t) {
    case MELT_TYPE_Q4_0: bs = 18; break;
    case MELT_TYPE_Q4_1: bs = 20; nh = 2; break;
    case MELT_TYPE_Q5_0: bs = 22; break;
    case MELT_TYPE_Q5_1: bs = 24; nh = 2; break;
    case MELT_TYPE_Q8_0: bs = 34; break;
    case MELT_TYPE_Q4_K: bs = 144; nh = 2; break;
    case MELT_TYPE_Q5_K: bs = 176; nh = 2; break;
    case MELT_TYPE_Q6_K: bs = 210; off[0] = 208; break;
    default: fail_msg("raw_weights: type %u", (unsigned)t); return;
    }
    for (uint64_t b = 0; b < bytes / bs; b++)
        for (int h = 0; h < nh; h++)
            put16(w + b * bs + off[h], max ? 0x7bff : rand_half(seed, 10, 20));
}

/* Raw activations of t's dot type: quants all q (when q is -128 or 127)
 * or random bytes (q = 0), scales moderate or the largest. */
static void raw_acts(uint32_t t, int64_t n, uint64_t *seed, int q, bool max, uint8_t *a)
{
    const melt_dot_traits *tr = melt_dot_traits_scalar(t);
    const size_t bytes = melt_dot_act_row_bytes(t, n);
    for (size_t i = 0; i < bytes; i++) a[i] = (uint8_t)(test_rand_u64(seed) >> 56);
    if (tr->act_type == MELT_TYPE_Q8_K) {
        melt_block_q8_K *y = (melt_block_q8_K *)a;
        for (int64_t b = 0; b < n / 256; b++) {
            y[b].d = max ? 3.0e38f / 65504.0f / 127.0f / 64.0f : 0.01f * test_rand_f32(seed);
            for (int j = 0; j < 256; j++)
                if (q) y[b].qs[j] = (int8_t)q;
            if (!q) continue;   /* random qs: random bsums too (any int16 must work) */
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += y[b].qs[16 * j + l];
                y[b].bsums[j] = (int16_t)s;
            }
        }
        return;
    }
    const size_t bs = tr->act_type == MELT_TYPE_Q8_1 ? 36 : 34;
    for (size_t b = 0; b < bytes / bs; b++) {
        uint8_t *blk = a + b * bs;
        put16(blk, max ? 0x7bff : rand_half(seed, 8, 18));
        if (bs == 36) put16(blk + 2, max ? 0xfbff : rand_half(seed, 8, 18));
        if (q) memset(blk + bs - 32, (int8_t)q, 32);
    }
}

static void avx2_vec_dots_are_exact_on_extreme_and_raw_blocks(void **state)
{
    (void)state;
    need_avx2();
    static const int qs[] = {0, -128, 127};
    uint64_t seed = 0xabcdef;
    for (size_t k = 0; k < N_EXACT; k++) {
        const uint32_t t = exact_types[k];
        if (t == MELT_TYPE_F32) continue;
        for (int64_t nb = 1; nb <= 19; nb += 3) {
            const int64_t n = nb * block_of(t);
            uint64_t wb;
            assert_true(melt_type_row_bytes(t, (uint64_t)n, &wb));
            uint8_t *w = xmalloc(wb), *a = xmalloc(melt_dot_act_row_bytes(t, n));
            for (size_t qi = 0; qi < 3; qi++)
                for (int max = 0; max < 2; max++) {
                    raw_weights(t, n, &seed, max, w);
                    raw_acts(t, n, &seed, qs[qi], max, a);
                    char what[64];
                    snprintf(what, sizeof what, "raw blocks, activations %s, %s scales",
                             qs[qi] ? (qs[qi] < 0 ? "all -128" : "all 127") : "random",
                             max ? "max" : "moderate");
                    compare_exact(t, n, w, a, what);
                }
            free(w);
            free(a);
        }
    }
}

/* F16: summed in four double lanes, not index order. The two double sums
 * differ by at most n * 2^-53 * sum |p_i| (each adds n values), and the
 * rounding to F32 adds at most one F32 ulp of the result. */
static void avx2_f16_dot_is_within_double_rounding_of_scalar(void **state)
{
    (void)state;
    need_avx2();
    uint64_t seed = 99;
    const melt_vec_dot_fn fast = melt_vec_dot_avx2(MELT_TYPE_F16);
    const melt_vec_dot_fn slow = melt_dot_traits_scalar(MELT_TYPE_F16)->vec_dot;
    assert_non_null(fast);
    for (int64_t n = 1; n <= 1100; n += (n < 40 ? 1 : 37)) {
        for (int rep = 0; rep < 3; rep++) {
            uint16_t *x = xmalloc((size_t)n * 2), *y = xmalloc((size_t)n * 2);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) {
                x[i] = rep == 2 && i % 5 == 0 ? 0x7bff : rand_half(&seed, 1, 22);
                y[i] = rand_half(&seed, 1, 22);
                mag += fabs((double)melt_fp16_to_fp32(x[i]) * melt_fp16_to_fp32(y[i]));
            }
            const float want = slow(n, x, y), got = fast(n, x, y);
            const double tol = ldexp(fabs((double)want), -23) + (double)n * ldexp(mag, -52);
            if (!(fabs((double)want - (double)got) <= tol))
                fail_msg("f16 n=%lld: scalar %.9g, avx2 %.9g, |diff| %.3g > %.3g", (long long)n,
                         (double)want, (double)got, fabs((double)want - (double)got), tol);
            free(x);
            free(y);
        }
    }
}

/* The family's matmul: odd row counts and token counts, any thread split,
 * equal bit for bit to the scalar family's for the exact types. */
static void avx2_matmul_equals_scalar_matmul_for_odd_shapes_and_splits(void **state)
{
    (void)state;
    need_avx2();
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX2), *slow = melt_ops_scalar();
    assert_non_null(fast);
    assert_ptr_equal(melt_ops_select(MELT_KERNELS_AUTO),
                     melt_kernels_avx512_usable() ? melt_ops_select(MELT_KERNELS_AVX512) : fast);
    uint64_t seed = 4242;
    static const int n_outs[] = {1, 7, 33};
    static const int n_toks[] = {1, 3};
    for (size_t k = 0; k < N_EXACT; k++) {
        const uint32_t t = exact_types[k];
        const int64_t n_in = t == MELT_TYPE_F32 ? 72 : block_of(t) == 32 ? 9 * 32 : 3 * 256;
        for (size_t o = 0; o < 3; o++)
            for (size_t tt = 0; tt < 2; tt++) {
                const int n_out = n_outs[o], n_tok = n_toks[tt];
                uint64_t rb;
                assert_true(melt_type_row_bytes(t, (uint64_t)n_in, &rb));
                uint8_t *wd = xmalloc(rb * (size_t)n_out);
                float *wf = xmalloc((size_t)n_in * sizeof *wf);
                for (int r = 0; r < n_out; r++) {
                    for (int64_t i = 0; i < n_in; i++) wf[i] = test_rand_f32(&seed);
                    assert_int_equal(melt_quantize_row_ref(t, wf, wd + (size_t)r * rb, n_in), 0);
                }
                melt_weight w = {.type = t, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = wd};
                snprintf(w.name, sizeof w.name, "test.%s", type_name(t));
                float *x = xmalloc((size_t)n_tok * (size_t)n_in * sizeof *x);
                for (int64_t i = 0; i < n_tok * n_in; i++) x[i] = test_rand_f32(&seed);
                const size_t ab = fast->act_row_bytes(t, n_in);
                assert_int_equal(ab, slow->act_row_bytes(t, n_in));
                uint8_t *xq = ab ? xmalloc(ab * (size_t)n_tok) : NULL;
                if (ab) fast->act_convert(t, x, n_tok, n_in, xq, 0, 1);
                float *want = xmalloc((size_t)n_tok * n_out * sizeof *want);
                float *got = xmalloc((size_t)n_tok * n_out * sizeof *got);
                slow->matmul(&w, x, xq, n_tok, want, wf, 0, 1);
                for (int nth = 1; nth <= 3; nth++) {
                    memset(got, 0xff, (size_t)n_tok * n_out * sizeof *got);
                    for (int ith = 0; ith < nth; ith++) fast->matmul(&w, x, xq, n_tok, got, wf, ith, nth);
                    for (int i = 0; i < n_tok * n_out; i++)
                        expect_same_float(t, n_in, "matmul", want[i], got[i]);
                }
                free(wd);
                free(wf);
                free(x);
                free(xq);
                free(want);
                free(got);
            }
    }
}

/* Whole forward passes: the avx2 (and avx512) family's logits equal the
 * scalar family's bit for bit on the quantized fixtures (their matmuls are all
 * exact types) and on stories260K (F32 weights), with both cache types. */
static float *logits_of(const char *rel, enum melt_kernels k, enum melt_kv_type kv, int *n_out)
{
    melt_model_params mp = melt_model_default_params();
    mp.kernels = k;
    melt_model *m = NULL;
    melt_error e = {0};
    if (melt_model_load(fixture_path(rel), &mp, &m, &e) < 0) fail_msg("loading %s: %s", rel, e.msg);
    melt_context_params cp = melt_context_default_params();
    cp.kv_type = kv;
    cp.n_threads = 2;
    cp.n_ctx = 64;
    melt_context *c = NULL;
    if (melt_context_new(m, &cp, &c, &e) < 0) fail_msg("context: %s", e.msg);
    const int nv = melt_model_n_vocab(m), n_tok = 12;
    int32_t toks[12];
    for (int i = 0; i < n_tok; i++) toks[i] = (int32_t)((i * 37 + 5) % nv);
    float *lg = xmalloc((size_t)(n_tok + 4) * (size_t)nv * sizeof *lg);
    if (melt_decode(c, toks, n_tok, 0, MELT_LOGITS_ALL, lg, &e) < 0) fail_msg("decode: %s", e.msg);
    for (int i = 0; i < 4; i++) {   /* and single-token steps (the decode path) */
        const int32_t t = (int32_t)((i * 11 + 3) % nv);
        if (melt_decode(c, &t, 1, n_tok + i, MELT_LOGITS_LAST, lg + (size_t)(n_tok + i) * nv, &e) < 0)
            fail_msg("decode: %s", e.msg);
    }
    melt_context_free(c);
    melt_model_free(m);
    *n_out = (n_tok + 4) * nv;
    return lg;
}

static void avx2_family_logits_equal_scalar_family_on_fixtures(void **state)
{
    (void)state;
    need_avx2();
    static const char *models[] = {
        "stories260K/stories260K.gguf", "quant/tiny-f32.gguf",  "quant/tiny-q4_0.gguf",
        "quant/tiny-q8_0.gguf",         "quant/tiny-q4_k.gguf", "quant/tiny-q4_k_m.gguf",
        "quant/tiny-q5_k.gguf",         "quant/tiny-q5_k_m.gguf", "quant/tiny-q6_k.gguf",
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        for (int kv = 0; kv < 2; kv++) {
            const enum melt_kv_type kt = kv ? MELT_KV_F32 : MELT_KV_F16;
            int n1, n2;
            float *want = logits_of(models[i], MELT_KERNELS_SCALAR, kt, &n1);
            for (int fam = 0; fam < 2; fam++) {
                if (fam == 1 && !melt_kernels_avx512_usable()) continue;
                float *got = logits_of(models[i], fam ? MELT_KERNELS_AVX512 : MELT_KERNELS_AVX2, kt, &n2);
                assert_int_equal(n1, n2);
                for (int j = 0; j < n1; j++)
                    if (memcmp(&want[j], &got[j], sizeof(float)) != 0)
                        fail_msg("%s (kv %s): logit %d: scalar %.9g, %s %.9g", models[i],
                                 kv ? "f32" : "f16", j, (double)want[j], fam ? "avx512" : "avx2",
                                 (double)got[j]);
                free(got);
            }
            free(want);
        }
}

/* AVX-512 VNNI q8_0 / q4_0: the same bits as scalar on quantized random
 * rows, raw blocks with -128 and 127 everywhere and the largest scales,
 * and through the family's matmul for odd shapes and thread splits. */
static void avx512_vnni_vec_dots_are_bit_identical_to_scalar(void **state)
{
    (void)state;
    if (!melt_kernels_avx512_usable()) skip();
    static const uint32_t types[] = {MELT_TYPE_Q8_0, MELT_TYPE_Q4_0};
    static const int qs[] = {0, -128, 127};
    uint64_t seed = 0x512;
    for (size_t k = 0; k < 2; k++) {
        const uint32_t t = types[k];
        const melt_vec_dot_fn fast = melt_vec_dot_avx512(t), slow = melt_dot_traits_scalar(t)->vec_dot;
        assert_non_null(fast);
        for (int64_t nb = 1; nb <= 40; nb++) {
            const int64_t n = 32 * nb;
            void *w, *a;
            random_row(t, n, 1.0f, &seed, &w, &a);
            expect_same_float(t, n, "avx512, quantized random floats", slow(n, w, a), fast(n, w, a));
            free(w);
            free(a);
            uint64_t wb;
            assert_true(melt_type_row_bytes(t, (uint64_t)n, &wb));
            uint8_t *rw = xmalloc(wb), *ra = xmalloc(melt_dot_act_row_bytes(t, n));
            for (size_t qi = 0; qi < 3; qi++)
                for (int max = 0; max < 2; max++) {
                    raw_weights(t, n, &seed, max, rw);
                    raw_acts(t, n, &seed, qs[qi], max, ra);
                    expect_same_float(t, n, "avx512, raw blocks", slow(n, rw, ra), fast(n, rw, ra));
                }
            free(rw);
            free(ra);
        }
    }
    const melt_ops *ops = melt_ops_select(MELT_KERNELS_AVX512), *ref = melt_ops_scalar();
    assert_non_null(ops);
    for (size_t k = 0; k < 2; k++) {
        const uint32_t t = types[k];
        const int64_t n_in = 9 * 32;
        for (int n_out = 1; n_out <= 9; n_out += 4) {
            uint64_t rb;
            assert_true(melt_type_row_bytes(t, (uint64_t)n_in, &rb));
            uint8_t *wd = xmalloc(rb * (size_t)n_out);
            float *wf = xmalloc((size_t)n_in * sizeof *wf);
            for (int r = 0; r < n_out; r++) {
                for (int64_t i = 0; i < n_in; i++) wf[i] = test_rand_f32(&seed);
                assert_int_equal(melt_quantize_row_ref(t, wf, wd + (size_t)r * rb, n_in), 0);
            }
            melt_weight w = {.type = t, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = wd};
            const int n_tok = 3;
            float *x = xmalloc((size_t)n_tok * n_in * sizeof *x);
            for (int64_t i = 0; i < n_tok * n_in; i++) x[i] = test_rand_f32(&seed);
            const size_t ab = ops->act_row_bytes(t, n_in);
            uint8_t *xq = xmalloc(ab * n_tok);
            ops->act_convert(t, x, n_tok, n_in, xq, 0, 1);
            float *want = xmalloc((size_t)n_tok * n_out * sizeof *want);
            float *got = xmalloc((size_t)n_tok * n_out * sizeof *got);
            ref->matmul(&w, x, xq, n_tok, want, wf, 0, 1);
            for (int nth = 1; nth <= 3; nth++) {
                for (int ith = 0; ith < nth; ith++) ops->matmul(&w, x, xq, n_tok, got, wf, ith, nth);
                for (int i = 0; i < n_tok * n_out; i++)
                    expect_same_float(t, n_in, "avx512 matmul", want[i], got[i]);
            }
            free(wd);
            free(wf);
            free(x);
            free(xq);
            free(want);
            free(got);
        }
    }
}

/* The avx512 family's tiled matmuls (16 rows per register, 8 tokens per
 * pass, token groups, the last tile partly masked; q4_K on AVX512_VBMI)
 * equal the scalar matmul bit for bit: raw weight blocks (every quant
 * byte random, largest scales) and raw activations (all -128, all 127 or
 * random, with random bsums), row counts around the tile of 16, token
 * counts around the passes of 16 (32-blocks) and 64 (k-quants) and the
 * group of 16, any thread split. */
static void avx512_tiled_matmul_equals_scalar_on_raw_blocks(void **state)
{
    (void)state;
    if (!melt_kernels_avx512_usable()) skip();
    static const uint32_t types[] = {MELT_TYPE_Q4_0, MELT_TYPE_Q8_0, MELT_TYPE_Q4_K, MELT_TYPE_Q6_K,
                                     MELT_TYPE_Q5_K};
    static const int n_outs[] = {1, 5, 16, 17, 40};
    static const int n_toks[] = {1, 2, 8, 9, 13, 17, 33, 70};
    static const int qs[] = {0, -128, 127};
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX512), *slow = melt_ops_scalar();
    assert_non_null(fast);
    uint64_t seed = 0x7113d;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t t = types[k];
        const int64_t n_in = block_of(t) == 32 ? 5 * 32 : 2 * 256;
        uint64_t rb;
        assert_true(melt_type_row_bytes(t, (uint64_t)n_in, &rb));
        const size_t ab = fast->act_row_bytes(t, n_in);
        assert_int_equal(ab, slow->act_row_bytes(t, n_in));
        for (size_t o = 0; o < sizeof n_outs / sizeof n_outs[0]; o++)
            for (size_t tt = 0; tt < sizeof n_toks / sizeof n_toks[0]; tt++) {
                const int n_out = n_outs[o], n_tok = n_toks[tt];
                const int q = qs[(o + tt) % 3];
                const bool max = (o + tt) % 2 == 1;
                uint8_t *wd = xmalloc(rb * (size_t)n_out);
                for (int r = 0; r < n_out; r++) raw_weights(t, n_in, &seed, max, wd + (size_t)r * rb);
                uint8_t *xq = xmalloc(ab * (size_t)n_tok);
                for (int i = 0; i < n_tok; i++) raw_acts(t, n_in, &seed, i % 2 ? q : 0, max, xq + (size_t)i * ab);
                float *x = xmalloc((size_t)n_tok * (size_t)n_in * sizeof *x);   /* unused by these types */
                float *wf = xmalloc((size_t)n_in * sizeof *wf);
                melt_weight w = {.type = t, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = wd};
                snprintf(w.name, sizeof w.name, "test.%s", type_name(t));
                float *want = xmalloc((size_t)n_tok * n_out * sizeof *want);
                float *got = xmalloc((size_t)n_tok * n_out * sizeof *got);
                slow->matmul(&w, x, xq, n_tok, want, wf, 0, 1);
                for (int nth = 1; nth <= 3; nth++) {
                    memset(got, 0xff, (size_t)n_tok * n_out * sizeof *got);
                    for (int ith = 0; ith < nth; ith++) fast->matmul(&w, x, xq, n_tok, got, wf, ith, nth);
                    for (int i = 0; i < n_tok * n_out; i++) {
                        uint32_t bw, bg;
                        memcpy(&bw, &want[i], sizeof bw);
                        memcpy(&bg, &got[i], sizeof bg);
                        if (bw != bg)
                            fail_msg("%s %d rows x %d tokens, %d threads, q %d: output %d (token %d row %d): "
                                     "scalar %.9g, avx512 %.9g",
                                     type_name(t), n_out, n_tok, nth, q, i, i / n_out, i % n_out,
                                     (double)want[i], (double)got[i]);
                    }
                }
                free(wd);
                free(xq);
                free(x);
                free(wf);
                free(want);
                free(got);
            }
    }
}

/* The avx512 family's attention over an F16 cache (scores 16 positions at
 * a time, V sums by blocks of 64 positions) equals the scalar family's bit
 * for bit, for position counts around 16 and 64 and head sizes that take
 * the fast path (multiples of 16 up to 256; 64 has its own loop) or fall
 * back. */
static void avx512_attend_equals_scalar_over_f16_cache(void **state)
{
    (void)state;
    if (!melt_kernels_avx512_usable()) skip();
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX512), *slow = melt_ops_scalar();
    static const int head_dims[] = {16, 64, 128, 24, 48, 320};
    uint64_t seed = 0xa77e;
    for (size_t h = 0; h < sizeof head_dims / sizeof head_dims[0]; h++) {
        const int hd = head_dims[h];
        const size_t stride = (size_t)hd * 3;   /* three KV heads per position */
        /* past 41: several 64-position blocks of the V sums, with tails */
        for (int n_kv = 1; n_kv <= 209; n_kv += (n_kv < 18 ? 1 : n_kv < 41 ? 4 : 21)) {
            uint16_t *k = xmalloc((size_t)n_kv * stride * sizeof *k), *v = xmalloc((size_t)n_kv * stride * sizeof *v);
            for (size_t i = 0; i < (size_t)n_kv * stride; i++) {
                k[i] = melt_fp32_to_fp16(2.0f * test_rand_f32(&seed));
                v[i] = melt_fp32_to_fp16(test_rand_f32(&seed));
            }
            float *q = xmalloc((size_t)hd * sizeof *q);
            for (int d = 0; d < hd; d++) q[d] = 3.0f * test_rand_f32(&seed);
            const melt_kv_view kv = {.f16 = true, .k = k + hd, .v = v + hd, .stride = stride};
            float *att = xmalloc((size_t)(n_kv + hd) * sizeof *att);
            float *want = xmalloc((size_t)hd * sizeof *want), *got = xmalloc((size_t)hd * sizeof *got);
            const float scale = 1.0f / sqrtf((float)hd);
            slow->attend(want, q, &kv, n_kv, hd, scale, att);
            fast->attend(got, q, &kv, n_kv, hd, scale, att);
            for (int d = 0; d < hd; d++)
                if (memcmp(&want[d], &got[d], sizeof(float)) != 0)
                    fail_msg("attend head_dim %d, %d positions: out[%d] scalar %.9g, avx512 %.9g", hd, n_kv, d,
                             (double)want[d], (double)got[d]);
            free(k);
            free(v);
            free(q);
            free(att);
            free(want);
            free(got);
        }
    }
}

/* The avx512 family's grouped attention (query heads sharing one KV head,
 * V rows converted once for the group) gives each head exactly what the
 * scalar family's attend gives it alone: group sizes 1 to 8, head sizes on
 * the grouped path (multiples of 32 up to 128) and off it, and position
 * counts on both sides of 16. The scalar and ref families have no grouped
 * op (the forward pass calls attend per head). */
static void avx512_attend_group_equals_scalar_per_head(void **state)
{
    (void)state;
    assert_null(melt_ops_scalar()->attend_group);
    assert_null(melt_ops_ref()->attend_group);
    if (!melt_kernels_avx512_usable()) skip();
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX512), *slow = melt_ops_scalar();
    assert_non_null(fast->attend_group);
    static const int head_dims[] = {64, 32, 128, 96, 16, 48, 24, 160};
    static const int groups[] = {1, 2, 3, 4, 8};
    static const int n_kvs[] = {1, 5, 15, 16, 17, 33, 47, 100};
    uint64_t seed = 0x6a0b;
    for (size_t h = 0; h < sizeof head_dims / sizeof head_dims[0]; h++)
        for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
            for (size_t ni = 0; ni < sizeof n_kvs / sizeof n_kvs[0]; ni++) {
                const int hd = head_dims[h], group = groups[gi], n_kv = n_kvs[ni];
                const size_t stride = (size_t)hd * 2;   /* two KV heads per position */
                uint16_t *k = xmalloc((size_t)n_kv * stride * sizeof *k);
                uint16_t *v = xmalloc((size_t)n_kv * stride * sizeof *v);
                for (size_t i = 0; i < (size_t)n_kv * stride; i++) {
                    k[i] = melt_fp32_to_fp16(2.0f * test_rand_f32(&seed));
                    v[i] = melt_fp32_to_fp16(test_rand_f32(&seed));
                }
                const size_t nq = (size_t)group * hd;
                float *q = xmalloc(nq * sizeof *q), *want = xmalloc(nq * sizeof *want);
                float *got = xmalloc(nq * sizeof *got);
                for (size_t d = 0; d < nq; d++) q[d] = 3.0f * test_rand_f32(&seed);
                const melt_kv_view kv = {.f16 = true, .k = k + hd, .v = v + hd, .stride = stride};
                float *att = xmalloc(((size_t)group * n_kv + hd) * sizeof *att);
                const float scale = 1.0f / sqrtf((float)hd);
                for (int g = 0; g < group; g++)
                    slow->attend(want + (size_t)g * hd, q + (size_t)g * hd, &kv, n_kv, hd, scale, att);
                fast->attend_group(got, q, group, &kv, n_kv, hd, scale, att);
                for (size_t d = 0; d < nq; d++)
                    if (memcmp(&want[d], &got[d], sizeof(float)) != 0)
                        fail_msg("attend_group head_dim %d, group %d, %d positions: out[%zu] scalar %.9g, "
                                 "avx512 %.9g",
                                 hd, group, n_kv, d, (double)want[d], (double)got[d]);
                free(k);
                free(v);
                free(q);
                free(want);
                free(got);
                free(att);
            }
}

/* The avx512 family's softmax (exp on 16 lanes, the same tree and
 * double sums) equals the scalar family's bit for bit, for lengths around
 * 16, spreads that underflow exp to subnormals and to zero, and ties. */
static void avx512_softmax_equals_scalar(void **state)
{
    (void)state;
    if (!melt_kernels_avx512_usable()) skip();
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX512), *slow = melt_ops_scalar();
    static const float spreads[] = {1.0f, 30.0f, 95.0f, 120.0f, 1000.0f};
    uint64_t seed = 0x50f7;
    float a[80], b[80];
    for (int n = 1; n <= 80; n++)
        for (size_t k = 0; k < sizeof spreads / sizeof spreads[0]; k++) {
            for (int i = 0; i < n; i++) a[i] = spreads[k] * test_rand_f32(&seed);
            if (n > 3) a[n / 2] = a[1];   /* a tie */
            memcpy(b, a, sizeof(float) * (size_t)n);
            slow->softmax(a, n);
            fast->softmax(b, n);
            for (int i = 0; i < n; i++)
                if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
                    fail_msg("softmax n %d spread %g: [%d] scalar %.9g, avx512 %.9g", n, (double)spreads[k], i,
                             (double)a[i], (double)b[i]);
        }
}

/* The avx512 family's activation quantizers (q8_0 for q4_0 / q5_0 / q8_0
 * weights, q8_K for the k-quants) give the scalar family's bytes: random
 * rows of several scales, values at exact halves of the quantization
 * step (roundf's ties away from zero), ties for the largest magnitude of
 * either sign, all-zero blocks, several tokens split over threads. */
static void avx512_act_convert_equals_scalar(void **state)
{
    (void)state;
    if (!melt_kernels_avx512_usable()) skip();
    const melt_ops *fast = melt_ops_select(MELT_KERNELS_AVX512), *slow = melt_ops_scalar();
    static const uint32_t types[] = {MELT_TYPE_Q8_0, MELT_TYPE_Q4_0, MELT_TYPE_Q4_K, MELT_TYPE_Q6_K};
    const int64_t n_in = 512;
    const int n_tok = 5;
    uint64_t seed = 0xac7;
    float *x = xmalloc((size_t)n_tok * n_in * sizeof *x);
    for (int round = 0; round < 6; round++) {
        for (int64_t i = 0; i < n_tok * n_in; i++) {
            x[i] = (round < 3 ? 1e-3f * (float)(1 + round * 100) : 1.0f) * test_rand_f32(&seed);
            if (round == 3) x[i] = (float)((int)(x[i] * 16)) / 2.0f + 0.5f;   /* halves: ties */
            if (round == 4 && i % 7 == 0) x[i] = (i % 14 ? 1.0f : -1.0f);    /* equal magnitudes */
        }
        if (round == 5)
            for (int64_t i = 0; i < 256; i++) x[i] = 0.0f;   /* a zero block */
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            const uint32_t t = types[k];
            const size_t ab = slow->act_row_bytes(t, n_in);
            uint8_t *want = xmalloc(ab * n_tok), *got = xmalloc(ab * n_tok);
            memset(got, 0x5a, ab * n_tok);
            slow->act_convert(t, x, n_tok, n_in, want, 0, 1);
            for (int ith = 0; ith < 2; ith++) fast->act_convert(t, x, n_tok, n_in, got, ith, 2);
            for (size_t i = 0; i < ab * n_tok; i++)
                if (want[i] != got[i])
                    fail_msg("act_convert %s round %d: byte %zu of %zu: scalar 0x%02x, avx512 0x%02x", type_name(t),
                             round, i, ab * n_tok, want[i], got[i]);
            free(want);
            free(got);
        }
    }
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(avx2_vec_dots_are_bit_identical_to_scalar_on_random_rows),
        cmocka_unit_test(avx2_f32_dot_is_bit_identical_for_every_length),
        cmocka_unit_test(avx2_vec_dots_are_exact_on_extreme_and_raw_blocks),
        cmocka_unit_test(avx2_f16_dot_is_within_double_rounding_of_scalar),
        cmocka_unit_test(avx2_matmul_equals_scalar_matmul_for_odd_shapes_and_splits),
        cmocka_unit_test(avx2_family_logits_equal_scalar_family_on_fixtures),
        cmocka_unit_test(avx512_vnni_vec_dots_are_bit_identical_to_scalar),
        cmocka_unit_test(avx512_tiled_matmul_equals_scalar_on_raw_blocks),
        cmocka_unit_test(avx512_attend_equals_scalar_over_f16_cache),
        cmocka_unit_test(avx512_attend_group_equals_scalar_per_head),
        cmocka_unit_test(avx512_softmax_equals_scalar),
        cmocka_unit_test(avx512_act_convert_equals_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
