/* melt — the openai backend: any OpenAI-compatible endpoint by URL (a
 * cloud API, vLLM, llama-server, `melt serve` on an edge machine). This is
 * how offloading is measured: the device runs only this client, so every
 * token time includes the network.
 *
 * Params: url (base URL, e.g. http://10.0.0.2:8080/v1), model (NULL: the
 * first one GET {url}/models lists), api_key_env (the name of an
 * environment variable holding the key, sent as "Authorization: Bearer";
 * its value is read from the environment at each request and never
 * copied, logged or stored), sampling (temperature, top_p, seed),
 * request_timeout_ms, cancel. Ignored: binary, mode, port, threads,
 * n_ctx, n_batch, kv_type, chat_template, extra_args.
 *
 * Chat messages go to /v1/chat/completions, a text prompt (or token ids)
 * to /v1/completions, streamed with usage included; usage members are
 * figures, and so are llama.cpp's timings when the server sends them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/http.h"

struct melt_backend {
    melt_backend_params p;
    char url[1024];
    char model[256];          /* "" = leave it to the server */
    char key_env[128];        /* "" = no key */
};

/* The key, freshly from the environment (NULL when none is configured). */
static const char *api_key(const melt_backend *b)
{
    return b->key_env[0] ? getenv(b->key_env) : NULL;
}

static void openai_close(melt_backend *b)
{
    free(b);
}

static int openai_open(const melt_backend_params *p, const melt_backend_sink *sink, melt_backend **out,
                       melt_error *err)
{
    *out = NULL;
    if (!p->url || !*p->url)
        return melt_errorf(err, MELT_EINVAL, "openai: no url given (e.g. url: http://HOST:8080/v1)");
    melt_http_url u;
    int rc = melt_http_parse_url(p->url, &u, err);
    if (rc < 0) return melt_errorf(err, rc, "openai: %s", err ? err->msg : "bad url");
    /* a URL cut to fit would reach another path: refuse it */
    if (strlen(p->url) >= sizeof ((melt_backend *)0)->url)
        return melt_errorf(err, MELT_EINVAL, "openai: url longer than %zu bytes",
                           sizeof ((melt_backend *)0)->url - 1);
    melt_backend *b = calloc(1, sizeof *b);
    if (!b) return melt_errorf(err, MELT_ENOMEM, "out of memory");
    b->p = *p;
    snprintf(b->url, sizeof b->url, "%s", p->url);
    if (p->api_key_env && *p->api_key_env) {
        if (strlen(p->api_key_env) >= sizeof b->key_env) {
            free(b);
            return melt_errorf(err, MELT_EINVAL, "openai: api_key_env name too long");
        }
        snprintf(b->key_env, sizeof b->key_env, "%s", p->api_key_env);
        const char *key = getenv(b->key_env);
        if (!key || !*key) {
            free(b);
            return melt_errorf(err, MELT_EINVAL,
                               "openai: environment variable %s (api_key_env) is not set", p->api_key_env);
        }
    }
    /* Check the server answers; a server without a model list (404) is fine. */
    char first[256];
    int status = 0;
    const int64_t timeout = p->start_timeout_ms > 0 ? p->start_timeout_ms : 30000;
    /* A server still loading its model answers 503 ("Loading model" from
     * llama-server and melt serve): wait for it up to the start timeout. */
    struct timespec t0, now, pause = {0, 200 * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rc = melt_oai_first_model(b->url, api_key(b), timeout, p->cancel, first, sizeof first, &status, err);
        clock_gettime(CLOCK_MONOTONIC, &now);
        const int64_t waited_ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (rc >= 0 || status != 503 || waited_ms >= timeout || (p->cancel && *p->cancel)) break;
        nanosleep(&pause, NULL);
    }
    if (rc < 0 && status != 404 && !(rc == MELT_ENOTFOUND && status == 200)) {
        free(b);
        return melt_errorf(err, rc, "openai: %s", err ? err->msg : "server check failed");
    }
    if (p->model && *p->model) snprintf(b->model, sizeof b->model, "%s", p->model);
    else if (rc == 0) snprintf(b->model, sizeof b->model, "%s", first);
    (void)sink;
    melt_error_clear(err);
    *out = b;
    return 0;
}

unsigned melt_openai_caps(const melt_backend *b)
{
    (void)b;
    return MELT_BACKEND_TEXT | MELT_BACKEND_CHAT;
}

const melt_tokenizer *melt_openai_tokenizer(const melt_backend *b)
{
    (void)b;
    return NULL;
}

void melt_openai_reset(melt_backend *b)
{
    (void)b;   /* stateless: every request carries its whole conversation */
}

melt_oai_call melt_openai_call(const char *base_url, const char *model, const melt_backend_request *rq,
                               const melt_backend_params *p)
{
    return (melt_oai_call){
        .base_url = base_url,
        .kind = rq->messages ? MELT_OAI_CHAT : MELT_OAI_COMPLETIONS,
        .model = model,
        .rq = rq,
        .sampling = &p->sampling,
        .idle_timeout_ms = p->request_timeout_ms,
        .cancel = p->cancel,
    };
}

int melt_openai_stream(const char *name, const melt_oai_call *c, const melt_backend_sink *sink,
                       melt_backend_result *res, melt_error *err)
{
    if (sink && sink->started) {   /* the prompt's length is the server's to know */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sink->started(sink->ctx, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, -1);
    }
    const int rc = melt_oai_stream(c, sink, res, err);
    if (rc < 0) melt_errorf(err, rc, "%s: %s", name, err ? err->msg : "request failed");
    return rc;
}

static int openai_request(melt_backend *b, const melt_backend_request *rq, const melt_backend_sink *sink,
                          melt_backend_result *res, melt_error *err)
{
    melt_oai_call c = melt_openai_call(b->url, b->model[0] ? b->model : NULL, rq, &b->p);
    c.api_key = api_key(b);
    return melt_openai_stream("openai", &c, sink, res, err);
}

static const melt_backend_ops openai_ops = {
    .name = "openai",
    .caps = MELT_BACKEND_TEXT | MELT_BACKEND_CHAT,
    .open = openai_open,
    .caps_of = melt_openai_caps,
    .tokenizer = melt_openai_tokenizer,
    .request = openai_request,
    .reset = melt_openai_reset,
    .close = openai_close,
};

const melt_backend_ops *melt_backend_openai(void)
{
    return &openai_ops;
}
