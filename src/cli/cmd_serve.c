/* melt serve -m FILE [--host H] [--port P] [--parallel N] [engine flags]
 * An OpenAI-compatible HTTP server over the builtin engine (the work is in
 * src/serve/). Listens first, then loads the model (/health says 503 until
 * it is ready), serves until SIGINT or SIGTERM, then stops cleanly. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "melt/chat.h"
#include "melt/serve.h"

enum { OPT_HOST = CLI_OPT_FREE, OPT_PORT, OPT_PARALLEL, OPT_ALIAS, OPT_MAX_BODY, OPT_QUEUE,
       OPT_MAX_CONN, OPT_TIMEOUT, OPT_TEMPLATE };

void usage_serve(FILE *out)
{
    fputs("usage: melt serve -m FILE [--host ADDR] [--port P] [--parallel N] [--alias NAME]\n"
          "                  [-t THREADS] [-c CTX] [--kv-type f16|f32] [--chat-template NAME]\n"
          "                  [-n N] [--temp T ...] [--queue N] [--max-connections N]\n"
          "                  [--max-body-bytes N] [--timeout S]\n"
          "Serve a model over HTTP with an OpenAI-compatible API: GET /health,\n"
          "GET /v1/models, POST /v1/completions and /v1/chat/completions (streamed\n"
          "with \"stream\": true). Prints 'melt serve: listening on http://HOST:PORT ...'\n"
          "on stderr once listening; stops on SIGINT or SIGTERM. See docs/serve.md.\n\n"
          "  -m, --model FILE        GGUF model\n"
          "      --host ADDR         address to listen on (default 127.0.0.1)\n"
          "      --port P            port (default 8080; 0: any free port)\n"
          "      --parallel N        slots: requests generated at once (default 1); each\n"
          "                          has its own context of -c positions and -t threads\n"
          "      --alias NAME        model name in responses (default: the file name)\n"
          "      --queue N           requests that may wait for a slot (default 64);\n"
          "                          beyond that: 503\n"
          "      --max-connections N open connections at most (default 512)\n"
          "      --max-body-bytes N  larger request bodies get 413 (default 8388608)\n"
          "      --timeout S         close connections idle for S seconds (default 600)\n"
          "      --chat-template N   chat format (default: detected from the model, else\n"
          "                          chatml): llama2, llama3, chatml, mistral, phi3,\n"
          "                          gemma, zephyr\n"
          "  -t, --threads N         engine threads per slot (default: all cores)\n"
          "  -c, --ctx N             context size per slot (default: the model's, at most 4096)\n"
          "      --kv-type T         KV cache element type, f16 (default) or f32\n"
          "  -n, --n-predict N       default max_tokens (default -1: until end of\n"
          "                          generation or a full context)\n"
          "      --temp T ...        default sampling (--top-k --top-p --min-p\n"
          "                          --repeat-penalty --repeat-last-n --seed), as for\n"
          "                          'melt generate'; requests override them\n"
          "  -h, --help              show this help\n", out);
}

/* Enough descriptors for every connection (plus the model and slack). */
static void raise_nofile(int max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t want = (rlim_t)max_connections + 64;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static int parse_serve_opt(int c, const char *arg, melt_serve_params *p)
{
    unsigned long long u = 0;
    switch (c) {
    case OPT_HOST: p->host = arg; return 1;
    case OPT_PORT: return cli_parse_int(arg, 0, 65535, &p->port) ? 1 : -1;
    case OPT_PARALLEL: return cli_parse_int(arg, 1, 256, &p->n_parallel) ? 1 : -1;
    case OPT_ALIAS: p->alias = arg; return *arg ? 1 : -1;
    case OPT_QUEUE: return cli_parse_int(arg, 0, 1 << 20, &p->max_queue) ? 1 : -1;
    case OPT_MAX_CONN: return cli_parse_int(arg, 1, 1 << 20, &p->max_connections) ? 1 : -1;
    case OPT_TIMEOUT: return cli_parse_int(arg, 0, 1 << 24, &p->timeout_s) ? 1 : -1;
    case OPT_MAX_BODY:
        if (!cli_parse_u64("--max-body-bytes", arg, &u) || u == 0) return -1;
        p->max_body_bytes = (size_t)u;
        return 1;
    case OPT_TEMPLATE: {
        enum melt_chat_template t;
        p->chat_template = arg;
        return melt_chat_template_parse(arg, &t) ? 1 : -1;
    }
    case 'n': return cli_parse_int(arg, -1, 1 << 30, &p->defaults.max_tokens) ? 1 : -1;
    default: return 0;
    }
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"parallel", required_argument, NULL, OPT_PARALLEL},
        {"alias", required_argument, NULL, OPT_ALIAS},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"chat-template", required_argument, NULL, OPT_TEMPLATE},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"kv-type", required_argument, NULL, 'K'},
        {"n-predict", required_argument, NULL, 'n'},
        CLI_SAMPLING_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    melt_serve_params p = melt_serve_default_params();
    cli_engine e = cli_engine_defaults();
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":m:t:c:n:h", opts, usage_serve)) != -1) {
        int r = cli_sampling_opt(c, optarg, &p.defaults.sampling, usage_serve);
        if (r == 0) r = cli_engine_opt(c, optarg, &e, argv[0], usage_serve);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (c == 'h') {
            usage_serve(stdout);
            return CLI_OK;
        }
        r = parse_serve_opt(c, optarg, &p);
        if (r < 0) {
            const char *name = "";
            for (const struct option *o = opts; o->name; o++)
                if (o->val == c) { name = o->name; break; }
            return cli_usage_error(usage_serve, "serve: bad value '%s' for --%s", optarg, name);
        }
        if (r == 0) return CLI_USAGE;
    }
    if (optind < argc)
        return cli_usage_error(usage_serve, "serve: unexpected argument '%s'", argv[optind]);
    if (!e.model_path) return cli_usage_error(usage_serve, "serve: missing -m FILE");
    /* The model loads after the socket listens (so /health can say
     * "loading"); a path that cannot be read fails before that. access(),
     * not open(): a FIFO must not block here. */
    if (access(e.model_path, R_OK) != 0) {
        melt_error oerr = {0};
        melt_errorf(&oerr, MELT_EIO, "%s: cannot open: %s", e.model_path, strerror(errno));
        return cli_fail(&oerr);
    }
    p.model_path = e.model_path;
    p.n_ctx = e.n_ctx;
    p.n_batch = e.n_batch;
    p.n_threads = e.n_threads;
    p.kv_type = e.kv_type;

    /* Signals are taken by sigwait below: block them before any thread
     * starts (threads inherit the mask). A dead client must not kill us. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(p.max_connections);

    melt_error err = {0};
    melt_serve_server *srv = NULL;
    if (melt_serve_start(&p, &srv, &err) < 0) return cli_fail(&err);
    fprintf(stderr, "melt serve: listening on http://%s:%d (model %s, %d slots)\n",
            melt_serve_host(srv), melt_serve_port(srv), melt_serve_model_name(srv), p.n_parallel);
    uint64_t load_ns = 0;
    if (melt_serve_load(srv, &load_ns, &err) < 0) {
        melt_serve_stop(srv);
        return cli_fail(&err);
    }
    fprintf(stderr, "melt serve: model loaded in %.1f ms, ready\n", (double)load_ns / 1e6);
    int sig = 0;
    sigwait(&stop_sigs, &sig);
    fprintf(stderr, "melt serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    melt_serve_stop(srv);
    fprintf(stderr, "melt serve: stopped\n");
    return CLI_OK;
}
