/* melt-agent: runs one cell of an experiment on this device and writes its
 * event stream (docs/agent-protocol.md) to stdout, one JSON line per event.
 *
 *   hello, [probes start], phase load, phase idle, [phase warmup],
 *   then per repetition: request, phase prefill, first_token, phase decode,
 *   token..., end, engine figures; finally bye.
 *
 * Every workload runs through a backend (include/melt/backend.h): the
 * builtin engine by default, or llama.cpp, MLC or an OpenAI-compatible
 * server (--backend). The agent builds the requests (exact synthetic
 * token ids, text prompts, conversations whose history it keeps) and
 * turns what the backend reports into the lines; the backend's own
 * figures are written after each end line with its name in "engine".
 *
 * Links libmelt.a's engine, backends and probes and nothing beyond libc,
 * libm and pthreads, so it can be built static for a phone or board.
 * Exit status: 0 ok, 1 error (an error line says why), 2 usage, 130
 * interrupted (SIGINT/SIGTERM: the current token is finished, its request
 * ends with reason "caller").
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "melt/backend.h"
#include "melt/chat.h"
#include "melt/plan.h"
#include "melt/probe.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"
#include "melt_version.h"

#define AGENT_PROTO 1
#define MAX_PROBES 16
#define MAX_SERVER_ARGS 64
#define MAX_FIGURES 64

/* Set by the SIGINT/SIGTERM handler; the only state outside main's frame
 * (a signal handler can reach nothing else). */
static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

