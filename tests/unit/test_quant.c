/* Scalar conversions, block layouts and reference quantizers
 * (src/model/quant.c). Byte-exactness against llama-quantize is checked on
 * whole files in test_quantize.c; here: conversions, error bounds, edge
 * cases, and threading. */
#include <float.h>
#include <math.h>

#include "testutil.h"

#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* ---- half ---- */

/* The IEEE definition, field by field: the oracle for the fast decoder. */
static uint32_t fp16_bits_by_definition(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return sign | 0x7f800000u | (m ? 0x00400000u | (m << 13) : 0);
    if (e == 0) {
        if (m == 0)
            return sign;
        int ee = 1;
        while (!(m & 0x400u)) {
            m <<= 1;
            ee--;
        }
        return sign | ((uint32_t)(ee + 112) << 23) | ((m & 0x3ffu) << 13);
    }
    return sign | ((e + 112) << 23) | (m << 13);
}

static void fp16_decodes_every_half_as_the_definition(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = melt_fp16_to_fp32((uint16_t)h);
        uint32_t got;
        memcpy(&got, &f, sizeof got);
        uint32_t want = fp16_bits_by_definition((uint16_t)h);
        if (got != want)
            fail_msg("half 0x%04x: got float bits 0x%08x, want 0x%08x", h, got, want);
    }
}

static void fp16_every_half_round_trips(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = melt_fp16_to_fp32((uint16_t)h);
        uint16_t back = melt_fp32_to_fp16(f);
        if (half_is_nan((uint16_t)h)) {
            if (!isnan(f) || !half_is_nan(back) || (back & 0x8000) != (h & 0x8000))
                fail_msg("half NaN 0x%04x: got float 0x%08x, back 0x%04x", h, fbits(f), back);
            /* quiet NaNs keep their payload exactly */
            if ((h & 0x200) && back != h)
                fail_msg("quiet NaN 0x%04x came back as 0x%04x", h, back);
        } else if (back != h) {
            fail_msg("half 0x%04x -> %a -> 0x%04x", h, (double)f, back);
        }
    }
}

static void fp16_converts_known_values(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000},       {-0.0f, 0x8000},        {1.0f, 0x3c00},
        {-2.0f, 0xc000},      {0.5f, 0x3800},         {65504.0f, 0x7bff},
        {0x1p-14f, 0x0400},   {0x1p-24f, 0x0001},     {0x3p-24f, 0x0003},
        {0.1f, 0x2e66},       {1.0f / 3.0f, 0x3555},  {-1.5f, 0xbe00},
        {0x1.ff8p-15f, 0x03ff} /* largest subnormal */,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = melt_fp32_to_fp16(cases[i].f);
        if (got != cases[i].h)
            fail_msg("%a: expected 0x%04x, got 0x%04x", (double)cases[i].f, cases[i].h, got);
        if (cases[i].f == cases[i].f && melt_fp16_to_fp32(cases[i].h) != (float)cases[i].f &&
            cases[i].f != 0.1f && cases[i].f != 1.0f / 3.0f)
            fail_msg("0x%04x: expected %a, got %a", cases[i].h, (double)cases[i].f,
                     (double)melt_fp16_to_fp32(cases[i].h));
    }
    assert_true(melt_fp16_to_fp32(0x7c00) == INFINITY);
    assert_true(melt_fp16_to_fp32(0xfc00) == -INFINITY);
    assert_true(melt_fp16_to_fp32(0x0001) == 0x1p-24f);
}

static void fp16_ties_round_to_even(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f + 0x1p-11f, 0x3c00},         /* tie, even is down */
        {1.0f + 0x3p-11f, 0x3c02},         /* tie, even is up */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie */
        {1.0f + 0x1p-11f - 0x1p-22f, 0x3c00}, /* just below */
        {0x1p-25f, 0x0000},                /* half the smallest subnormal */
        {0x3p-25f, 0x0002},                /* 1.5 ulp, rounds to even 2 */
        {0x5p-25f, 0x0002},                /* 2.5 ulp, rounds to even 2 */
        {0x1.000002p-25f, 0x0001},         /* just above half: rounds up */
        {0x1p-26f, 0x0000},
        {0x1.ffcp-15f, 0x0400},            /* subnormal tie rounds into the normals */
        {-(1.0f + 0x3p-11f), 0xbc02},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = melt_fp32_to_fp16(cases[i].f);
        if (got != cases[i].h)
            fail_msg("%a: expected 0x%04x, got 0x%04x", (double)cases[i].f, cases[i].h, got);
    }
}

