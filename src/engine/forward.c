/* The llama-family forward pass (llama 1/2/3, mistral, TinyLlama, qwen2).
 *
 * melt_forward_llama reads top to bottom in model order, like llama2.c's
 * forward(): embed, then per layer RMSNorm -> Q/K/V -> RoPE -> KV cache ->
 * attention -> output projection -> residual, RMSNorm -> SwiGLU FFN ->
 * residual; then the final norm and the classifier. The heavy ops go
 * through c->ops (ops.h) and run on the thread pool, split by output rows
 * (matmuls) or by (token, head) (attention, dealt round-robin; by (token,
 * KV head) where the kernels attend a KV head's query heads at once). */
#include <math.h>
#include <stddef.h>

#include "engine/engine_internal.h"
#include "engine/profile.h"

/* ---- parallel helpers ---- */

typedef struct matmul_task {
    const melt_context *c;
    const melt_weight *w;
    const float *x;
    void *xq;        /* x converted for w's type, or NULL */
    int n_tok;
    float *y;
} matmul_task;

static void convert_run(void *arg, int ith, int nth)
{
    const matmul_task *t = arg;
    t->c->ops->act_convert(t->w->type, t->x, t->n_tok, t->w->n_in, t->xq, ith, nth);
}

static void matmul_run(void *arg, int ith, int nth)
{
    const matmul_task *t = arg;
    float *buf = t->c->scratch + (size_t)ith * t->c->scratch_floats;
    t->c->ops->matmul(t->w, t->x, t->xq, t->n_tok, t->y, buf, ith, nth);
}

/* y (n_tok x w->n_out) = x (n_tok x w->n_in) times w transposed; the
 * activations are first converted to what the kernels want for w's type
 * (e.g. Q8_0 blocks), one row per token. */
static void matmul(melt_context *c, float *y, const melt_weight *w, const float *x, int n_tok)
{
    matmul_task t = {.c = c, .w = w, .x = x, .n_tok = n_tok, .y = y};
    if (c->ops->act_row_bytes && c->ops->act_row_bytes(w->type, w->n_in) > 0) {
        t.xq = c->act;
        if (n_tok == 1) c->ops->act_convert(w->type, x, 1, w->n_in, t.xq, 0, 1);
        else melt_pool_run(c->pool, convert_run, &t);
    }
    melt_pool_run(c->pool, matmul_run, &t);
}

/* Products of one input with up to three weights of the same type and
 * width (Q, K, V; gate, up): the input converted once, and one dispatch
 * in which each thread computes its slice of each product in turn. */
typedef struct matmuls_task {
    const melt_context *c;
    int n;
    const melt_weight *const *w;
    float *const *y;
    const float *x;
    void *xq;
    int n_tok;
} matmuls_task;

static void matmuls_run(void *arg, int ith, int nth)
{
    const matmuls_task *t = arg;
    float *buf = t->c->scratch + (size_t)ith * t->c->scratch_floats;
    for (int i = 0; i < t->n; i++)
        t->c->ops->matmul(t->w[i], t->x, t->xq, t->n_tok, t->y[i], buf, ith, nth);
}

/* y[i] = x times w[i] transposed for i < n, weights of one type grouped. */
static void matmuls(melt_context *c, int n, float *const y[], const melt_weight *const w[], const float *x,
                    int n_tok)
{
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && w[j]->type == w[i]->type && w[j]->n_in == w[i]->n_in) j++;
        if (j == i + 1) {
            matmul(c, y[i], w[i], x, n_tok);
        } else {
            matmuls_task t = {.c = c, .n = j - i, .w = w + i, .y = y + i, .x = x, .n_tok = n_tok};
            if (c->ops->act_row_bytes && c->ops->act_row_bytes(w[i]->type, w[i]->n_in) > 0) {
                matmul_task conv = {.c = c, .w = w[i], .x = x, .xq = c->act, .n_tok = n_tok};
                t.xq = c->act;
                if (n_tok == 1) c->ops->act_convert(w[i]->type, x, 1, w[i]->n_in, t.xq, 0, 1);
                else melt_pool_run(c->pool, convert_run, &conv);
            }
            melt_pool_run(c->pool, matmuls_run, &t);
        }
        i = j;
    }
}

typedef struct attention_task {
    const melt_context *c;
    int layer, n_tok, pos;
} attention_task;

static void attention_run(void *arg, int ith, int nth)
{
    const attention_task *t = arg;
    const melt_context *c = t->c;
    const melt_hparams *hp = &c->model->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd;
    const int group = hp->n_head / hp->n_head_kv;  /* query heads per KV head */
    const float scale = 1.0f / sqrtf((float)hd);
    float *scratch = c->scratch + (size_t)ith * c->scratch_floats;
    /* the query heads of one KV head together, where the kernels can and
     * the scratch holds all their scores (same results as one by one) */
    const size_t n_kv_max = (size_t)t->pos + (size_t)t->n_tok;
    if (c->ops->attend_group && group > 1 && (size_t)group * n_kv_max + (size_t)hd <= c->scratch_floats) {
        const int n_items = t->n_tok * hp->n_head_kv;
        for (int i = ith; i < n_items; i += nth) {   /* round-robin, as below */
            const int tok = i / hp->n_head_kv, hk = i % hp->n_head_kv;
            const size_t off = (size_t)tok * q_dim + (size_t)hk * group * hd;
            melt_kv_view kv = melt_kv_cache_view(&c->kv, t->layer, hk, hd);
            c->ops->attend_group(c->att + off, c->q + off, group, &kv, t->pos + tok + 1, hd, scale, scratch);
        }
        return;
    }
    const int n_items = t->n_tok * hp->n_head;
    /* items dealt round-robin: a later token attends to more positions, so
     * contiguous shares would give the last thread the most work */
    for (int i = ith; i < n_items; i += nth) {
        const int tok = i / hp->n_head, h = i % hp->n_head;
        const size_t off = (size_t)tok * q_dim + (size_t)h * hd;
        melt_kv_view kv = melt_kv_cache_view(&c->kv, t->layer, h / group, hd);
        c->ops->attend(c->att + off, c->q + off, &kv, t->pos + tok + 1, hd, scale, scratch);
    }
}

