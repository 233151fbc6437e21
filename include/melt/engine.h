/* melt — the builtin inference engine: a llama-family forward pass over the
 * tensors of a GGUF file.
 *
 *   melt_model   — a loaded GGUF file: hyper-parameters plus weights bound in
 *                  place in the read-only mapping. Immutable after load, so
 *                  any number of contexts may share it (one thread each).
 *   melt_context — per-sequence state: KV cache, scratch buffers, threads.
 *
 * Typical use:
 *   melt_model *m; melt_context *c; melt_error e;
 *   melt_model_params mp = melt_model_default_params();
 *   if (melt_model_load(path, &mp, &m, &e) < 0) die(e.msg);
 *   melt_context_params cp = melt_context_default_params();
 *   if (melt_context_new(m, &cp, &c, &e) < 0) die(e.msg);
 *   melt_decode(c, prompt, n, 0, MELT_LOGITS_LAST, logits, &e);   // prefill
 *   melt_decode(c, &tok, 1, n, MELT_LOGITS_LAST, logits, &e);     // one step
 *   melt_context_free(c); melt_model_free(m);
 *
 * Numerics: by default activations are quantized to 8 bits per block and
 * dotted with the quantized weights in integers, as llama.cpp's CPU path
 * does (MELT_KERNELS_REF instead dequantizes weights to F32). Either way
 * the logits do not depend on the thread count (bit-identical), because
 * every output value is computed by exactly one thread in a fixed order.
 * docs/engine.md has the details.
 */
#ifndef MELT_ENGINE_H
#define MELT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "melt/error.h"
#include "melt/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct melt_model melt_model;
typedef struct melt_context melt_context;

/* ---- model ---- */

/* Kernel family used for the heavy ops (docs/engine.md, "Numerics").
 *   AUTO   (the default) the fastest family this CPU has with llama.cpp's
 *          CPU numerics: each activation row is quantized to the weight
 *          type's dot type (Q8_0 / Q8_1 blocks of 32 for q4_0, q4_1, q5_0,
 *          q5_1, q8_0; Q8_K blocks of 256 for the k-quants; F16 / BF16 for
 *          F16 / BF16 weights) and dotted with integer block sums: AVX512
 *          when the CPU has AVX-512 VNNI (and AVX2), else AVX2 when it has
 *          AVX2, FMA and F16C, else SCALAR; on AArch64 NEON_DOTPROD when
 *          the CPU has the dot product extension, else NEON. All give the
 *          same bits except for F16 (and, on NEON, BF16) weights
 *          (docs/engine.md).
 *   REF    the oracle: weight rows dequantized to F32, F32 activations,
 *          sums in double. Slower; logits closest to exact.
 *   SCALAR AUTO's numerics in plain C (what SIMD families are tested
 *          against). */
enum melt_kernels {
    MELT_KERNELS_AUTO = 0,
    MELT_KERNELS_REF = 1,
    MELT_KERNELS_SCALAR = 2,
    MELT_KERNELS_AVX2 = 3,   /* SCALAR's numerics with AVX2+FMA+F16C (x86) */
    MELT_KERNELS_AVX512 = 4, /* AVX2 plus AVX-512 VNNI q8_0/q4_0 dots (same numerics) */
    MELT_KERNELS_NEON = 5,   /* SCALAR's numerics with AArch64 NEON (vmull/vpadal int8 sums) */
    MELT_KERNELS_NEON_DOTPROD = 6, /* NEON with the dot product extension (vdotq_s32) */
};

typedef struct melt_model_params {
    enum melt_kernels kernels;  /* default MELT_KERNELS_AUTO */
} melt_model_params;

melt_model_params melt_model_default_params(void);

/* Open path (GGUF, mapped read-only), read the hyper-parameters and bind
 * every weight. params may be NULL (defaults). On success *out owns the
 * mapping; free it with melt_model_free after every context using it is
 * freed. On error *out is NULL and err names the key or tensor at fault:
 * MELT_EUNSUPPORTED for an architecture, tensor type or feature the engine
 * cannot run, MELT_EFORMAT for missing keys/tensors or wrong shapes. */
int melt_model_load(const char *path, const melt_model_params *params,
                    melt_model **out, melt_error *err);
/* The same over an already open GGUF; the model takes ownership of g (it is
 * closed by melt_model_free, or at once when loading fails). */
int melt_model_load_gguf(melt_gguf *g, const melt_model_params *params,
                         melt_model **out, melt_error *err);
void melt_model_free(melt_model *m);

/* Accessors (m must be non-NULL). Strings are owned by the model. */
const char *melt_model_arch(const melt_model *m);     /* "llama", "qwen2" */
int melt_model_n_vocab(const melt_model *m);
int melt_model_n_embd(const melt_model *m);
int melt_model_n_layer(const melt_model *m);
int melt_model_n_head(const melt_model *m);
int melt_model_n_head_kv(const melt_model *m);
/* Size of one attention head: attention.key_length, else n_embd / n_head. */
int melt_model_head_dim(const melt_model *m);
int melt_model_n_ff(const melt_model *m);
int melt_model_n_ctx_train(const melt_model *m);
uint64_t melt_model_n_params(const melt_model *m);    /* sum of tensor elements */
/* The underlying file (tokenizer.* keys etc.); owned by the model. */
const melt_gguf *melt_model_gguf(const melt_model *m);

/* ---- context ---- */

/* Element type of the KV cache. F16 (the default) rounds K, V, Q and the
 * attention weights to F16 the way llama.cpp's default cache does; F32
 * keeps everything in F32. */
enum melt_kv_type {
    MELT_KV_F16 = 0,
    MELT_KV_F32 = 1,
};

typedef struct melt_context_params {
    int n_ctx;            /* positions in the KV cache; 0 = the model's
                             context_length, capped at 4096 */
    int n_batch;          /* most tokens computed at once (longer decodes
                             are split; results are the same); default 512 */
    int n_threads;        /* 0 = all online cores */
    enum melt_kv_type kv_type;  /* default MELT_KV_F16 */
} melt_context_params;

melt_context_params melt_context_default_params(void);

/* New context over m (which must outlive it). params may be NULL. */
int melt_context_new(const melt_model *m, const melt_context_params *params,
                     melt_context **out, melt_error *err);
void melt_context_free(melt_context *c);

int melt_context_n_ctx(const melt_context *c);
int melt_context_n_threads(const melt_context *c);
/* Positions currently held in the KV cache (pos + n of the last decode). */
int melt_context_n_past(const melt_context *c);

/* Which logits melt_decode writes. */
enum melt_logits {
    MELT_LOGITS_NONE = 0,  /* none (logits_out may be NULL) */
    MELT_LOGITS_LAST = 1,  /* n_vocab floats: after the last token */
    MELT_LOGITS_ALL = 2,   /* n * n_vocab floats, row i after token i */
};

/* Run tokens[0..n) at positions pos..pos+n-1. Each token attends to the
 * cache positions 0..its own; cache entries at pos and later are
 * overwritten, so decoding again at an earlier pos rewinds the sequence.
 * logits_out is caller-owned (size per `which`).
 * Errors (MELT_EINVAL): n < 1, a token id outside the vocabulary, pos past
 * the positions already in the cache (a gap), or pos + n > n_ctx. */
int melt_decode(melt_context *c, const int32_t *tokens, int n, int pos,
                enum melt_logits which, float *logits_out, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif
