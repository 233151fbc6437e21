/* The KV cache: per layer, one key and one value row of kv_dim elements
 * (n_head_kv heads of head_dim) per position, F16 or F32. Row-major by
 * position, so a head's keys are strided views (melt_kv_view). */
#ifndef MELT_ENGINE_KV_CACHE_H
#define MELT_ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ops.h"
#include "melt/error.h"

typedef struct melt_kv_cache {
    bool f16;            /* elements are IEEE halves, else float */
    int n_layer, n_ctx, kv_dim;
    size_t elem_bytes;
    uint8_t *k, *v;      /* n_layer * n_ctx * kv_dim elements each */
} melt_kv_cache;

int melt_kv_cache_init(melt_kv_cache *kv, bool f16, int n_layer, int n_ctx,
                       int kv_dim, melt_error *err);
void melt_kv_cache_free(melt_kv_cache *kv);
size_t melt_kv_cache_bytes(const melt_kv_cache *kv);

/* Store position pos of layer: k and v are kv_dim floats (rounded to F16
 * for an F16 cache). */
void melt_kv_cache_store(melt_kv_cache *kv, int layer, int pos, const float *k,
                         const float *v);
/* View of KV head h of layer (head_dim elements per position). */
melt_kv_view melt_kv_cache_view(const melt_kv_cache *kv, int layer, int h,
                                int head_dim);

#endif
