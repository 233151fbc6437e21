/* The "scalar" kernel family: llama.cpp's CPU numerics in plain C, the
 * default (MELT_KERNELS_AUTO) where no SIMD family fits the CPU, and the
 * oracle the SIMD families are tested against bit for bit.
 *
 * matmul: every activation row is converted once to the weight type's dot
 * type (act_convert, vec_dot.h), then each output is one vec_dot.
 * softmax and attention over an F16 cache: llama.cpp's order and exp
 * (below), so F16 roundings of the cache and the softmax weights fall as
 * in llama.cpp. RMSNorm, RoPE, SwiGLU and F32-cache attention: the
 * reference ops. */
#include <math.h>

#include "engine/kernels/ref.h"
#include "engine/kernels/vec_dot.h"
#include "melt/quant.h"
#include "model/fp16.h"

/* The F32 expressions below are the definition (fmaf where a fused
 * multiply-add is meant, nothing contracted otherwise). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static size_t scalar_act_row_bytes(uint32_t wtype, int64_t n_in)
{
    return melt_dot_act_row_bytes(wtype, n_in);
}

static void scalar_act_convert(uint32_t wtype, const float *x, int n_tok, int64_t n_in, void *xq,
                               int ith, int nth)
{
    const melt_dot_traits *t = melt_dot_traits_scalar(wtype);
    const size_t rb = melt_dot_act_row_bytes(wtype, n_in);
    int64_t t0, t1;
    melt_ops_slice(n_tok, ith, nth, &t0, &t1);
    for (int64_t i = t0; i < t1; i++)
        t->from_f32(x + i * n_in, (uint8_t *)xq + (size_t)i * rb, n_in);
}

static void scalar_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok,
                          float *y, float *buf, int ith, int nth)
{
    const melt_dot_traits *t = melt_dot_traits_scalar(w->type);
    if (!t) {   /* a type with no dot type (q8_K weights): dequantize */
        melt_ref_matmul(w, x, NULL, n_tok, y, buf, ith, nth);
        return;
    }
    melt_ops_matmul_by_dot(w, t->vec_dot, x, xq, n_tok, y, ith, nth);
}

void melt_ops_matmul_by_dot(const melt_weight *w, float (*dot)(int64_t, const void *, const void *),
                            const float *x, const void *xq, int n_tok, float *y, int ith, int nth)
{
    const size_t rb = melt_dot_act_row_bytes(w->type, w->n_in);
    const uint8_t *act = rb ? (const uint8_t *)xq : (const uint8_t *)x;
    const size_t stride = rb ? rb : (size_t)w->n_in * sizeof(float);
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w->data + (uint64_t)r * w->row_bytes;
        for (int i = 0; i < n_tok; i++)
            y[(int64_t)i * w->n_out + r] = dot(w->n_in, row, act + (size_t)i * stride);
    }
}

/* ---- attention ---- */

/* exp(x) as llama.cpp's CPU softmax computes it on x86 (ggml_v_expf, from
 * Arm's optimized routines): x = n ln2 + b with n = round(x / ln2) and ln2
 * split in two, e^b by a degree-5 polynomial in Horner/Estrin form with
 * fused multiply-adds, scaled by 2^n. Within 2 ulps of expf, but not
 * equal to it; an F16 cache rounds the softmax weights to F16, where a
 * one-ulp difference can move a weight a whole F16 step. */
float melt_kernel_expf(float x)
{
    const float shift = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, shift);
    const float n = z - shift;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192) return n > 0 ? INFINITY : 0.0f;
    if (isnan(x)) return x;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

/* Sum of 16 floats as a halving tree: lanes l + 8, then + 4, + 2, + 1
 * (one 512-bit register reduced; the order AVX-512 code uses). */
static float tree16(float v[16])
{
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) v[l] += v[l + w];
    return v[0];
}

/* In-place softmax of n floats, llama.cpp's way on x86: exp by
 * melt_kernel_expf, 16 at a time, each group of 16 summed as a tree in
 * F32 and the groups summed in double (a short last group padded with
 * zeros, which are what masked positions give), then scaled by
 * (float)(1 / sum). */
static void scalar_softmax(float *x, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (int i = 0; i < n; i += 16) {
        float v[16];
        for (int l = 0; l < 16; l++) {
            v[l] = i + l < n ? melt_kernel_expf(x[i + l] - max) : 0.0f;
            if (i + l < n) x[i + l] = v[l];
        }
        sum += (double)tree16(v);
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static float round_f16(float f)
{
    return melt_fp16_to_fp32_inline(melt_fp32_to_fp16(f));
}

/* Attention as llama.cpp's CPU path computes it without flash attention.
 * F16 cache: q rounded to F16; q.k_j in F32 over 16 lanes (dimension d in
 * lane d % 16, in order; the F16 products are exact) and the lanes added
 * as a tree, as ggml's F16 dot product sums in F32 lanes; softmax as
 * above; weights rounded to F16; out[d] summed over positions in 16 lanes
 * (position j in lane j % 16, in order, products exact) and the lanes
 * added as a tree. F32 cache: the reference. */
static void scalar_attend(float *out, const float *q, const melt_kv_view *kv, int n_kv,
                          int head_dim, float scale, float *att)
{
    if (!kv->f16) {
        melt_ref_attend(out, q, kv, n_kv, head_dim, scale, att);
        return;
    }
    const uint16_t *k = kv->k, *v = kv->v;
    float *qr = att + n_kv;
    for (int d = 0; d < head_dim; d++) qr[d] = round_f16(q[d]);
    for (int j = 0; j < n_kv; j++) {
        const uint16_t *kj = k + (size_t)j * kv->stride;
        float lanes[16] = {0};
        for (int d = 0; d < head_dim; d++) lanes[d % 16] += qr[d] * melt_fp16_to_fp32_inline(kj[d]);
        att[j] = tree16(lanes) * scale;
    }
    scalar_softmax(att, n_kv);
    for (int j = 0; j < n_kv; j++) att[j] = round_f16(att[j]);
    for (int d = 0; d < head_dim; d++) {
        float lanes[16] = {0};
        for (int j = 0; j < n_kv; j++)
            lanes[j % 16] += att[j] * melt_fp16_to_fp32_inline(v[(size_t)j * kv->stride + d]);
        out[d] = tree16(lanes);
    }
}

static const melt_ops scalar_ops = {
    .name = "scalar",
    .act_row_bytes = scalar_act_row_bytes,
    .act_convert = scalar_act_convert,
    .matmul = scalar_matmul,
    .rmsnorm = melt_ref_rmsnorm,
    .rope = melt_ref_rope,
    .softmax = scalar_softmax,
    .attend = scalar_attend,
    .swiglu = melt_ref_swiglu,
};

const melt_ops *melt_ops_scalar(void)
{
    return &scalar_ops;
}
