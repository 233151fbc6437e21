/* melt — tensor element types (numbering identical to GGUF / ggml_type). */
#ifndef MELT_TYPES_H
#define MELT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ids are the on-disk GGUF tensor type ids. Gaps are ids ggml retired. */
enum melt_type {
    MELT_TYPE_F32 = 0,
    MELT_TYPE_F16 = 1,
    MELT_TYPE_Q4_0 = 2,
    MELT_TYPE_Q4_1 = 3,
    MELT_TYPE_Q5_0 = 6,
    MELT_TYPE_Q5_1 = 7,
    MELT_TYPE_Q8_0 = 8,
    MELT_TYPE_Q8_1 = 9,
    MELT_TYPE_Q2_K = 10,
    MELT_TYPE_Q3_K = 11,
    MELT_TYPE_Q4_K = 12,
    MELT_TYPE_Q5_K = 13,
    MELT_TYPE_Q6_K = 14,
    MELT_TYPE_Q8_K = 15,
    MELT_TYPE_IQ2_XXS = 16,
    MELT_TYPE_IQ2_XS = 17,
    MELT_TYPE_IQ3_XXS = 18,
    MELT_TYPE_IQ1_S = 19,
    MELT_TYPE_IQ4_NL = 20,
    MELT_TYPE_IQ3_S = 21,
    MELT_TYPE_IQ2_S = 22,
    MELT_TYPE_IQ4_XS = 23,
    MELT_TYPE_I8 = 24,
    MELT_TYPE_I16 = 25,
    MELT_TYPE_I32 = 26,
    MELT_TYPE_I64 = 27,
    MELT_TYPE_F64 = 28,
    MELT_TYPE_IQ1_M = 29,
    MELT_TYPE_BF16 = 30,
    MELT_TYPE_TQ1_0 = 34,
    MELT_TYPE_TQ2_0 = 35,
    MELT_TYPE_MXFP4 = 39,
    MELT_TYPE_COUNT = 40
};

typedef struct melt_type_traits {
    const char *name;     /* "q4_K", "f16", ... as ggml names it */
    uint32_t block_elems; /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
    bool quantized;       /* block-quantized (not a plain scalar type) */
} melt_type_traits;

/* Traits of a type id, or NULL if the id is not a known type. */
const melt_type_traits *melt_type_traits_of(uint32_t type);

/* Name of a type id ("q4_K"), or "?" when unknown. */
const char *melt_type_name(uint32_t type);

/* Bytes of a row of n_elems elements of type. Returns false when the type
 * is unknown, n_elems is not a multiple of the block size, or the result
 * overflows uint64_t. */
bool melt_type_row_bytes(uint32_t type, uint64_t n_elems, uint64_t *bytes_out);

#ifdef __cplusplus
}
#endif
#endif
