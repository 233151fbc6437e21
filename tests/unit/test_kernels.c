/* Engine kernels: the activation quantizers and quantized dot products of
 * the scalar family (src/engine/kernels/vec_dot.c), and the scalar family's
 * matmul against the reference one. */
#include "testutil.h"

#include <math.h>

#include "engine/kernels/vec_dot.h"
#include "engine/ops.h"
#include "melt/quant.h"
#include "melt/types.h"

/* Random floats of varied magnitude: a scale per 16 elements, and a few
 * exact zeros and repeated values (ties in the max search). */
static void fill(float *x, int64_t n, uint64_t *seed)
{
    float scale = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i % 16 == 0) scale = ldexpf(1.0f, (int)(test_rand_u64(seed) % 9) - 4);
        x[i] = test_rand_f32(seed) * scale;
        uint64_t r = test_rand_u64(seed) % 64;
        if (r == 0) x[i] = 0;
        if (r == 1 && i > 0) x[i] = -x[i - 1];
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- activation quantizers ---- */

static void expect_same_bytes(uint32_t type, void (*fn)(const float *, void *, int64_t), int64_t n,
                              uint64_t seed)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    fill(x, n, &seed);
    if (n >= 64) {  /* an all-zero block */
        for (int i = 0; i < 32; i++) x[i] = 0;
    }
    uint64_t bytes;
    assert_true(melt_type_row_bytes(type, (uint64_t)n, &bytes));
    uint8_t *want = xmalloc(bytes), *got = xmalloc(bytes);
    memset(want, 0xAA, bytes);
    memset(got, 0x55, bytes);
    assert_int_equal(melt_quantize_row_ref(type, x, want, n), 0);
    fn(x, got, n);
    if (memcmp(want, got, bytes) != 0) {
        size_t i = 0;
        while (want[i] == got[i]) i++;
        fail_msg("%s activation quantizer, n = %lld: byte %zu is 0x%02x, the reference has 0x%02x",
                 melt_type_name(type), (long long)n, i, got[i], want[i]);
    }
    free(x);
    free(want);
    free(got);
}

static void q8_0_activation_quantizer_matches_reference_bytes(void **state)
{
    (void)state;
    for (uint64_t s = 1; s <= 20; s++) expect_same_bytes(MELT_TYPE_Q8_0, melt_act_quantize_q8_0, 32 * (int64_t)s, s);
    expect_same_bytes(MELT_TYPE_Q8_0, melt_act_quantize_q8_0, 4096, 99);
}

static void q8_K_activation_quantizer_matches_reference_bytes(void **state)
{
    (void)state;
    for (uint64_t s = 1; s <= 8; s++) expect_same_bytes(MELT_TYPE_Q8_K, melt_act_quantize_q8_K, 256 * (int64_t)s, s);
    expect_same_bytes(MELT_TYPE_Q8_K, melt_act_quantize_q8_K, 4096, 99);
}

/* q8_1 (no reference quantizer in melt/quant.h): d and qs as q8_0, and s
 * the F16 of d times the sum of the quants. */
static void q8_1_activation_quantizer_is_q8_0_plus_sums(void **state)
{
    (void)state;
    uint64_t seed = 5;
    float x[256];
    fill(x, 256, &seed);
    melt_block_q8_1 q1[8];
    uint8_t q0[8 * 34];
    melt_act_quantize_q8_1(x, q1, 256);
    melt_act_quantize_q8_0(x, q0, 256);
    for (int b = 0; b < 8; b++) {
        uint16_t d0;
        memcpy(&d0, q0 + b * 34, 2);
        assert_int_equal(q1[b].d, d0);
        assert_memory_equal(q1[b].qs, q0 + b * 34 + 2, 32);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += q1[b].qs[j];
        const float d = melt_fp16_to_fp32(d0);
        /* s is computed from the unrounded d: within an F16 step of it */
        assert_float_equal(melt_fp16_to_fp32(q1[b].s), (float)sum * d, fabsf((float)sum * d) * 2e-3f + 1e-6f);
    }
}

/* ---- dot products ---- */

