/* melt — scalar conversions and reference (scalar) quantization.
 *
 * The block layouts are GGUF's (src/model/quant_blocks.h); the reference
 * quantizers round exactly like llama.cpp's *_ref functions, so the same
 * input yields the same bytes. These are the oracle for fast kernels.
 */
#ifndef MELT_QUANT_H
#define MELT_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* IEEE half: round to nearest even; NaN stays NaN, overflow gives inf. */
uint16_t melt_fp32_to_fp16(float f);
float melt_fp16_to_fp32(uint16_t h);
/* bfloat16: round to nearest even; NaN made quiet. */
uint16_t melt_fp32_to_bf16(float f);
float melt_bf16_to_fp32(uint16_t h);

/* True when melt can quantize to / dequantize from type with the functions
 * below (f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K; also q4_1, q5_0 and q5_1,
 * the fallbacks for rows that do not fit 256, and q8_K, the activation
 * type of k-quant dot products). */
bool melt_type_supported(uint32_t type);

/* Convert n floats (n a multiple of the type's block size) to type.
 * Returns MELT_EUNSUPPORTED / MELT_EINVAL on a bad type or n. */
int melt_quantize_row_ref(uint32_t type, const float *x, void *y, int64_t n);
/* Convert n elements of type back to float. */
int melt_dequantize_row_ref(uint32_t type, const void *x, float *y, int64_t n);

/* Quantize n_rows rows of n_per_row floats (row-major) into type, split
 * over n_threads (0 = all cores) by rows; the bytes do not depend on the
 * thread count. */
int melt_quantize_rows(uint32_t type, const float *x, void *y, int64_t n_rows,
                       int64_t n_per_row, int n_threads);

/* ---- whole-file quantization (melt model quantize) ---- */

/* Target of `melt model quantize`: a single type for every weight matrix,
 * or one of llama.cpp's mixes. */
enum melt_ftype {
    MELT_FTYPE_F32,
    MELT_FTYPE_F16,
    MELT_FTYPE_BF16,
    MELT_FTYPE_Q8_0,
    MELT_FTYPE_Q4_0,
    MELT_FTYPE_Q4_K,   /* every quantizable tensor q4_K (llama.cpp: --pure Q4_K_S) */
    MELT_FTYPE_Q5_K,   /* every quantizable tensor q5_K (--pure Q5_K_S) */
    MELT_FTYPE_Q6_K,
    MELT_FTYPE_Q4_K_M, /* llama.cpp's Q4_K_M per-tensor mix */
    MELT_FTYPE_Q5_K_M, /* llama.cpp's Q5_K_M per-tensor mix */
    MELT_FTYPE_COUNT
};

/* Parse "q4_k_m" etc. (case-insensitive); false when unknown. */
bool melt_ftype_parse(const char *s, enum melt_ftype *out);
const char *melt_ftype_name(enum melt_ftype f);
/* Comma-separated list of every accepted name, for help and errors. */
const char *melt_ftype_names(void);

typedef struct melt_quantize_params {
    int n_threads;          /* 0 = all cores */
    bool verbose;           /* print one line per tensor to stderr */
} melt_quantize_params;

melt_quantize_params melt_quantize_default_params(void);

/* Read a GGUF model, write it with weights in ftype (metadata copied,
 * general.file_type and general.quantization_version set as llama.cpp does). */
int melt_model_quantize(const char *in_path, const char *out_path,
                        enum melt_ftype ftype,
                        const melt_quantize_params *params, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif
