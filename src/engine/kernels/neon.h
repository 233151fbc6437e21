/* Arm kernel families (kernels/neon.c): the scalar family's numerics
 * (vec_dot.h), computed with Advanced SIMD (NEON) on AArch64.
 *
 *   neon          int8 block sums by widening multiplies (vmull_s8) and
 *                 pairwise adds into int32 (vpadal), or int16 lanes
 *                 widened by the sub-block scale (vmlal) for k-quants;
 *   neon-dotprod  the same, with the block sums of q4_0, q4_1, q5_0, q5_1,
 *                 q8_0, q4_K and q5_K by the Armv8.2 dot product
 *                 (vdotq_s32); q6_K, f32, f16 and bf16 as `neon`.
 *
 * neon.c builds with the baseline flags (-march=armv8-a): the dotprod
 * functions carry a target attribute and run only after melt_cpu_detect()
 * reported the extension (getauxval HWCAP_ASIMDDP). On other architectures
 * everything below returns false or NULL.
 *
 * Exactness against the scalar vec_dots (tests/cross/test_kernels_cross.c):
 *   q8_0 q4_0 q4_1 q5_0 q5_1   bit-identical: exact integer block sums, the
 *                              F32 block terms added one by one in order;
 *   q4_K q5_K q6_K             bit-identical: integer sums kept per lane
 *                              (element index mod 8) as vec_dot.c defines
 *                              them (dotprod: the bytes of each lane
 *                              gathered into one 4-byte group by a table
 *                              look-up first), then the same F32 steps;
 *   f32                        bit-identical: melt_dot_f32_lanes' 16 lanes
 *                              are four 4-lane registers;
 *   f16, bf16                  NOT bit-identical: products exact in F32 as
 *                              in the scalar version, summed in four double
 *                              lanes in the avx2 family's F16 order (not
 *                              checked against avx2 here), not index order.
 * The activation quantizers (q8_0, q8_1, q8_K) give the scalar bytes.
 *
 * matmul (both families): for the quantized types each weight row is
 * unpacked once per group of up to four tokens and dotted with each of
 * them by the vec_dot's own operations (so the outputs are the vec_dot's,
 * bit for bit); f32, f16 and bf16 run one vec_dot per output. */
#ifndef MELT_ENGINE_KERNELS_NEON_H
#define MELT_ENGINE_KERNELS_NEON_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kernels/vec_dot.h"
#include "engine/ops.h"

/* True on AArch64 (NEON is mandatory there); false elsewhere. */
bool melt_kernels_neon_usable(void);
/* True when the CPU also has the dot product extension (ASIMDDP). */
bool melt_kernels_neon_dotprod_usable(void);

/* The NEON vec_dot for weights of type wtype (same arguments as the
 * scalar traits' vec_dot), with (dotprod) or without the dot product
 * extension; NULL when the CPU lacks what it needs. Every type of
 * melt_dot_traits_scalar has one. */
melt_vec_dot_fn melt_vec_dot_neon(uint32_t wtype, bool dotprod);

/* The NEON activation conversion for weights of type wtype (what the
 * scalar traits' from_f32 does, same bytes); NULL off AArch64. */
melt_act_from_f32_fn melt_act_from_f32_neon(uint32_t wtype);

/* The families: the NEON matmul (above) and activation quantizers, the
 * scalar family's ops otherwise. NULL when unusable. */
const melt_ops *melt_ops_neon(void);
const melt_ops *melt_ops_neon_dotprod(void);

#endif
