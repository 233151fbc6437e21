/* melt — the builtin backend: melt's own engine (src/engine) in process.
 *
 * open loads the model, its tokenizer, a context and a sampler, and
 * reports n_threads and n_ctx. A request is exact token ids (synthetic
 * pp/tg), a text (tokenized with special tokens, BOS where the vocab adds
 * one) or chat messages: those are rendered with the chat template
 * (params.chat_template, else the one the GGUF names), the oldest
 * exchanges dropped while the prompt and the answer would not fit, and the
 * tokens already in the KV cache from the previous turn (the longest
 * common prefix) are not decoded again, as a chat application does. The
 * prompt count given to sink->started is the number actually decoded.
 * reset() forgets the cache (a new conversation). After each request the
 * engine's figures: prompt_ns, ttft_ns, gen_ns, sample_ns, prefill_tps,
 * decode_tps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "melt/backend.h"
#include "melt/chat.h"
#include "melt/engine.h"
#include "melt/generate.h"
#include "melt/gguf.h"

struct melt_backend {
    melt_backend_params p;
    melt_model *model;
    melt_tokenizer *tok;
    melt_context *ctx;
    melt_sampler *smp;
    enum melt_chat_template tmpl;
    char no_tmpl[384];      /* why chat cannot work (tmpl UNKNOWN) */
    melt_token *cached;     /* the tokens in the KV cache, in order */
    size_t n_cached;
    size_t first;           /* leading messages of this conversation dropped */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void figure(const melt_backend_sink *s, const char *key, double v, const char *unit)
{
    if (s && s->figure)
        s->figure(s->ctx, key, v, unit);
}

static void builtin_close(melt_backend *b)
{
    if (!b)
        return;
    melt_sampler_free(b->smp);
    melt_context_free(b->ctx);
    melt_tokenizer_free(b->tok);
    melt_model_free(b->model);
    free(b->cached);
    free(b);
}

/* The chat template: the one named, else the model's; when neither works
 * chat requests fail with no_tmpl (other requests do not need one). */
static int pick_template(melt_backend *b, melt_error *err)
{
    if (b->p.chat_template) {
        if (!melt_chat_template_parse(b->p.chat_template, &b->tmpl))
            return melt_errorf(err, MELT_EINVAL, "unknown chat template '%s' (one of %s)",
                               b->p.chat_template, melt_chat_template_names());
        return 0;
    }
    melt_str j = {0};
    if (melt_gguf_get_str(melt_model_gguf(b->model), "tokenizer.chat_template", &j))
        b->tmpl = melt_chat_template_detect(j.ptr, (size_t)j.len);
    if (b->tmpl == MELT_CHAT_UNKNOWN)
        snprintf(b->no_tmpl, sizeof b->no_tmpl, "%s: %s; name one with --chat-template (%s)",
                 b->p.model,
                 j.ptr ? "the model's chat template is not one melt knows"
                       : "the model has no chat template (tokenizer.chat_template)",
                 melt_chat_template_names());
    return 0;
}

static int builtin_open(const melt_backend_params *p, const melt_backend_sink *sink,
                        melt_backend **out, melt_error *err)
{
    *out = NULL;
    if (!p->model || !*p->model)
        return melt_errorf(err, MELT_EINVAL, "builtin: no model file given (-m FILE)");
    melt_backend *b = calloc(1, sizeof *b);
    if (!b)
        return melt_errorf(err, MELT_ENOMEM, "out of memory for the builtin engine");
    b->p = *p;
    int rc = melt_model_load(p->model, NULL, &b->model, err);
    if (rc == 0) {
        rc = melt_tokenizer_load(melt_model_gguf(b->model), &b->tok, err);
        if (rc < 0) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            melt_errorf(err, rc, "%s: %s", p->model, m);
        }
    }
    if (rc == 0) {
        melt_context_params cp = melt_context_default_params();
        if (p->n_ctx > 0)
            cp.n_ctx = p->n_ctx;
        if (p->n_batch > 0)
            cp.n_batch = p->n_batch;
        cp.n_threads = p->n_threads > 0 ? p->n_threads : 0;
        if (p->kv_type && strcmp(p->kv_type, "f32") == 0)
            cp.kv_type = MELT_KV_F32;
        rc = melt_context_new(b->model, &cp, &b->ctx, err);
    }
    if (rc == 0)
        rc = melt_sampler_new(&p->sampling, melt_model_n_vocab(b->model), &b->smp, err);
    if (rc == 0)
        rc = pick_template(b, err);
    if (rc < 0) {
        builtin_close(b);
        return rc;
    }
    figure(sink, "n_threads", melt_context_n_threads(b->ctx), "count");
    figure(sink, "n_ctx", melt_context_n_ctx(b->ctx), "count");
    *out = b;
    return 0;
}