static void usage(FILE *out)
{
    fputs("usage: melt-agent -m FILE (--synthetic PP,TG | --prompt TEXT [-n N] [--ignore-eos]\n"
          "                  | --plan FILE [--chat-template NAME])\n"
          "                  [--backend NAME [--backend-mode server|cli] [--binary PATH]\n"
          "                   [--url URL] [--api-key-env NAME] [--server-arg ARG]... [--port N]]\n"
          "                  [-t N] [-c N] [-b N] [--kv-type f16|f32] [sampling flags]\n"
          "                  [--reps N] [--warmup N] [--idle-ms N] [--probe NAME[:HZ]]...\n"
          "Run one benchmark cell and write its events as JSON lines to stdout\n"
          "(docs/agent-protocol.md). Exit 0 ok, 1 error, 2 usage, 130 interrupted.\n\n"
          "  -m, --model FILE        GGUF model (openai, mlc: the served model's name,\n"
          "                          optional for openai)\n"
          "      --synthetic PP,TG   a prompt of exactly PP tokens, exactly TG generated\n"
          "                          (end of generation ignored), as llama-bench pp/tg; a\n"
          "                          backend that takes no token ids gets a text of about\n"
          "                          PP tokens (engine figure synthetic_text_tokens)\n"
          "      --prompt TEXT       a text prompt (BOS where the vocab asks)\n"
          "      --plan FILE         a workload plan from the host (melt/plan.h; - for\n"
          "                          stdin): synthetic, prompts, or conversations run\n"
          "                          turn by turn through the chat template\n"
          "      --chat-template T   template for conversations (default: the model's)\n"
          "  -n, --n-predict N       with --prompt: most tokens to generate (default 128)\n"
          "      --ignore-eos        with --prompt: do not stop at end of generation\n"
          "      --backend NAME      the engine under test: builtin (default), llamacpp,\n"
          "                          mlc, openai (docs/backends.md)\n"
          "      --backend-mode M    llamacpp: server (default: llama-server over HTTP)\n"
          "                          or cli (llama-completion, timings from its stderr)\n"
          "      --binary PATH       the server / cli program (default: found on PATH)\n"
          "      --url URL           openai: the endpoint, e.g. http://10.0.0.2:8080/v1\n"
          "      --api-key-env NAME  openai: the environment variable holding the key\n"
          "      --server-arg ARG    one more argument for the server / cli; repeatable\n"
          "      --port N            llamacpp/mlc server port (default: a free one)\n"
          "  -t, --threads N         threads (default: all cores)\n"
          "  -c, --ctx N             context size (default: --synthetic PP+TG, else the\n"
          "                          model's, at most 4096)\n"
          "  -b, --batch N           most tokens per forward pass (default 512)\n"
          "      --kv-type T         KV cache type, f16 (default) or f32\n"
          "      --temp T --top-k K --top-p P --min-p M --repeat-penalty R\n"
          "      --repeat-last-n N --seed S   sampling, as in melt generate\n"
          "      --reps N            repetitions in this run (default 1); each is one\n"
          "                          request with the same prompt and a reset sampler\n"
          "      --warmup N          untimed requests before the first (default 0; only\n"
          "                          phase warmup lines are written for them)\n"
          "      --idle-ms N         idle baseline: sleep N ms after loading while the\n"
          "                          probes sample (phase idle)\n"
          "      --probe NAME[:HZ]   sample probe NAME at HZ (default: its own rate);\n"
          "                          repeatable\n"
          "      --probe-root DIR    read probe files below DIR (tests; default /)\n"
          "  -V, --version           print the version and exit\n"
          "      --listen PORT [--bind ADDR] [--dir DIR]   (first flag) serve the host's\n"
          "                          tcp transport (bind default 127.0.0.1)\n"
          "      --echo              (only flag) answer clock-sync lines \"echo T\" on\n"
          "                          stdin with \"echo T NS\" (CLOCK_MONOTONIC) until EOF\n"
          "      --describe [--root DIR]   (first flag) print this device (os, cpu,\n"
          "                          memory, governors, temperatures) as one JSON line\n"
          "  -h, --help              show this help\n", out);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("melt-agent: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see melt-agent --help)\n", stderr);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    const float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

typedef struct agent_cfg {
    const char *model;
    const char *prompt;
    const char *plan_path;
    const char *chat_template;
    int pp, tg;                 /* --synthetic; pp = 0 when not given */
    int n_predict;
    bool ignore_eos;
    int reps, warmup;
    long idle_ms;
    int n_threads, n_ctx, n_batch;   /* 0: the backend's default */
    const char *kv_type;        /* NULL: the backend's default */
    bool ctx_given;
    melt_sampler_params sp;
    melt_probe_spec probes[MAX_PROBES];
    char probe_names[MAX_PROBES][64];
    size_t n_probes;
    const char *probe_root;
    const char *backend;        /* --backend (default builtin) */
    const char *mode, *binary, *url, *api_key_env;
    const char *server_args[MAX_SERVER_ARGS];
    int n_server_args;
    int port;
} agent_cfg;

enum {
    OPT_SYNTH = 256, OPT_IGNORE_EOS, OPT_KV, OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P,
    OPT_REP_PEN, OPT_REP_N, OPT_SEED, OPT_REPS, OPT_WARMUP, OPT_IDLE, OPT_PROBE,
    OPT_PROBE_ROOT, OPT_PLAN, OPT_CHAT_TEMPLATE, OPT_BACKEND, OPT_MODE, OPT_BINARY, OPT_URL,
    OPT_KEY_ENV, OPT_SERVER_ARG, OPT_PORT,
};

/* The backend flags (--backend ...); 0 when o is not one, 2 on a usage error. */
static int parse_backend_opt(int o, const char *a, agent_cfg *c, int *handled)
{
    long v;
    *handled = 1;
    switch (o) {
    case OPT_BACKEND:
        if (!melt_backend_find(a))
            return usage_error("unknown backend '%s' (one of builtin, llamacpp, mlc, openai)", a);
        c->backend = a;
        break;
    case OPT_MODE:
        if (strcmp(a, "server") != 0 && strcmp(a, "cli") != 0)
            return usage_error("--backend-mode is server or cli, got '%s'", a);
        c->mode = a;
        break;
    case OPT_BINARY: c->binary = a; break;
    case OPT_URL: c->url = a; break;
    case OPT_KEY_ENV: c->api_key_env = a; break;
    case OPT_SERVER_ARG:
        if (c->n_server_args == MAX_SERVER_ARGS)
            return usage_error("at most 64 --server-arg flags (at '%s')", a);
        c->server_args[c->n_server_args++] = a;
        break;
    case OPT_PORT:
        if (!parse_long(a, 1, 65535, &v)) return usage_error("--port needs 1..65535, got '%s'", a);
        c->port = (int)v;
        break;
    default:
        *handled = 0;
    }
    return 0;
}

/* 0 ok, 2 usage error, -1: --help/--version done (exit 0). */
static int parse_args(int argc, char **argv, agent_cfg *c)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"synthetic", required_argument, NULL, OPT_SYNTH},
        {"prompt", required_argument, NULL, 'p'},
        {"n-predict", required_argument, NULL, 'n'},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'b'},
        {"kv-type", required_argument, NULL, OPT_KV},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"min-p", required_argument, NULL, OPT_MIN_P},
        {"repeat-penalty", required_argument, NULL, OPT_REP_PEN},
        {"repeat-last-n", required_argument, NULL, OPT_REP_N},
        {"seed", required_argument, NULL, OPT_SEED},
        {"reps", required_argument, NULL, OPT_REPS},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"idle-ms", required_argument, NULL, OPT_IDLE},
        {"probe", required_argument, NULL, OPT_PROBE},
        {"probe-root", required_argument, NULL, OPT_PROBE_ROOT},
        {"plan", required_argument, NULL, OPT_PLAN},
        {"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"backend-mode", required_argument, NULL, OPT_MODE},
        {"binary", required_argument, NULL, OPT_BINARY},
        {"url", required_argument, NULL, OPT_URL},
        {"api-key-env", required_argument, NULL, OPT_KEY_ENV},
        {"server-arg", required_argument, NULL, OPT_SERVER_ARG},
        {"port", required_argument, NULL, OPT_PORT},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long v;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":m:p:n:t:c:b:Vh", opts, NULL)) != -1) {
        const char *a = optarg;
        int handled;
        const int brc = parse_backend_opt(o, a, c, &handled);
        if (brc) return brc;
        if (handled) continue;
        switch (o) {
        case 'm': c->model = a; break;
        case 'p': c->prompt = a; break;
        case OPT_SYNTH: {
            char *end;
            errno = 0;
            const long pp = strtol(a, &end, 10);
            if (errno || end == a || *end != ',' || pp < 1 || pp > (1L << 24))
                return usage_error("--synthetic needs PP,TG with PP >= 1 and TG >= 0, got '%s'", a);
            if (!parse_long(end + 1, 0, 1L << 24, &v))
                return usage_error("--synthetic needs PP,TG with PP >= 1 and TG >= 0, got '%s'", a);
            c->pp = (int)pp;
            c->tg = (int)v;
            break;
        }
        case 'n':
            if (!parse_long(a, -1, 1L << 30, &v)) return usage_error("-n needs an integer >= -1, got '%s'", a);
            c->n_predict = (int)v;
            break;
        case OPT_IGNORE_EOS: c->ignore_eos = true; break;
        case 't':
            if (!parse_long(a, 1, 1L << 16, &v)) return usage_error("-t needs an integer >= 1, got '%s'", a);
            c->n_threads = (int)v;
            break;
        case 'c':
            if (!parse_long(a, 1, 1L << 24, &v)) return usage_error("-c needs an integer >= 1, got '%s'", a);
            c->n_ctx = (int)v;
            c->ctx_given = true;
            break;
        case 'b':
            if (!parse_long(a, 1, 1L << 24, &v)) return usage_error("-b needs an integer >= 1, got '%s'", a);
            c->n_batch = (int)v;
            break;
        case OPT_KV:
            if (strcmp(a, "f16") != 0 && strcmp(a, "f32") != 0)
                return usage_error("--kv-type is f16 or f32, got '%s'", a);
            c->kv_type = a;
            break;
        case OPT_TEMP:
            if (!parse_float(a, &c->sp.temperature)) return usage_error("bad value '%s' for --temp", a);
            break;
        case OPT_TOP_K:
            if (!parse_long(a, 0, 1L << 30, &v)) return usage_error("bad value '%s' for --top-k", a);
            c->sp.top_k = (int32_t)v;
            break;
        case OPT_TOP_P:
            if (!parse_float(a, &c->sp.top_p) || c->sp.top_p < 0 || c->sp.top_p > 1)
                return usage_error("bad value '%s' for --top-p", a);
            break;
        case OPT_MIN_P:
            if (!parse_float(a, &c->sp.min_p) || c->sp.min_p < 0 || c->sp.min_p > 1)
                return usage_error("bad value '%s' for --min-p", a);
            break;
        case OPT_REP_PEN:
            if (!parse_float(a, &c->sp.repeat_penalty) || c->sp.repeat_penalty <= 0)
                return usage_error("bad value '%s' for --repeat-penalty", a);
            break;
        case OPT_REP_N:
            if (!parse_long(a, 0, 1L << 30, &v)) return usage_error("bad value '%s' for --repeat-last-n", a);
            c->sp.repeat_last_n = (int32_t)v;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            const unsigned long long s = strtoull(a, &end, 10);
            if (errno || end == a || *end || a[0] == '-') return usage_error("bad value '%s' for --seed", a);
            c->sp.seed = s;
            break;
        }
        case OPT_REPS:
            if (!parse_long(a, 1, 1L << 20, &v)) return usage_error("--reps needs an integer >= 1, got '%s'", a);
            c->reps = (int)v;
            break;
        case OPT_WARMUP:
            if (!parse_long(a, 0, 1L << 20, &v)) return usage_error("--warmup needs an integer >= 0, got '%s'", a);
            c->warmup = (int)v;
            break;
        case OPT_IDLE:
            if (!parse_long(a, 0, 86400000L, &v)) return usage_error("--idle-ms needs an integer >= 0, got '%s'", a);
            c->idle_ms = v;
            break;
        case OPT_PROBE: {
            if (c->n_probes == MAX_PROBES) return usage_error("at most 16 --probe flags (at '%s')", a);
            const char *colon = strchr(a, ':');
            const size_t nl = colon ? (size_t)(colon - a) : strlen(a);
            double hz = 0;
            if (colon) {
                char *end;
                errno = 0;
                hz = strtod(colon + 1, &end);
                if (errno || end == colon + 1 || *end || !(hz > 0) || hz > 100000)
                    return usage_error("--probe needs NAME or NAME:HZ with HZ > 0, got '%s'", a);
            }
            if (nl == 0 || nl >= sizeof c->probe_names[0])
                return usage_error("--probe needs NAME or NAME:HZ, got '%s'", a);
            memcpy(c->probe_names[c->n_probes], a, nl);
            c->probe_names[c->n_probes][nl] = '\0';
            c->probes[c->n_probes].name = c->probe_names[c->n_probes];
            c->probes[c->n_probes].rate_hz = hz;
            c->n_probes++;
            break;
        }
        case OPT_PROBE_ROOT: c->probe_root = a; break;
        case OPT_PLAN: c->plan_path = a; break;
        case OPT_CHAT_TEMPLATE: c->chat_template = a; break;
        case 'V': printf("melt-agent %s (%s), protocol %d\n", MELT_VERSION, MELT_GIT_COMMIT, AGENT_PROTO); return -1;
        case 'h': usage(stdout); return -1;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    /* an OpenAI endpoint serves its own model: -m only picks one by name */
    if (!c->model && strcmp(c->backend, "openai") != 0) return usage_error("%s", "missing -m FILE");
    if ((c->prompt != NULL) + (c->pp != 0) + (c->plan_path != NULL) != 1)
        return usage_error("%s", "give one workload: --synthetic PP,TG, --prompt TEXT or --plan FILE");
    if (c->pp && !c->ctx_given) c->n_ctx = c->pp + c->tg;
    return 0;
}