static void fp16_overflow_gives_inf_and_nan_stays_nan(void **state)
{
    (void)state;
    assert_int_equal(melt_fp32_to_fp16(65519.996f), 0x7bff);
    assert_int_equal(melt_fp32_to_fp16(65520.0f), 0x7c00); /* tie goes to even = inf */
    assert_int_equal(melt_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(melt_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(melt_fp32_to_fp16(FLT_MAX), 0x7c00);
    assert_int_equal(melt_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(melt_fp32_to_fp16(-INFINITY), 0xfc00);
    uint16_t n = melt_fp32_to_fp16(NAN);
    if (!half_is_nan(n))
        fail_msg("NaN converted to 0x%04x", n);
    /* a NaN whose payload sits only in bits the half drops stays NaN */
    n = melt_fp32_to_fp16(bitsf(0x7f800001u));
    if (!half_is_nan(n))
        fail_msg("NaN 0x7f800001 converted to 0x%04x, expected a NaN", n);
    assert_int_equal(melt_fp32_to_fp16(bitsf(0xffc00000u)) & 0x8000, 0x8000);
}

/* ---- bfloat16 ---- */

static void bf16_every_value_round_trips(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = melt_bf16_to_fp32((uint16_t)h);
        if (fbits(f) != h << 16)
            fail_msg("bf16 0x%04x widened to 0x%08x", h, fbits(f));
        uint16_t back = melt_fp32_to_bf16(f);
        bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan) {
            if (back != (h | 0x40))
                fail_msg("bf16 NaN 0x%04x: expected quiet 0x%04x, got 0x%04x", h, h | 0x40, back);
        } else if (back != h) {
            fail_msg("bf16 0x%04x -> 0x%04x", h, back);
        }
    }
}

static void bf16_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct { uint32_t f; uint16_t h; } cases[] = {
        {0x3f808000u, 0x3f80}, /* tie, even is down */
        {0x3f818000u, 0x3f82}, /* tie, even is up */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x3f807fffu, 0x3f80}, /* below */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x00000001u, 0x0000}, /* subnormals round, not flushed */
        {0x00008000u, 0x0000}, /* tie to even 0 */
        {0x00018000u, 0x0002}, /* tie to even 2 */
        {0x80000000u, 0x8000},
        {0x7f800001u, 0x7fc0}, /* signaling NaN made quiet */
        {0xff800000u, 0xff80},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = melt_fp32_to_bf16(bitsf(cases[i].f));
        if (got != cases[i].h)
            fail_msg("0x%08x: expected 0x%04x, got 0x%04x", cases[i].f, cases[i].h, got);
    }
}

/* ---- block layouts ---- */

static void block_structs_match_type_geometry(void **state)
{
    (void)state;
    static const struct { uint32_t type; size_t size; } blocks[] = {
        {MELT_TYPE_Q4_0, sizeof(melt_block_q4_0)}, {MELT_TYPE_Q4_1, sizeof(melt_block_q4_1)},
        {MELT_TYPE_Q5_0, sizeof(melt_block_q5_0)}, {MELT_TYPE_Q5_1, sizeof(melt_block_q5_1)},
        {MELT_TYPE_Q8_0, sizeof(melt_block_q8_0)}, {MELT_TYPE_Q4_K, sizeof(melt_block_q4_K)},
        {MELT_TYPE_Q5_K, sizeof(melt_block_q5_K)}, {MELT_TYPE_Q6_K, sizeof(melt_block_q6_K)},
        {MELT_TYPE_Q8_K, sizeof(melt_block_q8_K)},
    };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        const melt_type_traits *t = melt_type_traits_of(blocks[i].type);
        assert_non_null(t);
        if (t->block_bytes != blocks[i].size)
            fail_msg("%s: struct is %zu bytes, types.c says %u", t->name, blocks[i].size,
                     t->block_bytes);
    }
}

static void q8_0_block_has_the_expected_bytes(void **state)
{
    (void)state;
    /* x = j - 16 for j in 0..31: amax 16, d = 16/127, q = round(x*127/16) */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    melt_block_q8_0 b;
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q8_0, x, &b, 32), 0);
    assert_int_equal(b.d, melt_fp32_to_fp16(16.0f / 127.0f));
    assert_int_equal(b.qs[0], -127);
    assert_int_equal(b.qs[16], 0);
    assert_int_equal(b.qs[31], 119); /* 15 * 127/16 = 119.06 */
}

static void q4_0_block_has_the_expected_bytes(void **state)
{
    (void)state;
    /* max |x| is -8 at j = 0: d = 1, q = x + 8 */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16) - 8.0f;
    melt_block_q4_0 b;
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q4_0, x, &b, 32), 0);
    assert_int_equal(b.d, 0x3c00);
    for (int j = 0; j < 16; j++)
        if (b.qs[j] != (uint8_t)(j | (j << 4)))
            fail_msg("qs[%d]: expected 0x%02x, got 0x%02x", j, j | (j << 4), b.qs[j]);
}

/* ---- quantize -> dequantize ---- */

typedef struct type_bound {
    uint32_t type;
    double max_rel;   /* max |error| / max |x| of the row */
    double rms_rel;   /* rms error / rms x for gaussian-like rows */
} type_bound;

static const type_bound bounds[] = {
    {MELT_TYPE_F32, 0, 0},
    {MELT_TYPE_F16, 5e-4, 3e-4},
    {MELT_TYPE_BF16, 4e-3, 2.5e-3},
    {MELT_TYPE_Q8_0, 0.0055, 0.007},
    {MELT_TYPE_Q4_0, 0.14, 0.11},
    {MELT_TYPE_Q4_1, 0.085, 0.1},
    {MELT_TYPE_Q5_0, 0.075, 0.055},
    {MELT_TYPE_Q5_1, 0.04, 0.05},
    {MELT_TYPE_Q4_K, 0.13, 0.09},
    {MELT_TYPE_Q5_K, 0.075, 0.047},
    {MELT_TYPE_Q6_K, 0.025, 0.023},
    {MELT_TYPE_Q8_K, 0.005, 0.0085},
};

#define ROW 1024

/* Sum of 4 uniforms: a rough bell shape with occasional larger values. */
static float bell(uint64_t *s)
{
    return (test_rand_f32(s) + test_rand_f32(s) + test_rand_f32(s) + test_rand_f32(s)) * 0.5f;
}

static void roundtrip(uint32_t type, const float *x, float *y, int64_t n)
{
    uint64_t bytes;
    assert_true(melt_type_row_bytes(type, (uint64_t)n, &bytes));
    void *q = malloc(bytes);
    assert_non_null(q);
    assert_int_equal(melt_quantize_row_ref(type, x, q, n), 0);
    assert_int_equal(melt_dequantize_row_ref(type, q, y, n), 0);
    free(q);
}

static void check_row(const type_bound *b, const char *what, const float *x, int64_t n,
                      bool check_rms)
{
    float y[ROW];
    roundtrip(b->type, x, y, n);
    double amax = 0, err_max = 0, se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            fail_msg("%s %s: element %lld dequantized to %g", melt_type_name(b->type), what,
                     (long long)i, (double)y[i]);
        double e = fabs((double)y[i] - (double)x[i]);
        amax = fmax(amax, fabs((double)x[i]));
        err_max = fmax(err_max, e);
        se += e * e;
        sx += (double)x[i] * x[i];
    }
    if (amax == 0) {
        if (err_max != 0)
            fail_msg("%s %s: zero row came back with error %g", melt_type_name(b->type), what,
                     err_max);
        return;
    }
    if (err_max > b->max_rel * amax)
        fail_msg("%s %s: max error %g exceeds %g (= %g x max|x| %g)", melt_type_name(b->type),
                 what, err_max, b->max_rel * amax, b->max_rel, amax);
    if (check_rms && sqrt(se / sx) > b->rms_rel)
        fail_msg("%s %s: rms relative error %g exceeds %g", melt_type_name(b->type), what,
                 sqrt(se / sx), b->rms_rel);
}

