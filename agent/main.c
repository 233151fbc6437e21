/* melt-agent: runs one cell of an experiment on this device and writes its
 * event stream (docs/agent-protocol.md) to stdout, one JSON line per event.
 *
 *   hello, [probes start], phase load, phase idle, [phase warmup],
 *   then per repetition: request, phase prefill, first_token, phase decode,
 *   token..., end, engine figures; finally bye.
 *
 * Links the builtin engine and the probes from libmelt.a and nothing beyond
 * libc, libm and pthreads, so it can be built static for a phone or board.
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
#include "melt/chat.h"
#include "melt/engine.h"
#include "melt/plan.h"
#include "melt/generate.h"
#include "melt/probe.h"
#include "melt/sampler.h"
#include "melt/tokenizer.h"
#include "melt_version.h"

#define AGENT_PROTO 1
#define MAX_PROBES 16

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
          "                  [-t N] [-c N] [-b N] [--kv-type f16|f32] [sampling flags]\n"
          "                  [--reps N] [--warmup N] [--idle-ms N] [--probe NAME[:HZ]]...\n"
          "Run one benchmark cell with the builtin engine and write its events as JSON\n"
          "lines to stdout (docs/agent-protocol.md). Exit 0 ok, 1 error, 2 usage,\n"
          "130 interrupted.\n\n"
          "  -m, --model FILE        GGUF model\n"
          "      --synthetic PP,TG   a prompt of exactly PP tokens, exactly TG generated\n"
          "                          (end of generation ignored), as llama-bench pp/tg\n"
          "      --prompt TEXT       a text prompt (BOS where the vocab asks)\n"
          "      --plan FILE         a workload plan from the host (melt/plan.h; - for\n"
          "                          stdin): synthetic, prompts, or conversations run\n"
          "                          turn by turn through the chat template\n"
          "      --chat-template T   template for conversations (default: the model's)\n"
          "  -n, --n-predict N       with --prompt: most tokens to generate (default 128)\n"
          "      --ignore-eos        with --prompt: do not stop at end of generation\n"
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
    melt_context_params cp;
    bool ctx_given;
    melt_sampler_params sp;
    melt_probe_spec probes[MAX_PROBES];
    char probe_names[MAX_PROBES][64];
    size_t n_probes;
    const char *probe_root;
} agent_cfg;

enum {
    OPT_SYNTH = 256, OPT_IGNORE_EOS, OPT_KV, OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P,
    OPT_REP_PEN, OPT_REP_N, OPT_SEED, OPT_REPS, OPT_WARMUP, OPT_IDLE, OPT_PROBE,
    OPT_PROBE_ROOT, OPT_PLAN, OPT_CHAT_TEMPLATE,
};

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
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long v;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":m:p:n:t:c:b:Vh", opts, NULL)) != -1) {
        const char *a = optarg;
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
            c->cp.n_threads = (int)v;
            break;
        case 'c':
            if (!parse_long(a, 1, 1L << 24, &v)) return usage_error("-c needs an integer >= 1, got '%s'", a);
            c->cp.n_ctx = (int)v;
            c->ctx_given = true;
            break;
        case 'b':
            if (!parse_long(a, 1, 1L << 24, &v)) return usage_error("-b needs an integer >= 1, got '%s'", a);
            c->cp.n_batch = (int)v;
            break;
        case OPT_KV:
            if (!strcmp(a, "f16")) c->cp.kv_type = MELT_KV_F16;
            else if (!strcmp(a, "f32")) c->cp.kv_type = MELT_KV_F32;
            else return usage_error("--kv-type is f16 or f32, got '%s'", a);
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
    if (!c->model) return usage_error("%s", "missing -m FILE");
    if ((c->prompt != NULL) + (c->pp != 0) + (c->plan_path != NULL) != 1)
        return usage_error("%s", "give one workload: --synthetic PP,TG, --prompt TEXT or --plan FILE");
    if (c->pp && !c->ctx_given) c->cp.n_ctx = c->pp + c->tg;
    return 0;
}

/* ---- the run ---- */

