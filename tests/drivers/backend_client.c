/* backend_client — run one request through a backend's ops (libmelt) and
 * print what it reported, for integration tests of backends against real
 * servers (e.g. openai against `melt serve`).
 *
 *   backend_client NAME URL_OR_MODEL PROMPT N_PREDICT [--chat] [--binary PATH]
 *
 * NAME: openai (URL_OR_MODEL is the url) or mlc (the model). Greedy
 * sampling. stdout: the generated text, exactly. stderr: one line per
 * token "token INDEX T_NS ID", each figure "figure KEY VALUE UNIT", then
 * "request T_NS" (when it was sent) and "end REASON N_GEN N_PROMPT". Exit 0 ok, 1 error (message on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"
#include "melt/backend.h"

static int on_token(void *ctx, int64_t t_ns, int index, int32_t id, const char *text, size_t len)
{
    (void)ctx;
    (void)text;
    (void)len;
    fprintf(stderr, "token %d %lld %d\n", index, (long long)t_ns, (int)id);
    return 0;
}

static void on_figure(void *ctx, const char *key, double v, const char *unit)
{
    (void)ctx;
    fprintf(stderr, "figure %s %.17g %s\n", key, v, unit);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: backend_client NAME URL_OR_MODEL PROMPT N_PREDICT [--chat] [--binary PATH]\n");
        return 2;
    }
    const melt_backend_ops *ops = melt_backend_find(argv[1]);
    if (!ops) {
        fprintf(stderr, "backend_client: unknown backend %s\n", argv[1]);
        return 2;
    }
    bool chat = false;
    melt_backend_params p = melt_backend_default_params();
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--chat")) chat = true;
        else if (!strcmp(argv[i], "--binary") && i + 1 < argc) p.binary = argv[++i];
    }
    p.sampling.temperature = 0;
    if (!strcmp(argv[1], "openai")) p.url = argv[2];
    else p.model = argv[2];
    melt_backend_sink sink = {.token = on_token, .figure = on_figure};
    melt_backend *b = NULL;
    melt_error err = {0};
    if (ops->open(&p, &sink, &b, &err) < 0) {
        fprintf(stderr, "backend_client: %s\n", err.msg);
        return 1;
    }
    const melt_chat_msg msg[] = {{"user", argv[3]}};
    melt_backend_request rq = {.n_predict = (int)strtol(argv[4], NULL, 10)};
    if (chat) {
        rq.messages = msg;
        rq.n_messages = 1;
    } else {
        rq.prompt = argv[3];
    }
    melt_backend_result res;
    const int rc = ops->request(b, &rq, &sink, &res, &err);
    if (rc == 0) {
        fputs(res.reply, stdout);
        fprintf(stderr, "request %lld\n", (long long)res.t_request_ns);
        fprintf(stderr, "end %s %d %d\n", melt_backend_end_name(res.end), res.n_gen, res.n_prompt);
    } else {
        fprintf(stderr, "backend_client: %s\n", err.msg);
    }
    melt_backend_result_free(&res);
    ops->close(b);
    return rc == 0 ? 0 : 1;
}
