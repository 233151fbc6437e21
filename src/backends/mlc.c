/* melt — the mlc backend: MLC-LLM's OpenAI-compatible server.
 *
 * open starts `BINARY serve MODEL --host 127.0.0.1 --port P [extra_args]`
 * (binary: params.binary or "mlc_llm" on PATH; P: params.port or a free
 * loopback port), waits until GET /v1/models answers 200 (reported as the
 * figure load_ms), and takes the served model's name from that list.
 * Requests then go to it as with the openai backend: chat messages to
 * /v1/chat/completions, text to /v1/completions, streamed with usage;
 * the numeric members of MLC's usage.extra (prefill_tokens_per_s,
 * decode_tokens_per_s, ttft_s, ...) become figures. ignore_eos is sent as
 * MLC's debug_config.ignore_eos. close stops the server (SIGTERM, then
 * SIGKILL after 5 s). Ignored: url, api_key_env, n_threads, n_ctx,
 * n_batch, kv_type, chat_template (MLC's compiled model fixes them; pass
 * MLC options through extra_args).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"

struct melt_backend {
    melt_backend_params p;
    melt_server *srv;
    char url[128];
    char model[512];
};

static void mlc_close(melt_backend *b)
{
    if (!b) return;
    melt_server_stop(b->srv);
    free(b);
}

static int mlc_open(const melt_backend_params *p, const melt_backend_sink *sink, melt_backend **out,
                    melt_error *err)
{
    *out = NULL;
    if (!p->model || !*p->model)
        return melt_errorf(err, MELT_EINVAL, "mlc: no model given (an MLC model directory or HF:// id)");
    int port = p->port;
    if (port <= 0 && (port = melt_http_free_port(err)) < 0) return port;
    melt_backend *b = calloc(1, sizeof *b);
    const int n_argv = 7 + (p->n_extra_args > 0 ? p->n_extra_args : 0);
    char **argv = calloc((size_t)n_argv + 1, sizeof *argv);
    if (!b || !argv) {
        free(b);
        free(argv);
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    }
    b->p = *p;
    char port_s[16], health[160];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(b->url, sizeof b->url, "http://127.0.0.1:%d/v1", port);
    snprintf(health, sizeof health, "%s/models", b->url);
    int k = 0;
    argv[k++] = (char *)(p->binary && *p->binary ? p->binary : "mlc_llm");
    argv[k++] = (char *)"serve";
    argv[k++] = (char *)p->model;
    argv[k++] = (char *)"--host";
    argv[k++] = (char *)"127.0.0.1";
    argv[k++] = (char *)"--port";
    argv[k++] = port_s;
    for (int i = 0; i < p->n_extra_args; i++) argv[k++] = (char *)p->extra_args[i];
    argv[k] = NULL;
    /* The agent opens backends with SIGINT/SIGTERM blocked (kept for the
     * threads it starts); blocked here they could not cancel a start that
     * may take minutes (p->cancel is set by their handler). Nothing here
     * starts threads: let them in while the server starts, as llamacpp does. */
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    int rc = melt_server_start(argv, health, NULL, p->start_timeout_ms, p->cancel, &b->srv, err);
    free(argv);
    if (rc == 0) rc = melt_oai_first_model(b->url, NULL, 10000, p->cancel, b->model, sizeof b->model, NULL, err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0 && !b->srv) {
        free(b);
        return melt_errorf(err, rc, "mlc: %s", err ? err->msg : "server start failed");
    }
    if (sink && sink->figure)
        sink->figure(sink->ctx, "load_ms", (double)melt_server_start_ns(b->srv) / 1e6, "ms");
    if (rc < 0) {
        mlc_close(b);
        return melt_errorf(err, rc, "mlc: %s", err ? err->msg : "no model listed");
    }
    *out = b;
    return 0;
}

static int mlc_request(melt_backend *b, const melt_backend_request *rq, const melt_backend_sink *sink,
                       melt_backend_result *res, melt_error *err)
{
    if (!melt_server_alive(b->srv)) {
        char tail[300];
        melt_server_log_tail(b->srv, tail, sizeof tail);
        return melt_errorf(err, MELT_EIO, "mlc: the server (pid %d) is gone; its last output: %s",
                           melt_server_pid(b->srv), tail[0] ? tail : "(none)");
    }
    /* MLC takes ignore_eos inside debug_config, not as a top-level member. */
    melt_backend_request r = *rq;
    r.ignore_eos = false;
    melt_oai_call c = melt_openai_call(b->url, b->model, &r, &b->p);
    if (rq->ignore_eos) c.extra_json = "\"debug_config\":{\"ignore_eos\":true}";
    return melt_openai_stream("mlc", &c, sink, res, err);
}

static const melt_backend_ops mlc_ops = {
    .name = "mlc",
    .caps = MELT_BACKEND_TEXT | MELT_BACKEND_CHAT,
    .open = mlc_open,
    .caps_of = melt_openai_caps,
    .tokenizer = melt_openai_tokenizer,
    .request = mlc_request,
    .reset = melt_openai_reset,
    .close = mlc_close,
};

const melt_backend_ops *melt_backend_mlc(void)
{
    return &mlc_ops;
}
