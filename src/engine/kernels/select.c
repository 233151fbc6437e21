/* Which kernel family runs: one line per family. A SIMD family adds its
 * file under kernels/ and one line here (guarded by the CPU feature it
 * needs, checked with melt/cpu.h at run time). */
#include "engine/ops.h"
#include "engine/kernels/neon.h"
#include "engine/kernels/x86.h"
#include "melt/engine.h"

const melt_ops *melt_ops_select(int kernels)
{
    switch (kernels) {
    case MELT_KERNELS_REF:
        return melt_ops_ref();
    case MELT_KERNELS_AVX2:   /* NULL (an error) when the CPU lacks AVX2, FMA or F16C */
        return melt_ops_avx2();
    case MELT_KERNELS_AVX512: /* NULL when the CPU lacks AVX-512 VNNI (or AVX2) */
        return melt_ops_avx512();
    case MELT_KERNELS_NEON:   /* NULL off AArch64 */
        return melt_ops_neon();
    case MELT_KERNELS_NEON_DOTPROD: /* NULL when the CPU lacks the dot product extension */
        return melt_ops_neon_dotprod();
    case MELT_KERNELS_AUTO:   /* the fastest family this CPU has: avx512, avx2, neon-dotprod, neon, scalar */
        return melt_ops_avx512() ? melt_ops_avx512()
               : melt_ops_avx2() ? melt_ops_avx2()
               : melt_ops_neon_dotprod() ? melt_ops_neon_dotprod()
               : melt_ops_neon() ? melt_ops_neon() : melt_ops_scalar();
    case MELT_KERNELS_SCALAR:
        return melt_ops_scalar();
    default:
        return NULL;
    }
}
