/* Engine internals shared by model.c, context.c and forward.c. */
#ifndef MELT_ENGINE_INTERNAL_H
#define MELT_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kv_cache.h"
#include "engine/ops.h"
#include "engine/threadpool.h"
#include "melt/engine.h"
#include "melt/gguf.h"

typedef struct melt_hparams {
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;        /* per head, for K, Q and V */
    int n_ff;
    int n_ctx_train;
    float norm_eps;      /* RMSNorm epsilon */
    melt_rope rope;      /* freq_factors points into the model */
} melt_hparams;

/* One transformer block. Vectors (norms, biases) are owned F32 copies;
 * matrices point into the mapping. A NULL bias is absent. */
typedef struct melt_layer {
    float *attn_norm;
    melt_weight wq, wk, wv, wo;
    float *bq, *bk, *bv, *bo;
    float *ffn_norm;
    melt_weight w_gate, w_up, w_down;
} melt_layer;

struct melt_model {
    melt_gguf *gguf;
    char arch[32];
    melt_hparams hp;
    melt_weight tok_embd;
    float *output_norm;
    melt_weight output;      /* token_embd's rows when the output is tied */
    float *rope_freqs;       /* n_rot/2 or NULL */
    melt_layer *layers;
    const melt_ops *ops;
    uint64_t n_params;
    int max_row;             /* longest weight row (elements), for scratch */
};

struct melt_context {
    const melt_model *model;
    const melt_ops *ops;
    int n_ctx, n_batch, n_threads;
    int n_past;
    melt_kv_cache kv;
    melt_pool *pool;
    /* activations for up to n_batch tokens, row-major by token */
    float *x;        /* residual stream, n_embd */
    float *xb;       /* normed input / block output, n_embd */
    float *q;        /* n_head * head_dim */
    float *k, *v;    /* n_head_kv * head_dim */
    float *att;      /* attention output, n_head * head_dim */
    float *hb, *hb2; /* feed-forward gate and up, n_ff */
    float *scratch;  /* n_threads * scratch_floats */
    size_t scratch_floats;
    void *act;       /* activations converted for matmul (ops->act_convert) */
    size_t act_bytes;
    struct melt_profile *profile;  /* NULL: not profiling (engine/profile.h) */
};

/* The llama-family forward pass for n <= n_batch tokens at pos..pos+n-1
 * (arguments already checked by melt_decode). */
void melt_forward_llama(melt_context *c, const int32_t *tokens, int n, int pos,
                        enum melt_logits which, float *logits);

#endif