static void quantize_dequantize_stays_within_type_error_bound(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    float x[ROW];
    for (size_t t = 0; t < sizeof bounds / sizeof bounds[0]; t++) {
        const type_bound *b = &bounds[t];
        for (int rep = 0; rep < 8; rep++) {
            for (int i = 0; i < ROW; i++)
                x[i] = bell(&seed);
            check_row(b, "bell row", x, ROW, true);
        }
        for (int i = 0; i < ROW; i++)
            x[i] = test_rand_f32(&seed);
        check_row(b, "uniform row", x, ROW, true);
        for (int i = 0; i < ROW; i++)
            x[i] = fabsf(test_rand_f32(&seed)) + 0.5f; /* all positive, offset */
        check_row(b, "positive row", x, ROW, false);
        for (int i = 0; i < ROW; i++)
            x[i] = -fabsf(test_rand_f32(&seed)) - 0.5f;
        check_row(b, "negative row", x, ROW, false);
        for (int i = 0; i < ROW; i++)
            x[i] = bell(&seed) * 3e4f / 4; /* large, still in half range */
        check_row(b, "large row", x, ROW, true);
        for (int i = 0; i < ROW; i++)
            x[i] = bell(&seed) * 1e-2f;
        check_row(b, "small row", x, ROW, true);
        memset(x, 0, sizeof x);
        check_row(b, "zero row", x, ROW, false);
        for (int i = 0; i < ROW; i++)
            x[i] = 0.37f;
        check_row(b, "constant row", x, ROW, false);
        for (int i = 0; i < ROW; i++)
            x[i] = -2.5f;
        check_row(b, "negative constant row", x, ROW, false);
        for (int i = 0; i < ROW; i++)
            x[i] = bell(&seed) * 0.01f;
        x[77] = 1.0f; /* one outlier */
        check_row(b, "outlier row", x, ROW, false);
    }
}

static void tiny_values_stay_finite_and_tiny(void **state)
{
    (void)state;
    uint64_t seed = 7;
    float x[ROW], y[ROW];
    for (size_t t = 0; t < sizeof bounds / sizeof bounds[0]; t++) {
        for (int i = 0; i < ROW; i++)
            x[i] = test_rand_f32(&seed) * 1e-30f;
        roundtrip(bounds[t].type, x, y, ROW);
        for (int i = 0; i < ROW; i++)
            if (!isfinite(y[i]) || fabsf(y[i]) > 1e-29f)
                fail_msg("%s: %g came back as %g", melt_type_name(bounds[t].type), (double)x[i],
                         (double)y[i]);
    }
}

static void dequantize_then_quantize_is_idempotent(void **state)
{
    (void)state;
    /* Types whose re-quantization of their own output reproduces it. */
    static const uint32_t types[] = {MELT_TYPE_F16, MELT_TYPE_BF16, MELT_TYPE_Q8_0,
                                     MELT_TYPE_Q4_0, MELT_TYPE_Q5_0};
    uint64_t seed = 99;
    float x[ROW], y1[ROW], y2[ROW];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int rep = 0; rep < 4; rep++) {
            for (int i = 0; i < ROW; i++)
                x[i] = bell(&seed) * (rep + 1);
            roundtrip(types[t], x, y1, ROW);
            roundtrip(types[t], y1, y2, ROW);
            for (int i = 0; i < ROW; i++)
                if (fbits(y1[i]) != fbits(y2[i]))
                    fail_msg("%s: element %d was %a after one pass, %a after two",
                             melt_type_name(types[t]), i, (double)y1[i], (double)y2[i]);
        }
    }
}