typedef struct run {
    agent_out out;
    agent_cfg cfg;
    melt_model *model;
    melt_tokenizer *tok;
    melt_context *ctx;
    melt_sampler *smp;
    melt_probe_set *probes;
    melt_token *prompt;
    int n_prompt;
    int req;                /* the current request */
    int timed;              /* callback writes token lines (not warm-up) */
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

/* A figure of the builtin engine. */
static void emit_engine(run *r, int req, const char *key, double value, const char *unit)
{
    emit_figure(r, "builtin", req, key, value, unit);
}

static void on_sample(void *ctx, const melt_event *ev)
{
    agent_emit(ctx, ev);
}

/* The hot path: one token line per token, formatted on the stack. */
static int on_token(const melt_gen_token *t, void *user)
{
    run *r = user;
    if (t->id == MELT_TOKEN_NULL) return 0;    /* the UTF-8 flush: no token */
    if (r->timed) {
        const int64_t t_in = agent_now_ns();
        const int64_t tn = (int64_t)t->t_ns;
        melt_event ev;
        if (t->index == 0) {
            emit_phase(r, "prefill", "end", tn);
            ev = agent_event(MELT_EV_FIRST_TOKEN, tn);
            ev.req = r->req;
            agent_emit(&r->out, &ev);
            emit_phase(r, "decode", "begin", tn);
        }
        ev = agent_event(MELT_EV_TOKEN, tn);
        ev.req = r->req;
        ev.i = t->index;
        ev.id = t->id;
        agent_emit(&r->out, &ev);
        r->emit_ns += agent_now_ns() - t_in;
    }
    return g_signal || r->out.failed;
}

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

static int text_prompt(run *r, melt_error *err)
{
    size_t n = 0;
    if (melt_tokenize(r->tok, r->cfg.prompt, strlen(r->cfg.prompt),
                      MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, &r->prompt, &n, err) < 0)
        return err->code;
    if (n == 0) return melt_errorf(err, MELT_EINVAL, "the prompt is empty (no tokens)");
    if (n > (size_t)melt_context_n_ctx(r->ctx))
        return melt_errorf(err, MELT_EINVAL, "context overflow: the prompt has %zu tokens, the context holds %d (use -c)",
                           n, melt_context_n_ctx(r->ctx));
    r->n_prompt = (int)n;
    return 0;
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

/* One timed request: prompt[0..n) decoded at pos (the positions before it
 * are the KV cache's, for a conversation's later turns), then generation.
 * *gen receives the generated ids when gen is non-NULL. Returns 0, 1 when
 * interrupted, or a negative code (error and end lines written). */
static int one_request(run *r, int req, const melt_token *prompt, int n, int pos,
                       const melt_generate_params *gp, melt_token **gen, melt_generate_stats *st,
                       melt_error *err)
{
    r->req = req;
    r->timed = 1;
    r->emit_ns = 0;
    const int64_t t0 = agent_now_ns();
    melt_event ev = agent_event(MELT_EV_REQUEST, t0);
    ev.req = req;
    ev.id = n;
    agent_emit(&r->out, &ev);
    emit_phase(r, "prefill", "begin", t0);
    const int rc = melt_generate(r->ctx, r->tok, r->smp, prompt, n, pos, gp, on_token, r, gen, st, err);
    const int64_t t1 = agent_now_ns();
    emit_phase(r, st->n_gen > 0 ? "decode" : "prefill", "end", t1);
    if (rc < 0) emit_error(r, req, err->msg);
    ev = agent_event(MELT_EV_END, t1);
    ev.req = req;
    ev.id = st->n_gen;
    SET_TEXT(ev.key, rc < 0 ? "error" : melt_stop_reason_name(st->stop));
    agent_emit(&r->out, &ev);
    if (rc < 0) return rc;
    emit_engine(r, req, "prompt_ns", (double)st->prompt_ns, "ns");
    emit_engine(r, req, "ttft_ns", (double)st->ttft_ns, "ns");
    emit_engine(r, req, "gen_ns", (double)st->gen_ns, "ns");
    emit_engine(r, req, "sample_ns", (double)st->sample_ns, "ns");
    emit_engine(r, req, "prefill_tps", melt_generate_prompt_tps(st), "tok/s");
    emit_engine(r, req, "decode_tps", melt_generate_decode_tps(st), "tok/s");
    /* the agent's own cost inside the token loop (formatting and writing) */
    emit_figure(r, "agent", req, "emit_ns", (double)r->emit_ns, "ns");
    return st->stop == MELT_STOP_CALLER || g_signal || r->out.failed ? 1 : 0;
}

/* ---- plans (--plan): prompts and conversations ---- */

/* A growing list of chat messages; contents owned. */
typedef struct history {
    melt_chat_msg *msgs;
    size_t n, cap;
    melt_token *cached;     /* the tokens in the KV cache, in order */
    size_t n_cached;
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
    h->n_cached = 0;
}

/* Drop the oldest exchange (user turn and its answer). */
static void history_drop_oldest(history *h)
{
    const size_t k = h->n >= 2 ? 2 : h->n;
    for (size_t q = 0; q < k; q++) free((char *)h->msgs[q].content);
    memmove(h->msgs, h->msgs + k, (h->n - k) * sizeof *h->msgs);
    h->n -= k;
}

/* One user turn of a conversation, or one prompt (tmpl UNKNOWN: the text
 * as is). The history is rendered with the template; when it does not leave
 * room for the answer within the context limit, the oldest exchanges are
 * dropped. Tokens already in the KV cache (the longest common prefix) are
 * not decoded again, as a chat application would do: n_prompt in the
 * request line counts the tokens actually decoded. */
static int plan_turn(run *r, history *h, enum melt_chat_template tmpl, const char *text, int limit,
                     const melt_generate_params *gp, int req, melt_error *err)
{
    melt_token *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    const int room = gp->n_predict > 0 ? gp->n_predict : 0;
    int rc = history_push(h, "user", text, err);
    while (rc == 0) {
        char *rendered = NULL;
        if (tmpl == MELT_CHAT_UNKNOWN) {
            rendered = strdup(text);
            if (!rendered) rc = melt_errorf(err, MELT_ENOMEM, "out of memory for a prompt");
        } else {
            rc = melt_chat_render(tmpl, h->msgs, h->n, true, &rendered, err);
        }
        if (rc < 0) break;
        free(ids);
        ids = NULL;
        rc = melt_tokenize(r->tok, rendered, strlen(rendered),
                           MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, &ids, &n_ids, err);
        free(rendered);
        if (rc < 0 || n_ids + (size_t)room <= (size_t)limit || h->n <= 1) break;
        history_drop_oldest(h);
        h->n_cached = 0;   /* the prefix changed */
    }
    if (rc == 0 && n_ids == 0)
        rc = melt_errorf(err, MELT_EINVAL, "request %d: the prompt is empty (no tokens)", req);
    if (rc == 0 && n_ids >= (size_t)melt_context_n_ctx(r->ctx))
        rc = melt_errorf(err, MELT_EINVAL, "request %d: the prompt has %zu tokens, the context holds %d",
                         req, n_ids, melt_context_n_ctx(r->ctx));
    if (rc < 0) {   /* the request did not start: say why here */
        emit_error(r, req, err->msg);
        free(ids);
        return rc;
    }
    size_t k = 0;
    while (k < h->n_cached && k < n_ids && h->cached[k] == ids[k]) k++;
    if (k == n_ids) k--;   /* decode at least one token */
    melt_generate_stats st;
    rc = one_request(r, req, ids + k, (int)(n_ids - k), (int)k, gp, &gen, &st, err);
    if (rc >= 0) {
        /* the cache now holds the prompt, then the generated ids decoded */
        const size_t n_past = (size_t)st.n_past;
        melt_token *q = realloc(h->cached, (n_past ? n_past : 1) * sizeof *q);
        char *reply = NULL;
        size_t reply_len = 0;
        int drc = -1;
        if (q) {
            h->cached = q;
            for (size_t i = 0; i < n_past; i++) q[i] = i < n_ids ? ids[i] : gen[i - n_ids];
            h->n_cached = n_past;
            drc = melt_detokenize(r->tok, gen, (size_t)st.n_gen, 0, &reply, &reply_len, err);
        }
        if (drc < 0 || history_push(h, "assistant", reply ? reply : "", err) < 0) {
            melt_errorf(err, MELT_ENOMEM, "out of memory for the conversation");
            emit_error(r, req, err->msg);
            rc = MELT_ENOMEM;
        }
        free(reply);
    }
    free(ids);
    free(gen);
    return rc;
}

/* Every conversation of the plan, turn by turn; req counts on from *req. */
static int run_plan(run *r, const melt_plan *plan, enum melt_chat_template tmpl, int *req, melt_error *err)
{
    melt_generate_params gp = melt_generate_default_params();
    gp.n_predict = plan->max_gen_tokens;
    gp.ignore_eos = plan->ignore_eos;
    const int n_ctx = melt_context_n_ctx(r->ctx);
    const int limit = plan->max_context_tokens > 0 && plan->max_context_tokens < n_ctx
                          ? plan->max_context_tokens : n_ctx;
    history h = {0};
    int rc = 0;
    for (size_t c = 0; c < plan->n_convs && rc == 0; c++) {
        history_clear(&h);
        melt_sampler_reset(r->smp);
        for (size_t t = 0; t < plan->convs[c].n_turns && rc == 0; t++) {
            if (plan->kind == MELT_PLAN_PROMPTS) {
                history_clear(&h);
                melt_sampler_reset(r->smp);
            }
            rc = plan_turn(r, &h, tmpl, plan->convs[c].turns[t], limit, &gp, (*req)++, err);
        }
    }
    history_clear(&h);
    free(h.msgs);
    free(h.cached);
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

static int warmup(run *r, const melt_generate_params *gp, melt_error *err)
{
    emit_phase(r, "warmup", "begin", agent_now_ns());
    r->timed = 0;
    int rc = 0;
    for (int w = 0; w < r->cfg.warmup && !g_signal && rc == 0; w++) {
        melt_sampler_reset(r->smp);
        melt_generate_stats st;
        rc = melt_generate(r->ctx, r->tok, r->smp, r->prompt, r->n_prompt, 0, gp, on_token, r,
                           NULL, &st, err);
    }
    emit_phase(r, "warmup", "end", agent_now_ns());
    return rc;
}

/* Everything between hello and bye; 0 ok, 1 interrupted, < 0 error (the
 * error line is written). */
static int run_cell(run *r)
{
    melt_error err = {0};
    agent_cfg *c = &r->cfg;
    melt_plan *plan = NULL;
    enum melt_chat_template tmpl = MELT_CHAT_UNKNOWN;
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
            if (!c->ctx_given) c->cp.n_ctx = c->pp + c->tg;
        }
    }
    if (c->chat_template && !melt_chat_template_parse(c->chat_template, &tmpl)) {
        rc = melt_errorf(&err, MELT_EINVAL, "unknown chat template '%s' (one of %s)", c->chat_template,
                         melt_chat_template_names());
        goto fail;
    }
    emit_phase(r, "load", "begin", agent_now_ns());
    rc = melt_model_load(c->model, NULL, &r->model, &err);
    if (rc == 0) {
        rc = melt_tokenizer_load(melt_model_gguf(r->model), &r->tok, &err);
        if (rc < 0) {
            char m[sizeof err.msg];
            snprintf(m, sizeof m, "%s", err.msg);
            melt_errorf(&err, rc, "%s: %s", c->model, m);
        }
    }
    if (rc == 0) rc = melt_context_new(r->model, &c->cp, &r->ctx, &err);
    if (rc == 0) rc = melt_sampler_new(&c->sp, melt_model_n_vocab(r->model), &r->smp, &err);
    emit_phase(r, "load", "end", agent_now_ns());
    /* the engine's threads exist now: signals may come in (to this thread) */
    pthread_sigmask(SIG_SETMASK, &r->sigold, NULL);
    if (rc < 0) goto fail;
    emit_engine(r, -1, "n_threads", melt_context_n_threads(r->ctx), "count");
    emit_engine(r, -1, "n_ctx", melt_context_n_ctx(r->ctx), "count");
    if (plan && plan->kind == MELT_PLAN_CONVERSATIONS && tmpl == MELT_CHAT_UNKNOWN) {
        melt_str j = {0};
        if (melt_gguf_get_str(melt_model_gguf(r->model), "tokenizer.chat_template", &j))
            tmpl = melt_chat_template_detect(j.ptr, (size_t)j.len);
        if (tmpl == MELT_CHAT_UNKNOWN) {
            rc = melt_errorf(&err, MELT_EUNSUPPORTED, "%s: %s; name one with --chat-template (%s)", c->model,
                             j.ptr ? "the model's chat template is not one melt knows"
                                   : "the model has no chat template (tokenizer.chat_template)",
                             melt_chat_template_names());
            goto fail;
        }
    }
    if (c->pp) {
        if (c->pp + c->tg > melt_context_n_ctx(r->ctx)) {
            rc = melt_errorf(&err, MELT_EINVAL, "--synthetic %d,%d needs a context of %d, -c is %d",
                             c->pp, c->tg, c->pp + c->tg, melt_context_n_ctx(r->ctx));
            goto fail;
        }
        rc = synthetic_prompt(r, c->pp, &err);
    } else if (c->prompt) {
        rc = text_prompt(r, &err);
    }
    if (rc < 0) goto fail;
    if (g_signal) goto interrupted;
    if (c->idle_ms > 0) {
        emit_phase(r, "idle", "begin", agent_now_ns());
        idle_sleep(c->idle_ms);
        emit_phase(r, "idle", "end", agent_now_ns());
        if (g_signal) goto interrupted;
    }
    melt_generate_params gp = melt_generate_default_params();
    if (c->pp) {
        gp.n_predict = c->tg;
        gp.ignore_eos = true;
    } else {
        gp.n_predict = c->n_predict;
        gp.ignore_eos = c->ignore_eos;
    }
    if (c->warmup > 0 && r->prompt) {
        if (warmup(r, &gp, &err) < 0) {
            rc = err.code ? err.code : MELT_EINVAL;
            goto fail;
        }
        if (g_signal) goto interrupted;
    }
    int req = 0;
    for (int q = 0; q < c->reps; q++) {
        if (r->prompt) {
            melt_generate_stats st;
            melt_sampler_reset(r->smp);
            rc = one_request(r, req++, r->prompt, r->n_prompt, 0, &gp, NULL, &st, &err);
        } else {
            rc = run_plan(r, plan, plan->kind == MELT_PLAN_PROMPTS ? MELT_CHAT_UNKNOWN : tmpl, &req, &err);
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
    static run r;   /* large (the config holds probe names); lives for main */
    r.cfg.reps = 1;
    r.cfg.n_predict = 128;
    r.cfg.cp = melt_context_default_params();
    r.cfg.sp = melt_sampler_default_params();
    const int pa = parse_args(argc, argv, &r.cfg);
    if (pa) return pa < 0 ? 0 : pa;

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
    melt_sampler_free(r.smp);
    melt_context_free(r.ctx);
    melt_tokenizer_free(r.tok);
    melt_model_free(r.model);
    agent_out_destroy(&r.out);
    return rc < 0 ? 1 : rc > 0 ? 130 : 0;
}