/* ---- the run ---- */

/* A figure a backend reported, kept until its request's end line is out. */
typedef struct figure {
    char key[96];
    char unit[16];
    double value;
} figure;

/* The request being run: its lines are written as the backend reports. */
typedef struct req_state {
    struct run *r;
    int req;
    bool timed;             /* write lines (not warm-up) */
    bool started;           /* request line written */
    int64_t t0;             /* when the agent called the backend */
    int64_t t_last;         /* latest time written for this request */
    int n_prompt;           /* the agent's own prompt count (-1 unknown) */
    int n_tok;              /* token lines written */
    figure figs[MAX_FIGURES];
    int n_figs;
} req_state;

typedef struct run {
    agent_out out;
    agent_cfg cfg;
    const melt_backend_ops *ops;
    melt_backend *b;
    unsigned caps;
    const melt_tokenizer *tok;   /* the backend's, or NULL */
    int n_ctx;              /* from the backend's n_ctx figure; 0 unknown */
    melt_probe_set *probes;
    melt_token *prompt;     /* exact prompt ids (synthetic, --prompt) */
    int n_prompt;
    char *text;             /* or a text prompt */
    bool as_chat;           /* send text as one user message (chat-only backend) */
    req_state q;
    int64_t emit_ns;        /* time spent writing lines inside generation */
    char absent[128];       /* probes not present on this device */
    sigset_t sigold;        /* the signal mask to restore once threads exist */
} run;