static void row_functions_reject_bad_arguments(void **state)
{
    (void)state;
    float x[64] = {0};
    uint8_t y[512];
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q4_K, x, y, 64), MELT_EINVAL);
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q8_0, x, y, 33), MELT_EINVAL);
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q8_0, x, y, -32), MELT_EINVAL);
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_IQ2_XS, x, y, 256), MELT_EUNSUPPORTED);
    assert_int_equal(melt_quantize_row_ref(999, x, y, 32), MELT_EUNSUPPORTED);
    assert_int_equal(melt_dequantize_row_ref(MELT_TYPE_Q6_K, y, x, 32), MELT_EINVAL);
    assert_int_equal(melt_dequantize_row_ref(MELT_TYPE_Q3_K, y, x, 256), MELT_EUNSUPPORTED);
    assert_int_equal(melt_quantize_row_ref(MELT_TYPE_Q8_0, x, y, 0), 0);
    assert_int_equal(melt_quantize_rows(MELT_TYPE_Q4_K, x, y, 1, 64, 1), MELT_EINVAL);
    assert_int_equal(melt_quantize_rows(MELT_TYPE_IQ4_NL, x, y, 1, 32, 1), MELT_EUNSUPPORTED);
    assert_true(melt_type_supported(MELT_TYPE_Q6_K));
    assert_false(melt_type_supported(MELT_TYPE_Q2_K));
}

/* ---- threads ---- */

static void rows_bytes_do_not_depend_on_thread_count(void **state)
{
    (void)state;
    static const uint32_t types[] = {MELT_TYPE_F16, MELT_TYPE_BF16, MELT_TYPE_Q8_0,
                                     MELT_TYPE_Q4_0, MELT_TYPE_Q5_0, MELT_TYPE_Q5_1,
                                     MELT_TYPE_Q4_K, MELT_TYPE_Q5_K, MELT_TYPE_Q6_K};
    const int64_t n_rows = 67, n_per_row = 2048; /* enough work for 8 threads */
    static const int threads[] = {2, 3, 8, 0, 200};
    float *x = malloc((size_t)(n_rows * n_per_row) * sizeof *x);
    assert_non_null(x);
    uint64_t seed = 12345;
    for (int64_t i = 0; i < n_rows * n_per_row; i++)
        x[i] = bell(&seed);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint64_t row_bytes;
        assert_true(melt_type_row_bytes(types[t], (uint64_t)n_per_row, &row_bytes));
        size_t total = (size_t)(row_bytes * (uint64_t)n_rows);
        uint8_t *ref = malloc(total), *got = malloc(total);
        assert_non_null(ref);
        assert_non_null(got);
        for (int64_t r = 0; r < n_rows; r++)
            assert_int_equal(melt_quantize_row_ref(types[t], x + r * n_per_row,
                                                   ref + (size_t)r * row_bytes, n_per_row), 0);
        for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
            memset(got, 0xa5, total);
            assert_int_equal(melt_quantize_rows(types[t], x, got, n_rows, n_per_row,
                                                threads[k]), 0);
            if (memcmp(ref, got, total) != 0) {
                size_t i = 0;
                while (ref[i] == got[i])
                    i++;
                fail_msg("%s with %d threads: byte %zu is 0x%02x, one row at a time gives 0x%02x",
                         melt_type_name(types[t]), threads[k], i, got[i], ref[i]);
            }
        }
        free(ref);
        free(got);
    }
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fp16_decodes_every_half_as_the_definition),
        cmocka_unit_test(fp16_every_half_round_trips),
        cmocka_unit_test(fp16_converts_known_values),
        cmocka_unit_test(fp16_ties_round_to_even),
        cmocka_unit_test(fp16_overflow_gives_inf_and_nan_stays_nan),
        cmocka_unit_test(bf16_every_value_round_trips),
        cmocka_unit_test(bf16_rounds_to_nearest_even),
        cmocka_unit_test(block_structs_match_type_geometry),
        cmocka_unit_test(q8_0_block_has_the_expected_bytes),
        cmocka_unit_test(q4_0_block_has_the_expected_bytes),
        cmocka_unit_test(quantize_dequantize_stays_within_type_error_bound),
        cmocka_unit_test(tiny_values_stay_finite_and_tiny),
        cmocka_unit_test(dequantize_then_quantize_is_idempotent),
        cmocka_unit_test(row_functions_reject_bad_arguments),
        cmocka_unit_test(rows_bytes_do_not_depend_on_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
