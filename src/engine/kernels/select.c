/* Which kernel family runs: one line per family. A SIMD family adds its
 * file under kernels/ and one line here (guarded by the CPU feature it
 * needs, checked with melt/cpu.h at run time). */
#include "engine/ops.h"
#include "melt/engine.h"

const melt_ops *melt_ops_select(int kernels)
{
    switch (kernels) {
    case MELT_KERNELS_REF:
        return melt_ops_ref();
    case MELT_KERNELS_AUTO:   /* the fastest family this CPU has */
    case MELT_KERNELS_SCALAR:
        return melt_ops_scalar();
    default:
        return NULL;
    }
}