/* Copy src into dst[cap], cut on a UTF-8 character boundary if too long. */
static void set_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

#define SET_TEXT(field, src) set_text((field), sizeof(field), (src))

static void emit_phase(run *r, const char *name, const char *edge, int64_t t)
{
    melt_event ev = agent_event(MELT_EV_PHASE, t);
    SET_TEXT(ev.name, name);
    SET_TEXT(ev.key, edge);
    agent_emit(&r->out, &ev);
}

static void emit_error(run *r, int req, const char *msg)
{
    melt_event ev = agent_event(MELT_EV_ERROR, agent_now_ns());
    ev.req = req;
    SET_TEXT(ev.msg, msg);
    agent_emit(&r->out, &ev);
}

static void emit_figure(run *r, const char *who, int req, const char *key, double value,
                        const char *unit)
{
    melt_event ev = agent_event(MELT_EV_ENGINE, agent_now_ns());
    ev.req = req;
    SET_TEXT(ev.name, who);
    SET_TEXT(ev.key, key);
    SET_TEXT(ev.unit, unit);
    ev.value = value;
    ev.has_value = true;
    agent_emit(&r->out, &ev);
}

/* Write the figures kept for req (-1: those of loading) under the
 * backend's name. */
static void flush_figures(run *r, int req)
{
    for (int i = 0; i < r->q.n_figs; i++) {
        const figure *f = &r->q.figs[i];
        if (req < 0 && strcmp(f->key, "n_ctx") == 0 && f->value >= 1 && f->value < 1e9)
            r->n_ctx = (int)f->value;
        emit_figure(r, r->ops->name, req, f->key, f->value, f->unit);
    }
    r->q.n_figs = 0;
}

static void on_sample(void *ctx, const melt_event *ev)
{
    agent_emit(ctx, ev);
}

/* ---- the sink: backend reports become lines ---- */

static void sink_figure(void *ctx, const char *key, double value, const char *unit)
{
    req_state *q = ctx;
    if (q->n_figs == MAX_FIGURES || !isfinite(value)) return;
    figure *f = &q->figs[q->n_figs++];
    SET_TEXT(f->key, key ? key : "");
    SET_TEXT(f->unit, unit ? unit : "");
    f->value = value;
}

/* The request line and the prefill phase, once per request. */
static void req_begin(req_state *q, int64_t t, int n_prompt)
{
    if (q->started || !q->timed) return;
    q->started = true;
    if (t < q->t0) t = q->t0;
    q->t_last = t;
    melt_event ev = agent_event(MELT_EV_REQUEST, t);
    ev.req = q->req;
    ev.id = n_prompt >= 0 ? n_prompt : q->n_prompt >= 0 ? q->n_prompt : 0;
    agent_emit(&q->r->out, &ev);
    emit_phase(q->r, "prefill", "begin", t);
}

static void sink_started(void *ctx, int64_t t_ns, int n_prompt)
{
    req_begin(ctx, t_ns, n_prompt);
}

/* The hot path: one token line per token, formatted on the stack. */
static int sink_token(void *ctx, int64_t t_ns, int index, int32_t id, const char *text, size_t len)
{
    req_state *q = ctx;
    run *r = q->r;
    (void)index;
    (void)text;
    (void)len;
    if (q->timed) {
        const int64_t t_in = agent_now_ns();
        if (!q->started) req_begin(q, q->t0, -1);
        const int64_t tn = t_ns < q->t_last ? q->t_last : t_ns;
        q->t_last = tn;
        melt_event ev;
        if (q->n_tok == 0) {
            emit_phase(r, "prefill", "end", tn);
            ev = agent_event(MELT_EV_FIRST_TOKEN, tn);
            ev.req = q->req;
            agent_emit(&r->out, &ev);
            emit_phase(r, "decode", "begin", tn);
        }
        ev = agent_event(MELT_EV_TOKEN, tn);
        ev.req = q->req;
        ev.i = q->n_tok++;
        ev.id = id >= 0 ? id : -1;   /* -1: text only, the line has no id */
        agent_emit(&r->out, &ev);
        r->emit_ns += agent_now_ns() - t_in;
    }
    return g_signal || r->out.failed;
}

static melt_backend_sink make_sink(run *r)
{
    melt_backend_sink s;
    memset(&s, 0, sizeof s);
    s.ctx = &r->q;
    s.token = sink_token;
    s.figure = sink_figure;
    s.started = sink_started;
    return s;
}

/* ---- prompts ---- */

/* A synthetic prompt of exactly n tokens: BOS when the vocab adds one, then
 * ordinary tokens picked by a fixed xorshift sequence (seeded). */
static int synthetic_prompt(run *r, int n, melt_error *err)
{
    r->prompt = malloc((size_t)n * sizeof *r->prompt);
    if (!r->prompt) return melt_errorf(err, MELT_ENOMEM, "out of memory for a %d-token prompt", n);
    const int n_vocab = (int)melt_tokenizer_n_vocab(r->tok);
    int k = 0;
    const melt_token bos = melt_tokenizer_bos(r->tok);
    if (melt_tokenizer_adds_bos(r->tok) && bos != MELT_TOKEN_NULL) r->prompt[k++] = bos;
    uint64_t x = r->cfg.sp.seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    int misses = 0;
    while (k < n) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        const melt_token id = (melt_token)((x * 2685821657736338717ULL >> 33) % (uint64_t)n_vocab);
        if (melt_token_type_of(r->tok, id) == MELT_TOKEN_TYPE_NORMAL || ++misses > 1000000) {
            r->prompt[k++] = id;
            misses = 0;
        }
    }
    r->n_prompt = n;
    return 0;
}

