/* melt — the llamacpp backend: unpatched llama.cpp programs on the device.
 *
 * mode "server" (default): open starts
 *   llama-server -m MODEL --host 127.0.0.1 --port P [-t N] [-c N] [-b N]
 *                [-ctk f32 -ctv f32] [--chat-template T] [-np 1] [extra args]
 * and waits for /health (load_ms: spawn to healthy). Exact token prompts
 * and text go to llama.cpp's native /completion (prompt as ids or a
 * string, n_predict, ignore_eos, cache_prompt false: every repetition
 * does the same work), chat to /v1/chat/completions (the server keeps its
 * prompt cache, as a chat application would). Tokens are timed on
 * arrival; the server's `timings` object becomes figures (prompt_n,
 * prompt_ms, predicted_per_second ...). close stops the server.
 *
 * mode "cli": every request runs llama-completion (else llama-cli) with
 *   -m MODEL -p PROMPT -n N --temp T --top-k K --top-p P --min-p M
 *   --repeat-penalty R --repeat-last-n N --seed S [-t N] [-c N] [-b N]
 *   [--ignore-eos] -no-cnv [extra args]
 * Each chunk its stdout delivers is tokens arriving (id -1: text only; a
 * chunk holding several, because the program wrote faster than we read,
 * counts as many as the vocabulary splits it into; the echoed prompt and
 * " [end of text]" are not generated text), and the timing summary
 * it prints on stderr becomes figures with the server's names (load_ms,
 * prompt_n, prompt_ms, prompt_per_second, predicted_n, predicted_ms,
 * predicted_per_second, sampling_ms, total_ms). Text prompts only.
 *
 * The GGUF's own tokenizer is loaded in process when it can be, so the
 * agent can make exact synthetic prompts (and counts text prompts).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/http.h"
#include "backends/llamacpp.h"
#include "melt/backend.h"
#include "melt/gguf.h"
#include "melt/proc.h"
#include "melt/tokenizer.h"

#define MAX_ARGS 160
#define STDERR_KEEP (256 * 1024)
#define ECHO_SLICE 4096            /* stdout bytes through the echo filter at a time */