static unsigned builtin_caps(const melt_backend *b)
{
    (void)b;
    return MELT_BACKEND_TOKENS | MELT_BACKEND_TEXT | MELT_BACKEND_CHAT;
}

static const melt_tokenizer *builtin_tokenizer(const melt_backend *b)
{
    return b->tok;
}

static void builtin_reset(melt_backend *b)
{
    b->n_cached = 0;
    b->first = 0;
    melt_sampler_reset(b->smp);
}

typedef struct gen_ctx {
    melt_backend *b;
    const melt_backend_sink *sink;
} gen_ctx;

static int on_token(const melt_gen_token *t, void *user)
{
    gen_ctx *g = user;
    if (t->id == MELT_TOKEN_NULL)   /* the final UTF-8 flush: no token */
        return 0;
    int stop = g->b->p.cancel && *g->b->p.cancel;
    if (g->sink && g->sink->token &&
        g->sink->token(g->sink->ctx, (int64_t)t->t_ns, t->index, t->id, t->text, t->len))
        stop = 1;
    return stop;
}

static enum melt_backend_end end_of(enum melt_stop_reason s)
{
    switch (s) {
    case MELT_STOP_EOG: return MELT_BACKEND_END_EOG;
    case MELT_STOP_CTX: return MELT_BACKEND_END_CONTEXT;
    case MELT_STOP_CALLER: return MELT_BACKEND_END_CALLER;
    case MELT_STOP_LIMIT: break;
    }
    return MELT_BACKEND_END_LIMIT;
}

/* Decode ids[skip..n) at position skip (the cache holds ids[0..skip)),
 * then generate; the cache then holds the prompt and the generated ids. */
static int generate(melt_backend *b, const melt_token *ids, size_t n, size_t skip,
                    const melt_backend_request *rq, const melt_backend_sink *sink, bool want_reply,
                    melt_backend_result *res, melt_error *err)
{
    melt_generate_params gp = melt_generate_default_params();
    gp.n_predict = rq->n_predict;
    gp.ignore_eos = rq->ignore_eos;
    gen_ctx g = {b, sink};
    melt_token *gen = NULL;
    melt_generate_stats st;
    memset(&st, 0, sizeof st);
    res->t_request_ns = now_ns();
    if (sink && sink->started)
        sink->started(sink->ctx, res->t_request_ns, (int)(n - skip));
    b->n_cached = 0;   /* rewritten below when generation got that far */
    int rc = melt_generate(b->ctx, b->tok, b->smp, ids + skip, (int)(n - skip), (int)skip, &gp,
                           on_token, &g, &gen, &st, err);
    res->n_prompt = st.n_prompt;
    res->n_gen = st.n_gen;
    res->end = end_of(st.stop);
    if (rc < 0) {
        free(gen);
        return rc;
    }
    const size_t n_past = (size_t)st.n_past;
    melt_token *q = realloc(b->cached, (n_past ? n_past : 1) * sizeof *q);
    if (!q) {
        free(gen);
        return melt_errorf(err, MELT_ENOMEM, "out of memory for the KV cache's token list");
    }
    b->cached = q;
    for (size_t i = 0; i < n_past; i++)
        q[i] = i < n ? ids[i] : gen[i - n];
    b->n_cached = n_past;
    if (want_reply) {
        size_t len = 0;
        rc = melt_detokenize(b->tok, gen, (size_t)st.n_gen, 0, &res->reply, &len, err);
    }
    free(gen);
    if (rc < 0)
        return rc;
    figure(sink, "prompt_ns", (double)st.prompt_ns, "ns");
    figure(sink, "ttft_ns", (double)st.ttft_ns, "ns");
    figure(sink, "gen_ns", (double)st.gen_ns, "ns");
    figure(sink, "sample_ns", (double)st.sample_ns, "ns");
    figure(sink, "prefill_tps", melt_generate_prompt_tps(&st), "tok/s");
    figure(sink, "decode_tps", melt_generate_decode_tps(&st), "tok/s");
    return 0;
}