/* n words of common English, each one token in most vocabularies. */
static char *word_text(int n)
{
    static const char *const words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it",
        "as", "was", "with", "be", "by", "on", "not", "he", "this", "are",
    };
    const size_t n_words = sizeof words / sizeof words[0];
    char *s = malloc((size_t)n * 6 + 1);
    if (!s) return NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *w = words[(size_t)i % n_words];
        if (i) s[len++] = ' ';
        memcpy(s + len, w, strlen(w));
        len += strlen(w);
    }
    s[len] = '\0';
    return s;
}

/* For a backend that takes no token ids: a text of about n tokens. With a
 * tokenizer (the same vocab as the engine's) the word count is adjusted
 * until the text is exactly n tokens, BOS included. */
static int synthetic_text(run *r, int n, melt_error *err)
{
    int words = n > 1 ? n - 1 : 1, got = -1;
    /* a few jumps by the difference, then single words (a word may be
     * several tokens: the nearest count is kept when n cannot be hit) */
    for (int round = 0; round < 40; round++) {
        free(r->text);
        if (!(r->text = word_text(words)))
            return melt_errorf(err, MELT_ENOMEM, "out of memory for a %d-token prompt", n);
        if (!r->tok) break;
        melt_token *ids = NULL;
        size_t n_ids = 0;
        if (melt_tokenize(r->tok, r->text, strlen(r->text), MELT_TOKENIZE_ADD_SPECIAL, &ids, &n_ids,
                          err) < 0)
            return err->code;
        free(ids);
        got = (int)n_ids;
        const int step = round < 8 ? n - got : got < n ? 1 : -1;
        if (got == n || words + step < 1) break;
        words += step;
    }
    r->n_prompt = got >= 0 ? got : n;
    return 0;
}

/* Move the first word of a synthetic text to its end, in place: the next
 * request then shares no prefix with the last one, so a server's prompt
 * cache (llama-server, vLLM, melt serve) cannot answer it from memory, and
 * the length in tokens stays the same. */
static void rotate_words(char *s)
{
    char *sp = strchr(s, ' ');
    if (!sp) return;
    const size_t first = (size_t)(sp - s), len = strlen(s);
    char word[16];
    if (first >= sizeof word) return;
    memcpy(word, s, first);
    memmove(s, sp + 1, len - first - 1);
    s[len - first - 1] = ' ';
    memcpy(s + len - first, word, first);
}

/* --prompt: exact ids when the backend takes them and has a tokenizer, so
 * the prompt is tokenized once; else the text. */
static int text_prompt(run *r, melt_error *err)
{
    if (!(r->caps & MELT_BACKEND_TOKENS) || !r->tok) {
        if (!(r->text = strdup(r->cfg.prompt))) return melt_errorf(err, MELT_ENOMEM, "out of memory");
        r->n_prompt = -1;
        return 0;
    }
    size_t n = 0;
    if (melt_tokenize(r->tok, r->cfg.prompt, strlen(r->cfg.prompt),
                      MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, &r->prompt, &n, err) < 0)
        return err->code;
    if (n == 0) return melt_errorf(err, MELT_EINVAL, "the prompt is empty (no tokens)");
    if (r->n_ctx && n > (size_t)r->n_ctx)
        return melt_errorf(err, MELT_EINVAL, "context overflow: the prompt has %zu tokens, the context holds %d (use -c)",
                           n, r->n_ctx);
    r->n_prompt = (int)n;
    return 0;
}

/* The request for synthetic and --prompt workloads. */
static melt_backend_request single_request(run *r, const melt_chat_msg *msg)
{
    melt_backend_request rq;
    memset(&rq, 0, sizeof rq);
    if (r->prompt) {
        rq.tokens = r->prompt;
        rq.n_tokens = r->n_prompt;
    } else if (r->as_chat) {
        rq.messages = msg;
        rq.n_messages = 1;
    } else {
        rq.prompt = r->text;
    }
    if (r->cfg.pp) {
        rq.n_predict = r->cfg.tg;
        rq.ignore_eos = true;
    } else {
        rq.n_predict = r->cfg.n_predict;
        rq.ignore_eos = r->cfg.ignore_eos;
    }
    return rq;
}

static void probe_notice(void *ctx, const char *probe, int code, const char *msg)
{
    run *r = ctx;   /* absent probes are listed in hello's "absent" */
    const size_t len = strlen(r->absent);
    (void)code;
    (void)msg;
    snprintf(r->absent + len, sizeof r->absent - len, "%s%s", len ? "," : "", probe);
}

/* Open the probes (before hello, so it can list them; they start sampling
 * once hello is written). */
static int start_probes(run *r, melt_event *hello, melt_error *err)
{
    if (!r->cfg.n_probes) return 0;
    melt_probe_set_params pp = melt_probe_set_default_params();
    pp.root = r->cfg.probe_root;
    pp.pid = (int)getpid();
    pp.specs = r->cfg.probes;
    pp.n_specs = r->cfg.n_probes;
    pp.emit = on_sample;
    pp.emit_ctx = &r->out;
    pp.notice = probe_notice;
    pp.notice_ctx = r;
    int rc = melt_probe_set_open(&r->probes, &pp, err);
    if (r->absent[0]) melt_event_hello_add(hello, "absent", r->absent);
    if (rc < 0) return rc;
    char list[200] = "";
    size_t len = 0;
    for (size_t i = 0; i < melt_probe_set_count(r->probes); i++) {
        const int k = snprintf(list + len, sizeof list - len, "%s%s:%g", i ? "," : "",
                               melt_probe_set_name(r->probes, i), melt_probe_set_rate_hz(r->probes, i));
        if (k < 0 || (size_t)k >= sizeof list - len) break;
        len += (size_t)k;
    }
    if (list[0]) melt_event_hello_add(hello, "probes", list);
    return 0;
}

