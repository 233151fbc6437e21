/* Every kernel family this CPU has, against the reference family and
 * against the scalar family it copies: a plain program with its own
 * checks (no cmocka), so it can be cross-built for aarch64 (make
 * kernels-cross-aarch64) and run under qemu-aarch64-static, with and
 * without the dot product extension (tests/integration/test_neon.sh). It
 * builds and runs natively too (make kernels-cross-native).
 *
 *   test_kernels_cross [--dotprod yes|no] [--fixtures DIR [--dump-logits FILE]]
 *
 * --dotprod states whether the CPU is expected to have the extension (the
 * qemu -cpu model); --fixtures is tests/fixtures for the whole-model
 * checks; --dump-logits writes the AUTO family's logits of the fixture
 * models to FILE (raw floats) for a comparison across machines. Prints "ok NAME" / "FAIL NAME" lines, then "N passed, N failed";
 * exits 1 when a check failed.
 *
 * What is checked:
 *   - which families exist, and that AUTO picks the best one;
 *   - the NEON activation quantizers give the scalar bytes;
 *   - NEON vec_dots and matmuls of several tokens on raw blocks (every
 *     byte random, activations all -128 or 127, quants near their
 *     largest, the largest scales) equal the scalar vec_dots bit for
 *     bit, and the F32 / F16 / BF16 dots for every length up to 300;
 *   - every family's matmul (odd row counts, 1..5 tokens, 1..3 threads)
 *     against the reference family within the activation-quantization
 *     bound, and against the scalar family bit for bit (F16 and BF16:
 *     within double rounding);
 *   - whole forward passes on the fixtures: logits of every family equal
 *     the scalar family's bit for bit. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/neon.h"
#include "engine/kernels/vec_dot.h"
#include "engine/ops.h"
#include "melt/cpu.h"
#include "melt/engine.h"
#include "melt/quant.h"
#include "melt/types.h"
#include "model/quant_blocks.h"

static int n_pass, n_fail;

/* Records one check; detail (may be empty) is printed under a failure. */
static bool check(bool ok, const char *detail, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (!ok && detail && *detail) printf("     %s\n", detail);
    if (ok) n_pass++;
    else n_fail++;
    return ok;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_kernels_cross: out of memory\n");
        exit(2);
    }
    return p;
}

