/* The scalar reference family (kernels/ref.c): the oracle every other
 * kernel family is tested against.
 *
 * Its element-wise and attention ops are exported so that a faster family
 * can reuse the ones it does not replace (one table line per op). */
#ifndef MELT_ENGINE_KERNELS_REF_H
#define MELT_ENGINE_KERNELS_REF_H

#include "engine/ops.h"

void melt_ref_matmul(const melt_weight *w, const float *x, const void *xq, int n_tok, float *y,
                     float *buf, int ith, int nth);
void melt_ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void melt_ref_rope(float *x, int n_head, int head_dim, int pos, const melt_rope *r);
void melt_ref_softmax(float *x, int n);
void melt_ref_attend(float *out, const float *q, const melt_kv_view *kv, int n_kv,
                     int head_dim, float scale, float *att);
void melt_ref_swiglu(float *gate, const float *up, int n);

#endif