/* Sleep ms in slices, returning early on a signal. */
static void idle_sleep(long ms)
{
    const int64_t until = agent_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        const int64_t left = until - agent_now_ns();
        if (left <= 0 || g_signal) return;
        const int64_t slice = left < 20000000 ? left : 20000000;
        struct timespec ts = {0, (long)slice};
        nanosleep(&ts, NULL);
    }
}

/* One timed request through the backend. n_prompt: the agent's own count
 * of the prompt's tokens (-1 unknown), written in the request line unless
 * the backend says how many it decoded. res->reply is the answer (the
 * caller frees it with melt_backend_result_free). Returns 0, 1 when
 * interrupted, or a negative code (error and end lines written; a request
 * that never started has only its error line). A stream that was cut (the
 * server went away) ends with reason "lost" and is an error: the runner
 * marks the trial lost. */
static int one_request(run *r, int req, const melt_backend_request *rq, int n_prompt,
                       melt_backend_result *res, melt_error *err)
{
    req_state *q = &r->q;
    q->r = r;
    q->req = req;
    q->timed = true;
    q->started = false;
    q->n_prompt = n_prompt;
    q->n_tok = 0;
    q->n_figs = 0;
    r->emit_ns = 0;
    memset(res, 0, sizeof *res);
    res->n_prompt = -1;
    const melt_backend_sink sink = make_sink(r);
    q->t0 = q->t_last = agent_now_ns();
    int rc = r->ops->request(r->b, rq, &sink, res, err);
    if (rc < 0 && !q->started) {   /* nothing started: say why, no request lines */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "request %d: %.480s", req, err->msg);
        emit_error(r, req, m);
        q->n_figs = 0;
        return rc;
    }
    if (!q->started) {   /* no token came and the backend never said when it began */
        const int64_t t = res->t_request_ns > q->t0 ? res->t_request_ns : q->t0;
        req_begin(q, t, res->n_prompt);
    }
    int64_t t1 = agent_now_ns();
    if (t1 < q->t_last) t1 = q->t_last;
    emit_phase(r, q->n_tok > 0 ? "decode" : "prefill", "end", t1);
    const bool lost = rc == 0 && res->end == MELT_BACKEND_END_LOST;
    if (lost)
        rc = melt_errorf(err, MELT_EIO, "request %d: %s: the engine's stream was cut after %d tokens (lost)",
                         req, r->ops->name, q->n_tok);
    if (rc < 0) {
        emit_error(r, req, err->msg);
        t1 = agent_now_ns();   /* lines keep time order: end after its error */
    }
    melt_event ev = agent_event(MELT_EV_END, t1);
    ev.req = req;
    ev.id = q->n_tok;
    SET_TEXT(ev.key, lost ? "lost" : rc < 0 ? "error" : melt_backend_end_name(res->end));
    agent_emit(&r->out, &ev);
    if (rc < 0 && !lost) {
        q->n_figs = 0;
        return rc;
    }
    flush_figures(r, req);
    /* the agent's own cost inside the token loop (formatting and writing) */
    emit_figure(r, "agent", req, "emit_ns", (double)r->emit_ns, "ns");
    if (rc < 0) return rc;
    return res->end == MELT_BACKEND_END_CALLER || g_signal || r->out.failed ? 1 : 0;
}

/* ---- plans (--plan): prompts and conversations ---- */

/* A growing list of chat messages; contents owned. */
typedef struct history {
    melt_chat_msg *msgs;
    size_t n, cap;
} history;

static int history_push(history *h, const char *role, const char *text, melt_error *err)
{
    if (h->n == h->cap) {
        const size_t cap = h->cap ? 2 * h->cap : 16;
        melt_chat_msg *q = realloc(h->msgs, cap * sizeof *q);
        if (!q) return melt_errorf(err, MELT_ENOMEM, "out of memory for the conversation");
        h->msgs = q;
        h->cap = cap;
    }
    char *t = strdup(text);
    if (!t) return melt_errorf(err, MELT_ENOMEM, "out of memory for the conversation");
    h->msgs[h->n].role = role;
    h->msgs[h->n].content = t;
    h->n++;
    return 0;
}

static void history_clear(history *h)
{
    for (size_t k = 0; k < h->n; k++) free((char *)h->msgs[k].content);
    h->n = 0;
}

/* One user turn of a conversation (chat: the whole history is sent, the
 * backend reuses what it cached), or one prompt (as_text: the text as is).
 * A backend without chat but with a --chat-template gets the history
 * rendered as text. */
static int plan_turn(run *r, history *h, bool as_text, const char *text, const melt_plan *plan,
                     int req, melt_error *err)
{
    melt_backend_request rq;
    memset(&rq, 0, sizeof rq);
    rq.n_predict = plan->max_gen_tokens;
    rq.ignore_eos = plan->ignore_eos;
    rq.max_context_tokens = plan->max_context_tokens;
    int rc = history_push(h, "user", text, err);
    char *rendered = NULL;
    if (rc == 0 && as_text && (r->caps & MELT_BACKEND_TEXT)) {
        rq.prompt = text;
    } else if (rc == 0 && !as_text && !(r->caps & MELT_BACKEND_CHAT)) {
        enum melt_chat_template t = MELT_CHAT_UNKNOWN;
        if (!r->cfg.chat_template || !melt_chat_template_parse(r->cfg.chat_template, &t))
            rc = melt_errorf(err, MELT_EUNSUPPORTED,
                             "backend %s%s%s takes no chat messages: name a template with "
                             "--chat-template (%s) to send conversations as text",
                             r->ops->name, r->cfg.mode ? " mode " : "", r->cfg.mode ? r->cfg.mode : "",
                             melt_chat_template_names());
        else if ((rc = melt_chat_render(t, h->msgs, h->n, true, &rendered, err)) == 0)
            rq.prompt = rendered;
    } else if (rc == 0) {   /* chat, or a prompt for a chat-only backend */
        rq.messages = h->msgs;
        rq.n_messages = h->n;
    }
    if (rc < 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "request %d: %.480s", req, err->msg);
        emit_error(r, req, m);
        return rc;
    }
    melt_backend_result res;
    rc = one_request(r, req, &rq, -1, &res, err);
    free(rendered);
    if (rc >= 0 && history_push(h, "assistant", res.reply ? res.reply : "", err) < 0) {
        emit_error(r, req, err->msg);
        rc = MELT_ENOMEM;
    }
    melt_backend_result_free(&res);
    return rc;
}