/* Causal self-attention of n_tok queries at pos.. over the cache. */
static void attention(melt_context *c, int layer, int n_tok, int pos)
{
    attention_task t = {.c = c, .layer = layer, .n_tok = n_tok, .pos = pos};
    melt_pool_run(c->pool, attention_run, &t);
}

static void add_bias(float *y, const float *b, int n_tok, int n)
{
    if (!b) return;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] += b[i];
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* ---- the forward pass ---- */

void melt_forward_llama(melt_context *c, const int32_t *tokens, int n, int pos,
                        enum melt_logits which, float *logits)
{
    const melt_model *m = c->model;
    const melt_hparams *hp = &m->hp;
    const melt_ops *ops = c->ops;
    const int d = hp->n_embd, hd = hp->head_dim, ff = hp->n_ff;
    const int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    float *x = c->x, *xb = c->xb;
    melt_profile *P = c->profile;  /* NULL: not profiling */

    /* token embeddings */
    melt_prof_begin(P, MELT_PROF_EMBED, MELT_PROF_NO_LAYER);
    for (int t = 0; t < n; t++)
        melt_weight_row_f32(&m->tok_embd, tokens[t], x + (size_t)t * d);
    melt_prof_end(P);

    for (int l = 0; l < hp->n_layer; l++) {
        const melt_layer *ly = &m->layers[l];

        /* attention: x += wo(attn(rope(wq xn), rope(wk xn), wv xn)), xn = rmsnorm(x) */
        melt_prof_begin(P, MELT_PROF_NORM, l);
        for (int t = 0; t < n; t++)
            ops->rmsnorm(xb + (size_t)t * d, x + (size_t)t * d, ly->attn_norm, d, hp->norm_eps);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_MATMUL, l);
        {
            float *const ys[3] = {c->q, c->k, c->v};
            const melt_weight *const ws[3] = {&ly->wq, &ly->wk, &ly->wv};
            matmuls(c, 3, ys, ws, xb, n);
        }
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_BIAS, l);
        add_bias(c->q, ly->bq, n, q_dim);
        add_bias(c->k, ly->bk, n, kv_dim);
        add_bias(c->v, ly->bv, n, kv_dim);
        melt_prof_end(P);
        for (int t = 0; t < n; t++) {
            melt_prof_begin(P, MELT_PROF_ROPE, l);
            ops->rope(c->q + (size_t)t * q_dim, hp->n_head, hd, pos + t, &hp->rope);
            ops->rope(c->k + (size_t)t * kv_dim, hp->n_head_kv, hd, pos + t, &hp->rope);
            melt_prof_end(P);
            melt_prof_begin(P, MELT_PROF_KV_STORE, l);
            melt_kv_cache_store(&c->kv, l, pos + t, c->k + (size_t)t * kv_dim,
                                c->v + (size_t)t * kv_dim);
            melt_prof_end(P);
        }
        melt_prof_begin(P, MELT_PROF_ATTENTION, l);
        attention(c, l, n, pos);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_MATMUL, l);
        matmul(c, xb, &ly->wo, c->att, n);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_BIAS, l);
        add_bias(xb, ly->bo, n, d);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_RESIDUAL, l);
        add(x, xb, (size_t)n * d);
        melt_prof_end(P);

        /* feed-forward: x += w_down(silu(w_gate xn) * w_up xn), xn = rmsnorm(x) */
        melt_prof_begin(P, MELT_PROF_NORM, l);
        for (int t = 0; t < n; t++)
            ops->rmsnorm(xb + (size_t)t * d, x + (size_t)t * d, ly->ffn_norm, d, hp->norm_eps);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_MATMUL, l);
        {
            float *const ys[2] = {c->hb, c->hb2};
            const melt_weight *const ws[2] = {&ly->w_gate, &ly->w_up};
            matmuls(c, 2, ys, ws, xb, n);
        }
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_FFN_ACT, l);
        for (int t = 0; t < n; t++)
            ops->swiglu(c->hb + (size_t)t * ff, c->hb2 + (size_t)t * ff, ff);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_MATMUL, l);
        matmul(c, xb, &ly->w_down, c->hb, n);
        melt_prof_end(P);
        melt_prof_begin(P, MELT_PROF_RESIDUAL, l);
        add(x, xb, (size_t)n * d);
        melt_prof_end(P);
    }

    /* final norm and classifier, for the rows asked for */
    if (which == MELT_LOGITS_NONE) return;
    const int first = which == MELT_LOGITS_ALL ? 0 : n - 1;
    melt_prof_begin(P, MELT_PROF_NORM, MELT_PROF_NO_LAYER);
    for (int t = first; t < n; t++)
        ops->rmsnorm(xb + (size_t)(t - first) * d, x + (size_t)t * d, m->output_norm, d, hp->norm_eps);
    melt_prof_end(P);
    melt_prof_begin(P, MELT_PROF_MATMUL, MELT_PROF_NO_LAYER);
    matmul(c, logits, &m->output, xb, n - first);
    melt_prof_end(P);
}