struct melt_backend {
    melt_backend_params p;
    bool cli;
    char binary[1024];       /* the program (cli: resolved) */
    melt_server *srv;
    char base_url[64];
    melt_gguf *gguf;         /* holds the tokenizer's vocabulary */
    melt_tokenizer *tok;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void figure(const melt_backend_sink *s, const char *key, double v, const char *unit)
{
    if (s && s->figure && isfinite(v))
        s->figure(s->ctx, key, v, unit);
}

/* ---- argv ---- */

typedef struct args {
    char *v[MAX_ARGS + 1];
    char num[MAX_ARGS][32];   /* storage for formatted numbers */
    int n;
} args;

static void add(args *a, const char *s)
{
    if (a->n < MAX_ARGS) {
        a->v[a->n++] = (char *)s;
        a->v[a->n] = NULL;
    }
}

static void addf(args *a, const char *flag, const char *fmt, double v)
{
    if (a->n + 2 > MAX_ARGS)
        return;
    add(a, flag);
    snprintf(a->num[a->n], sizeof a->num[0], fmt, v);
    add(a, a->num[a->n]);
}

static bool has_arg(const melt_backend_params *p, const char *x, const char *y)
{
    for (int i = 0; i < p->n_extra_args; i++)
        if (strcmp(p->extra_args[i], x) == 0 || (y && strcmp(p->extra_args[i], y) == 0))
            return true;
    return false;
}

/* The engine options both programs share. */
static void engine_args(args *a, const melt_backend_params *p)
{
    if (p->n_threads > 0)
        addf(a, "-t", "%.0f", p->n_threads);
    if (p->n_ctx > 0)
        addf(a, "-c", "%.0f", p->n_ctx);
    if (p->n_batch > 0)
        addf(a, "-b", "%.0f", p->n_batch);
    if (p->kv_type && strcmp(p->kv_type, "f32") == 0) {
        add(a, "-ctk");
        add(a, "f32");
        add(a, "-ctv");
        add(a, "f32");
    }
}

static void extra_args(args *a, const melt_backend_params *p)
{
    for (int i = 0; i < p->n_extra_args; i++)
        add(a, p->extra_args[i]);
}

/* ---- open / close ---- */

/* name found as an executable file in PATH (or name itself with a '/'). */
static bool find_program(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        snprintf(out, cap, "%s", name);
        return access(name, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    for (const char *s = path ? path : "/usr/local/bin:/usr/bin:/bin"; s && *s;) {
        const char *colon = strchr(s, ':');
        const size_t n = colon ? (size_t)(colon - s) : strlen(s);
        if (n && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, s, name) < cap &&
            access(out, X_OK) == 0)
            return true;
        s = colon ? colon + 1 : NULL;
    }
    return false;
}

static void llamacpp_close(melt_backend *b)
{
    if (!b)
        return;
    melt_server_stop(b->srv);
    melt_tokenizer_free(b->tok);
    melt_gguf_close(b->gguf);
    free(b);
}

static int start_server(melt_backend *b, const melt_backend_sink *sink, melt_error *err)
{
    const melt_backend_params *p = &b->p;
    int port = p->port;
    if (port <= 0 && (port = melt_http_free_port(err)) < 0)
        return port;
    snprintf(b->binary, sizeof b->binary, "%s", p->binary ? p->binary : "llama-server");
    args a = {{0}, {{0}}, 0};
    add(&a, b->binary);
    add(&a, "-m");
    add(&a, p->model);
    add(&a, "--host");
    add(&a, "127.0.0.1");
    addf(&a, "--port", "%.0f", port);
    engine_args(&a, p);
    if (p->chat_template && !has_arg(p, "--chat-template", NULL)) {
        /* melt's template names are llama.cpp's built-in ones but two */
        const char *t = p->chat_template;
        add(&a, "--chat-template");
        add(&a, !strcmp(t, "mistral") ? "mistral-v1" : !strcmp(t, "qwen") ? "chatml" : t);
    }
    /* one client at a time: one slot, so the whole context is its */
    if (!has_arg(p, "-np", "--parallel")) {
        add(&a, "-np");
        add(&a, "1");
    }
    extra_args(&a, p);
    if (a.n >= MAX_ARGS)
        return melt_errorf(err, MELT_EINVAL, "llamacpp: more than %d server arguments", MAX_ARGS);
    snprintf(b->base_url, sizeof b->base_url, "http://127.0.0.1:%d", port);
    char health[96];
    snprintf(health, sizeof health, "%s/health", b->base_url);
    /* The agent opens backends with SIGINT/SIGTERM blocked (for the builtin
     * engine's threads); a server forked now would inherit that mask across
     * exec and ignore the SIGTERM that stops it. Nothing here starts
     * threads, so let signals in while it starts (a Ctrl-C then cancels). */
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    int rc = melt_server_start(a.v, health, NULL, p->start_timeout_ms, p->cancel, &b->srv, err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        return rc;
    figure(sink, "load_ms", (double)melt_server_start_ns(b->srv) / 1e6, "ms");
    figure(sink, "port", port, "count");
    return 0;
}

static int llamacpp_open(const melt_backend_params *p, const melt_backend_sink *sink,
                         melt_backend **out, melt_error *err)
{
    *out = NULL;
    if (!p->model || !*p->model)
        return melt_errorf(err, MELT_EINVAL, "llamacpp: no model file given (-m FILE)");
    const bool cli = p->mode && strcmp(p->mode, "cli") == 0;
    if (p->mode && !cli && strcmp(p->mode, "server") != 0)
        return melt_errorf(err, MELT_EINVAL, "llamacpp: mode is server or cli, got '%s'", p->mode);
    if (access(p->model, R_OK) != 0)
        return melt_errorf(err, MELT_EIO, "%s: cannot read: %s", p->model, strerror(errno));
    melt_backend *b = calloc(1, sizeof *b);
    if (!b)
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    b->p = *p;
    b->cli = cli;
    /* the vocabulary, for exact prompts; a file melt cannot read is fine */
    melt_error terr = {0};
    if (melt_gguf_open(p->model, &b->gguf, &terr) == 0 &&
        melt_tokenizer_load(b->gguf, &b->tok, &terr) < 0)
        b->tok = NULL;
    int rc = 0;
    if (cli) {
        if (p->binary ? !find_program(p->binary, b->binary, sizeof b->binary)
                      : !find_program("llama-completion", b->binary, sizeof b->binary) &&
                            !find_program("llama-cli", b->binary, sizeof b->binary))
            rc = melt_errorf(err, MELT_ENOTFOUND,
                             "llamacpp cli: %s%s not found or not executable%s", p->binary ? "" : "llama-completion / llama-cli",
                             p->binary ? p->binary : "",
                             p->binary ? "" : " on PATH (give binary: in the engine entry)");
    } else {
        rc = start_server(b, sink, err);
    }
    if (rc < 0) {
        llamacpp_close(b);
        return rc;
    }
    if (p->n_threads > 0)
        figure(sink, "n_threads", p->n_threads, "count");
    if (p->n_ctx > 0)
        figure(sink, "n_ctx", p->n_ctx, "count");
    *out = b;
    return 0;
}

static unsigned llamacpp_caps(const melt_backend *b)
{
    return b->cli ? MELT_BACKEND_TEXT
                  : MELT_BACKEND_TOKENS | MELT_BACKEND_TEXT | MELT_BACKEND_CHAT;
}

static const melt_tokenizer *llamacpp_tokenizer(const melt_backend *b)
{
    return b->tok;
}

static void llamacpp_reset(melt_backend *b)
{
    (void)b;   /* the server's cache follows the prompt by itself */
}

/* ---- server requests ---- */

/* How many tokens the server will see for a text prompt (it tokenizes
 * with BOS and special tokens, as melt does), -1 without a tokenizer. */
static int count_text(const melt_backend *b, const char *text)
{
    if (!b->tok)
        return -1;
    melt_token *ids = NULL;
    size_t n = 0;
    melt_error e = {0};
    const int rc = melt_tokenize(b->tok, text, strlen(text),
                                 MELT_TOKENIZE_ADD_SPECIAL | MELT_TOKENIZE_PARSE_SPECIAL, &ids, &n, &e);
    free(ids);
    return rc < 0 ? -1 : (int)n;
}

static int server_request(melt_backend *b, const melt_backend_request *rq,
                          const melt_backend_sink *sink, melt_backend_result *res, melt_error *err)
{
    melt_oai_call c;
    memset(&c, 0, sizeof c);
    c.base_url = b->base_url;
    c.rq = rq;
    c.sampling = &b->p.sampling;
    c.idle_timeout_ms = b->p.request_timeout_ms;
    c.cancel = b->p.cancel;
    int n_prompt = -1;
    if (rq->tokens || rq->prompt) {
        c.kind = MELT_OAI_LLAMA_COMPLETION;
        c.extra_json = "\"cache_prompt\":false";
        n_prompt = rq->tokens ? rq->n_tokens : count_text(b, rq->prompt);
    } else {
        c.kind = MELT_OAI_CHAT;
        c.llama_extras = true;
    }
    if (sink && sink->started)
        sink->started(sink->ctx, now_ns(), n_prompt);
    int rc = melt_oai_stream(&c, sink, res, err);
    if (rc == 0 && res->end == MELT_BACKEND_END_LOST && !melt_server_alive(b->srv))
        figure(sink, "server_exited", 1, "bool");
    return rc;
}

/* ---- cli requests ---- */

typedef struct cli_run {
    melt_backend *b;
    const melt_backend_sink *sink;
    melt_llamacpp_echo echo;
    char *errbuf;            /* stderr, the last STDERR_KEEP bytes */
    size_t err_len;
    char *text;              /* the echo filter's output: ECHO_SLICE + hold + prompt bytes */
    size_t text_cap;
    int n_gen;
    bool stop;               /* the sink asked to stop */
    char *reply;
    size_t reply_len, reply_cap;
    size_t anchor;           /* chunk_tokens counts from this reply offset */
    int anchor_gen;          /* tokens reported before it */
} cli_run;

static void keep_reply(cli_run *r, const char *s, size_t n)
{
    if (r->reply_len + n + 1 > r->reply_cap) {
        size_t cap = r->reply_cap ? r->reply_cap * 2 : 1024;
        while (cap < r->reply_len + n + 1)
            cap *= 2;
        char *q = realloc(r->reply, cap);
        if (!q)
            return;
        r->reply = q;
        r->reply_cap = cap;
    }
    memcpy(r->reply + r->reply_len, s, n);
    r->reply_len += n;
    r->reply[r->reply_len] = '\0';
}

/* How many tokens a chunk of generated text holds: the program writes
 * each token's piece at once, but when it writes faster than we read,
 * pieces arrive together. The vocabulary splits the answer again (close
 * to, not always exactly, how it was generated): the chunk counts what
 * the answer's token count grew by since a recent anchor (a window, so
 * the cost stays bounded and the tokenizer's leading-space rule cancels
 * out); at least one for the first chunk, one each without a tokenizer. */
static int count_tokens(const melt_backend *b, const char *s, size_t n)
{
    melt_token *ids = NULL;
    size_t k = 0;
    melt_error e = {0};
    const int rc = melt_tokenize(b->tok, s, n, 0, &ids, &k, &e);
    free(ids);
    return rc < 0 ? -1 : (int)k;
}

static int chunk_tokens(cli_run *r)
{
    if (!r->b->tok || !r->reply)
        return 1;
    /* after a newline, so the window's first piece is not taken as the
     * start of a text (SentencePiece's leading space) */
    const size_t n = r->reply_len - r->anchor;
    char *w = malloc(n + 1);
    if (!w)
        return 1;
    w[0] = '\n';
    memcpy(w + 1, r->reply + r->anchor, n);
    const int k = count_tokens(r->b, w, n + 1), k0 = count_tokens(r->b, "\n", 1);
    free(w);
    if (k < 0 || k0 < 0)
        return 1;
    const int grown = k - k0 - (r->n_gen - r->anchor_gen);
    return grown > 0 ? grown : r->n_gen == 0 ? 1 : 0;
}

/* Generated text arrived at t: one token for the sink per token it holds
 * (the text goes with the first; ids unknown). */
static void text_out(cli_run *r, const char *s, size_t n, int64_t t)
{
    if (!n)
        return;
    const size_t before = r->reply_len;
    keep_reply(r, s, n);
    const int k = r->reply_len == before + n ? chunk_tokens(r) : 1;
    for (int i = 0; i < k; i++) {
        if (r->sink && r->sink->token && !r->stop &&
            r->sink->token(r->sink->ctx, t, r->n_gen, -1, i ? "" : s, i ? 0 : n))
            r->stop = true;
        r->n_gen++;
    }
    if (r->reply_len - r->anchor > 4096) {
        r->anchor = r->reply_len;
        r->anchor_gen = r->n_gen;
    }
}

static int on_cli_output(int fd, const char *data, size_t n, void *user)
{
    cli_run *r = user;
    if (fd == 2) {
        if (n >= STDERR_KEEP) {
            memcpy(r->errbuf, data + n - STDERR_KEEP, STDERR_KEEP);
            r->err_len = STDERR_KEEP;
        } else {
            if (r->err_len + n > STDERR_KEEP) {
                const size_t drop = r->err_len + n - STDERR_KEEP;
                memmove(r->errbuf, r->errbuf + drop, r->err_len - drop);
                r->err_len -= drop;
            }
            memcpy(r->errbuf + r->err_len, data, n);
            r->err_len += n;
        }
        return 0;
    }
    const int64_t t = now_ns();
    /* r->text holds what one slice can give: the slice, the held bytes
     * and, when the echo turns out not to be one, the prompt bytes it
     * matched (a fixed buffer cut a long prompt's text short) */
    for (size_t off = 0; off < n;) {
        const size_t k = n - off < ECHO_SLICE ? n - off : ECHO_SLICE;
        text_out(r, r->text, melt_llamacpp_echo_push(&r->echo, data + off, k, r->text, r->text_cap), t);
        off += k;
    }
    return 0;
}

static void cli_figures(const melt_backend_sink *sink, const melt_llamacpp_perf *pf)
{
    figure(sink, "load_ms", pf->load_ms, "ms");
    figure(sink, "sampling_ms", pf->sampling_ms, "ms");
    if (pf->prompt_n >= 0)
        figure(sink, "prompt_n", pf->prompt_n, "count");
    figure(sink, "prompt_ms", pf->prompt_ms, "ms");
    figure(sink, "prompt_per_second", pf->prompt_per_second, "tok/s");
    if (pf->predicted_n >= 0)
        figure(sink, "predicted_n", pf->predicted_n, "count");
    figure(sink, "predicted_ms", pf->predicted_ms, "ms");
    figure(sink, "predicted_per_second", pf->predicted_per_second, "tok/s");
    figure(sink, "total_ms", pf->total_ms, "ms");
}

/* The last line of stderr that is not a timing line, for messages. */
static void err_tail(const cli_run *r, char *out, size_t cap)
{
    size_t e = r->err_len;
    while (e && (r->errbuf[e - 1] == '\n' || r->errbuf[e - 1] == '\r'))
        e--;
    size_t s = e;
    while (s && r->errbuf[s - 1] != '\n')
        s--;
    snprintf(out, cap, "%.*s", (int)(e - s), r->errbuf + s);
}

static int cli_request(melt_backend *b, const melt_backend_request *rq,
                       const melt_backend_sink *sink, melt_backend_result *res, melt_error *err)
{
    if (!rq->prompt)
        return melt_errorf(err, MELT_EUNSUPPORTED,
                           "llamacpp cli takes a text prompt only (mode server takes token ids and chat)");
    const melt_backend_params *p = &b->p;
    const melt_sampler_params *sp = &p->sampling;
    args a = {{0}, {{0}}, 0};
    add(&a, b->binary);
    add(&a, "-m");
    add(&a, p->model);
    add(&a, "-p");
    add(&a, rq->prompt);
    addf(&a, "-n", "%.0f", rq->n_predict);
    addf(&a, "--temp", "%.9g", sp->temperature);
    addf(&a, "--top-k", "%.0f", sp->top_k);
    addf(&a, "--top-p", "%.9g", sp->top_p);
    addf(&a, "--min-p", "%.9g", sp->min_p);
    addf(&a, "--repeat-penalty", "%.9g", sp->repeat_penalty);
    addf(&a, "--repeat-last-n", "%.0f", sp->repeat_last_n);
    addf(&a, "--seed", "%.0f", (double)(sp->seed & 0xffffffffu));
    engine_args(&a, p);
    if (rq->ignore_eos)
        add(&a, "--ignore-eos");
    add(&a, "-no-cnv");
    extra_args(&a, p);
    if (a.n >= MAX_ARGS)
        return melt_errorf(err, MELT_EINVAL, "llamacpp: more than %d cli arguments", MAX_ARGS);

    cli_run r;
    memset(&r, 0, sizeof r);
    r.b = b;
    r.sink = sink;
    melt_llamacpp_echo_init(&r.echo, rq->prompt);
    r.text_cap = ECHO_SLICE + sizeof r.echo.hold + strlen(rq->prompt) + 1;
    r.errbuf = malloc(STDERR_KEEP);
    r.text = malloc(r.text_cap);
    if (!r.errbuf || !r.text) {
        free(r.errbuf);
        free(r.text);
        return melt_errorf(err, MELT_ENOMEM, "out of memory");
    }
    melt_proc proc = {.pid = -1, .out_fd = -1, .err_fd = -1};
    melt_proc_opts po = {.stdin_null = true, .new_process_group = true};
    res->t_request_ns = now_ns();
    int rc = melt_proc_spawn(a.v, &po, &proc, err);
    if (rc < 0) {
        free(r.errbuf);
        free(r.text);
        return rc;
    }
    if (sink && sink->started)
        sink->started(sink->ctx, res->t_request_ns, count_text(b, rq->prompt));
    bool sent_int = false;
    int64_t t_int = 0;
    for (;;) {
        rc = melt_proc_pump(&proc, 50, on_cli_output, &r, err);
        if (rc != 0)
            break;
        const bool cancel = r.stop || (p->cancel && *p->cancel);
        if (cancel && !sent_int) {   /* llama.cpp prints its timings on SIGINT */
            melt_proc_signal(&proc, SIGINT);
            sent_int = true;
            t_int = now_ns();
        } else if (sent_int && now_ns() - t_int > 2000000000LL) {
            melt_proc_signal(&proc, SIGKILL);
        }
    }
    if (rc > 0)
        rc = 0;   /* both pipes closed: the program is done writing */
    if (melt_proc_wait(&proc, 10000) == 0) {
        melt_proc_signal(&proc, SIGKILL);
        melt_proc_wait(&proc, -1);
    }
    const int code = melt_proc_exit_code(&proc);
    melt_proc_close(&proc);
    text_out(&r, r.text, melt_llamacpp_echo_finish(&r.echo, r.text, r.text_cap), now_ns());

    melt_llamacpp_perf pf;
    melt_llamacpp_perf_init(&pf);
    melt_llamacpp_perf_parse(r.errbuf, r.err_len, &pf);
    res->n_gen = r.n_gen;
    res->n_prompt = pf.prompt_n;
    res->reply = r.reply;
    if (rc < 0) {
        /* pump failed: what arrived stays reported */
    } else if (sent_int) {
        res->end = MELT_BACKEND_END_CALLER;
    } else if (code != 0 && r.n_gen == 0) {
        char last[300];
        err_tail(&r, last, sizeof last);
        rc = melt_errorf(err, MELT_EIO, "%s exited with status %d%s%s", b->binary, code,
                         last[0] ? ": " : "", last);
    } else if (code != 0) {
        res->end = MELT_BACKEND_END_LOST;   /* it died midway */
    } else {
        res->end = r.echo.eog ? MELT_BACKEND_END_EOG : MELT_BACKEND_END_LIMIT;
    }
    if (rc == 0) {
        cli_figures(sink, &pf);
        if (pf.n_lines == 0)
            figure(sink, "timings_missing", 1, "bool");
    }
    free(r.errbuf);
    free(r.text);
    return rc;
}

static int llamacpp_request(melt_backend *b, const melt_backend_request *rq,
                            const melt_backend_sink *sink, melt_backend_result *res, melt_error *err)
{
    memset(res, 0, sizeof *res);
    res->n_prompt = -1;
    return b->cli ? cli_request(b, rq, sink, res, err) : server_request(b, rq, sink, res, err);
}

static const melt_backend_ops llamacpp_ops = {
    .name = "llamacpp",
    .caps = MELT_BACKEND_TOKENS | MELT_BACKEND_TEXT | MELT_BACKEND_CHAT,
    .open = llamacpp_open,
    .caps_of = llamacpp_caps,
    .tokenizer = llamacpp_tokenizer,
    .request = llamacpp_request,
    .reset = llamacpp_reset,
    .close = llamacpp_close,
};

const melt_backend_ops *melt_backend_llamacpp(void);
const melt_backend_ops *melt_backend_llamacpp(void)
{
    return &llamacpp_ops;
}
