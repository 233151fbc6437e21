/* x86 SIMD kernel families (kernels/avx2.c, kernels/avx512.c): the scalar family's numerics
 * (vec_dot.h), computed with AVX2 + FMA + F16C.
 *
 * avx2.c is compiled with the project's plain flags; every function that
 * uses AVX2 carries __attribute__((target("avx2,fma,f16c"))) and is only
 * called after melt_cpu_detect() reported those features. On other CPUs
 * (and other architectures) the functions below return NULL.
 *
 * Exactness against the scalar vec_dots (tests/unit/test_kernels_x86.c):
 *   q8_0 q4_0 q4_1 q5_0 q5_1   bit-identical: exact integer block sums, the
 *                              block terms added to the result one by one in
 *                              the scalar order;
 *   q4_K q5_K q6_K             bit-identical: integer sums kept per lane
 *                              (element index mod 8) as the scalar version
 *                              defines them, then the same F32 operations;
 *   f32                        bit-identical: melt_dot_f32_lanes' 16 lanes
 *                              are two 8-lane registers;
 *   f16                        NOT bit-identical: products exact in F32 as in
 *                              the scalar version, but summed in double in
 *                              four lanes instead of in index order (the
 *                              difference is a few double ulps of the sum of
 *                              |products| before the final rounding to F32).
 *   bf16 and types without an entry here use the scalar vec_dot. */
#ifndef MELT_ENGINE_KERNELS_X86_H
#define MELT_ENGINE_KERNELS_X86_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kernels/vec_dot.h"
#include "engine/ops.h"

/* True when this CPU runs the avx2 family (AVX2, FMA and F16C present). */
bool melt_kernels_avx2_usable(void);

/* The AVX2 vec_dot for weights of type wtype (same arguments as the scalar
 * traits' vec_dot), or NULL when there is none or the CPU lacks AVX2. */
melt_vec_dot_fn melt_vec_dot_avx2(uint32_t wtype);

/* The avx2 family: the AVX2 vec_dots in matmul, the scalar family's ops
 * otherwise. NULL when the CPU lacks AVX2, FMA or F16C. */
const melt_ops *melt_ops_avx2(void);

/* The avx512 family (kernels/avx512.c): the avx2 family with its own
 * matmuls for q8_0 and q4_0 (16 weight rows per zmm times up to 16 tokens,
 * vpdpbusd), q4_K and q6_K (the same layout when the CPU also has
 * AVX512_VBMI and n_tok > 1; two rows per zmm for one token), and its own
 * softmax and F16-cache attention; every result bit-identical to the
 * scalar family's. melt_vec_dot_avx512 gives its q8_0 / q4_0 vec_dots
 * (vpdpbusd on 256-bit registers). Usable when the CPU has AVX2, FMA,
 * F16C, AVX512F, AVX512BW, AVX512VL and AVX512_VNNI; NULL otherwise. */
bool melt_kernels_avx512_usable(void);
melt_vec_dot_fn melt_vec_dot_avx512(uint32_t wtype);
const melt_ops *melt_ops_avx512(void);

#endif