/* Every conversation of the plan, turn by turn; req counts on from *req. */
static int run_plan(run *r, const melt_plan *plan, int *req, melt_error *err)
{
    const bool prompts = plan->kind == MELT_PLAN_PROMPTS;
    history h = {0};
    int rc = 0;
    for (size_t c = 0; c < plan->n_convs && rc == 0; c++) {
        history_clear(&h);
        r->ops->reset(r->b);
        for (size_t t = 0; t < plan->convs[c].n_turns && rc == 0; t++) {
            if (prompts) {
                history_clear(&h);
                r->ops->reset(r->b);
            }
            rc = plan_turn(r, &h, prompts, plan->convs[c].turns[t], plan, (*req)++, err);
        }
    }
    history_clear(&h);
    free(h.msgs);
    return rc;
}

static int read_plan(const char *path, melt_plan **out, melt_error *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return melt_errorf(err, MELT_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *q = realloc(buf, cap * 2);
            if (!q) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = q;
            cap *= 2;
        }
    }
    const int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf) return melt_errorf(err, MELT_ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return melt_errorf(err, MELT_EIO, "%s: read error", path);
    }
    int rc = melt_plan_parse(buf, len, out, err);
    free(buf);
    if (rc < 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        melt_errorf(err, rc, "%s: %s", path, m);
    }
    return rc;
}

/* Untimed requests before the first: only the warmup phase is written. */
static int warmup(run *r, const melt_backend_request *rq, melt_error *err)
{
    emit_phase(r, "warmup", "begin", agent_now_ns());
    const melt_backend_sink sink = make_sink(r);
    r->q.r = r;
    r->q.timed = false;
    int rc = 0;
    for (int w = 0; w < r->cfg.warmup && !g_signal && rc == 0; w++) {
        melt_backend_result res;
        memset(&res, 0, sizeof res);
        rc = r->ops->request(r->b, rq, &sink, &res, err);
        if (rc == 0 && res.end == MELT_BACKEND_END_LOST)
            rc = melt_errorf(err, MELT_EIO, "warm-up: %s: the engine's stream was cut (lost)", r->ops->name);
        melt_backend_result_free(&res);
        r->q.n_figs = 0;
    }
    emit_phase(r, "warmup", "end", agent_now_ns());
    return rc;
}

/* Load the model / start the server: phase load, then the backend's load
 * figures (n_threads, n_ctx, load_ms ...). */
static int open_backend(run *r, melt_error *err)
{
    agent_cfg *c = &r->cfg;
    melt_backend_params p = melt_backend_default_params();
    p.model = c->model;
    p.mode = c->mode;
    p.binary = c->binary;
    p.url = c->url;
    p.api_key_env = c->api_key_env;
    p.chat_template = c->chat_template;
    p.extra_args = c->server_args;
    p.n_extra_args = c->n_server_args;
    p.n_threads = c->n_threads;
    p.n_ctx = c->n_ctx;
    p.n_batch = c->n_batch;
    p.kv_type = c->kv_type;
    p.sampling = c->sp;
    p.port = c->port;
    p.cancel = (const volatile int *)&g_signal;
    r->q.r = r;
    r->q.n_figs = 0;
    const melt_backend_sink sink = make_sink(r);
    emit_phase(r, "load", "begin", agent_now_ns());
    int rc = r->ops->open(&p, &sink, &r->b, err);
    emit_phase(r, "load", "end", agent_now_ns());
    /* the engine's threads exist now: signals may come in (to this thread) */
    pthread_sigmask(SIG_SETMASK, &r->sigold, NULL);
    if (rc < 0) {
        r->q.n_figs = 0;
        return rc;
    }
    flush_figures(r, -1);
    r->caps = r->ops->caps_of ? r->ops->caps_of(r->b) : r->ops->caps;
    r->tok = r->ops->tokenizer ? r->ops->tokenizer(r->b) : NULL;
    return 0;
}

/* The prompt of a synthetic or --prompt workload. */
static int prepare_single(run *r, melt_error *err)
{
    agent_cfg *c = &r->cfg;
    if (!c->pp) {
        if (text_prompt(r, err) < 0) return err->code;
        r->as_chat = r->text && !(r->caps & MELT_BACKEND_TEXT);
        return 0;
    }
    if (r->n_ctx && c->pp + c->tg > r->n_ctx)
        return melt_errorf(err, MELT_EINVAL, "--synthetic %d,%d needs a context of %d, -c is %d",
                           c->pp, c->tg, c->pp + c->tg, r->n_ctx);
    if ((r->caps & MELT_BACKEND_TOKENS) && r->tok) return synthetic_prompt(r, c->pp, err);
    int rc = synthetic_text(r, c->pp, err);
    if (rc < 0) return rc;
    r->as_chat = !(r->caps & MELT_BACKEND_TEXT);
    /* the prompt is text: say how long it was meant to be and how long it is */
    emit_figure(r, r->ops->name, -1, "synthetic_text_tokens", r->n_prompt, "count");
    return 0;
}

