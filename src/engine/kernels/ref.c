/* Scalar reference ops: the oracle. Plain loops, F32 storage, sums of
 * products accumulated in double in index order, so a result depends only
 * on its inputs (never on threads) and sits as close to exact as cheaply
 * possible. Fast kernels are tested against these. Weight rows are
 * dequantized to F32; activations are never quantized. */
#include "engine/kernels/ref.h"

#include <math.h>
#include <string.h>

/* The F32 expressions are the definition: nothing contracted to FMA, so
 * -march flags do not change results. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "melt/quant.h"
#include "model/fp16.h"
#include "melt/types.h"

void melt_weight_row_f32(const melt_weight *w, int64_t row, float *out)
{
    const uint8_t *src = w->data + (uint64_t)row * w->row_bytes;
    if (w->type == MELT_TYPE_F32) {
        /* memcpy: the mapping only promises the file's alignment */
        memcpy(out, src, (size_t)w->n_in * sizeof(float));
        return;
    }
    /* type and row length were checked when the model was loaded */
    (void)melt_dequantize_row_ref(w->type, src, out, w->n_in);
}

static float dot_f32(const float *a, const float *b, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)a[i] * (double)b[i];
    return (float)sum;
}

void melt_ops_slice(int64_t n_rows, int ith, int nth, int64_t *r0, int64_t *r1)
{
    int64_t per = n_rows / nth, extra = n_rows % nth;
    *r0 = ith * per + (ith < extra ? ith : extra);
    *r1 = *r0 + per + (ith < extra ? 1 : 0);
}

void melt_ref_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                     float *buf, int ith, int nth)
{
    (void)xq;
    int64_t r0, r1;
    melt_ops_slice(w->n_out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        melt_weight_row_f32(w, r, buf);
        for (int t = 0; t < n_tok; t++)
            y[(int64_t)t * w->n_out + r] = dot_f32(buf, x + (int64_t)t * w->n_in, w->n_in);
    }
}

void melt_ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float mean = (float)(ss / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* theta_i = pos * freq_scale * base^(-2i/n_rot) / factor_i, the power taken
 * by repeated multiplication in float (as ggml does, so angles agree). */
void melt_ref_rope(float *x, int n_head, int head_dim, int pos, const melt_rope *r)
{
    const int half = r->n_rot / 2;
    const float theta_scale = powf(r->freq_base, -2.0f / (float)r->n_rot);
    for (int h = 0; h < n_head; h++) {
        float *v = x + (size_t)h * head_dim;
        float theta = (float)pos;
        for (int i = 0; i < half; i++) {
            float th = theta;
            if (r->freq_factors) th /= r->freq_factors[i];
            th *= r->freq_scale;
            const float c = cosf(th), s = sinf(th);
            int a, b;
            if (r->mode == MELT_ROPE_NEOX) {
                a = i;
                b = i + half;
            } else {
                a = 2 * i;
                b = 2 * i + 1;
            }
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
            theta *= theta_scale;
        }
    }
}

void melt_ref_softmax(float *x, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static float round_f16(float f)
{
    return melt_fp16_to_fp32_inline(melt_fp32_to_fp16(f));
}

void melt_ref_attend(float *out, const float *q, const melt_kv_view *kv, int n_kv,
                       int head_dim, float scale, float *att)
{
    if (kv->f16) {
        const uint16_t *k = kv->k, *v = kv->v;
        float *qr = att + n_kv;   /* q rounded to F16, as llama.cpp feeds it */
        for (int d = 0; d < head_dim; d++) qr[d] = round_f16(q[d]);
        for (int j = 0; j < n_kv; j++) {
            const uint16_t *kj = k + (size_t)j * kv->stride;
            double s = 0.0;
            for (int d = 0; d < head_dim; d++)
                s += (double)qr[d] * (double)melt_fp16_to_fp32_inline(kj[d]);
            att[j] = (float)s * scale;
        }
        melt_ref_softmax(att, n_kv);
        for (int j = 0; j < n_kv; j++) att[j] = round_f16(att[j]);
        for (int d = 0; d < head_dim; d++) {
            double s = 0.0;
            for (int j = 0; j < n_kv; j++)
                s += (double)att[j] * (double)melt_fp16_to_fp32_inline(v[(size_t)j * kv->stride + d]);
            out[d] = (float)s;
        }
        return;
    }
    const float *k = kv->k, *v = kv->v;
    for (int j = 0; j < n_kv; j++)
        att[j] = dot_f32(q, k + (size_t)j * kv->stride, head_dim) * scale;
    melt_ref_softmax(att, n_kv);
    for (int d = 0; d < head_dim; d++) {
        double s = 0.0;
        for (int j = 0; j < n_kv; j++)
            s += (double)att[j] * (double)v[(size_t)j * kv->stride + d];
        out[d] = (float)s;
    }
}

void melt_ref_swiglu(float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static const melt_ops ref_ops = {
    .name = "ref",
    .act_row_bytes = NULL,  /* matmul reads F32 activations */
    .act_convert = NULL,
    .matmul = melt_ref_matmul,
    .rmsnorm = melt_ref_rmsnorm,
    .rope = melt_ref_rope,
    .softmax = melt_ref_softmax,
    .attend = melt_ref_attend,
    .swiglu = melt_ref_swiglu,
};

const melt_ops *melt_ops_ref(void)
{
    return &ref_ops;
}