typedef struct dot_case {
    uint32_t wtype;
    int64_t n;
} dot_case;

/* vec_dot(weight row, converted activations) for random data against
 * (a) the exact dot of the dequantized weights and dequantized
 *     activations: only F32 rounding apart, n * 2^-22 relative to the sum
 *     of |products|;
 * (b) the F32 dot of the dequantized weights and the original activations:
 *     apart by at most sum |w_i| * |x_i - xq_i| (the activation
 *     quantization error, measured) plus (a)'s slack. */
static void check_dot(uint32_t wtype, int64_t n, uint64_t seed)
{
    const melt_dot_traits *t = melt_dot_traits_scalar(wtype);
    assert_non_null(t);
    float *wf = xmalloc((size_t)n * sizeof *wf), *x = xmalloc((size_t)n * sizeof *x);
    float *wd = xmalloc((size_t)n * sizeof *wd), *xd = xmalloc((size_t)n * sizeof *xd);
    fill(wf, n, &seed);
    fill(x, n, &seed);
    uint64_t wbytes;
    assert_true(melt_type_row_bytes(wtype, (uint64_t)n, &wbytes));
    uint8_t *w = xmalloc(wbytes);
    assert_int_equal(melt_quantize_row_ref(wtype, wf, w, n), 0);
    assert_int_equal(melt_dequantize_row_ref(wtype, w, wd, n), 0);

    const void *a = x;
    uint8_t *xq = NULL;
    if (t->from_f32) {
        const size_t ab = melt_dot_act_row_bytes(wtype, n);
        assert_true(ab > 0);
        xq = xmalloc(ab);
        t->from_f32(x, xq, n);
        a = xq;
        if (t->act_type == MELT_TYPE_Q8_1) {   /* no q8_1 in melt/quant.h */
            const melt_block_q8_1 *b = (const melt_block_q8_1 *)xq;
            for (int64_t i = 0; i < n; i++)
                xd[i] = melt_fp16_to_fp32(b[i / 32].d) * (float)b[i / 32].qs[i % 32];
        } else {
            assert_int_equal(melt_dequantize_row_ref(t->act_type, xq, xd, n), 0);
        }
    } else {
        memcpy(xd, x, (size_t)n * sizeof *xd);
    }
    const float got = t->vec_dot(n, w, a);

    double exact = 0, mag = 0, qerr = 0, f32 = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wd[i] * (double)xd[i];
        mag += fabs((double)wd[i] * (double)xd[i]);
        qerr += fabs((double)wd[i]) * fabs((double)x[i] - (double)xd[i]);
        f32 += (double)wd[i] * (double)x[i];
    }
    /* q4_1 / q5_1: the min term uses s = F16(d * sum q) with d before its
     * F16 rounding: up to two F16 roundings of |m * s| per block */
    double extra = 0;
    if (t->act_type == MELT_TYPE_Q8_1) {
        const size_t wblock = wtype == MELT_TYPE_Q4_1 ? 20 : 24;   /* d, m first */
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t m;
            memcpy(&m, w + (size_t)b * wblock + 2, 2);
            const melt_block_q8_1 *qb = (const melt_block_q8_1 *)xq + b;
            extra += fabs(melt_fp16_to_fp32(m)) * fabs(melt_fp16_to_fp32(qb->s)) * ldexp(1.0, -9);
        }
    }
    const double slack = (double)n * ldexp(1.0, -22) * mag + extra + 1e-30;
    if (!(fabs(got - exact) <= slack))
        fail_msg("%s x %s, n = %lld: vec_dot %.9g, exact dot of the quantized rows %.9g (allowed %.3g)",
                 melt_type_name(wtype), melt_type_name(t->act_type), (long long)n, got, exact, slack);
    if (!(fabs(got - f32) <= qerr + slack + 1e-6 * fabs(f32)))
        fail_msg("%s, n = %lld: vec_dot %.9g, F32 dot %.9g: more than the activation error %.3g apart",
                 melt_type_name(wtype), (long long)n, got, f32, qerr);
    free(wf);
    free(x);
    free(wd);
    free(xd);
    free(w);
    free(xq);
}