static int tokenize(melt_backend *b, const char *text, melt_token **ids, size_t *n, melt_error *err)
{
    return melt_tokenize(b->tok, text, strlen(text),
                         MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, ids, n, err);
}

/* The conversation's messages from b->first on, rendered and tokenized;
 * the oldest exchanges are dropped (for good: later turns only grow) while
 * the prompt and n_predict would exceed limit. */
static int chat_prompt(melt_backend *b, const melt_backend_request *rq, int limit, melt_token **ids,
                       size_t *n_ids, melt_error *err)
{
    if (b->tmpl == MELT_CHAT_UNKNOWN)
        return melt_errorf(err, MELT_EUNSUPPORTED, "%s", b->no_tmpl);
    if (b->first >= rq->n_messages) {   /* a new conversation without reset() */
        b->first = 0;
        b->n_cached = 0;
    }
    const size_t room = rq->n_predict > 0 ? (size_t)rq->n_predict : 0;
    for (;;) {
        char *text = NULL;
        int rc = melt_chat_render(b->tmpl, rq->messages + b->first, rq->n_messages - b->first, true,
                                  &text, err);
        if (rc < 0)
            return rc;
        free(*ids);
        *ids = NULL;
        rc = tokenize(b, text, ids, n_ids, err);
        free(text);
        if (rc < 0 || *n_ids + room <= (size_t)limit || rq->n_messages - b->first <= 1)
            return rc;
        b->first += rq->n_messages - b->first >= 2 ? 2 : 1;
        b->n_cached = 0;   /* the prefix changed */
    }
}

static int builtin_request(melt_backend *b, const melt_backend_request *rq,
                           const melt_backend_sink *sink, melt_backend_result *res, melt_error *err)
{
    memset(res, 0, sizeof *res);
    res->n_prompt = -1;
    const int n_ctx = melt_context_n_ctx(b->ctx);
    if (rq->tokens) {
        if (rq->n_tokens < 1)
            return melt_errorf(err, MELT_EINVAL, "the prompt is empty (no tokens)");
        melt_sampler_reset(b->smp);
        return generate(b, rq->tokens, (size_t)rq->n_tokens, 0, rq, sink, false, res, err);
    }
    melt_token *ids = NULL;
    size_t n = 0;
    int rc;
    size_t skip = 0;
    if (rq->prompt) {
        rc = tokenize(b, rq->prompt, &ids, &n, err);
        if (rc == 0 && n > (size_t)n_ctx)
            rc = melt_errorf(err, MELT_EINVAL,
                             "context overflow: the prompt has %zu tokens, the context holds %d "
                             "(use -c)", n, n_ctx);
        melt_sampler_reset(b->smp);
    } else if (rq->messages && rq->n_messages) {
        const int limit = rq->max_context_tokens > 0 && rq->max_context_tokens < n_ctx
                              ? rq->max_context_tokens : n_ctx;
        rc = chat_prompt(b, rq, limit, &ids, &n, err);
        if (rc == 0 && n >= (size_t)n_ctx)
            rc = melt_errorf(err, MELT_EINVAL, "the prompt has %zu tokens, the context holds %d",
                             n, n_ctx);
        /* reuse the cache for the longest common prefix; decode at least one */
        while (rc == 0 && skip < b->n_cached && skip < n && b->cached[skip] == ids[skip])
            skip++;
        if (skip == n && n)
            skip--;
    } else {
        rc = melt_errorf(err, MELT_EINVAL, "builtin: a request needs tokens, a prompt or messages");
    }
    if (rc == 0 && n == 0)
        rc = melt_errorf(err, MELT_EINVAL, "the prompt is empty (no tokens)");
    if (rc == 0)
        rc = generate(b, ids, n, skip, rq, sink, true, res, err);
    free(ids);
    return rc;
}

static const melt_backend_ops builtin_ops = {
    .name = "builtin",
    .caps = MELT_BACKEND_TOKENS | MELT_BACKEND_TEXT | MELT_BACKEND_CHAT,
    .open = builtin_open,
    .caps_of = builtin_caps,
    .tokenizer = builtin_tokenizer,
    .request = builtin_request,
    .reset = builtin_reset,
    .close = builtin_close,
};

const melt_backend_ops *melt_backend_builtin(void);
const melt_backend_ops *melt_backend_builtin(void)
{
    return &builtin_ops;
}
