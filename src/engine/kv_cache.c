#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "melt/quant.h"

int melt_kv_cache_init(melt_kv_cache *kv, bool f16, int n_layer, int n_ctx,
                       int kv_dim, melt_error *err)
{
    memset(kv, 0, sizeof *kv);
    kv->f16 = f16;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->elem_bytes = f16 ? sizeof(uint16_t) : sizeof(float);
    if (n_layer < 1 || n_ctx < 1 || kv_dim < 1 ||
        (size_t)n_ctx > SIZE_MAX / 2 / kv->elem_bytes / (size_t)kv_dim / (size_t)n_layer)
        return melt_errorf(err, MELT_EINVAL, "bad KV cache size: %d layers x %d positions x %d",
                           n_layer, n_ctx, kv_dim);
    const size_t n = (size_t)n_layer * (size_t)n_ctx * (size_t)kv_dim;
    kv->k = calloc(n, kv->elem_bytes);
    kv->v = calloc(n, kv->elem_bytes);
    if (!kv->k || !kv->v) {
        melt_kv_cache_free(kv);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for the KV cache (%zu bytes)",
                           2 * n * (f16 ? sizeof(uint16_t) : sizeof(float)));
    }
    return 0;
}

void melt_kv_cache_free(melt_kv_cache *kv)
{
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

size_t melt_kv_cache_bytes(const melt_kv_cache *kv)
{
    return 2 * (size_t)kv->n_layer * (size_t)kv->n_ctx * (size_t)kv->kv_dim * kv->elem_bytes;
}

static size_t row_offset(const melt_kv_cache *kv, int layer, int pos)
{
    return ((size_t)layer * (size_t)kv->n_ctx + (size_t)pos) * (size_t)kv->kv_dim;
}

void melt_kv_cache_store(melt_kv_cache *kv, int layer, int pos, const float *k,
                         const float *v)
{
    const size_t off = row_offset(kv, layer, pos);
    if (kv->f16) {
        uint16_t *kd = (uint16_t *)kv->k + off, *vd = (uint16_t *)kv->v + off;
        for (int i = 0; i < kv->kv_dim; i++) {
            kd[i] = melt_fp32_to_fp16(k[i]);
            vd[i] = melt_fp32_to_fp16(v[i]);
        }
    } else {
        memcpy((float *)kv->k + off, k, (size_t)kv->kv_dim * sizeof(float));
        memcpy((float *)kv->v + off, v, (size_t)kv->kv_dim * sizeof(float));
    }
}

melt_kv_view melt_kv_cache_view(const melt_kv_cache *kv, int layer, int h, int head_dim)
{
    const size_t off = (row_offset(kv, layer, 0) + (size_t)h * (size_t)head_dim) * kv->elem_bytes;
    melt_kv_view view = {
        .f16 = kv->f16,
        .k = kv->k + off,
        .v = kv->v + off,
        .stride = (size_t)kv->kv_dim,
    };
    return view;
}