static void vec_dots_agree_with_dequantized_dots(void **state)
{
    (void)state;
    static const uint32_t types[] = {MELT_TYPE_F32, MELT_TYPE_F16, MELT_TYPE_BF16, MELT_TYPE_Q4_0,
                                     MELT_TYPE_Q4_1, MELT_TYPE_Q5_0, MELT_TYPE_Q5_1, MELT_TYPE_Q8_0,
                                     MELT_TYPE_Q4_K, MELT_TYPE_Q5_K, MELT_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const uint32_t blk = melt_type_traits_of(types[i])->block_elems;
        const int64_t bk = blk > 1 ? blk : 32;
        /* one block, several, and an odd number of blocks */
        const int64_t sizes[] = {bk == 256 ? 256 : 32, bk * 3, bk * 7, 4096};
        for (size_t s = 0; s < 4; s++)
            for (uint64_t seed = 1; seed <= 3; seed++) check_dot(types[i], sizes[s], seed * 31 + i);
    }
    /* the F32 lane dot with a tail (n not a multiple of 16) */
    float a[37], b[37];
    uint64_t seed = 3;
    double want = 0;
    for (int i = 0; i < 37; i++) {
        a[i] = test_rand_f32(&seed);
        b[i] = test_rand_f32(&seed);
        want += (double)a[i] * b[i];
    }
    assert_float_equal(melt_dot_f32_lanes(37, a, b), want, 1e-5);
}

/* The scalar family's matmul: odd row and token counts, activations
 * converted by two threads, outputs bit-identical for any thread split and
 * equal to the vec_dot of their row and token. */
static void scalar_matmul_is_vec_dot_per_output_for_any_thread_split(void **state)
{
    (void)state;
    static const uint32_t types[] = {MELT_TYPE_F32, MELT_TYPE_F16, MELT_TYPE_Q4_0, MELT_TYPE_Q4_1,
                                     MELT_TYPE_Q5_1, MELT_TYPE_Q8_0, MELT_TYPE_Q4_K, MELT_TYPE_Q6_K};
    const int64_t n_in = 512, n_out = 13;
    const int n_tok = 3;
    const melt_ops *ref = melt_ops_ref(), *fast = melt_ops_scalar();
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint64_t seed = 11 + k;
        float *wf = xmalloc((size_t)(n_in * n_out) * sizeof *wf), *x = xmalloc((size_t)(n_in * n_tok) * sizeof *x);
        fill(wf, n_in * n_out, &seed);
        fill(x, n_in * n_tok, &seed);
        uint64_t rb;
        assert_true(melt_type_row_bytes(types[k], (uint64_t)n_in, &rb));
        uint8_t *wq = xmalloc(rb * (size_t)n_out);
        for (int64_t r = 0; r < n_out; r++)
            assert_int_equal(melt_quantize_row_ref(types[k], wf + r * n_in, wq + r * rb, n_in), 0);
        melt_weight w = {.name = "w", .type = types[k], .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = wq};
        const size_t ab = fast->act_row_bytes(types[k], n_in);
        void *xq = ab ? xmalloc(ab * n_tok) : NULL;
        if (ab) {   /* converted by two "threads" */
            fast->act_convert(types[k], x, n_tok, n_in, xq, 0, 2);
            fast->act_convert(types[k], x, n_tok, n_in, xq, 1, 2);
        }
        float buf[512], y1[3 * 13], y3[3 * 13], yr[3 * 13];
        fast->matmul(&w, x, xq, n_tok, y1, buf, 0, 1);
        for (int ith = 0; ith < 3; ith++) fast->matmul(&w, x, xq, n_tok, y3, buf, ith, 3);
        assert_memory_equal(y1, y3, sizeof y1);
        /* each output is one vec_dot of its row and token (whose accuracy
         * vec_dots_agree_with_dequantized_dots checks) */
        const melt_dot_traits *t = melt_dot_traits_scalar(types[k]);
        for (int i = 0; i < n_tok; i++)
            for (int64_t r = 0; r < n_out; r++) {
                const void *a = ab ? (const void *)((const uint8_t *)xq + ab * i) : (const void *)(x + n_in * i);
                const float want = t->vec_dot(n_in, wq + r * rb, a);
                if (memcmp(&want, &y1[i * n_out + r], sizeof want) != 0)
                    fail_msg("%s: token %d row %d: matmul %.9g, vec_dot %.9g", melt_type_name(types[k]), i,
                             (int)r, y1[i * n_out + r], want);
            }
        /* the reference family runs the same weights */
        ref->matmul(&w, x, NULL, n_tok, yr, buf, 0, 1);
        for (int i = 0; i < n_tok * n_out; i++) assert_true(isfinite(yr[i]));
        free(wf);
        free(x);
        free(wq);
        free(xq);
    }
}