/* xorshift64* */
static uint64_t rnd_u64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static float rnd_f32(uint64_t *s)   /* uniform in [-1, 1) */
{
    return (float)((rnd_u64(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Random floats of varied magnitude (a scale per 16 elements), with a
 * few zeros and negated repeats (ties in the max search). */
static void fill(float *x, int64_t n, uint64_t *seed)
{
    float scale = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i % 16 == 0) scale = ldexpf(1.0f, (int)(rnd_u64(seed) % 9) - 4);
        x[i] = rnd_f32(seed) * scale;
        const uint64_t r = rnd_u64(seed) % 64;
        if (r == 0) x[i] = 0;
        if (r == 1 && i > 0) x[i] = -x[i - 1];
    }
}

static bool same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static const uint32_t all_types[] = {
    MELT_TYPE_Q4_0, MELT_TYPE_Q4_1, MELT_TYPE_Q5_0, MELT_TYPE_Q5_1, MELT_TYPE_Q8_0, MELT_TYPE_Q4_K,
    MELT_TYPE_Q5_K, MELT_TYPE_Q6_K, MELT_TYPE_F16,  MELT_TYPE_BF16, MELT_TYPE_F32,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Types every SIMD family computes bit for bit as the scalar one. */
static bool exact_type(uint32_t t)
{
    return t != MELT_TYPE_F16 && t != MELT_TYPE_BF16;
}

static int64_t block_of(uint32_t t)
{
    const uint32_t b = melt_type_traits_of(t)->block_elems;
    return b > 1 ? b : 1;
}

/* ---- families ---- */

static const struct {
    const char *name;
    enum melt_kernels kernels;
} families[] = {
    {"scalar", MELT_KERNELS_SCALAR}, {"avx2", MELT_KERNELS_AVX2}, {"avx512", MELT_KERNELS_AVX512},
    {"neon", MELT_KERNELS_NEON},     {"neon-dotprod", MELT_KERNELS_NEON_DOTPROD},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

static void test_selection(int want_dotprod, const char *fixtures)
{
    char buf[256], detail[512];
    printf("# cpu features: %s\n", melt_cpu_features_str(melt_cpu_detect(), buf, sizeof buf));
    const melt_ops *best = NULL;
    for (size_t i = 0; i < N_FAMILIES; i++) {
        const melt_ops *ops = melt_ops_select((int)families[i].kernels);
        printf("# family %s: %s\n", families[i].name, ops ? "available" : "not available on this CPU");
        if (ops) {
            snprintf(detail, sizeof detail, "its ops are named '%s'", ops->name);
            check(strcmp(ops->name, families[i].name) == 0, detail, "family %s is named so",
                  families[i].name);
            if (i > 0) best = ops;   /* later entries are faster on their architecture */
        }
    }
    if (!best) best = melt_ops_scalar();
    const melt_ops *autop = melt_ops_select(MELT_KERNELS_AUTO);
    snprintf(detail, sizeof detail, "AUTO is '%s', expected '%s'", autop ? autop->name : "NULL",
             best->name);
    check(autop == best, detail, "AUTO picks the fastest available family (%s)", best->name);

#if defined(__aarch64__)
    check(melt_ops_neon() != NULL, "", "aarch64: the neon family is available");
    check(melt_ops_select(MELT_KERNELS_AVX2) == NULL, "", "aarch64: no avx2 family");
#else
    check(melt_ops_neon() == NULL && melt_ops_neon_dotprod() == NULL &&
              melt_vec_dot_neon(MELT_TYPE_Q4_0, false) == NULL,
          "", "not aarch64: no neon families, no neon vec_dots");
#endif
    if (want_dotprod >= 0) {
        const bool has = melt_ops_neon_dotprod() != NULL;
        snprintf(detail, sizeof detail, "neon-dotprod %s, CPU features: %s",
                 has ? "available" : "not available", buf);
        check(has == (want_dotprod == 1), detail, "neon-dotprod is %savailable, as expected",
              want_dotprod ? "" : "not ");
        check((melt_vec_dot_neon(MELT_TYPE_Q8_0, true) != NULL) == (want_dotprod == 1), "",
              "dotprod vec_dots %savailable, as expected", want_dotprod ? "" : "not ");
    }

    /* MELT_KERNELS names both families */
    setenv("MELT_KERNELS", "neon", 1);
    const enum melt_kernels k1 = melt_model_default_params().kernels;
    setenv("MELT_KERNELS", "neon-dotprod", 1);
    const enum melt_kernels k2 = melt_model_default_params().kernels;
    unsetenv("MELT_KERNELS");
    check(k1 == MELT_KERNELS_NEON && k2 == MELT_KERNELS_NEON_DOTPROD, "",
          "MELT_KERNELS=neon and =neon-dotprod select the families");

    /* a family the CPU lacks: loading fails with a clear message */
    if (!fixtures) return;
    for (size_t i = 0; i < N_FAMILIES; i++) {
        if (melt_ops_select((int)families[i].kernels)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", fixtures);
        melt_model_params mp = melt_model_default_params();
        mp.kernels = families[i].kernels;
        melt_model *m = NULL;
        melt_error e = {0};
        const int rc = melt_model_load(path, &mp, &m, &e);
        snprintf(detail, sizeof detail, "rc %d, message '%.300s'", rc, e.msg);
        const bool clear = strstr(e.msg, families[i].name) && strstr(e.msg, "not supported by this CPU");
        check(rc < 0 && !m && clear, detail,
              "loading with the unavailable family %s fails with a clear message", families[i].name);
        if (m) melt_model_free(m);
    }
}

/* ---- activation quantizers ---- */

static void test_act_quantizers(void)
{
    static const uint32_t wtypes[] = {MELT_TYPE_Q4_0, MELT_TYPE_Q4_1, MELT_TYPE_Q4_K, MELT_TYPE_F16,
                                      MELT_TYPE_BF16};
    if (!melt_ops_neon()) {
        printf("# activation quantizers: no neon family here, skipped\n");
        return;
    }
    const int64_t n = 256 * 5;
    float *x = xmalloc((size_t)n * sizeof *x);
    uint64_t seed = 0xac7;
    for (size_t k = 0; k < sizeof wtypes / sizeof wtypes[0]; k++) {
        const uint32_t t = wtypes[k];
        const melt_dot_traits *tr = melt_dot_traits_scalar(t);
        const melt_act_from_f32_fn fast = melt_act_from_f32_neon(t);
        const size_t rb = melt_dot_act_row_bytes(t, n);
        uint8_t *want = xmalloc(rb), *got = xmalloc(rb);
        char detail[256] = "";
        bool ok = fast != NULL;
        for (int rep = 0; rep < 8 && ok; rep++) {
            fill(x, n, &seed);
            for (int j = 0; j < 256; j++) x[j] = 0;   /* an all-zero block */
            /* ties: amax 127 gives d = 1 (q8_0/q8_1), halves round away from 0;
             * max -127 gives iscale 1 (q8_K), halves round to even */
            for (int j = 0; j < 32; j++) x[256 + j] = (float)(j - 16) + 0.5f;
            x[256 + 5] = 127;
            for (int j = 0; j < 256; j++) x[512 + j] = (float)((j % 40) - 20) + 0.5f;
            x[512 + 7] = -127;
            x[512 + 9] = 127;   /* same magnitude later: the first one counts */
            if (rep % 2) for (int64_t j = 768; j < n; j++) x[j] *= 1e-30f;   /* tiny scales */
            memset(want, 0xAA, rb);
            memset(got, 0x55, rb);
            tr->from_f32(x, want, n);
            fast(x, got, n);
            if (memcmp(want, got, rb) != 0) {
                size_t b = 0;
                while (want[b] == got[b]) b++;
                snprintf(detail, sizeof detail, "rep %d: byte %zu is 0x%02x, scalar gives 0x%02x", rep, b,
                         got[b], want[b]);
                ok = false;
            }
        }
        check(ok, detail, "neon activation conversion for %s weights (%s) gives the scalar bytes",
              melt_type_name(t), melt_type_name(tr->act_type));
        free(want);
        free(got);
    }
    free(x);
}

/* ---- vec_dots on raw blocks ---- */

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

/* A random finite half with biased exponent in [lo, hi]. */
static uint16_t rand_half(uint64_t *seed, int lo, int hi)
{
    const uint64_t r = rnd_u64(seed);
    const int e = lo + (int)(r % (uint64_t)(hi - lo + 1));
    return (uint16_t)(((r >> 20) & 0x8000u) | ((unsigned)e << 10) | ((r >> 32) & 0x3ffu));
}

/* Every byte random (int8 quants reach -128), or with skew every quant
 * near its largest value (block sums of 14 bits and more, whose products
 * with the scales round: the order of the F32 operations shows); the
 * halves d (and m/dmin) moderate or the largest. */
static void raw_weights(uint32_t t, int64_t n, uint64_t *seed, bool max, bool skew, uint8_t *w)
{
    uint64_t bytes = 0;
    melt_type_row_bytes(t, (uint64_t)n, &bytes);
    for (uint64_t i = 0; i < bytes; i++) {
        const uint8_t b = (uint8_t)(rnd_u64(seed) >> 56);
        w[i] = !skew ? b : t == MELT_TYPE_Q8_0 ? (uint8_t)(0x70 | (b & 0x0F)) : (uint8_t)(b | 0xEE);
    }
    size_t bs = melt_type_traits_of(t)->block_bytes, off[2] = {0, 2};
    const bool has_m = t == MELT_TYPE_Q4_1 || t == MELT_TYPE_Q5_1 || t == MELT_TYPE_Q4_K || t == MELT_TYPE_Q5_K;
    const int nh = has_m ? 2 : 1;
    if (t == MELT_TYPE_Q6_K) off[0] = 208;
    for (uint64_t b = 0; b < bytes / bs; b++)
        for (int h = 0; h < nh; h++) put16(w + b * bs + off[h], max ? 0x7bff : rand_half(seed, 10, 20));
}

/* Activations of t's dot type: quants all q (-128 or 127), random (q = 0;
 * with random bsums for q8_K) or random in 96..127 (q = 1), scales
 * moderate or the largest that cannot overflow. */
static void raw_acts(uint32_t t, int64_t n, uint64_t *seed, int q, bool max, uint8_t *a)
{
    const melt_dot_traits *tr = melt_dot_traits_scalar(t);
    const size_t bytes = melt_dot_act_row_bytes(t, n);
    for (size_t i = 0; i < bytes; i++) {
        const uint8_t b = (uint8_t)(rnd_u64(seed) >> 56);
        a[i] = q == 1 ? (uint8_t)(96 | (b & 31)) : b;
    }
    if (q == 1) q = 0;   /* keep those quants (the scales are set below) */
    if (tr->act_type == MELT_TYPE_Q8_K) {
        melt_block_q8_K *y = (melt_block_q8_K *)a;
        for (int64_t b = 0; b < n / 256; b++) {
            y[b].d = max ? 3.0e38f / 65504.0f / 127.0f / 64.0f : 0.01f * rnd_f32(seed);
            if (!q) continue;
            memset(y[b].qs, q, sizeof y[b].qs);
            for (int j = 0; j < 16; j++) y[b].bsums[j] = (int16_t)(16 * q);
        }
        return;
    }
    const size_t bs = tr->act_type == MELT_TYPE_Q8_1 ? 36 : 34;
    for (size_t b = 0; b < bytes / bs; b++) {
        uint8_t *blk = a + b * bs;
        put16(blk, max ? 0x7bff : rand_half(seed, 8, 18));
        if (bs == 36) put16(blk + 2, max ? 0xfbff : rand_half(seed, 8, 18));
        if (q) memset(blk + bs - 32, q, 32);
    }
}

static void test_raw_vec_dots(void)
{
    static const int qs[] = {0, -128, 127, 1};
    static const char *act_names[] = {"random", "all -128", "all 127", "96..127 (weights near max)"};
    for (int dp = 0; dp < 2; dp++) {
        if (!melt_vec_dot_neon(MELT_TYPE_Q8_0, dp)) {
            printf("# raw vec_dots %s: not available here, skipped\n", dp ? "neon-dotprod" : "neon");
            continue;
        }
        uint64_t seed = 0xabcdef + (uint64_t)dp;
        for (size_t k = 0; k < N_TYPES; k++) {
            const uint32_t t = all_types[k];
            if (block_of(t) == 1) continue;
            const melt_vec_dot_fn fast = melt_vec_dot_neon(t, dp);
            const melt_vec_dot_fn slow = melt_dot_traits_scalar(t)->vec_dot;
            char detail[256] = "";
            bool ok = fast != NULL;
            int cases = 0;
            for (int64_t nb = 1; nb <= 19 && ok; nb += 3) {
                const int64_t n = nb * block_of(t);
                uint64_t wb = 0;
                melt_type_row_bytes(t, (uint64_t)n, &wb);
                uint8_t *w = xmalloc(wb), *a = xmalloc(melt_dot_act_row_bytes(t, n));
                for (size_t qi = 0; qi < 4 && ok; qi++)
                    for (int max = 0; max < 2 && ok; max++, cases++) {
                        raw_weights(t, n, &seed, max, qs[qi] == 1, w);
                        raw_acts(t, n, &seed, qs[qi], max, a);
                        const float want = slow(n, w, a), got = fast(n, w, a);
                        if (!same_bits(want, got)) {
                            snprintf(detail, sizeof detail,
                                     "n %lld, activations %s, %s scales: scalar %.9g, neon %.9g",
                                     (long long)n, act_names[qi], max ? "max" : "moderate", (double)want,
                                     (double)got);
                            ok = false;
                        }
                    }
                free(w);
                free(a);
            }
            check(ok, detail, "%s %s vec_dot equals scalar on raw blocks (%d cases)",
                  dp ? "neon-dotprod" : "neon", melt_type_name(t), cases);
        }
    }
}

/* The families' matmuls (rows dotted with several tokens at a time) on
 * raw blocks: 3 rows against 1..6 activation rows of every raw kind at
 * once, each output bit for bit the scalar vec_dot of its row and token. */
static void test_raw_matmuls(void)
{
    static const int qs[] = {0, -128, 127, 1, 1, 0};
    const melt_ops *fams[2] = {melt_ops_neon(), melt_ops_neon_dotprod()};
    for (int f = 0; f < 2; f++) {
        if (!fams[f]) continue;
        uint64_t seed = 0x3a7 + (uint64_t)f;
        for (size_t k = 0; k < N_TYPES; k++) {
            const uint32_t t = all_types[k];
            if (block_of(t) == 1) continue;
            const melt_vec_dot_fn slow = melt_dot_traits_scalar(t)->vec_dot;
            char detail[256] = "";
            bool ok = true;
            for (int max = 0; max < 2 && ok; max++)
                for (int n_tok = 1; n_tok <= 6 && ok; n_tok++) {
                    const int64_t n = 5 * block_of(t), n_out = 3;
                    uint64_t rb = 0;
                    melt_type_row_bytes(t, (uint64_t)n, &rb);
                    const size_t ab = melt_dot_act_row_bytes(t, n);
                    uint8_t *w = xmalloc(rb * n_out), *a = xmalloc(ab * (size_t)n_tok);
                    for (int r = 0; r < n_out; r++) raw_weights(t, n, &seed, max, r == 1, w + rb * r);
                    for (int i = 0; i < n_tok; i++) raw_acts(t, n, &seed, qs[i], max, a + ab * i);
                    const melt_weight wt = {.type = t, .n_in = n, .n_out = n_out, .row_bytes = rb, .data = w};
                    float *y = xmalloc((size_t)n_tok * n_out * sizeof *y), *buf = xmalloc((size_t)n * 4);
                    fams[f]->matmul(&wt, buf, a, n_tok, y, buf, 0, 1);
                    for (int i = 0; i < n_tok && ok; i++)
                        for (int r = 0; r < n_out && ok; r++) {
                            const float want = slow(n, w + rb * r, a + ab * i), got = y[i * n_out + r];
                            if (!same_bits(want, got)) {
                                snprintf(detail, sizeof detail, "%d tokens, token %d row %d, %s scales: "
                                         "scalar %.9g, %s %.9g", n_tok, i, r, max ? "max" : "moderate",
                                         (double)want, fams[f]->name, (double)got);
                                ok = false;
                            }
                        }
                    free(w);
                    free(a);
                    free(y);
                    free(buf);
                }
            check(ok, detail, "%s %s matmul of 1..6 tokens equals scalar vec_dots on raw blocks",
                  fams[f]->name, melt_type_name(t));
        }
    }
}

/* The F32 dot for every length 1..300 (both code paths and every tail),
 * bit for bit; F16 / BF16 within the double-rounding bound. */
static void test_plain_dots(void)
{
    if (!melt_ops_neon()) {
        printf("# f32/f16/bf16 neon dots: no neon family here, skipped\n");
        return;
    }
    static const uint32_t types[] = {MELT_TYPE_F32, MELT_TYPE_F16, MELT_TYPE_BF16};
    for (size_t k = 0; k < 3; k++) {
        const uint32_t t = types[k];
        const melt_vec_dot_fn fast = melt_vec_dot_neon(t, false), slow = melt_dot_traits_scalar(t)->vec_dot;
        uint64_t seed = 77 + k;
        char detail[256] = "";
        bool ok = fast != NULL;
        for (int64_t n = 1; n <= 300 && ok; n++) {
            float *x = xmalloc((size_t)n * sizeof *x), *y = xmalloc((size_t)n * sizeof *y);
            fill(x, n, &seed);
            fill(y, n, &seed);
            float want, got;
            double tol = 0;
            if (t == MELT_TYPE_F32) {
                want = slow(n, x, y);
                got = fast(n, x, y);
            } else {
                uint16_t *hx = xmalloc((size_t)n * 2), *hy = xmalloc((size_t)n * 2);
                melt_quantize_row_ref(t, x, hx, n);
                melt_quantize_row_ref(t, y, hy, n);
                float *dx = xmalloc((size_t)n * 4), *dy = xmalloc((size_t)n * 4);
                melt_dequantize_row_ref(t, hx, dx, n);
                melt_dequantize_row_ref(t, hy, dy, n);
                double mag = 0;
                for (int64_t i = 0; i < n; i++) mag += fabs((double)dx[i] * dy[i]);
                want = slow(n, hx, hy);
                got = fast(n, hx, hy);
                tol = ldexp(fabs((double)want), -23) + (double)n * ldexp(mag, -52);
                free(hx);
                free(hy);
                free(dx);
                free(dy);
            }
            if (t == MELT_TYPE_F32 ? !same_bits(want, got) : !(fabs((double)want - got) <= tol)) {
                snprintf(detail, sizeof detail, "n %lld: scalar %.9g, neon %.9g (allowed %.3g)",
                         (long long)n, (double)want, (double)got, tol);
                ok = false;
            }
            free(x);
            free(y);
        }
        check(ok, detail, "neon %s dot %s scalar for every length 1..300", melt_type_name(t),
              t == MELT_TYPE_F32 ? "equals" : "is within double rounding of");
    }
}

/* ---- matmul against the reference and the scalar family ---- */

/* Dequantized activation row a (the family's conversion of x) into xd. */
static void act_dequant(uint32_t wtype, const void *a, const float *x, int64_t n, float *xd)
{
    const melt_dot_traits *tr = melt_dot_traits_scalar(wtype);
    if (!tr->from_f32) {
        memcpy(xd, x, (size_t)n * sizeof *xd);
    } else if (tr->act_type == MELT_TYPE_Q8_1) {
        const melt_block_q8_1 *b = a;
        for (int64_t i = 0; i < n; i++)
            xd[i] = melt_fp16_to_fp32(b[i / 32].d) * (float)b[i / 32].qs[i % 32];
    } else {
        melt_dequantize_row_ref(tr->act_type, a, xd, n);
    }
}

/* The bound of tests/unit/test_kernels.c's check_dot: a family's output
 * and the exact dot of the weights with the original activations differ
 * by at most the activation quantization error sum |w_i| |x_i - xd_i|,
 * plus F32 rounding (n 2^-22 of sum |w_i xd_i|), plus for q8_1 the F16
 * rounding of the sums s. */
static double ref_bound(uint32_t t, const uint8_t *wrow, const float *wd, const float *x, const float *xd,
                        const void *a, int64_t n, double ref)
{
    double mag = 0, qerr = 0, extra = 0;
    for (int64_t i = 0; i < n; i++) {
        mag += fabs((double)wd[i] * xd[i]);
        qerr += fabs((double)wd[i]) * fabs((double)x[i] - xd[i]);
    }
    if (melt_dot_traits_scalar(t)->act_type == MELT_TYPE_Q8_1) {
        const size_t wblock = melt_type_traits_of(t)->block_bytes;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t m;
            memcpy(&m, wrow + (size_t)b * wblock + 2, 2);
            const melt_block_q8_1 *qb = (const melt_block_q8_1 *)a + b;
            extra += fabs(melt_fp16_to_fp32(m)) * fabs(melt_fp16_to_fp32(qb->s)) * ldexp(1.0, -9);
        }
    }
    return qerr + (double)n * ldexp(1.0, -22) * mag + extra + 1e-6 * fabs(ref) + 1e-30;
}

typedef struct shape {
    int64_t n_in;
    int n_out, n_tok;
} shape;

/* One family, one type, one shape: its matmul run split over 1..3
 * threads (equal for every split), against ref and scalar. Returns false
 * with detail filled on the first mismatch. */
static bool matmul_case(const melt_ops *fam, uint32_t t, shape s, uint64_t *seed, bool *ref_ok,
                        bool *scalar_ok, char *detail, size_t dn)
{
    const melt_ops *ref = melt_ops_ref(), *sc = melt_ops_scalar();
    const int64_t n_in = s.n_in;
    uint64_t rb = 0;
    melt_type_row_bytes(t, (uint64_t)n_in, &rb);
    uint8_t *wq = xmalloc(rb * (size_t)s.n_out);
    float *wf = xmalloc((size_t)n_in * sizeof *wf), *wd = xmalloc((size_t)n_in * s.n_out * sizeof *wd);
    for (int r = 0; r < s.n_out; r++) {
        fill(wf, n_in, seed);
        melt_quantize_row_ref(t, wf, wq + (size_t)r * rb, n_in);
        melt_dequantize_row_ref(t, wq + (size_t)r * rb, wd + (size_t)r * n_in, n_in);
    }
    melt_weight w = {.type = t, .n_in = n_in, .n_out = s.n_out, .row_bytes = rb, .data = wq};
    snprintf(w.name, sizeof w.name, "test.%s", melt_type_name(t));
    float *x = xmalloc((size_t)s.n_tok * n_in * sizeof *x);
    fill(x, s.n_tok * n_in, seed);
    const size_t ab = fam->act_row_bytes ? fam->act_row_bytes(t, n_in) : 0;
    const size_t ab_s = sc->act_row_bytes(t, n_in);
    uint8_t *xq = ab ? xmalloc(ab * (size_t)s.n_tok) : NULL;
    uint8_t *xq_s = ab_s ? xmalloc(ab_s * (size_t)s.n_tok) : NULL;
    if (ab)   /* converted by two "threads" */
        for (int ith = 0; ith < 2; ith++) fam->act_convert(t, x, s.n_tok, n_in, xq, ith, 2);
    if (ab_s) sc->act_convert(t, x, s.n_tok, n_in, xq_s, 0, 1);
    const size_t ny = (size_t)s.n_tok * s.n_out;
    float *y = xmalloc(ny * sizeof *y), *y1 = xmalloc(ny * sizeof *y1), *yr = xmalloc(ny * sizeof *yr);
    float *ys = xmalloc(ny * sizeof *ys), *buf = xmalloc((size_t)n_in * sizeof *buf);
    float *xd = xmalloc((size_t)n_in * sizeof *xd);
    bool ok = true;
    for (int nth = 1; nth <= 3 && ok; nth++) {
        memset(y, 0xff, ny * sizeof *y);
        for (int ith = 0; ith < nth; ith++) fam->matmul(&w, x, xq, s.n_tok, y, buf, ith, nth);
        if (nth == 1) memcpy(y1, y, ny * sizeof *y);
        else if (memcmp(y1, y, ny * sizeof *y) != 0) {
            snprintf(detail, dn, "%s n_in %lld n_out %d n_tok %d: %d threads differ from 1",
                     melt_type_name(t), (long long)n_in, s.n_out, s.n_tok, nth);
            ok = *ref_ok = false;
        }
    }
    ref->matmul(&w, x, NULL, s.n_tok, yr, buf, 0, 1);
    sc->matmul(&w, x, xq_s, s.n_tok, ys, buf, 0, 1);
    for (int i = 0; i < s.n_tok && ok; i++) {
        const void *a = ab ? (const void *)(xq + ab * (size_t)i) : NULL;
        act_dequant(t, a, x + i * n_in, n_in, xd);
        for (int r = 0; r < s.n_out && ok; r++) {
            const size_t k = (size_t)i * s.n_out + r;
            const float *wr = wd + (size_t)r * n_in;
            const double tol = ref_bound(t, wq + (size_t)r * rb, wr, x + i * n_in, xd, a, n_in, yr[k]);
            if (*ref_ok && !(fabs((double)y1[k] - yr[k]) <= tol)) {
                snprintf(detail, dn, "%s n_in %lld token %d row %d: %s %.9g, ref %.9g, |diff| %.3g > %.3g",
                         melt_type_name(t), (long long)n_in, i, r, fam->name, (double)y1[k], (double)yr[k],
                         fabs((double)y1[k] - yr[k]), tol);
                ok = *ref_ok = false;
            }
            double stol = 0;
            if (!exact_type(t)) {   /* double rounding of the sum of exact products */
                double mag = 0;
                for (int64_t e = 0; e < n_in; e++) mag += fabs((double)wr[e] * xd[e]);
                stol = ldexp(fabs((double)ys[k]), -23) + (double)n_in * ldexp(mag, -52);
            }
            const bool same = exact_type(t) ? same_bits(ys[k], y1[k]) : fabs((double)ys[k] - y1[k]) <= stol;
            if (*scalar_ok && !same) {
                snprintf(detail, dn, "%s n_in %lld token %d row %d: %s %.9g, scalar %.9g (allowed %.3g)",
                         melt_type_name(t), (long long)n_in, i, r, fam->name, (double)y1[k], (double)ys[k],
                         stol);
                ok = *scalar_ok = false;
            }
        }
    }
    free(wq);
    free(wf);
    free(wd);
    free(x);
    free(xq);
    free(xq_s);
    free(y);
    free(y1);
    free(yr);
    free(ys);
    free(buf);
    free(xd);
    return ok;
}

static void test_matmuls(void)
{
    static const int n_outs[] = {1, 5, 17};
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const melt_ops *fam = melt_ops_select((int)families[f].kernels);
        if (!fam) continue;
        for (size_t k = 0; k < N_TYPES; k++) {
            const uint32_t t = all_types[k];
            int64_t n_ins[4];
            if (block_of(t) == 256) {
                n_ins[0] = 256, n_ins[1] = 512, n_ins[2] = 768, n_ins[3] = 1280;
            } else if (block_of(t) == 32) {
                n_ins[0] = 32, n_ins[1] = 96, n_ins[2] = 160, n_ins[3] = 288;
            } else {   /* plain types: lengths with and without tails */
                n_ins[0] = 37, n_ins[1] = 96, n_ins[2] = 200, n_ins[3] = 288;
            }
            uint64_t seed = 1000 + 17 * k + f;
            bool ref_ok = true, scalar_ok = true;
            char detail[384] = "";
            int cases = 0;
            /* 12 shapes: every n_in with every n_out, token counts 1..5 in turn */
            for (int a = 0; a < 4; a++)
                for (int o = 0; o < 3; o++, cases++) {
                    const shape s = {n_ins[a], n_outs[o], 1 + (3 * a + o) % 5};
                    if (!matmul_case(fam, t, s, &seed, &ref_ok, &scalar_ok, detail, sizeof detail))
                        goto done;
                }
        done:
            if (fam != melt_ops_scalar())
                check(scalar_ok, scalar_ok ? "" : detail, "%s %s matmul %s the scalar family's (%d shapes)",
                      fam->name, melt_type_name(t), exact_type(t) ? "equals" : "is within rounding of",
                      cases);
            check(ref_ok, ref_ok ? "" : detail, "%s %s matmul agrees with the reference family (%d shapes)",
                  fam->name, melt_type_name(t), cases);
        }
    }
}

/* ---- whole forward passes on the fixtures ---- */

static float *logits_of(const char *path, enum melt_kernels k, enum melt_kv_type kv, int *n_out, char *err,
                        size_t en)
{
    melt_model_params mp = melt_model_default_params();
    mp.kernels = k;
    melt_model *m = NULL;
    melt_error e = {0};
    if (melt_model_load(path, &mp, &m, &e) < 0) {
        snprintf(err, en, "loading %.150s: %.300s", path, e.msg);
        return NULL;
    }
    melt_context_params cp = melt_context_default_params();
    cp.kv_type = kv;
    cp.n_threads = 2;
    cp.n_ctx = 64;
    melt_context *c = NULL;
    if (melt_context_new(m, &cp, &c, &e) < 0) {
        snprintf(err, en, "context: %.300s", e.msg);
        melt_model_free(m);
        return NULL;
    }
    const int nv = melt_model_n_vocab(m), n_tok = 8;
    int32_t toks[8];
    for (int i = 0; i < n_tok; i++) toks[i] = (int32_t)((i * 37 + 5) % nv);
    float *lg = xmalloc((size_t)(n_tok + 4) * (size_t)nv * sizeof *lg);
    int rc = melt_decode(c, toks, n_tok, 0, MELT_LOGITS_ALL, lg, &e);
    for (int i = 0; i < 4 && rc >= 0; i++) {   /* single-token steps: the decode path */
        const int32_t t = (int32_t)((i * 11 + 3) % nv);
        rc = melt_decode(c, &t, 1, n_tok + i, MELT_LOGITS_LAST, lg + (size_t)(n_tok + i) * nv, &e);
    }
    if (rc < 0) {
        snprintf(err, en, "decode: %.300s", e.msg);
        free(lg);
        lg = NULL;
    }
    melt_context_free(c);
    melt_model_free(m);
    *n_out = (n_tok + 4) * nv;
    return lg;
}

/* The scalar family's logits once per model, then every other family's
 * against them. The kernel families differ only in matmul (attention is
 * the scalar family's in all), so the F16 cache (the default) is enough
 * for the quantized models; stories260K runs with both cache types. */
static const char *const fixture_models[] = {
    "stories260K/stories260K.gguf", "stories260K/stories260K.gguf", "quant/tiny-f32.gguf",
    "quant/tiny-q4_0.gguf",         "quant/tiny-q8_0.gguf",         "quant/tiny-q4_k.gguf",
    "quant/tiny-q4_k_m.gguf",       "quant/tiny-q5_k.gguf",         "quant/tiny-q5_k_m.gguf",
    "quant/tiny-q6_k.gguf",
};
#define N_FIXTURE_MODELS (sizeof fixture_models / sizeof fixture_models[0])

static void test_fixture_logits(const char *dir)
{
    const char *const *models = fixture_models;
    for (size_t i = 0; i < N_FIXTURE_MODELS; i++) {
        const enum melt_kv_type kt = i == 1 ? MELT_KV_F32 : MELT_KV_F16;
        char path[4096], detail[512] = "";
        snprintf(path, sizeof path, "%s/%s", dir, models[i]);
        int n1 = 0;
        float *want = logits_of(path, MELT_KERNELS_SCALAR, kt, &n1, detail, sizeof detail);
        for (size_t f = 0; f < N_FAMILIES; f++) {
            if (families[f].kernels == MELT_KERNELS_SCALAR || !melt_ops_select((int)families[f].kernels))
                continue;
            int n2 = 0;
            float *got = want ? logits_of(path, families[f].kernels, kt, &n2, detail, sizeof detail) : NULL;
            bool ok = want && got && n1 == n2;
            for (int j = 0; ok && j < n1; j++)
                if (!same_bits(want[j], got[j])) {
                    snprintf(detail, sizeof detail, "logit %d: scalar %.9g, %s %.9g", j, (double)want[j],
                             families[f].name, (double)got[j]);
                    ok = false;
                }
            free(got);
            check(ok, detail, "%s logits equal scalar's on %s (kv %s)", families[f].name, models[i],
                  kt == MELT_KV_F32 ? "f32" : "f16");
        }
        free(want);
    }
}

/* The AUTO family's logits of every fixture model (as test_fixture_logits
 * computes them), as raw floats into path: test_neon.sh compares the files
 * written on different architectures byte for byte. */
static void dump_logits(const char *dir, const char *path)
{
    FILE *f = fopen(path, "wb");
    char detail[512] = "";
    bool ok = f != NULL;
    if (!f) snprintf(detail, sizeof detail, "cannot create %.400s", path);
    for (size_t i = 0; ok && i < N_FIXTURE_MODELS; i++) {
        char model[4096];
        snprintf(model, sizeof model, "%s/%s", dir, fixture_models[i]);
        int n = 0;
        float *lg = logits_of(model, MELT_KERNELS_AUTO, i == 1 ? MELT_KV_F32 : MELT_KV_F16, &n, detail,
                              sizeof detail);
        ok = lg && fwrite(lg, sizeof *lg, (size_t)n, f) == (size_t)n;
        free(lg);
    }
    if (f && fclose(f) != 0) ok = false;
    check(ok, detail, "AUTO logits of the fixtures written to %s", path);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Prints the time since t0 for a group of checks; returns now. */
static double lap(const char *what, double t0)
{
    const double t = now_ms();
    printf("# %s: %.0f ms\n", what, t - t0);
    return t;
}

int main(int argc, char **argv)
{
    int want_dotprod = -1;
    const char *fixtures = NULL, *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dotprod") == 0 && i + 1 < argc) {
            want_dotprod = strcmp(argv[++i], "yes") == 0;
        } else if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc) {
            fixtures = argv[++i];
        } else if (strcmp(argv[i], "--dump-logits") == 0 && i + 1 < argc) {
            dump = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--dotprod yes|no] [--fixtures DIR [--dump-logits FILE]]\n",
                    argv[0]);
            return 2;
        }
    }
    double t0 = now_ms();
    test_selection(want_dotprod, fixtures);
    t0 = lap("selection", t0);
    test_act_quantizers();
    t0 = lap("activation quantizers", t0);
    test_raw_vec_dots();
    test_raw_matmuls();
    t0 = lap("raw vec_dots and matmuls", t0);
    test_plain_dots();
    t0 = lap("plain dots", t0);
    test_matmuls();
    t0 = lap("matmuls", t0);
    if (fixtures) {
        test_fixture_logits(fixtures);
        if (dump) dump_logits(fixtures, dump);
        lap("fixture logits", t0);
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
