/* Engine ops: the kernel table the forward pass calls through.
 *
 * Each kernel family fills one melt_ops in its own file under
 * src/engine/kernels/ and has one line in the table in
 * kernels/select.c:
 *   ref    (kernels/ref.c)    — the oracle: weight rows dequantized to F32,
 *                               F32 activations, sums in double;
 *   scalar (kernels/scalar.c) — llama.cpp's CPU numerics in plain C:
 *                               activations quantized to the weight type's
 *                               dot type (Q8_0, Q8_1, Q8_K, F16, BF16),
 *                               integer block sums (kernels/vec_dot.c);
 *   avx2, avx512 (kernels/avx2.c, avx512.c) — the scalar family's
 *                               numerics with x86 SIMD, chosen by AUTO when
 *                               the CPU has them;
 *   neon, neon-dotprod (kernels/neon.c) — the same on AArch64.
 *
 * Threading contract (as ggml's): an op that takes (ith, nth) computes its
 * own slice of the output; every output value is produced by exactly one
 * thread in a fixed order, so results do not depend on nth.
 */
#ifndef MELT_ENGINE_OPS_H
#define MELT_ENGINE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A 2-D weight in the GGUF mapping: n_out rows of n_in elements of type. */
typedef struct melt_weight {
    char name[64];         /* "blk.0.attn_q.weight" (for messages) */
    uint32_t type;         /* enum melt_type */
    int64_t n_in;          /* ne[0]: elements per row */
    int64_t n_out;         /* ne[1]: rows */
    uint64_t row_bytes;
    const uint8_t *data;
} melt_weight;

/* How the rotary embedding pairs dimensions. */
enum melt_rope_mode {
    MELT_ROPE_NORM = 0,  /* pairs (2i, 2i+1): llama */
    MELT_ROPE_NEOX = 1,  /* pairs (i, i + n_rot/2): qwen2, gpt-neox */
};

typedef struct melt_rope {
    enum melt_rope_mode mode;
    int n_rot;               /* rotated dims per head (even, <= head_dim) */
    float freq_base;
    float freq_scale;        /* 1 / linear scaling factor */
    const float *freq_factors;  /* n_rot/2 divisors of theta (llama 3.1), or NULL */
} melt_rope;

/* One KV head of one layer in the cache: position j's key is
 * k + j * stride (elements), likewise v. */
typedef struct melt_kv_view {
    bool f16;                /* uint16_t halves, else float */
    const void *k, *v;
    size_t stride;
} melt_kv_view;

typedef struct melt_ops {
    const char *name;

    /* Activations in the form matmul wants for weights of type wtype:
     * bytes per row of n_in, or 0 when matmul reads the F32 rows as they
     * are (then act_convert is not called). NULL means always 0. */
    size_t (*act_row_bytes)(uint32_t wtype, int64_t n_in);
    /* Convert rows [ith-th slice of n_tok] of x (n_tok x n_in floats) to
     * that form in xq (rows act_row_bytes apart). Run before matmul, on
     * the pool, with the same x. */
    void (*act_convert)(uint32_t wtype, const float *x, int n_tok, int64_t n_in,
                        void *xq, int ith, int nth);
    /* y[t][r] = dot(row r of w, x[t]) for t < n_tok and rows r in this
     * thread's slice; x is n_tok x w->n_in, y is n_tok x w->n_out; xq is
     * x converted by act_convert (NULL when act_row_bytes is 0). buf is
     * this thread's scratch of w->n_in floats. */
    void (*matmul)(const melt_weight *w, const float *x, const void *xq, int n_tok,
                   float *y, float *buf, int ith, int nth);
    /* out = x / rms(x) * w, n elements (out may equal x). */
    void (*rmsnorm)(float *out, const float *x, const float *w, int n, float eps);
    /* Rotate n_head heads of head_dim floats of x in place for pos. */
    void (*rope)(float *x, int n_head, int head_dim, int pos, const melt_rope *r);
    /* In-place softmax of n floats. */
    void (*softmax)(float *x, int n);
    /* One query head against n_kv cached positions: out (head_dim) =
     * sum_j softmax(scale * q.k_j)_j v_j; att is scratch of n_kv + head_dim
     * floats.
     * With an F16 cache, q and the softmax weights are rounded to F16
     * before their dot products (llama.cpp's default KV path). */
    void (*attend)(float *out, const float *q, const melt_kv_view *kv, int n_kv,
                   int head_dim, float scale, float *att);
    /* n_group query heads (q and out: n_group x head_dim, consecutive)
     * against the one KV head they share, each exactly as attend would
     * give it; att is scratch of n_group * n_kv + head_dim floats. NULL:
     * the forward pass calls attend per head. */
    void (*attend_group)(float *out, const float *q, int n_group, const melt_kv_view *kv, int n_kv,
                         int head_dim, float scale, float *att);
    /* gate[i] = silu(gate[i]) * up[i]. */
    void (*swiglu)(float *gate, const float *up, int n);
} melt_ops;

/* Row i of w dequantized to n_in floats (embedding look-up). */
void melt_weight_row_f32(const melt_weight *w, int64_t row, float *out);

/* Rows [*r0, *r1) of n_rows split as evenly as possible over nth threads. */
void melt_ops_slice(int64_t n_rows, int ith, int nth, int64_t *r0, int64_t *r1);

const melt_ops *melt_ops_ref(void);      /* kernels/ref.c */
const melt_ops *melt_ops_scalar(void);   /* kernels/scalar.c */

/* The matmul every vec_dot family shares (kernels/scalar.c): this thread's
 * slice of w's output rows, each dotted with the n_tok activation rows by
 * dot — converted rows xq when w's type has a dot type, else the F32 rows
 * x. dot has the signature of melt_vec_dot_fn (kernels/vec_dot.h). */
void melt_ops_matmul_by_dot(const melt_weight *w, float (*dot)(int64_t, const void *, const void *),
                            const float *x, const void *xq, int n_tok, float *y, int ith, int nth);
/* The family for the requested kernels (enum melt_kernels; kernels/select.c);
 * NULL for an unknown value. */
const melt_ops *melt_ops_select(int kernels);

#endif