/* ggml's exp: within 2 ulps of expf where softmax uses it (x <= 0), exact
 * at 0, and the limits right. */
static void kernel_expf_is_within_two_ulps_of_expf(void **state)
{
    (void)state;
    int worst = 0;
    for (float x = -87.0f; x <= 0.0f; x += 0.000731f) {
        const float got = melt_kernel_expf(x), want = expf(x);
        int32_t gi, wi;
        memcpy(&gi, &got, 4);
        memcpy(&wi, &want, 4);
        const int d = abs(gi - wi);
        if (d > worst) worst = d;
    }
    print_message("  kernel expf vs expf on [-87, 0]: worst %d ulps\n", worst);
    assert_true(worst <= 2);
    assert_true(melt_kernel_expf(0.0f) == 1.0f);
    assert_true(melt_kernel_expf(-INFINITY) == 0.0f);
    assert_true(melt_kernel_expf(-200.0f) == 0.0f);
    assert_true(isinf(melt_kernel_expf(200.0f)));
    assert_true(isnan(melt_kernel_expf(NAN)));
}

/* The scalar family's attention (llama.cpp's order, ggml's exp) against
 * the reference attention: the same function, F32 and F16 caches. */
static void scalar_attention_agrees_with_reference(void **state)
{
    (void)state;
    enum { HD = 8, NKV = 37 };
    uint64_t seed = 17;
    float q[HD], kf[NKV * HD], vf[NKV * HD];
    uint16_t kh[NKV * HD], vh[NKV * HD];
    for (int i = 0; i < HD; i++) q[i] = 2 * test_rand_f32(&seed);
    for (int i = 0; i < NKV * HD; i++) {
        kf[i] = 2 * test_rand_f32(&seed);
        vf[i] = test_rand_f32(&seed);
        kh[i] = melt_fp32_to_fp16(kf[i]);
        vh[i] = melt_fp32_to_fp16(vf[i]);
    }
    const melt_ops *ref = melt_ops_ref(), *fast = melt_ops_scalar();
    for (int f16 = 0; f16 <= 1; f16++) {
        melt_kv_view kv = {.f16 = f16, .k = f16 ? (const void *)kh : (const void *)kf,
                           .v = f16 ? (const void *)vh : (const void *)vf, .stride = HD};
        for (int n = 1; n <= NKV; n += 9) {
            float a[HD], b[HD], s1[NKV + HD], s2[NKV + HD];
            ref->attend(a, q, &kv, n, HD, 0.35f, s1);
            fast->attend(b, q, &kv, n, HD, 0.35f, s2);
            for (int d = 0; d < HD; d++)
                if (!(fabsf(a[d] - b[d]) <= (f16 ? 2e-3f : 1e-5f)))
                    fail_msg("%s cache, %d positions, dim %d: scalar %.8g, reference %.8g", f16 ? "f16" : "f32",
                             n, d, b[d], a[d]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q8_0_activation_quantizer_matches_reference_bytes),
        cmocka_unit_test(q8_K_activation_quantizer_matches_reference_bytes),
        cmocka_unit_test(q8_1_activation_quantizer_is_q8_0_plus_sums),
        cmocka_unit_test(vec_dots_agree_with_dequantized_dots),
        cmocka_unit_test(scalar_matmul_is_vec_dot_per_output_for_any_thread_split),
        cmocka_unit_test(kernel_expf_is_within_two_ulps_of_expf),
        cmocka_unit_test(scalar_attention_agrees_with_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
