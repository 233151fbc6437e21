/* Which tensor gets which type when a model is quantized or synthesized:
 * llama.cpp's per-tensor rules (llama_tensor_get_type and the shape
 * fallbacks), shared by `melt model quantize` and `melt model synth`. */
#ifndef MELT_QUANT_RULES_H
#define MELT_QUANT_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "melt/quant.h"

typedef struct melt_quant_model_shape {
    uint32_t n_layer;     /* blocks in the model */
    bool has_output;      /* a separate output.weight exists (not tied) */
    uint32_t n_head, n_head_kv;
} melt_quant_model_shape;

/* Type for tensor `name` (n_dims dims, ne[] elements per dim) under ftype:
 * returns MELT_TYPE_F32 for tensors that stay as they are (norms, biases,
 * 1-D tensors), otherwise the chosen type, after falling back to a
 * compatible type when ne[0] is not a multiple of its block size. */
uint32_t melt_quant_pick_type(enum melt_ftype ftype, const char *name,
                              uint32_t n_dims, const uint64_t *ne,
                              const melt_quant_model_shape *shape);

/* Value llama.cpp stores in general.file_type for ftype (llama_ftype). */
uint32_t melt_ftype_to_llama(enum melt_ftype ftype);

/* True when llama.cpp would convert tensor `name` at all: 2-D or larger,
 * the name ends in "weight", and it is not a norm, an expert router, a
 * positional embedding or one of the other small tensors llama.cpp keeps.
 * Tensors for which this is false keep their type in `melt model quantize`. */
bool melt_quant_tensor_quantizable(const char *name, uint32_t n_dims);

/* The type a weight matrix gets under ftype before the per-tensor mix and
 * the shape fallback (q4_k_m -> q4_K, f16 -> f16, ...). */
uint32_t melt_ftype_base_type(enum melt_ftype ftype);

#endif
