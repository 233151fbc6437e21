/* Quantized-activation dot products: llama.cpp's CPU numerics, in scalar C.
 *
 * For a weight type W, matmul converts each activation row once to W's
 * "dot type" and then computes every output as vec_dot(weight row, row):
 *
 *   weight                dot type   activation conversion
 *   q4_0 q5_0 q8_0        q8_0       per 32: d = amax/127 (stored F16), q = round(x/d)
 *   q4_1 q5_1             q8_1       q8_0 plus s = d * sum(q) (F16)
 *   q4_K q5_K q6_K        q8_K       per 256: d = max/-127 (F32), q = nearest(x/d), bsums
 *   f16 / bf16            f16 / bf16 rounded to nearest even
 *   f32                   f32        none
 *
 * Each vec_dot computes integer sums per block (or per sub-block lane),
 * exact in any order, and then combines them with the block scales in F32
 * in the order llama.cpp's scalar ggml_vec_dot_*_q8_* functions write
 * down. A SIMD family must produce the same integer block sums (it can:
 * they are exact) and combine them in the same order to be bit-identical;
 * the F32 dot below is written as 16 lanes for that reason.
 *
 * All functions are pure (no state), so any thread may call them. */
#ifndef MELT_ENGINE_KERNELS_VEC_DOT_H
#define MELT_ENGINE_KERNELS_VEC_DOT_H

#include <stddef.h>
#include <stdint.h>

/* q8_1: activations for q4_1 / q5_1 dot products (ggml's block_q8_1). */
typedef struct melt_block_q8_1 {
    uint16_t d;   /* F16 scale */
    uint16_t s;   /* F16: d * sum(qs) */
    int8_t qs[32];
} melt_block_q8_1;

/* Convert n floats (a multiple of the dot type's block) to the dot type. */
typedef void (*melt_act_from_f32_fn)(const float *x, void *y, int64_t n);
/* Dot product of n elements: w is a weight row, a the converted row. */
typedef float (*melt_vec_dot_fn)(int64_t n, const void *w, const void *a);

typedef struct melt_dot_traits {
    uint32_t weight_type;            /* enum melt_type */
    uint32_t act_type;               /* the dot type (enum melt_type) */
    melt_act_from_f32_fn from_f32;   /* NULL for f32: rows used as they are */
    melt_vec_dot_fn vec_dot;
} melt_dot_traits;

/* The scalar traits for weights of type wtype, or NULL when unsupported. */
const melt_dot_traits *melt_dot_traits_scalar(uint32_t wtype);

/* Bytes of one converted row of n elements for wtype's dot type (0 for
 * f32 weights, whose rows are used as they are). */
size_t melt_dot_act_row_bytes(uint32_t wtype, int64_t n);

/* The activation quantizers (n a multiple of 32, resp. 256). q8_0 and q8_K
 * give the bytes of melt_quantize_row_ref(MELT_TYPE_Q8_0 / Q8_K) (llama.cpp's
 * quantize_row_*_ref). */
void melt_act_quantize_q8_0(const float *x, void *y, int64_t n);
void melt_act_quantize_q8_1(const float *x, void *y, int64_t n);
void melt_act_quantize_q8_K(const float *x, void *y, int64_t n);

/* The F32 dot of the scalar family, in the order llama.cpp's x86 AVX-512
 * build sums F32 x F32 products (which decides F16 roundings of the KV
 * cache downstream): when n is a multiple of 16, 16 lanes (element i in
 * lane i % 16) with a fused multiply-add each, then the lanes added as a
 * halving tree (8+8, 4+4, 2+2, 1+1); otherwise four such 16-lane
 * accumulators over steps of 64, added 0+2, 1+3, 0+1, reduced the same
 * way, and the tail (n % 64) added in order. */
float melt_dot_f32_lanes(int64_t n, const float *a, const float *b);

/* exp as llama.cpp's x86 softmax computes it (kernels/scalar.c). */
float melt_kernel_expf(float x);

#endif