/* Everything between hello and bye; 0 ok, 1 interrupted, < 0 error (the
 * error line is written). */
static int run_cell(run *r)
{
    melt_error err = {0};
    agent_cfg *c = &r->cfg;
    melt_plan *plan = NULL;
    int rc = 0;
    if (c->plan_path) {
        if ((rc = read_plan(c->plan_path, &plan, &err)) < 0) goto fail;
        if (plan->kind == MELT_PLAN_SYNTHETIC) {
            c->pp = plan->prompt_tokens;
            c->tg = plan->gen_tokens;
            if (c->pp < 1 || c->tg < 0) {
                rc = melt_errorf(&err, MELT_EINVAL, "%s: synthetic plan needs prompt_tokens >= 1 and gen_tokens >= 0",
                                 c->plan_path);
                goto fail;
            }
            if (!c->ctx_given) c->n_ctx = c->pp + c->tg;
        }
    }
    if ((rc = open_backend(r, &err)) < 0) goto fail;
    if (c->pp || c->prompt) rc = prepare_single(r, &err);
    if (rc < 0) goto fail;
    if (g_signal) goto interrupted;
    if (c->idle_ms > 0) {
        emit_phase(r, "idle", "begin", agent_now_ns());
        idle_sleep(c->idle_ms);
        emit_phase(r, "idle", "end", agent_now_ns());
        if (g_signal) goto interrupted;
    }
    const melt_chat_msg one = {"user", r->text};
    const melt_backend_request rq = single_request(r, &one);
    const bool single = r->prompt || r->text;
    if (c->warmup > 0 && single) {
        if (warmup(r, &rq, &err) < 0) {
            rc = err.code ? err.code : MELT_EINVAL;
            goto fail;
        }
        if (g_signal) goto interrupted;
    }
    int req = 0;
    for (int k = 0; k < c->reps; k++) {
        if (single) {
            melt_backend_result res;
            if (c->pp && r->text) rotate_words(r->text);
            rc = one_request(r, req++, &rq, r->n_prompt, &res, &err);
            melt_backend_result_free(&res);
        } else {
            rc = run_plan(r, plan, &req, &err);
        }
        if (rc != 0) break;
        if (g_signal || r->out.failed) {
            rc = 1;
            break;
        }
    }
    melt_plan_free(plan);
    return rc;
interrupted:
    melt_plan_free(plan);
    return 1;
fail:
    melt_plan_free(plan);
    emit_error(r, -1, err.msg);
    return rc;
}

/* agent/listen.c: melt-agent --listen PORT (the tcp transport's server). */
int agent_listen(int argc, char **argv, int (*agent_main)(int argc, char **argv));

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--listen") == 0) return agent_listen(argc, argv, main);
    if (argc >= 2 && strcmp(argv[1], "--echo") == 0) return agent_echo(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--describe") == 0) return agent_describe(argc, argv);
    static run r;   /* large (the config holds probe names); lives for main */
    r.cfg.reps = 1;
    r.cfg.n_predict = 128;
    r.cfg.sp = melt_sampler_default_params();
    r.cfg.backend = "builtin";
    const int pa = parse_args(argc, argv, &r.cfg);
    if (pa) return pa < 0 ? 0 : pa;
    r.ops = melt_backend_find(r.cfg.backend);

    /* Signals reach the main thread only: block them while the engine's
     * and the probes' threads are created (they inherit the mask). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &r.sigold);

    agent_out_init(&r.out, STDOUT_FILENO);
    melt_event hello = agent_event(MELT_EV_HELLO, agent_now_ns());
    SET_TEXT(hello.name, MELT_VERSION);
    hello.id = AGENT_PROTO;
    agent_hello_details(&hello);
    melt_error perr = {0};
    const int prc = start_probes(&r, &hello, &perr);
    hello.t_ns = agent_now_ns();
    agent_emit(&r.out, &hello);
    int prc2 = 0;
    if (prc == 0 && r.probes) prc2 = melt_probe_set_start(r.probes, &perr);

    int rc;
    if (prc < 0 || prc2 < 0) {
        emit_error(&r, -1, perr.msg);
        rc = prc < 0 ? prc : prc2;
    } else {
        rc = run_cell(&r);   /* unblocks the signals once the engine's threads exist */
    }
    pthread_sigmask(SIG_SETMASK, &r.sigold, NULL);
    /* stop the server (or free the model) before the last figures */
    r.ops->close(r.b);
    r.b = NULL;
    if (r.probes) {
        melt_probe_set_stop(r.probes);
        melt_probe_set_stats ps;
        melt_probe_set_get_stats(r.probes, &ps);
        emit_figure(&r, "agent", -1, "probe_cpu_ns", (double)ps.cpu_ns, "ns");
        emit_figure(&r, "agent", -1, "probe_wall_ns", (double)ps.wall_ns, "ns");
        emit_figure(&r, "agent", -1, "probe_samples", (double)ps.samples, "count");
        emit_figure(&r, "agent", -1, "probe_missed", (double)ps.missed, "count");
        melt_probe_set_close(r.probes);
    }
    if (g_signal && rc >= 0) rc = 1;
    melt_event bye = agent_event(MELT_EV_BYE, agent_now_ns());
    SET_TEXT(bye.key, rc < 0 ? "error" : rc > 0 ? "interrupted" : "ok");
    agent_emit(&r.out, &bye);

    free(r.prompt);
    free(r.text);
    agent_out_destroy(&r.out);
    return rc < 0 ? 1 : rc > 0 ? 130 : 0;
}
