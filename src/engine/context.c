/* Contexts: KV cache, activation buffers, threads; melt_decode checks its
 * arguments and feeds the forward pass n_batch tokens at a time. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

melt_context_params melt_context_default_params(void)
{
    melt_context_params p = {
        .n_ctx = 0,
        .n_batch = 512,
        .n_threads = 0,
        .kv_type = MELT_KV_F16,
    };
    return p;
}

static float *alloc_floats(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

int melt_context_new(const melt_model *m, const melt_context_params *params, melt_context **out,
                     melt_error *err)
{
    *out = NULL;
    melt_context_params defaults = melt_context_default_params();
    if (!params) params = &defaults;
    const melt_hparams *hp = &m->hp;

    int n_ctx = params->n_ctx;
    if (n_ctx < 0) return melt_errorf(err, MELT_EINVAL, "n_ctx %d is negative", n_ctx);
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    int n_batch = params->n_batch;
    if (n_batch < 0) return melt_errorf(err, MELT_EINVAL, "n_batch %d is negative", n_batch);
    if (n_batch == 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    int n_threads = params->n_threads;
    if (n_threads < 0) return melt_errorf(err, MELT_EINVAL, "n_threads %d is negative", n_threads);
    if (n_threads == 0) n_threads = melt_pool_cpu_count();
    if (params->kv_type != MELT_KV_F16 && params->kv_type != MELT_KV_F32)
        return melt_errorf(err, MELT_EINVAL, "unknown KV cache type %d", (int)params->kv_type);

    melt_context *c = calloc(1, sizeof *c);
    if (!c) return melt_errorf(err, MELT_ENOMEM, "out of memory for a context");
    c->model = m;
    c->ops = m->ops;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_threads = n_threads;

    const int kv_dim = hp->n_head_kv * hp->head_dim;
    int rc = melt_kv_cache_init(&c->kv, params->kv_type == MELT_KV_F16, hp->n_layer, n_ctx, kv_dim, err);
    if (rc < 0) goto fail;
    if ((rc = melt_pool_new(n_threads, &c->pool, err)) < 0) goto fail;

    const size_t B = (size_t)n_batch, q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    bool ok = true;
    c->x = alloc_floats(B * (size_t)hp->n_embd, &ok);
    c->xb = alloc_floats(B * (size_t)hp->n_embd, &ok);
    c->q = alloc_floats(B * q_dim, &ok);
    c->k = alloc_floats(B * (size_t)kv_dim, &ok);
    c->v = alloc_floats(B * (size_t)kv_dim, &ok);
    c->att = alloc_floats(B * q_dim, &ok);
    c->hb = alloc_floats(B * (size_t)hp->n_ff, &ok);
    c->hb2 = alloc_floats(B * (size_t)hp->n_ff, &ok);
    /* per thread: a dequantized weight row, or the attention scores of the
     * query heads that share a KV head (attend_group) + q */
    const size_t group = hp->n_head_kv > 0 ? (size_t)(hp->n_head / hp->n_head_kv) : 1;
    size_t per = (size_t)m->max_row;
    const size_t att = group * (size_t)n_ctx + (size_t)hp->head_dim;
    if (att > per) per = att;
    c->scratch_floats = (per + 15) & ~(size_t)15;  /* keep threads' slices apart */
    c->scratch = alloc_floats((size_t)n_threads * c->scratch_floats, &ok);
    /* converted activations: every dot type takes at most 2 bytes an element */
    c->act_bytes = B * 2 * (size_t)m->max_row + 64;
    c->act = malloc(c->act_bytes);
    if (!c->act) ok = false;
    if (!ok) {
        rc = melt_errorf(err, MELT_ENOMEM, "out of memory for activations (n_batch %d)", n_batch);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    melt_context_free(c);
    return rc;
}

void melt_context_free(melt_context *c)
{
    if (!c) return;
    melt_pool_free(c->pool);
    melt_kv_cache_free(&c->kv);
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->scratch);
    free(c->act);
    free(c);
}

int melt_context_n_ctx(const melt_context *c) { return c->n_ctx; }
int melt_context_n_threads(const melt_context *c) { return c->n_threads; }
int melt_context_n_past(const melt_context *c) { return c->n_past; }

int melt_decode(melt_context *c, const int32_t *tokens, int n, int pos, enum melt_logits which,
                float *logits_out, melt_error *err)
{
    const int n_vocab = c->model->hp.n_vocab;
    if (n < 1 || !tokens) return melt_errorf(err, MELT_EINVAL, "decode of %d tokens", n);
    if (which != MELT_LOGITS_NONE && which != MELT_LOGITS_LAST && which != MELT_LOGITS_ALL)
        return melt_errorf(err, MELT_EINVAL, "unknown logits request %d", (int)which);
    if (which != MELT_LOGITS_NONE && !logits_out)
        return melt_errorf(err, MELT_EINVAL, "logits requested but no output buffer given");
    if (pos < 0 || pos > c->n_past)
        return melt_errorf(err, MELT_EINVAL,
                           "decode at position %d, but the cache holds positions 0..%d (no gaps allowed)",
                           pos, c->n_past - 1);
    if ((int64_t)pos + n > c->n_ctx)
        return melt_errorf(err, MELT_EINVAL,
                           "context overflow: positions %d..%d do not fit n_ctx %d",
                           pos, pos + n - 1, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return melt_errorf(err, MELT_EINVAL, "token %d (at index %d) is outside the vocabulary (0..%d)",
                               (int)tokens[i], i, n_vocab - 1);

    for (int s = 0; s < n; s += c->n_batch) {
        const int nb = n - s < c->n_batch ? n - s : c->n_batch;
        const bool last_chunk = s + nb == n;
        enum melt_logits w = MELT_LOGITS_NONE;
        float *out = NULL;
        if (which == MELT_LOGITS_ALL) {
            w = MELT_LOGITS_ALL;
            out = logits_out + (size_t)s * (size_t)n_vocab;
        } else if (which == MELT_LOGITS_LAST && last_chunk) {
            w = MELT_LOGITS_LAST;
            out = logits_out;
        }
        melt_forward_llama(c, tokens + s, nb, pos + s, w, out);
        c->n_past = pos + s + nb;
    }
    return 0;
}
